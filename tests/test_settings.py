"""One settings object per run (noiseproof.settings.RunSettings): built once from the config or
from friendly keyword arguments, passed down, giving the same numbers either way."""

from __future__ import annotations

import pickle
import sys

import pytest
import torch
from torch import nn

import noiseproof as nf
from helpers import MINIMAL_EXPERIMENT
from noiseproof.config import ExperimentConfig
from noiseproof.experiments.grid import GridRun
from noiseproof.settings import RunSettings


def blobs(n: int = 120, seed: int = 0) -> nf.Dataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return nf.Dataset.from_tensors(x[:80], y[:80], x[80:], y[80:])


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def test_from_config_reads_the_config_and_build_the_same_from_keywords():
    raw = {**MINIMAL_EXPERIMENT, "device": "cpu", "eval_precision": "bf16", "eval_batch_size": 7}
    config = ExperimentConfig.parse({**raw, "task": "classification"})
    settings = RunSettings.from_config(config)
    assert settings.device == torch.device("cpu")
    assert (settings.eval_precision, settings.eval_batch_size) == ("bf16", 7)
    assert settings.selection == config.chip and settings.analog is None
    assert settings.task.registered_name == "classification"
    built = RunSettings.build(
        device="cpu", eval_precision="bf16", eval_batch_size=7, task="classification"
    )
    assert built == settings
    assert RunSettings.from_config(ExperimentConfig.parse(raw)).task is None  # 'auto'


def test_build_refuses_what_is_not_a_setting_and_replaces_only_what_is_given():
    with pytest.raises(TypeError, match="'batchsize'"):
        RunSettings.build(batchsize=3)
    with pytest.raises(TypeError, match="settings must be a RunSettings"):
        RunSettings.build({"device": "cpu"})
    with pytest.raises(ValueError, match="device"):
        RunSettings.build(device="gpu")
    base = RunSettings.build(device="cpu", eval_batch_size=5)
    changed = RunSettings.build(base, eval_precision="fp16")
    assert (changed.device, changed.eval_batch_size, changed.eval_precision) == (
        torch.device("cpu"),
        5,
        "fp16",
    )


def test_run_transfers_gives_the_same_chips_from_settings_or_keywords():
    data, model = blobs(), mlp()
    noise = nf.create_noise({"name": "relative_gaussian", "zeta": 0.3})
    chip = nf.ChipSelection(layers=["Linear"], kinds=["weight"])

    def chips(**kwargs):
        gen = nf.generator(0, "chips")
        return nf.run_transfers(model, noise, data.x_test, data.y_test, 6, gen, **kwargs)

    friendly = chips(selection=chip, batch_size=7, task="classification")
    settings = RunSettings.build(selection=chip, eval_batch_size=7, task="classification")
    assert torch.equal(chips(settings=settings).sums, friendly.sums)
    other = chips(settings=settings, selection=nf.ChipSelection())  # a keyword replaces a field
    assert torch.equal(other.sums, chips(batch_size=7).sums)
    assert not torch.equal(other.sums, friendly.sums)
    with pytest.raises(TypeError, match="'eval_batch_size'"):  # the friendly name only
        chips(eval_batch_size=7)


def test_train_gives_the_same_weights_from_settings_or_keywords():
    data, method = blobs(), nf.create_method("noise_injection")
    noise = nf.create_noise({"name": "relative_gaussian", "zeta": 0.2})
    config = nf.TrainConfig(epochs=2, batch_size=20)
    a, b = mlp(), mlp()
    nf.train(a, data, method, config, noise=noise, progress=False, device="cpu", task=None)
    settings = RunSettings.build(device="cpu")
    nf.train(b, data, method, config, noise=noise, progress=False, settings=settings)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    with pytest.raises(TypeError, match="'precision'"):  # training precision: TrainConfig's
        nf.train(mlp(), data, method, config, progress=False, precision="bf16")


def test_a_run_resolves_its_settings_once_and_again_where_it_is_unpickled():
    config = ExperimentConfig.parse({**MINIMAL_EXPERIMENT, "device": "cpu"})
    run = GridRun(config, None)
    assert run.settings == RunSettings.from_config(config)
    assert "settings" not in run.__getstate__()  # a Ray worker resolves them on its machine
    assert pickle.loads(pickle.dumps(run)).settings == run.settings


def test_compare_takes_settings_like_its_keywords():
    data = blobs()
    common = dict(methods=["standard"], levels=[0.2], transfers=4, train={"epochs": 1})
    friendly = nf.compare(mlp(), data, **common, device="cpu", eval_batch_size=9)
    settings = RunSettings.build(device="cpu", eval_batch_size=9)
    given = nf.compare(mlp(), data, **common, settings=settings)
    assert given.config == friendly.config
    assert given.jobs[0]["per_chip"] == friendly.jobs[0]["per_chip"]


def test_a_compare_run_resolves_its_device_and_picks_the_rank_gpu_once():
    from noiseproof import devices
    from noiseproof.experiments.compare import run_compare

    raw = {**MINIMAL_EXPERIMENT, "methods": ["standard", "noise_injection"], "seeds": [0, 1]}
    raw |= {"transfers": 2, "device": "cpu", "train": {"epochs": 1, "steps_per_epoch": 2}}
    config = ExperimentConfig.parse(raw)
    watched = {devices.resolve_device.__code__: "resolve", devices.rank_device.__code__: "rank"}
    calls = {"resolve": 0, "rank": 0}

    def count(frame, event, arg):
        if event == "call" and frame.f_code in watched:
            calls[watched[frame.f_code]] += 1

    sys.setprofile(count)
    try:
        run_compare(config, None, progress=False, log=lambda _: None)
    finally:
        sys.setprofile(None)
    assert calls == {"resolve": 1, "rank": 1}  # four trainings, eight evaluations

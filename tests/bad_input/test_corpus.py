"""The bad-input corpus: every case is refused in one line that names the problem.

CLI cases (run in-process by click's CliRunner, a few also as real subprocesses): exit code 2,
stderr exactly one line `error: ...` holding the expected fragment, no traceback, and nothing
written (the working folder stays empty, --out is not created, an existing run folder is
unchanged). Python API cases: a ValueError/TypeError (or NoiseproofError) whose message holds
the expected fragment, which names the argument.

Argv templates name corpus files as `{key}` (see corpus_files.py) and the output folder `{out}`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner
from corpus_files import QUICK_RUN, make_corpus_files, moons_meta
from torch import nn

import noiseproof as nf
from helpers import QUICK_COMPARE, tiny_data
from noiseproof.cli import cli
from noiseproof.errors import NoiseproofError

BASE = QUICK_COMPARE


def compare(*args: str) -> list[str]:
    """A quick compare on moons with `args` appended."""
    return ["compare", *BASE, *args]


NPZ = "dataset={name: npz, train: {%s}}"
"""--set value using the npz file with corpus key %s."""

CLI_CASES: list[tuple[str, list[str], str]] = [
    # names
    ("unknown-method", compare("--methods", "magic"), "unknown method 'magic'"),
    ("unknown-noise", compare("--noise", "cosmic"), "unknown noise model 'cosmic'"),
    ("unknown-model", compare("--model", "transformer"), "unknown model 'transformer'"),
    ("unknown-dataset", compare("--dataset", "imagenet"), "unknown dataset 'imagenet'"),
    ("unknown-config-key", compare("--set", "wrong_key=1"), "wrong_key"),
    ("unknown-method-param", compare("--set", "methods=[{name: dropout, q: 1}]"), "q"),
    ("unknown-train-key", compare("--set", "train.epocs=3"), "epocs"),
    ("unknown-key-in-file", ["compare", "--config", "{unknown_key}"], "levles"),
    ("unknown-noise-evaluate", ["evaluate", "{ckpt}", "--noise", "cosmic"], "cosmic"),
    (
        "method-label-collision",
        compare("--set", "methods=[{name: standard, label: a b}, {name: dropout, label: a_b}]"),
        "both save as file name",
    ),
    (
        "noise-label-collision",
        compare(
            "--set",
            "noise=[{name: relative_gaussian, label: 'x/y'}, {name: lognormal, label: x_y}]",
        ),
        "both save as file name",
    ),
    ("same-method-twice", compare("--set", "methods=[standard, standard]"), "distinct 'label'"),
    # ranges
    ("negative-level", compare("--levels", "0,-0.1"), "must be finite and >= 0"),
    ("nan-level", compare("--levels", "nan"), "must be finite and >= 0"),
    ("inf-level", compare("--levels", "0,inf"), "must be finite and >= 0"),
    (
        "nan-level-in-noise",
        compare("--set", "noise=[{name: relative_gaussian, levels: [.nan]}]"),
        "must be finite and >= 0",
    ),
    ("duplicate-levels", compare("--levels", "0.1,0.1"), "0.1 is listed twice"),
    ("colliding-levels", compare("--levels", "0.1,0.1000001"), "both save as level '0.1'"),
    (
        "duplicate-noise-levels",
        compare("--set", "noise=[{name: lognormal, levels: [0.2, 0.2]}]"),
        "listed twice",
    ),
    ("duplicate-seeds", compare("--seed", "0,0"), "seeds: 0 is listed twice"),
    ("zero-transfers", compare("--transfers", "0"), "transfers"),
    ("negative-transfers", compare("--set", "transfers=-3"), "transfers"),
    ("zero-epochs", compare("--epochs", "0"), "epochs"),
    ("inf-lr", compare("--set", "train.lr=.inf"), "lr"),
    ("nan-lr", compare("--set", "train.lr=.nan"), "lr"),
    ("negative-lr", compare("--set", "train.lr=-1"), "lr"),
    ("threshold-above-one", compare("--set", "reliability_threshold=1.5"), "reliability_threshold"),
    ("zero-eval-batch", compare("--set", "eval_batch_size=0"), "eval_batch_size"),
    ("dropout-p-above-one", compare("--set", "methods=[{name: dropout, p: 1.5}]"), "dropout"),
    ("negative-zeta", compare("--set", "noise=[{name: relative_gaussian, zeta: -0.2}]"), "zeta"),
    ("val-fraction-above-one", compare("--set", "dataset.val_fraction=1.5"), "val_fraction"),
    ("zero-max-train", compare("--set", "dataset.max_train=0"), "max_train"),
    ("merged-file-range", ["compare", "--config", "{bad_range_merged}"], "val_fraction"),
    ("attack-negative-zeta", ["attack", "{ckpt}", "--zetas", "-0.1"], "zetas"),
    ("attack-zero-steps", ["attack", "{ckpt}", "--steps", "0"], "n_steps"),
    # types
    ("bool-transfers", compare("--set", "transfers=true"), "transfers"),
    ("float-transfers", compare("--set", "transfers=2.5"), "transfers"),
    ("bool-epochs", compare("--set", "train.epochs=true"), "epochs"),
    ("bool-seed", compare("--set", "seeds=[0, true]"), "seeds"),
    ("text-seed", compare("--set", "seeds=[a]"), "seeds"),
    ("bool-level", compare("--set", "levels=[true]"), "is not a number"),
    ("text-levels", compare("--levels", "0,abc"), "--levels"),
    ("bool-threshold", compare("--set", "reliability_threshold=true"), "reliability_threshold"),
    ("text-lr", compare("--set", "train.lr=fast"), "lr"),
    ("train-not-a-mapping", compare("--set", "train=5"), "train"),
    ("chip-not-a-mapping", compare("--set", "chip=[1]"), "chip"),
    ("dataset-a-list", compare("--set", "dataset=[1, 2]"), "dataset must be a name or a mapping"),
    ("noise-without-name", compare("--set", "noise={zeta: 1}"), "noise model must be a name"),
    ("section-type-in-file", ["compare", "--config", "{section_type}"], "train"),
    # YAML and --set syntax
    ("binary-config", ["compare", "--config", "{binary_yaml}"], "is not UTF-8 text"),
    ("duplicate-key", ["compare", "--config", "{dup_key}"], "duplicate key 'levels'"),
    ("duplicate-nested-key", ["compare", "--config", "{dup_nested_key}"], "duplicate key 'lr'"),
    ("broken-yaml", ["compare", "--config", "{broken_yaml}"], "not valid YAML at line"),
    ("scalar-config", ["compare", "--config", "{scalar_yaml}"], "must hold a mapping"),
    ("list-config", ["compare", "--config", "{list_yaml}"], "must hold a mapping"),
    ("empty-config", ["compare", "--config", "{empty_yaml}"], "must hold a mapping"),
    ("python-tag", ["compare", "--config", "{python_tag}"], "not valid YAML"),
    ("missing-config", ["compare", "--config", "{ckpt_missing}.yaml"], "config file not found"),
    ("set-without-equals", compare("--set", "nonsense"), "--set expects key=value"),
    ("set-empty-key", compare("--set", "=3"), "--set expects key=value"),
    ("set-empty-key-part", compare("--set", "train..lr=0.1"), "empty part"),
    ("set-broken-value", compare("--set", "levels=[0.1"), "is not valid YAML"),
    ("set-duplicate-key", compare("--set", "train={lr: 0.1, lr: 0.2}"), "is not valid YAML"),
    # data files
    ("npz-nan", compare("--set", NPZ % "npz_nan"), "non-finite"),
    ("npz-inf", compare("--set", NPZ % "npz_inf"), "non-finite"),
    ("npz-float32-overflow", compare("--set", NPZ % "npz_overflow"), "NaN or infinite"),
    ("npz-negative-label", compare("--set", NPZ % "npz_negative_label"), "non-negative integer"),
    (
        "npz-fractional-label-as-classes",
        compare("--set", "dataset={name: npz, train: {npz_fractional_label}, targets: classes}"),
        "integer class",
    ),
    ("npz-missing-y", compare("--set", NPZ % "npz_no_y"), "missing array(s) ['y']"),
    ("npz-empty", compare("--set", NPZ % "npz_empty"), "holds no data"),
    ("npz-one-class", compare("--set", NPZ % "npz_one_class"), "single class"),
    ("npz-text", compare("--set", NPZ % "npz_text"), "'x' must be numeric"),
    ("npz-garbage", compare("--set", NPZ % "npz_garbage"), "not a readable .npz"),
    ("npz-missing", compare("--set", NPZ % "ckpt_missing"), "no such file"),
    (
        "npz-test-other-shape",
        compare("--set", "dataset={name: npz, train: {npz_ok}, test: {npz_other_shape}}"),
        "differ from the train",
    ),
    (
        "npz-too-few-classes",
        compare("--set", "dataset={name: npz, train: {npz_ok}, num_classes: 1}}"),
        "num_classes",
    ),
    ("idx-nan", compare("--set", "dataset={name: idx, root: {idx_nan}}"), "non-finite"),
    (
        "missing-data-folder",
        compare("--set", "dataset={name: cifar10, root: /no/such/dir}}"),
        "/no/such/dir",
    ),
    (
        "encode-unknown-kind",
        compare("--set", "dataset={name: digits, encode: {kind: poisson, steps: 5}}"),
        "encode.kind",
    ),
    (
        "encode-non-image",
        compare("--set", "dataset.encode={kind: rate, steps: 5}"),
        "encode applies to image datasets only",
    ),
    (
        "events-missing-file",
        compare("--set", "dataset={name: events-npz, train: /no/such/ev.npz, steps: 4}"),
        "no such file",
    ),
    # checkpoints
    ("ckpt-missing", ["evaluate", "{ckpt_missing}"], "checkpoint not found"),
    ("ckpt-garbage", ["evaluate", "{ckpt_garbage}"], "unreadable"),
    ("ckpt-truncated", ["evaluate", "{ckpt_truncated}"], "unreadable"),
    ("ckpt-foreign", ["evaluate", "{ckpt_foreign}"], "not a noiseproof checkpoint"),
    ("ckpt-forged-no-method", ["evaluate", "{ckpt_no_method}"], "field 'method'"),
    ("ckpt-forged-shape-type", ["evaluate", "{ckpt_shape_text}"], "field 'input_shape'"),
    ("ckpt-forged-outputs-bool", ["evaluate", "{ckpt_outputs_bool}"], "field 'num_outputs'"),
    ("ckpt-forged-unnamed-model", ["evaluate", "{ckpt_model_unnamed}"], "field 'model'"),
    ("ckpt-forged-label", ["evaluate", "{ckpt_label_int}"], "field 'label'"),
    ("ckpt-forged-dataset", ["evaluate", "{ckpt_dataset_number}"], "field 'dataset'"),
    ("ckpt-empty-meta", ["attack", "{ckpt_empty_meta}"], "metadata field"),
    ("ckpt-unknown-model", ["evaluate", "{ckpt_unknown_model}"], "unknown model 'mystery-net'"),
    ("ckpt-bad-chip", ["attack", "{ckpt_bad_chip}"], "colour"),
    ("ckpt-weights-misfit", ["evaluate", "{ckpt_wrong_weights}"], "do not fit model"),
    (
        "ckpt-other-dataset-shape",
        ["evaluate", "{ckpt}", "--dataset", "digits"],
        "trained on inputs [2] with 1 outputs, but the dataset has inputs [1, 8, 8] with 10",
    ),
    (
        "attack-other-dataset-shape",
        ["attack", "{ckpt}", "--dataset", "digits"],
        "but the dataset has inputs [1, 8, 8]",
    ),
    (
        "landscape-other-dataset-shape",
        ["landscape", "{ckpt}", "--dataset", "digits"],
        "but the dataset has inputs [1, 8, 8]",
    ),
    (
        "evaluate-set-model",
        ["evaluate", "{ckpt}", "--set", "model=lenet5"],
        "'model' comes from the checkpoint ('mlp') and cannot be changed to 'lenet5'",
    ),
    (
        "evaluate-set-model-param",
        ["evaluate", "{ckpt}", "--set", "model.hidden=[4]"],
        "'model' comes from the checkpoint",
    ),
    (
        "evaluate-set-methods",
        ["evaluate", "{ckpt}", "--set", "methods=[dropout]"],
        "'methods' comes from the checkpoint",
    ),
    (
        "evaluate-set-train",
        ["evaluate", "{ckpt}", "--set", "train.epochs=3"],
        "'train' comes from the checkpoint",
    ),
    ("evaluate-file-model", ["evaluate", "{ckpt}", "--config", "{section_type}"], "train"),
    # IR drop (forward.ir_drop)
    (
        "ir-drop-negative-resistance",
        compare("--noise", "pcm", "--set", "forward.ir_drop={wire_resistance_ohm: -1, tile: 8x8}"),
        "forward.ir_drop.wire_resistance_ohm",
    ),
    (
        "ir-drop-tile-not-rows-x-cols",
        compare("--noise", "pcm", "--set", "forward.ir_drop={wire_resistance_ohm: 1, tile: 8by8}"),
        "tile must be ROWSxCOLS",
    ),
    (
        "ir-drop-tile-zero",
        compare("--noise", "pcm", "--set", "forward.ir_drop={wire_resistance_ohm: 1, tile: '0x8'}"),
        "tile must be ROWSxCOLS with positive integers",
    ),
    (
        "ir-drop-tile-read-as-hex",
        compare("--noise", "pcm", "--set", "forward.ir_drop={wire_resistance_ohm: 1, tile: 0x8}"),
        "got 8 (quote it in YAML",
    ),
    (
        "ir-drop-noise-without-conductances",
        compare("--set", "forward.ir_drop={wire_resistance_ohm: 1, tile: 8x8}"),
        "does not map weights onto conductances",
    ),
    # output folders
    ("out-empty", [*compare(), "--out", ""], "--out is empty"),
    ("out-is-a-file", [*compare(), "--out", "{a_file}"], "is a file, not a folder"),
    ("out-holds-results", [*QUICK_RUN, "--out", "{run}"], "already holds results"),
    (
        "resume-other-config",
        [*QUICK_RUN, "--transfers", "3", "--resume", "--out", "{run}"],
        "config differs",
    ),
    (
        "resume-truncated-job",
        [*QUICK_RUN, "--resume", "--out", "{run_truncated}"],
        "is truncated or not valid JSON",
    ),
]


def api_inputs() -> SimpleNamespace:
    """A small model, data, noise model and generator for the Python API cases."""
    data = tiny_data()
    return SimpleNamespace(
        data=data,
        model=nn.Sequential(nn.Flatten(), nn.Linear(64, 3)),
        x=data.x_test,
        y=data.y_test,
        noise=nf.create_noise("relative_gaussian"),
        gen=torch.Generator().manual_seed(0),
        method=nf.create_method("standard"),
        cfg=nf.TrainConfig(epochs=1),
    )


API_CASES: list[tuple[str, Callable[[SimpleNamespace], object], str]] = [
    ("train-model-str", lambda a: nf.train("mlp", a.data, a.method, a.cfg), "model"),
    ("train-data-tuple", lambda a: nf.train(a.model, (a.x, a.y), a.method, a.cfg), "data"),
    ("train-method-str", lambda a: nf.train(a.model, a.data, "standard", a.cfg), "method"),
    ("train-config-dict", lambda a: nf.train(a.model, a.data, a.method, {"epochs": 1}), "config"),
    ("train-noise-str", lambda a: nf.train(a.model, a.data, a.method, a.cfg, noise="x"), "noise"),
    ("train-seed-float", lambda a: nf.train(a.model, a.data, a.method, a.cfg, seed=0.5), "seed"),
    (
        "transfers-no-generator",
        lambda a: nf.run_transfers(a.model, a.noise, a.x, a.y, 3, None),
        "generator",
    ),
    (
        "transfers-zero",
        lambda a: nf.run_transfers(a.model, a.noise, a.x, a.y, 0, a.gen),
        "transfers",
    ),
    (
        "transfers-bool",
        lambda a: nf.run_transfers(a.model, a.noise, a.x, a.y, True, a.gen),
        "transfers",
    ),
    ("transfers-noise-str", lambda a: nf.run_transfers(a.model, "x", a.x, a.y, 3, a.gen), "noise"),
    (
        "transfers-x-numpy",
        lambda a: nf.run_transfers(a.model, a.noise, a.x.numpy(), a.y, 3, a.gen),
        "x must be",
    ),
    (
        "transfers-y-float-classification",
        lambda a: nf.run_transfers(
            a.model, a.noise, a.x, a.y.float(), 3, a.gen, task="classification"
        ),
        "y must be",
    ),
    (
        "transfers-y-float-auto",
        lambda a: nf.run_transfers(a.model, a.noise, a.x, a.y.float(), 3, a.gen),
        "y: regression targets",
    ),
    (
        "transfers-y-beyond-outputs",
        lambda a: nf.run_transfers(a.model, a.noise, a.x, a.y + 100, 3, a.gen),
        "y holds labels outside",
    ),
    (
        "transfers-lengths",
        lambda a: nf.run_transfers(a.model, a.noise, a.x, a.y[:5], 3, a.gen),
        "x and y differ in length",
    ),
    (
        "transfers-x-nan",
        lambda a: nf.run_transfers(a.model, a.noise, a.x / 0, a.y, 3, a.gen),
        "x holds NaN",
    ),
    (
        "attack-config-dict",
        lambda a: nf.targeted_attack(
            a.model, a.x, a.y, {"zetas": [0.1]}, generator=torch.Generator().manual_seed(0)
        ),
        "config must be an AttackConfig",
    ),
    (
        "attack-x-list",
        lambda a: nf.targeted_attack(
            a.model, [[1.0]], a.y, generator=torch.Generator().manual_seed(0)
        ),
        "x holds a list",
    ),
    (
        "landscape-config-dict",
        lambda a: nf.loss_landscape(
            a.model, a.x, a.y, {"repeats": 1}, generator=torch.Generator().manual_seed(0)
        ),
        "config must be a LandscapeConfig",
    ),
    (
        "landscape-model-str",
        lambda a: nf.loss_landscape("mlp", a.x, a.y, generator=torch.Generator().manual_seed(0)),
        "model must be",
    ),
    (
        "build-model-unknown",
        lambda a: nf.build_model("transformer", (1, 8, 8), 3),
        "unknown model 'transformer'",
    ),
    ("build-model-shape-str", lambda a: nf.build_model("mlp", "1x8x8", 3), "input_shape"),
    ("build-model-outputs-bool", lambda a: nf.build_model("mlp", (1, 8, 8), True), "num_outputs"),
    ("create-noise-unknown", lambda a: nf.create_noise("cosmic"), "unknown noise model 'cosmic'"),
    (
        "create-noise-bad-zeta",
        lambda a: nf.create_noise({"name": "relative_gaussian", "zeta": -1}),
        "zeta",
    ),
    ("create-method-bad-p", lambda a: nf.create_method({"name": "dropout", "p": 2}), "p:"),
    ("load-dataset-int", lambda a: nf.load_dataset(3), "dataset must be a name"),
    ("chip-unknown-key", lambda a: nf.ChipSelection(colour="red"), "colour"),
    (
        "dataset-inf",
        lambda a: nf.Dataset("d", a.x / 0, a.y, a.x, a.y, a.x, a.y, 3),
        "x_train holds NaN or infinite",
    ),
    (
        "dataset-nan-test",
        lambda a: nf.Dataset("d", a.x, a.y, a.x, a.y, a.x * float("nan"), a.y, 3),
        "x_test holds NaN or infinite",
    ),
    (
        "dataset-label-range",
        lambda a: nf.Dataset("d", a.x, a.y + 5, a.x, a.y, a.x, a.y, 3),
        "y_train holds labels outside",
    ),
    (
        "dataset-classes-bool",
        lambda a: nf.Dataset("d", a.x, a.y, a.x, a.y, a.x, a.y, True),
        "num_classes",
    ),
    (
        "from-tensors-val-fraction",
        lambda a: nf.Dataset.from_tensors(a.x, a.y, a.x, a.y, val_fraction=1.5),
        "val_fraction",
    ),
    ("train-config-bool-epochs", lambda a: nf.TrainConfig(epochs=True), "epochs"),
    ("train-config-inf-lr", lambda a: nf.TrainConfig(lr=float("inf")), "lr"),
    (
        "save-checkpoint-meta",
        lambda a: nf.save_checkpoint("never.pt", {}, {"a": object()}),
        "meta must be JSON-serialisable",
    ),
    (
        "save-checkpoint-state",
        lambda a: nf.save_checkpoint("never.pt", {"w": [1.0]}, {}),
        "state must be a dict of name -> tensor",
    ),
    ("accuracy-summary-list", lambda a: nf.accuracy_summary([0.5, 0.6]), "accuracy must be"),
    ("forged-checkpoint-api", lambda a: nf.load_checkpoint(a.forged), "field 'method'"),
]
""" (id, call on the api_inputs namespace, fragment naming the argument)."""

SUBPROCESS_IDS = ["binary-config", "bool-transfers", "ckpt-forged-no-method", "colliding-levels"]
"""Cases also run as a real `python -m noiseproof` process: exit code and stderr end to end."""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, str]:
    """Every corpus file, written once for the module."""
    return make_corpus_files(tmp_path_factory.mktemp("corpus"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its content (empty when the folder does not exist)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def expand(argv: list[str], corpus: dict[str, str], out: Path) -> list[str]:
    """The argv with `{key}` templates filled in and `--out {out}` added when none is given."""
    filled = [re.sub(r"\{(\w+)\}", lambda m: corpus.get(m[1], m[0]), arg) for arg in argv]
    if "--out" not in filled:
        filled += ["--out", str(out)]
    return filled


def watched(argv: list[str], corpus: dict[str, str]) -> list[Path]:
    """Existing run folders an argv names: they must be left unchanged."""
    return [Path(corpus[k]) for k in ("run", "run_truncated") if corpus[k] in argv]


def check_refusal(code: int, stderr: str, fragment: str) -> None:
    """Exit code 2 and exactly one stderr line `error: ...` holding `fragment`."""
    assert "Traceback" not in stderr, stderr
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("argv", "fragment"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_cli_refuses_in_one_line_and_writes_nothing(corpus, tmp_path, monkeypatch, argv, fragment):
    out = tmp_path / "out"
    argv = expand(argv, corpus, out)
    before = {folder: snapshot(folder) for folder in watched(argv, corpus)}
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # default output folders are relative: they must not appear here
    result = CliRunner().invoke(cli, argv)
    left = os.listdir(work)
    check_refusal(result.exit_code, result.stderr, fragment)
    assert isinstance(result.exception, SystemExit), result.exception
    assert left == [], left
    assert not out.exists()
    for folder, files in before.items():
        assert snapshot(folder) == files, folder


@pytest.mark.parametrize("case_id", SUBPROCESS_IDS)
def test_cli_refusal_end_to_end(corpus, tmp_path, case_id):
    argv, fragment = next(c[1:] for c in CLI_CASES if c[0] == case_id)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "noiseproof", *expand(argv, corpus, out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    check_refusal(done.returncode, done.stderr, fragment)
    assert done.stdout == ""
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize(
    ("call", "fragment"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES]
)
def test_python_api_refuses_naming_the_argument(tmp_path, monkeypatch, call, fragment):
    monkeypatch.chdir(tmp_path)
    inputs = api_inputs()
    forged = {k: v for k, v in moons_meta().items() if k != "method"}
    inputs.forged = nf.save_checkpoint(tmp_path / "forged.pt", {"w": torch.ones(2)}, forged)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises((ValueError, TypeError, NoiseproofError)) as caught:
        call(inputs)
    assert fragment in str(caught.value), caught.value
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


def test_the_corpus_is_large():
    ids = [c[0] for c in CLI_CASES + API_CASES]
    assert len(set(ids)) == len(ids)  # ids are unique
    assert len(CLI_CASES) + len(API_CASES) >= 60

"""Consistency variants (issue 15): scale-free distances, a frozen teacher, CE on either branch.

Each against the hand-written reference (tests/reference/hou_consistency.py): the loss values on
a tiny MLP, and the gradients, which reach the weights through the branches they should and no
others; the frozen teacher stays as training started.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import tiny_data
from noiseproof.chip import chip_params
from noiseproof.config import ExperimentConfig, default_config, read_yaml
from noiseproof.errors import NoiseproofError
from noiseproof.methods import create_method
from noiseproof.methods.base import StepContext
from noiseproof.methods.consistency import feature_distance
from noiseproof.models import build_model
from noiseproof.noise import create_noise
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import train
from noiseproof.yamlio import deep_merge
from reference.hou_consistency import consistency_loss

NOISE = create_noise({"name": "additive_gaussian", "eta": 0.2, "scale": "layer"})


def mlp() -> nn.Module:
    torch.manual_seed(0)
    data = tiny_data()
    return build_model({"name": "mlp", "hidden": [16, 16]}, data.input_shape, data.num_outputs)


def context(model: nn.Module, seed: int = 0) -> StepContext:
    return StepContext(model, chip_params(model), NOISE, torch.Generator().manual_seed(seed))


def batch(n: int = 32, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def ours_and_reference(spec: dict, model: nn.Module, teacher=None, seed: int = 7):
    """(our terms, our gradient) and (the reference's terms, its gradient) on one batch."""
    x, y = batch()
    method = create_method({"name": "consistency", "lam": 2.5, **spec})
    ctx = context(model, seed)
    with method.attached(ctx):
        if teacher is not None:  # the network moves away from the copy taken at the start
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(1.1).add_(0.01)
        terms = method.terms(ctx, x, y)
    ours = torch.autograd.grad(sum(terms.values()), list(model.parameters()))
    weights = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    task, cons = consistency_loss(
        weights,
        x,
        y,
        0.2,
        2.5,
        torch.Generator().manual_seed(seed),
        detach_clean=spec.get("detach_clean", True),
        kind=spec.get("distance", "mse"),
        teacher=teacher,
        ce_on=spec.get("ce_on", "noisy"),
    )
    theirs = torch.autograd.grad(task + cons, weights)
    return (terms, ours), ({"task": task, "consistency": cons}, theirs)


@pytest.mark.parametrize(
    "spec",
    [
        {"distance": "normalized_mse"},
        {"distance": "channel_mse"},
        {"distance": "normalized_mse", "detach_clean": False},
        {"distance": "channel_mse", "detach_clean": False},
        {"ce_on": "clean"},
        {"ce_on": "clean", "detach_clean": False},
        {"ce_on": "clean", "distance": "channel_mse"},
    ],
)
def test_variants_match_the_reference_values_and_gradients(spec):
    (terms, ours), (ref, theirs) = ours_and_reference(spec, mlp().train())
    torch.testing.assert_close(terms["task"], ref["task"])
    torch.testing.assert_close(terms["consistency"], ref["consistency"])
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("ce_on", ["noisy", "clean"])
@pytest.mark.parametrize("distance", ["mse", "normalized_mse"])
def test_frozen_teacher_matches_the_reference_with_the_starting_weights(ce_on, distance):
    model = mlp().train()
    start = [p.detach().clone() for p in model.parameters()]
    spec = {"teacher": "frozen", "ce_on": ce_on, "distance": distance}
    (terms, ours), (ref, theirs) = ours_and_reference(spec, model, teacher=start)
    torch.testing.assert_close(terms["task"], ref["task"])
    torch.testing.assert_close(terms["consistency"], ref["consistency"])
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_frozen_teacher_equals_the_detached_self_before_the_first_step():
    model = mlp().train()
    x, y = batch()
    values = {}
    for teacher in ["self", "frozen"]:
        method = create_method({"name": "consistency", "teacher": teacher})
        ctx = context(model, 3)
        with method.attached(ctx):
            values[teacher] = {k: v.item() for k, v in method.terms(ctx, x, y).items()}
    assert values["self"] == values["frozen"]


def test_no_gradient_reaches_the_frozen_teacher_or_the_uncompared_output_layer():
    model = mlp().train()
    method = create_method({"name": "consistency", "teacher": "frozen", "ce_on": "clean"})
    ctx = context(model)
    with method.attached(ctx):
        (params, buffers), *_ = method._teachers.values()
        term = method.terms(ctx, *batch())["consistency"]
        term.backward()
    assert not any(t.requires_grad or t.grad is not None for t in params.values())
    *hidden, out_w, out_b = model.parameters()
    assert out_w.grad is None and out_b.grad is None  # logits not compared, CE not in this term
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in hidden)


def test_clean_ce_gets_the_task_gradient_from_the_clean_forward_only():
    model = mlp().train()
    x, y = batch()
    ctx = context(model)
    task = create_method({"name": "consistency", "ce_on": "clean"}).terms(ctx, x, y)["task"]
    ours = torch.autograd.grad(task, list(model.parameters()))
    plain = nn.functional.cross_entropy(model(x), y)
    for a, b in zip(ours, torch.autograd.grad(plain, list(model.parameters())), strict=True):
        torch.testing.assert_close(a, b)


def test_frozen_teacher_stays_as_training_started_and_is_dropped_after():
    data = tiny_data()
    torch.manual_seed(0)
    model = build_model({"name": "resnet20", "width": 4}, data.input_shape, data.num_outputs)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    method = create_method({"name": "consistency", "teacher": "frozen"})
    seen = []

    class Watch:
        def on_epoch_end(self, epoch, row):
            ((params, buffers),) = method._teachers.values()
            seen.append(all(torch.equal(t, start[n]) for n, t in {**params, **buffers}.items()))

    config = TrainConfig(epochs=2, batch_size=32, optimizer="sgd", lr=0.05)
    train(model, data, method, config, noise=NOISE, seed=0, progress=False, callbacks=[Watch()])
    assert seen == [True, True]
    assert not torch.equal(model.state_dict()["0.0.weight"], start["0.0.weight"])
    assert method._teachers == {}


@pytest.mark.parametrize(
    "spec",
    [
        {"teacher": "frozen", "distance": "normalized_mse"},
        {"distance": "channel_mse", "layers": ["*.conv2", "output"]},
    ],
)
def test_lambda_zero_variants_are_forward_noise_training_step_for_step(spec):
    """The extra forwards (teacher, clean) leave weights and BatchNorm statistics alone."""
    data = tiny_data()
    config = TrainConfig(epochs=1, batch_size=32, optimizer="sgd", lr=0.05)
    states = {}
    for name, method in [
        ("ni", {"name": "noise_injection"}),
        ("cons", {"name": "consistency", "lam": 0.0, **spec}),
    ]:
        torch.manual_seed(0)
        net = build_model({"name": "resnet20", "width": 4}, data.input_shape, data.num_outputs)
        train(net, data, create_method(method), config, noise=NOISE, seed=3, progress=False)
        states[name] = net.state_dict()
    for key, value in states["ni"].items():
        assert torch.equal(value, states["cons"][key]), key


def test_clean_ce_leaves_batchnorm_statistics_to_the_noisy_forward():
    """CE on the clean branch: the running statistics still move with the noisy forward only."""
    data = tiny_data()
    stats = {}
    for ce_on in ["noisy", "clean"]:
        torch.manual_seed(0)
        net = build_model({"name": "resnet20", "width": 4}, data.input_shape, data.num_outputs)
        create_method({"name": "consistency", "ce_on": ce_on}).terms(context(net.train()), *batch())
        stats[ce_on] = {k: v for k, v in net.state_dict().items() if "running" in k}
    for key, value in stats["noisy"].items():
        assert torch.equal(value, stats["clean"][key]), key


def test_scale_free_distances_ignore_the_features_scale():
    gen = torch.Generator().manual_seed(0)
    clean = torch.randn(6, 3, 4, 4, generator=gen)
    noisy = clean + 0.3 * torch.randn(6, 3, 4, 4, generator=gen)
    for kind in ["normalized_mse", "channel_mse"]:
        torch.testing.assert_close(
            feature_distance(5 * noisy, 5 * clean, kind), feature_distance(noisy, clean, kind)
        )
    torch.testing.assert_close(
        feature_distance(5 * noisy, 5 * clean, "mse"), 25 * feature_distance(noisy, clean, "mse")
    )


def test_channel_mse_on_feature_maps_uses_each_channels_statistics():
    gen = torch.Generator().manual_seed(1)
    clean = torch.randn(5, 3, 2, 4, generator=gen) * torch.tensor([1.0, 10.0, 0.1])[:, None, None]
    noisy = clean + torch.randn(5, 3, 2, 4, generator=gen)
    per_channel = []
    for c in range(3):
        values = clean[:, c].flatten()
        var = ((values - values.mean()) ** 2).mean()
        per_channel.append(((noisy[:, c] - clean[:, c]) ** 2 / (var + 1e-5)).mean())
    expected = torch.stack(per_channel).mean()  # equal channel sizes: mean of channel means
    torch.testing.assert_close(feature_distance(noisy, clean, "channel_mse"), expected)
    one = feature_distance(noisy[:, 0, 0, 0], clean[:, 0, 0, 0], "channel_mse")  # [B] features
    assert one.dim() == 0 and float(one) > 0


@pytest.mark.parametrize("distance", ["normalized_mse", "channel_mse"])
def test_zero_noise_gives_a_zero_term_for_the_new_distances(distance):
    model = mlp().train()
    ctx = StepContext(
        model,
        chip_params(model),
        create_noise({"name": "additive_gaussian", "eta": 0.0}),
        torch.Generator().manual_seed(0),
    )
    terms = create_method({"name": "consistency", "distance": distance}).terms(ctx, *batch())
    assert terms["consistency"].item() == 0.0


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"teacher": "frozen", "detach_clean": False}, "frozen"),
        ({"teacher": "pretrained"}, "teacher"),
        ({"ce_on": "both"}, "ce_on"),
        ({"distance": "normalised_mse"}, "distance"),
    ],
)
def test_bad_variant_options_are_one_line_errors(spec, message):
    with pytest.raises(NoiseproofError, match=message) as error:
        create_method({"name": "consistency", **spec})
    assert "\n" not in str(error.value)


def test_frozen_teacher_outside_training_says_what_to_do():
    method = create_method({"name": "consistency", "teacher": "frozen"})
    with pytest.raises(NoiseproofError, match="inside method.attached"):
        method.terms(context(mlp()), *batch())


def test_the_batchnorm_example_config_names_the_variants():
    """examples/hou2024/fashion_resnet20_bn.yaml (the README's ResNet-20 table) stays valid."""
    path = Path(__file__).parents[2] / "examples" / "hou2024" / "fashion_resnet20_bn.yaml"
    raw = deep_merge(default_config(), read_yaml(path))
    config = ExperimentConfig.parse(raw)
    specs = [entry.method.spec() for entry in config.methods]
    assert [s["name"] for s in specs] == ["noise_injection", *["consistency"] * 4]
    assert {s["distance"] for s in specs[1:]} == {"mse", "normalized_mse", "channel_mse"}
    assert [s["ce_on"] for s in specs[1:]] == ["noisy", "noisy", "noisy", "clean"]

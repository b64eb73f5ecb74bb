"""The Monte Carlo engine: chip-indexed draws, chunking, sharding, vmap vs loop, bounded memory."""

from __future__ import annotations

import copy
import weakref

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from noiseproof.chip import chip_params, detached, select_output
from noiseproof.evaluation import chipstream
from noiseproof.evaluation.chipstream import (
    BLOCK_MAX,
    ChipStream,
    base_seed,
    vmappable,
    vmapped_sample,
)
from noiseproof.evaluation.clean import clean_accuracy
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.evaluation.vectorised import census, pays
from noiseproof.noise import create_noise, noise_models
from reference.measured_reference import DEVICE_FIXTURE
from zoo import ZOO

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DEVICES += ["mps"] if torch.backends.mps.is_available() else []
N = 200
NOISE = {"name": "relative_gaussian", "zeta": 0.5}


def moons_like(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A 2-8-1 sigmoid MLP (Drolet et al. 2023's moons network) fitted to two noisy half-moons,
    so chips differ under noise yet most points survive."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(2 * N, generator=g) * torch.pi
    upper = torch.stack([torch.cos(t[:N]), torch.sin(t[:N])], dim=1)
    lower = torch.stack([1 - torch.cos(t[N:]), 0.5 - torch.sin(t[N:])], dim=1)
    x = torch.cat([upper, lower]) + 0.15 * torch.randn(2 * N, 2, generator=g)
    y = torch.cat([torch.zeros(N), torch.ones(N)]).long()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 8), nn.Sigmoid(), nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        loss = nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y.float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    keep = torch.arange(0, 2 * N, 2)  # N test points, both classes
    return model.eval(), x[keep], y[keep]


def chips(model, x, y, transfers=100, seed=3, device="cpu", **options):
    """run_transfers with keep_matrix on `device`, from a generator seeded `seed`."""
    return run_transfers(
        model.to(device),
        create_noise(NOISE),
        x,
        y,
        transfers,
        torch.Generator().manual_seed(seed),
        keep_matrix=True,
        **options,
    )


def assert_same(a, b) -> None:
    assert torch.equal(a.accuracy, b.accuracy)
    assert torch.equal(a.correct_counts, b.correct_counts)
    assert torch.equal(a.matrix, b.matrix)


@pytest.fixture(params=[BLOCK_MAX, 16], ids=["block-default", "block-16"])
def blocks(request, monkeypatch):
    """The default block size (100 chips: one block) and blocks of 16 (chunks and shards
    straddle block boundaries)."""
    monkeypatch.setattr(chipstream, "BLOCK_MAX", request.param)
    return request.param


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("vectorise", [None, False])
def test_chunk_size_never_changes_a_chip(device, vectorise, blocks):
    model, x, y = moons_like()
    runs = [
        chips(model, x, y, device=device, chunk_size=c, vectorise=vectorise) for c in (1, 7, 100)
    ]
    for other in runs[1:]:
        assert_same(runs[0], other)
    assert len(runs[0].accuracy.unique()) > 5  # the chips do differ
    assert runs[0].accuracy.device.type == "cpu"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("vectorise", [None, False])
def test_a_worker_gets_the_chips_the_whole_run_gives_them(device, vectorise, blocks):
    model, x, y = moons_like()
    whole = chips(model, x, y, device=device, vectorise=vectorise)
    head = chips(model, x, y, 40, device=device, vectorise=vectorise, chunk_size=9)
    tail = chips(model, x, y, 60, device=device, vectorise=vectorise, first_chip=40)
    assert torch.equal(torch.cat([head.accuracy, tail.accuracy]), whole.accuracy)
    assert torch.equal(head.correct_counts + tail.correct_counts, whole.correct_counts)
    assert torch.equal(torch.cat([head.matrix, tail.matrix]), whole.matrix)
    # a shard starting and ending mid-block gets those blocks' chips too
    middle = chips(model, x, y, 30, device=device, vectorise=vectorise, first_chip=50)
    assert torch.equal(middle.accuracy, whole.accuracy[50:80])


def test_batch_size_never_changes_a_chip_in_double_precision():
    """Float64, so that another batch split (other summation blocking in a matmul) cannot flip
    a prediction: the chips themselves must be the same."""
    model, x, y = moons_like()
    model, x = model.double(), x.double()
    whole = chips(model, x, y, 50)
    pieces = chips(model, x, y, 50, batch_size=17)
    assert_same(whole, pieces)


def test_vmap_and_loop_give_the_same_chips_in_double_precision():
    """In float64 the vmapped forward (batched matmuls) and the loop (one matmul per chip) sum
    in other orders, but differ by ~1e-16 relative: no prediction flips."""
    model, x, y = moons_like()
    model, x = model.double(), x.double()
    assert_same(chips(model, x, y, vectorise=True), chips(model, x, y, vectorise=False))


def test_vmap_and_loop_differ_only_on_float32_near_ties():
    """In float32 the two orders of summation differ by a few ulps of the logits, which can flip
    a prediction only where the decision margin is that small: every disagreement must be at
    an example whose logit is within 1e-4 (~1e3 ulps at the logits' scale, O(1)) of the
    decision boundary 0. (Measured: none of 200,000 predictions differ.)"""
    model, x, y = moons_like()
    together = chips(model, x, y, 60, vectorise=True)
    alone = chips(model, x, y, 60, vectorise=False)
    differ = (together.matrix != alone.matrix).nonzero().tolist()
    if differ:
        clean = detached(chip_params(model))
        stream = ChipStream(create_noise(NOISE), clean, seed_of(3), torch.device("cpu"))
        for k, n in differ:
            chip = {name: t[0] for name, t in stream.chips(k, k + 1).items()}
            logit = torch.func.functional_call(model, chip, (x[n : n + 1],))
            assert abs(float(logit)) < 1e-4, (k, n)
    assert len(differ) <= 2  # 12,000 predictions: near-ties are rare


def seed_of(seed: int) -> int:
    """The base seed run_transfers draws from torch.Generator().manual_seed(seed)."""
    return base_seed(torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("entry", ZOO, ids=[e.name for e in ZOO])
def test_zoo_models_agree_on_both_paths_or_take_the_loop(entry):
    """Tuple and dict inputs, dict/tuple outputs picked by select_output's hook, tied weights,
    BatchNorm statistics on the chip: vmap runs them and agrees with the loop (float64); the
    GRU and snntorch's neurons (autograd.Function surrogates) cannot be vmapped, so auto takes
    the loop and vectorise=True says so; so do the attention models on the CPU (torch has no
    vmap batching rule for its fused attention there). snntorch spikes are float32 whatever the
    model's dtype, so the snntorch models run in float32; token ids stay integers."""
    attention = entry.name in ("gpt", "hf_gpt2_lm", "hf_gpt2_classifier")  # no CPU vmap rule
    loop_only = entry.name == "gru" or entry.name.startswith("snn_") or attention
    dtype = torch.float32 if entry.name.startswith("snn_") else torch.float64
    model = entry.build().to(dtype)
    data = entry.data()

    def cast(t: torch.Tensor) -> torch.Tensor:  # token ids stay integers
        return t.to(dtype) if t.is_floating_point() else t

    x = data.x_test
    x = tuple(map(cast, x)) if isinstance(x, tuple) else x
    x = {k: cast(t) for k, t in x.items()} if isinstance(x, dict) else x
    x = cast(x) if isinstance(x, torch.Tensor) else x
    noise = create_noise({"name": "additive_gaussian", "eta": 0.3})

    def run(vectorise):
        gen = torch.Generator().manual_seed(1)
        return run_transfers(
            model,
            noise,
            x,
            cast(data.y_test),
            20,
            gen,
            selection=entry.selection,
            vectorise=vectorise,
        )

    loop = run(False)
    if loop_only:
        with pytest.raises(ValueError, match="vectorise=True"):
            run(True)
        auto = run(None)
    else:
        auto = run(True)
    torch.testing.assert_close(auto.sums, loop.sums, rtol=1e-12, atol=1e-12)
    assert torch.equal(auto.correct_counts, loop.correct_counts)


class RandomInForward(nn.Module):
    """Draws from the global random state in its forward, even in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x) + 0.0 * torch.rand_like(x[:, :2])


def test_a_model_drawing_random_numbers_takes_the_loop():
    model = RandomInForward().eval()
    x, y = torch.randn(30, 2), torch.randint(0, 2, (30,))
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="vectorise=True"):
        run_transfers(model, create_noise(NOISE), x, y, 4, gen, vectorise=True)
    auto = run_transfers(model, create_noise(NOISE), x, y, 4, torch.Generator().manual_seed(0))
    loop = run_transfers(
        model, create_noise(NOISE), x, y, 4, torch.Generator().manual_seed(0), vectorise=False
    )
    assert torch.equal(auto.accuracy, loop.accuracy)


def test_vmap_pays_for_small_models_on_small_sets_only():
    small, x, _ = moons_like()
    big = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    cpu = torch.device("cpu")
    with torch.no_grad():
        assert pays(census(small, detached(chip_params(small)), x), N, cpu)
        images = torch.rand(8, 1, 28, 28)
        assert not pays(census(big, detached(chip_params(big)), images), 10_000, cpu)


class LiveBytes(TorchDispatchMode):
    """Peak bytes of the tensors created by torch ops while active and still alive (each
    storage counted once, released when the tensor that brought it dies)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.storages: set[int] = set()

    def _release(self, key: int, size: int) -> None:
        self.storages.discard(key)
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.storages:
                key, size = t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()
                self.storages.add(key)
                self.live += size
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._release, key, size)
        return out


@pytest.mark.parametrize("vectorise", [None, False])
def test_memory_stays_bounded_in_the_number_of_chips(vectorise):
    """10x more chips add only the [K] per-chip counts (8 bytes a chip, twice while read back):
    no [K, N] matrix, no per-chip tensors kept."""
    model, x, y = moons_like()
    noise = create_noise(NOISE)

    def peak(transfers: int) -> int:
        gen = torch.Generator().manual_seed(0)
        with LiveBytes() as tracker:
            run_transfers(model, noise, x, y, transfers, gen, chunk_size=50, vectorise=vectorise)
        return tracker.peak

    small, large = peak(300), peak(3000)
    assert large - small <= 3 * 8 * (3000 - 300)
    assert large - small < 3000 * N // 4  # far below even a bool [K, N] matrix


DRAWN_CHIP_BY_CHIP = {"measured", "quantize", "tio2_crossbar"}
"""The noise models vmap cannot draw (data-dependent control flow: the conductance mapping's
range check, rounding to levels, the crossbar's disturb): their chips come in blocks of one.
Asserted, so a model leaving or joining the set is noticed (a chain of vmappable models, as the
registry's example, is vmappable)."""


def registered_noise(noise_name: str):
    required = {
        "chain": {"models": ["relative_gaussian", "stuck_at"]},
        "measured": {"file": str(DEVICE_FIXTURE)},
    }.get(noise_name, {})
    return noise_models.create({"name": noise_name, **required})


def test_the_noise_models_drawn_chip_by_chip_are_the_known_ones():
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 4))
    clean = detached(chip_params(model))
    plain = {
        name
        for name in noise_models.names()
        if not vmappable(registered_noise(name), clean, torch.device("cpu"))
    }
    assert plain == DRAWN_CHIP_BY_CHIP


@pytest.mark.parametrize(
    "noise_name", [n for n in noise_models.names() if n not in DRAWN_CHIP_BY_CHIP]
)
def test_a_vmapped_draw_of_one_chip_is_the_plain_draw(noise_name):
    """vmap runs the noise model's own code per chip: with one chip it makes exactly the plain
    draw (same generator, same numbers), so a block of chips is that code with independent
    random numbers per chip."""
    noise = registered_noise(noise_name)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 4))
    clean = detached(chip_params(model))
    one = vmapped_sample(noise, clean, 1, torch.Generator().manual_seed(5))
    plain = noise.sample(clean, torch.Generator().manual_seed(5))
    for name in clean:
        assert torch.equal(one[name][0], plain[name]), name


def test_chips_of_a_block_are_independent_draws():
    """Relative Gaussian: (w'/w - 1) / zeta over a block of 256 chips x 120 weights is N(0,1):
    mean within 4 standard errors (4/sqrt(30720) = 0.023), std within 0.02 (its standard error
    is 1/sqrt(2 x 30720) = 0.004), and all chips differ."""
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 4))
    clean = detached(chip_params(model))
    stream = ChipStream(create_noise(NOISE), clean, 7, torch.device("cpu"))
    assert stream.block == BLOCK_MAX
    drawn = stream.chips(0, BLOCK_MAX)
    z = torch.cat(
        [((drawn[n] / clean[n] - 1) / NOISE["zeta"]).flatten(1) for n in ("0.weight", "2.weight")],
        dim=1,
    )
    assert abs(float(z.mean())) < 4 / z.numel() ** 0.5
    assert abs(float(z.std()) - 1) < 0.02
    assert len({tuple(row.tolist()) for row in z}) == BLOCK_MAX


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("vectorise", [True, False])
def test_low_precision_runs_on_both_paths(precision, vectorise):
    model, x, y = moons_like()
    zero = create_noise({"name": "relative_gaussian", "zeta": 0.0})
    result = run_transfers(
        model,
        zero,
        x,
        y,
        3,
        torch.Generator().manual_seed(0),
        precision=precision,
        vectorise=vectorise,
    )
    clean = clean_accuracy(model, x, y, 500, precision=precision)
    assert torch.allclose(result.accuracy, torch.full((3,), clean, dtype=torch.float64), atol=0.02)


def test_select_output_hook_models_use_the_vmapped_forward():
    class DictHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return {"logits": self.fc(x), "x": x}

    model = select_output(DictHead().double(), "logits").eval()
    before = copy.deepcopy(model.state_dict())
    x, y = torch.randn(40, 2, dtype=torch.float64), torch.randint(0, 2, (40,))
    noise = create_noise(NOISE)
    together = run_transfers(model, noise, x, y, 10, torch.Generator(), vectorise=True)
    assert together.accuracy.shape == (10,)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert len(model._forward_hooks) == 1


@pytest.mark.parametrize(
    "options, match",
    [
        ({"first_chip": -1}, "first_chip"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"vectorise": "yes"}, "vectorise"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_bad_engine_options_name_the_argument(options, match):
    model, x, y = moons_like()
    with pytest.raises((ValueError, TypeError), match=match):
        run_transfers(model, create_noise(NOISE), x, y, 3, torch.Generator(), **options)

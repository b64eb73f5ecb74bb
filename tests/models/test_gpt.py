"""The built-in GPT-2: shapes, causality, block_size refusals, init, chip selection and vmap."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from noiseproof.chip import ChipSelection, chip_params, forward
from noiseproof.errors import NoiseproofError
from noiseproof.models import build_model, models

VOCAB = 23
TINY = {"name": "gpt", "n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 12}


def tiny(seed: int = 0, **fields: object) -> nn.Module:
    """A seeded two-block GPT on sequences of 12 tokens."""
    torch.manual_seed(seed)
    return build_model({**TINY, **fields}, (12,), VOCAB)


def tokens(batch: int = 3, length: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_logits_shape_for_full_and_shorter_sequences():
    model = tiny().eval()
    assert model(tokens()).shape == (3, 12, VOCAB)
    assert model(tokens(length=5)).shape == (3, 5, VOCAB)


def test_causal_logits_at_t_ignore_later_tokens():
    model = tiny().eval()
    x = tokens()
    changed = x.clone()
    changed[:, 7:] = (changed[:, 7:] + 5) % VOCAB
    with torch.no_grad():
        a, b = model(x), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_block_size_refusals_name_the_field():
    with pytest.raises(ValueError, match="block_size") as caught:
        build_model(TINY, (13,), VOCAB)
    assert "\n" not in str(caught.value) and isinstance(caught.value, NoiseproofError)
    with pytest.raises(ValueError, match="block_size"):
        tiny()(tokens(length=13))
    with pytest.raises(ValueError, match="input_shape"):
        build_model(TINY, (3, 4), VOCAB)
    with pytest.raises(NoiseproofError, match="n_head"):
        models.create({**TINY, "n_embd": 15})


def test_same_seed_same_init_and_gpt2_statistics():
    model, again, other = tiny(0), tiny(0), tiny(1)
    for (name, p), q, r in zip(
        model.named_parameters(), again.parameters(), other.parameters(), strict=True
    ):
        assert torch.equal(p, q), name
        if p.dim() > 1:
            assert not torch.equal(p, r), name
    wide = tiny(n_embd=64, n_layer=4, n_head=4).requires_grad_(False)
    assert abs(float(wide.h[0].attn.qkv.weight.std()) - 0.02) < 0.002
    residual = torch.cat([wide.h[i].mlp.proj.weight.flatten() for i in range(4)])
    assert abs(float(residual.std()) - 0.02 / math.sqrt(8)) < 0.001
    assert all(float(b.abs().max()) == 0 for n, b in wide.named_parameters() if "bias" in n)


def test_default_chip_selection_is_every_linear_not_embeddings_or_layernorms():
    model = tiny()
    linears = [
        f"{name}.{leaf}"
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        for leaf, _ in module.named_parameters(recurse=False)
    ]
    assert list(chip_params(model)) == linears
    assert len(linears) == 2 * 8 + 1  # qkv, proj, fc, proj (weights and biases), lm_head
    off = set(dict(model.named_parameters())) - set(linears)
    assert off == {
        "wte.weight",
        "wpe.weight",
        "ln_f.weight",
        "ln_f.bias",
        *(
            f"h.{i}.{ln}.{leaf}"
            for i in range(2)
            for ln in ("ln_1", "ln_2")
            for leaf in ("weight", "bias")
        ),
    }


def test_tied_embeddings_share_one_tensor_on_the_chip_under_the_embedding_name():
    model = tiny(tie_embeddings=True)
    assert model.lm_head.weight is model.wte.weight
    names = list(chip_params(model))
    assert "wte.weight" in names and "lm_head.weight" not in names
    assert "wte.weight" not in chip_params(model, ChipSelection(exclude=("wte.weight",)))
    x = tokens()
    zero = {"wte.weight": torch.zeros_like(model.wte.weight)}
    with torch.no_grad():  # one draw reaches the embedding lookup and the head
        assert torch.equal(forward(model, zero, x), torch.zeros(3, 12, VOCAB))


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # CPU sdpa: no batching rule
def test_vmap_over_stacked_chips_equals_the_per_chip_loop():
    model = tiny(dropout=0.1).eval()
    x = tokens()
    clean = {n: p.detach() for n, p in chip_params(model).items()}
    gen = torch.Generator().manual_seed(2)
    chips = [{n: t + 0.05 * torch.randn(t.shape, generator=gen) for n, t in clean.items()}]
    chips.append({n: 0.5 * t for n, t in clean.items()})
    stacked = {n: torch.stack([chip[n] for chip in chips]) for n in clean}
    with torch.no_grad():
        together = torch.func.vmap(
            lambda p: torch.func.functional_call(model, p, (x,)), randomness="different"
        )(stacked)
        for i, chip in enumerate(chips):
            torch.testing.assert_close(together[i], forward(model, chip, x))
        model.train()  # dropout under vmap: each chip its own mask
        same = {n: torch.stack([t, t]) for n, t in clean.items()}
        pair = torch.func.vmap(
            lambda p: torch.func.functional_call(model, p, (x,)), randomness="different"
        )(same)
        assert pair.shape == (2, 3, 12, VOCAB) and not torch.equal(pair[0], pair[1])


def test_dropout_modules_follow_train_and_eval_and_gradients_reach_every_parameter():
    model = tiny(dropout=0.5)
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 1 + 2 * 2
    x = tokens()
    torch.manual_seed(3)
    a = model(x)
    assert not torch.equal(a, model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    nn.functional.cross_entropy(a.flatten(0, 1), x.flatten()).backward()
    assert all(p.grad is not None for p in model.parameters())

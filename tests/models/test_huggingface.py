"""Hugging Face transformers models: built from a config for each head, loaded from a folder
written by save_pretrained, refusals in one line, and the default chip selection of GPT-2."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from noiseproof.chip import ChipSelection, chip_params, forward  # noqa: E402
from noiseproof.errors import NoiseproofError  # noqa: E402
from noiseproof.models import build_model, models  # noqa: E402

GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 16, "n_positions": 16}
VOCAB, CLASSES, LENGTH = 29, 4, 12


def tokens(batch: int = 3, length: int = LENGTH) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(1))


def from_config(head: str = "causal_lm", seed: int = 0, **config: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    outputs = VOCAB if head == "causal_lm" else CLASSES
    spec = {"name": "huggingface", "config": {**GPT2, **config}, "head": head}
    return build_model(spec, (LENGTH,), outputs)


@pytest.mark.parametrize(
    ("head", "shape"),
    [
        ("causal_lm", (3, LENGTH, VOCAB)),
        ("sequence_classification", (3, CLASSES)),
        ("token_classification", (3, LENGTH, CLASSES)),
    ],
)
def test_each_head_built_from_a_config_returns_its_logits(head, shape):
    model = from_config(head).eval()
    with torch.no_grad():
        logits = model(tokens())
    assert isinstance(logits, torch.Tensor) and logits.shape == shape
    assert model.config.use_cache is False
    if head == "causal_lm":  # vocab_size from num_outputs; GPT-2's eos 50256 is out of it
        assert model.config.vocab_size == VOCAB and model.config.eos_token_id is None
    else:
        assert model.config.num_labels == CLASSES
    if head == "sequence_classification":  # a batch of several sequences needs a pad id
        assert model.config.pad_token_id == model.config.eos_token_id == 50256


def test_same_seed_same_init():
    a, b, c = from_config(seed=0), from_config(seed=0), from_config(seed=1)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name
    weight = a.transformer.h[0].attn.c_attn.weight
    assert not torch.equal(weight, c.transformer.h[0].attn.c_attn.weight)


def test_a_saved_model_loads_from_its_folder_with_equal_outputs(tmp_path):
    saved = from_config("sequence_classification", seed=3).eval()
    saved.save_pretrained(tmp_path)
    spec = {"name": "huggingface", "path": str(tmp_path), "head": "sequence_classification"}
    loaded = build_model(spec, (LENGTH,), CLASSES).eval()
    x = tokens()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), saved(x))
        torch.testing.assert_close(forward(loaded, None, x), saved(x))
    assert models.create(spec).spec() == {**spec, "config": None, "output": "logits"}


def test_refusals_are_one_line_and_name_the_field(tmp_path):
    def refused(spec: dict, match: str, outputs: int = VOCAB, shape: tuple = (LENGTH,)) -> None:
        with pytest.raises(ValueError, match=match) as caught:
            build_model({"name": "huggingface", **spec}, shape, outputs)
        assert isinstance(caught.value, NoiseproofError) and "\n" not in str(caught.value)

    refused({"path": str(tmp_path / "missing")}, "path .* is not a folder")
    refused({"path": str(tmp_path)}, "path .* holds no saved model")
    (tmp_path / "config.json").write_text("{}")
    refused({"path": str(tmp_path)}, "path .* holds no saved model")
    folder = tmp_path / "lm"
    from_config().save_pretrained(folder)
    refused({"path": str(folder)}, "path .* vocab_size=29", outputs=VOCAB + 1)
    refused({"path": str(folder)}, "n_positions=16", shape=(17,))
    refused({"path": str(folder), "head": "token_classification"}, "num_labels=2", CLASSES)
    refused({"config": {**GPT2, "vocab_size": 5}}, "config.vocab_size=5")
    refused({"config": GPT2}, "config n_positions=16", shape=(17,))
    refused({"config": GPT2}, r"input_shape \(3, 4\)", shape=(3, 4))
    refused({"config": {**GPT2, "model_type": "no_such_model"}}, "no_such_model")
    for bad in ({}, {"path": str(folder), "config": GPT2}, {"config": {"n_layer": 1}}):
        with pytest.raises(NoiseproofError, match="path|config"):
            models.create({"name": "huggingface", **bad})


def test_default_chip_selection_is_every_projection_and_the_tied_head():
    model = from_config()
    names = list(chip_params(model))
    conv1d = [
        f"{name}.{leaf}"
        for name, module in model.named_modules()
        if type(module).__name__ == "Conv1D"
        for leaf in ("weight", "bias")
    ]
    assert len(conv1d) == 2 * 4 * 2  # c_attn, attn.c_proj, c_fc, mlp.c_proj per block
    assert names == [*conv1d, "transformer.wte.weight"]  # the LM head, tied to wte
    assert not any("wpe" in n or "ln_" in n for n in names)
    digital = ChipSelection(exclude=("transformer.wte.weight",))
    assert list(chip_params(model, digital)) == conv1d
    untied = from_config(tie_word_embeddings=False)
    assert list(chip_params(untied)) == [*conv1d, "lm_head.weight"]
    classifier = list(chip_params(from_config("sequence_classification")))
    assert classifier == [*conv1d, "score.weight"]


def test_without_transformers_the_spec_names_the_extra_and_noiseproof_imports_alone():
    code = (
        "import sys\n"
        "import noiseproof, noiseproof.models as m\n"
        "print('transformers' in sys.modules)\n"
        "sys.modules['transformers'] = None\n"
        "try:\n"
        "    m.build_model({'name': 'huggingface', 'config': {'model_type': 'gpt2'}}, (4,), 3)\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imported, refusal = out.stdout.strip().splitlines()
    assert imported == "False"
    assert refusal.startswith("NoiseproofError") and refusal.endswith("'noiseproof[hf]'"), refusal

"""A Hugging Face GPT-2 saved locally with save_pretrained, compared from the command line; the
checkpoint's tokenizer is checked when it meets other data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import transformers  # the hf extra, installed by setup.sh: missing, these tests fail
import yaml
from click.testing import CliRunner

from noiseproof.cli import cli

VOCAB = 40


@pytest.fixture
def saved_gpt2(tmp_path):
    """A 2-layer GPT-2 (random init) saved with save_pretrained, and a token stream for it."""
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=16, n_positions=32, use_cache=False
    )
    transformers.set_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    rng = np.random.default_rng(0)
    stream = np.tile(rng.integers(0, VOCAB, 50), 40)  # a repeating text a model can learn
    np.savez(tmp_path / "tokens.npz", tokens=stream, vocab_size=VOCAB)
    return tmp_path


def test_compare_on_a_saved_hugging_face_gpt2(saved_gpt2):
    config = {
        "dataset": {"name": "tokens-npz", "path": str(saved_gpt2 / "tokens.npz"), "block_size": 16},
        "model": {"name": "huggingface", "path": str(saved_gpt2 / "gpt2")},
        "methods": ["standard", "noise_injection"],
        "noise": [{"name": "pcm", "levels": [0, 86400]}],
        "levels": [0],
        "transfers": 3,
        "train": {"epochs": 2, "batch_size": 16, "lr": 0.003},
    }
    path = saved_gpt2 / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = saved_gpt2 / "run"
    result = CliRunner().invoke(cli, ["compare", "--config", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "task language_model (inferred" in result.stderr
    assert "perplexity under pcm" in result.stdout
    records = json.loads((out / "results.json").read_text())["jobs"]
    assert {r["task"]["name"] for r in records} == {"language_model"}
    for record in records:
        stats = record["metrics"]["perplexity"]
        assert stats["higher_is_better"] is False and stats["worst"] == stats["max"]
        assert 1.0 < stats["mean"] < 2 * VOCAB
    csv = (out / "results.csv").read_text().splitlines()
    assert "metric_worst" in csv[0] and ",perplexity," in csv[1]


def test_a_checkpoint_refuses_data_of_another_tokenizer(saved_gpt2, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("an english sentence, and another one. " * 40)
    data = f"dataset={{name: text, path: {text}, block_size: 16}}"
    model = "model={name: gpt, n_layer: 1, n_head: 2, n_embd: 8, block_size: 16}"
    ckpt = tmp_path / "lm.pt"
    args = ["train", "--set", data, "--set", model, "--method", "standard", "--epochs", "1"]
    args += ["--out", str(ckpt)]
    trained = CliRunner().invoke(cli, args)
    assert trained.exit_code == 0, trained.output
    other = tmp_path / "other.txt"
    other.write_text("quite different characters: XYZ 0123! " * 40)
    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            str(ckpt),
            "--set",
            f"dataset={{name: text, path: {other}, block_size: 16}}",
            "--transfers",
            "2",
            "--out",
            str(tmp_path / "eval"),
        ],
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "tokenizer" in lines[0], result.output

"""check_vocabulary: a checkpoint's tokenizer against the data's, refused in one line."""

from __future__ import annotations

import pytest

from noiseproof.data import check_vocabulary

CHAR = {"tokenizer": "char", "tokens": ["\n", " ", "a", "b"]}
FOLDER = {"tokenizer": "/models/gpt2", "vocab_size": 50257, "sha256": "ab" * 32}


def refusal(expected, found) -> str:
    with pytest.raises(ValueError) as info:
        check_vocabulary(expected, found, "model.pt")
    message = str(info.value)
    assert "\n" not in message and message.startswith("model.pt: the checkpoint was trained with")
    return message


def test_equal_descriptions_pass():
    check_vocabulary(None, None, "model.pt")
    check_vocabulary({"tokenizer": "byte"}, {"tokenizer": "byte"}, "model.pt")
    check_vocabulary(CHAR, dict(CHAR), "model.pt")
    moved = {**FOLDER, "tokenizer": "/elsewhere/gpt2"}  # same files, another folder
    check_vocabulary(FOLDER, moved, "model.pt")


def test_different_tokenizers_are_refused():
    message = refusal(CHAR, {"tokenizer": "byte"})
    assert "tokenizer char (4 tokens), the data uses byte" in message
    other = {"tokenizer": "char", "tokens": ["\n", " ", "a", "c"]}
    assert "token 3 is 'b' there, 'c' here" in refusal(CHAR, other)
    shorter = refusal(CHAR, {"tokenizer": "char", "tokens": ["x", "y"]})
    assert shorter.endswith("the data uses char (2 tokens)")
    changed = {**FOLDER, "sha256": "cd" * 32}
    message = refusal(FOLDER, changed)
    assert "'/models/gpt2' (vocab_size 50257, sha256 abababababab)" in message
    assert "sha256 cdcdcdcdcdcd" in message
    assert "the data uses none" in refusal({"tokenizer": "byte"}, None)
    assert "trained with tokenizer none, the data uses byte" in refusal(None, {"tokenizer": "byte"})

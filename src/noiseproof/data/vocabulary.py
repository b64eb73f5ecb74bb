"""The tokenizer a model was trained with, against the one the data uses now.

A Dataset's `vocabulary` is a JSON-ready description of the tokenizer that made its token ids:
{"tokenizer": "char", "tokens": [...]}, {"tokenizer": "byte"}, {"tokenizer": "<folder>",
"vocab_size": V, "sha256": "..."} (a Hugging Face tokenizer folder), {"tokenizer": "ids",
"vocab_size": V} (ids read as they are). Checkpoints keep it, so a model is never read with
token ids that mean other characters than it learned.
"""

from __future__ import annotations

from typing import Any


def identity(vocabulary: dict | None) -> Any:
    """What must match for two descriptions to tokenize alike: the files' sha256 and the
    vocabulary size when there is a hash (the folder may have moved), else the whole dict."""
    if vocabulary is None or "sha256" not in vocabulary:
        return vocabulary
    return ("sha256", vocabulary["sha256"], vocabulary.get("vocab_size"))


def describe(vocabulary: dict | None) -> str:
    """A short human description: 'char (65 tokens)', 'byte', "'<folder>' (vocab_size 50257,
    sha256 1a2b3c4d5e6f)", 'none' for None."""
    if vocabulary is None:
        return "none"
    name = str(vocabulary.get("tokenizer"))
    details = []
    if isinstance(vocabulary.get("tokens"), list):
        details.append(f"{len(vocabulary['tokens'])} tokens")
    if "vocab_size" in vocabulary:
        details.append(f"vocab_size {vocabulary['vocab_size']}")
    if "sha256" in vocabulary:
        details.append(f"sha256 {str(vocabulary['sha256'])[:12]}")
    shown = name if name in ("char", "byte", "ids") else repr(name)
    return f"{shown} ({', '.join(details)})" if details else shown


def difference(expected: dict, found: dict) -> str:
    """Where two char vocabularies with as many tokens first differ ('' when that is not
    the case), e.g. "; token 3 is 'a' there, 'b' here"."""
    ours, theirs = expected.get("tokens"), found.get("tokens")
    if not (isinstance(ours, list) and isinstance(theirs, list)) or len(ours) != len(theirs):
        return ""
    for index, (old, new) in enumerate(zip(ours, theirs, strict=True)):
        if old != new:
            return f"; token {index} is {old!r} there, {new!r} here"
    return ""


def check_vocabulary(expected: dict | None, found: dict | None, where: str) -> None:
    """Refuse, in one ValueError line starting with `where` (e.g. a checkpoint's path), data
    tokenized otherwise than the checkpoint's model was trained: `expected` is the
    checkpoint's vocabulary, `found` the data's (Dataset.vocabulary; None: no tokenizer).
    Descriptions with a sha256 match on the hash and vocabulary size (`identity`)."""
    if identity(expected) == identity(found):
        return
    detail = difference(expected or {}, found or {})
    raise ValueError(
        f"{where}: the checkpoint was trained with tokenizer {describe(expected)}, the data "
        f"uses {describe(found)}{detail}"
    )

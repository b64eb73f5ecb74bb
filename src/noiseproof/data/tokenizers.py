"""Text to token ids: characters, UTF-8 bytes, or a local Hugging Face tokenizer folder.

Each returns the ids of the whole text (int64 [L]), the vocabulary size (the number of classes
a language model predicts) and the JSON-ready vocabulary description a Dataset carries
(noiseproof.data.vocabulary).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from noiseproof.data.formats import fail, reason
from noiseproof.errors import NoiseproofError

# The files a Hugging Face tokenizer is read from (transformers' tokenizer file names: fast
# tokenizer.json, configuration and special tokens, BPE vocab/merges, WordPiece vocab,
# SentencePiece models); their contents, hashed, identify the tokenizer.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)

HF_MISSING = "a Hugging Face tokenizer folder needs transformers: pip install 'noiseproof[hf]'"

TOKENIZER_HELP = (
    "char (the text's own characters, sorted), byte (UTF-8 bytes, 256 ids) or the path of a "
    "local Hugging Face tokenizer folder (needs pip install 'noiseproof[hf]')"
)


class Tokens(NamedTuple):
    """Token ids int64 [L], the vocabulary size, and the vocabulary description."""

    ids: np.ndarray
    vocab_size: int
    vocabulary: dict


def tokenize(text: str, tokenizer: str) -> Tokens:
    """The Tokens of `text` under `tokenizer`: 'char', 'byte' or a tokenizer folder's path."""
    if tokenizer == "char":
        return char_tokens(text)
    if tokenizer == "byte":
        return byte_tokens(text)
    return folder_tokens(text, tokenizer)


def char_tokens(text: str) -> Tokens:
    """One id per character: its rank among the text's distinct characters sorted by code
    point (Python's string order), the characters kept in the vocabulary as `tokens`
    (Karpathy's char-rnn / nanoGPT shakespeare_char encoding)."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    alphabet = np.unique(points)
    ids = np.searchsorted(alphabet, points).astype(np.int64)
    tokens = [chr(int(point)) for point in alphabet]
    return Tokens(ids, len(tokens), {"tokenizer": "char", "tokens": tokens})


def byte_tokens(text: str) -> Tokens:
    """One id per byte of the text's UTF-8 encoding (ids 0..255, vocabulary 256)."""
    ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
    return Tokens(ids, 256, {"tokenizer": "byte"})


def tokenizer_files(folder: Path) -> list[Path]:
    """The TOKENIZER_FILES present in `folder`, in that order."""
    return [folder / name for name in TOKENIZER_FILES if (folder / name).is_file()]


def files_sha256(files: list[Path]) -> str:
    """SHA-256 over the files' names, lengths and contents, in name order (FIPS 180-4)."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        content = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + len(content).to_bytes(8, "little"))
        digest.update(content)
    return digest.hexdigest()


def folder_tokens(text: str, folder: str) -> Tokens:
    """The ids of a Hugging Face tokenizer read from a local folder
    (AutoTokenizer.from_pretrained(folder, local_files_only=True); no special tokens added),
    the vocabulary size len(tokenizer) (added tokens included), and the description
    {"tokenizer": absolute folder, "vocab_size": V, "sha256": hash of its tokenizer files}.
    transformers is imported only here: it is the optional extra `hf`."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise fail(path, f"no such tokenizer folder (tokenizer: {TOKENIZER_HELP})")
    files = tokenizer_files(path)
    if not files:
        raise fail(path, f"holds no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise NoiseproofError(HF_MISSING) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        encoded = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    except Exception as error:  # transformers raises many types for a bad folder
        raise fail(path, f"not a readable tokenizer ({reason(error)})") from None
    ids = np.asarray(encoded, dtype=np.int64)
    vocab_size = max(len(tokenizer), int(ids.max(initial=-1)) + 1)
    vocabulary = {
        "tokenizer": str(path.resolve()),
        "vocab_size": vocab_size,
        "sha256": files_sha256(files),
    }
    return Tokens(ids, vocab_size, vocabulary)

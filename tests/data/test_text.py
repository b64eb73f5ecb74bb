"""The text and english-text datasets: next-token windows split by position, the char, byte
and Hugging Face tokenizers, and one-line refusals."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from noiseproof.data import datasets, load_dataset, text
from noiseproof.data.tokenizers import files_sha256, tokenizer_files
from noiseproof.errors import NoiseproofError

SAMPLE = "It was the best of times, it was the worst of times; naïve café. 1234567890\n" * 40


def write(path: Path, content: str | bytes) -> str:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return str(path)


def error_text(spec: dict) -> str:
    with pytest.raises(NoiseproofError) as info:
        load_dataset(spec)
    assert "\n" not in str(info.value)
    return str(info.value)


def decoded(ids: torch.Tensor, tokens: list[str]) -> str:
    return "".join(tokens[i] for i in ids.tolist())


def test_text_datasets_are_listed():
    assert {"text", "english-text", "tokens-npz", "diabetes"} <= set(datasets.names())


def test_char_windows_shift_by_one_and_round_trip(tmp_path):
    path = write(tmp_path / "a.txt", SAMPLE)
    data = load_dataset({"name": "text", "path": path, "block_size": 16})
    tokens = data.vocabulary["tokens"]
    assert data.vocabulary["tokenizer"] == "char" and tokens == sorted(set(SAMPLE))
    assert data.num_classes == data.num_outputs == len(tokens) and data.targets == "tokens"
    for x, y in (
        (data.x_train, data.y_train),
        (data.x_val, data.y_val),
        (data.x_test, data.y_test),
    ):
        assert x.dtype == y.dtype == torch.int64 and x.shape[1] == y.shape[1] == 16
        assert torch.equal(x[:, 1:], y[:, :-1])
    assert decoded(data.x_train[0], tokens) == SAMPLE[:16]
    assert decoded(data.y_train[0], tokens) == SAMPLE[1:17]
    assert decoded(data.x_train[1], tokens) == SAMPLE[16:32]  # stride = block_size
    assert data.input_shape == (16,)


def test_splits_are_contiguous_and_disjoint_by_position(tmp_path):
    path = write(tmp_path / "a.txt", SAMPLE)
    n = len(SAMPLE)
    data = load_dataset(
        {"name": "text", "path": path, "block_size": 8, "val_fraction": 0.2, "test_fraction": 0.3}
    )
    tokens = data.vocabulary["tokens"]
    n_test, n_val = round(n * 0.3), round(n * 0.2)
    train, val, test = (
        SAMPLE[: n - n_val - n_test],
        SAMPLE[n - n_val - n_test : n - n_test],
        SAMPLE[n - n_test :],
    )
    for x, y, part in (
        (data.x_train, data.y_train, train),
        (data.x_val, data.y_val, val),
        (data.x_test, data.y_test, test),
    ):
        assert len(x) == (len(part) - 1 - 8) // 8 + 1
        for k in (0, len(x) - 1):  # first and last windows lie inside their part
            assert decoded(x[k], tokens) == part[8 * k : 8 * k + 8]
            assert decoded(y[k], tokens) == part[8 * k + 1 : 8 * k + 9]


def test_stride_overlaps_windows_and_limits(tmp_path):
    path = write(tmp_path / "a.txt", SAMPLE)
    spec = {"name": "text", "path": path, "block_size": 10, "stride": 3}
    data = load_dataset(spec)
    assert torch.equal(data.x_train[1][:7], data.x_train[0][3:])
    train_length = len(SAMPLE) - 2 * round(len(SAMPLE) * 0.1)
    assert len(data.x_train) == (train_length - 1 - 10) // 3 + 1
    small = load_dataset({**spec, "max_train": 5, "max_test": 2, "split_seed": 1})
    assert len(small.x_train) == 5 and len(small.x_test) == 2
    again = load_dataset({**spec, "max_train": 5, "max_test": 2, "split_seed": 1})
    assert torch.equal(small.x_train, again.x_train)
    none = load_dataset({**spec, "val_fraction": 0.0})
    assert none.x_val.shape == none.y_val.shape == (0, 10)


def test_byte_tokenizer(tmp_path):
    path = write(tmp_path / "a.txt", SAMPLE)
    data = load_dataset({"name": "text", "path": path, "tokenizer": "byte", "block_size": 32})
    assert data.vocabulary == {"tokenizer": "byte"} and data.num_classes == 256
    assert bytes(data.x_train[0].tolist()) == SAMPLE.encode("utf-8")[:32]


def test_folder_of_txt_files_sorted_by_name_and_gzip(tmp_path):
    folder = tmp_path / "books"
    folder.mkdir()
    write(folder / "b.txt", "second " * 30)
    write(folder / "a.txt", "first " * 30)
    write(folder / "notes.md", "ignored")
    assert text.read_text(folder) == "first " * 30 + "\n" + "second " * 30
    zipped = tmp_path / "a.txt.gz"
    zipped.write_bytes(gzip.compress(SAMPLE.encode()))
    assert text.read_text(zipped) == SAMPLE
    assert text.read_text(write(tmp_path / "bom.txt", "\ufeffabc")) == "abc"


def test_refusals(tmp_path):
    missing = error_text({"name": "text", "path": str(tmp_path / "none.txt")})
    assert "dataset 'text'" in missing and "no such file or folder" in missing
    empty = write(tmp_path / "empty.txt", "")
    assert "holds no text" in error_text({"name": "text", "path": empty})
    latin = write(tmp_path / "latin.txt", b"abc caf\xe9 ok")
    message = error_text({"name": "text", "path": latin})
    assert "not UTF-8 text (byte 0xe9 at byte offset 7)" in message and "latin.txt" in message
    (tmp_path / "nothing").mkdir()
    assert "no *.txt files" in error_text({"name": "text", "path": str(tmp_path / "nothing")})
    short = write(tmp_path / "short.txt", "abcdefghij" * 10)
    message = error_text({"name": "text", "path": short, "block_size": 20})
    assert "the val split holds 10 tokens" in message and "block_size 20" in message
    same = write(tmp_path / "same.txt", "a" * 100)
    assert "single distinct token" in error_text({"name": "text", "path": same, "block_size": 4})
    too_much = {"name": "text", "path": short, "val_fraction": 0.5, "test_fraction": 0.5}
    assert "val_fraction + test_fraction must be < 1" in error_text(too_much)
    assert "path: Field required" in error_text({"name": "text"})


def test_tokenizer_folder_refusals(tmp_path):
    path = write(tmp_path / "a.txt", SAMPLE)
    absent = error_text({"name": "text", "path": path, "tokenizer": str(tmp_path / "tok")})
    assert "no such tokenizer folder" in absent and str(tmp_path / "tok") in absent
    (tmp_path / "empty").mkdir()
    message = error_text({"name": "text", "path": path, "tokenizer": str(tmp_path / "empty")})
    assert "holds no tokenizer (none of tokenizer.json" in message


def test_tokenizer_folder_without_transformers(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers":
            raise ImportError("No module named 'transformers'")
        return real_import(name, *args, **kwargs)

    folder = tmp_path / "tok"
    folder.mkdir()
    write(folder / "tokenizer.json", "{}")
    monkeypatch.setattr(builtins, "__import__", no_transformers)
    message = error_text(
        {"name": "text", "path": write(tmp_path / "a.txt", SAMPLE), "tokenizer": str(folder)}
    )
    assert "pip install 'noiseproof[hf]'" in message


def test_hugging_face_tokenizer_folder(tmp_path):
    import tokenizers  # comes with transformers (the hf extra, installed by setup.sh)
    from transformers import PreTrainedTokenizerFast

    model = tokenizers.Tokenizer(tokenizers.models.WordLevel(unk_token="[UNK]"))
    model.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    trainer = tokenizers.trainers.WordLevelTrainer(special_tokens=["[UNK]"])
    model.train_from_iterator([SAMPLE], trainer)
    folder = tmp_path / "tok"
    fast = PreTrainedTokenizerFast(tokenizer_object=model, unk_token="[UNK]")
    fast.save_pretrained(str(folder))
    path = write(tmp_path / "a.txt", SAMPLE)
    data = load_dataset({"name": "text", "path": path, "tokenizer": str(folder), "block_size": 8})
    vocabulary = data.vocabulary
    assert vocabulary["tokenizer"] == str(folder.resolve())
    assert vocabulary["vocab_size"] == len(fast) == data.num_classes
    assert vocabulary["sha256"] == files_sha256(tokenizer_files(folder))
    assert fast.decode(data.x_train[0].tolist()).split()[:3] == ["It", "was", "the"]
    assert torch.equal(data.x_train[:, 1:], data.y_train[:, :-1])
    broken = tmp_path / "broken"
    broken.mkdir()
    write(broken / "tokenizer.json", "not json")
    message = error_text({"name": "text", "path": path, "tokenizer": str(broken)})
    assert "not a readable tokenizer" in message


def test_english_text_missing_names_the_install(monkeypatch, tmp_path):
    monkeypatch.setattr(text, "ENGLISH_TEXT", str(tmp_path / "jargon.txt.gz"))
    with pytest.raises(NoiseproofError) as info:
        load_dataset("english-text")
    message = str(info.value)
    assert message.count("dataset 'english-text'") == 1 and "apt-get install jargon-text" in message


def test_english_text_corpus():
    data = load_dataset({"name": "english-text", "block_size": 64})
    tokens = data.vocabulary["tokenizer"] == "char" and data.vocabulary["tokens"]
    assert 100 < data.num_classes < 300 and len(data.x_train) > 15_000
    assert len(data.x_test) > 2000 and len(data.x_val) > 2000
    assert "hacker" in "".join(decoded(x, tokens) for x in data.x_train[:2000])

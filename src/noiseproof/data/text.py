"""Language modelling on text: your own UTF-8 files (`text`) or an English corpus that installs
offline (`english-text`), tokenized (noiseproof.data.tokenizers) and cut into next-token
windows (noiseproof.data.windows)."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import torch
from pydantic import Field

from noiseproof.data.base import Dataset, datasets
from noiseproof.data.builtin import dataset_errors
from noiseproof.data.formats import fail, read_bytes
from noiseproof.data.tokenizers import TOKENIZER_HELP, tokenize
from noiseproof.data.windows import WindowSpec, windowed
from noiseproof.errors import NoiseproofError

# The Jargon File 4.4.7 (Raymond et al., 2003; public domain): 1.6 MB of English prose, shipped
# gzip-compressed by the Debian package jargon-text.
ENGLISH_TEXT = "/usr/share/doc/jargon-text/jargon.txt.gz"
ENGLISH_TEXT_MISSING = (
    "dataset 'english-text' needs the Debian package jargon-text (the file {path}): "
    "apt-get install jargon-text"
)


def decode(path: Path, data: bytes) -> str:
    """`data` decoded as UTF-8 (a leading byte-order mark dropped); a file that is not UTF-8
    is refused in one line naming the byte offset of the first invalid byte."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise fail(
            path, f"not UTF-8 text (byte 0x{data[error.start]:02x} at byte offset {error.start})"
        ) from None


def text_files(path: Path) -> list[Path]:
    """[path] for a file; for a folder its *.txt files (not its subfolders'), sorted by name."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise fail(path, "no such file or folder")
    files = sorted((p for p in path.glob("*.txt") if p.is_file()), key=lambda p: p.name)
    if not files:
        raise fail(path, "no *.txt files in this folder")
    return files


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file (gunzipped when gzip-compressed) or of a folder's *.txt files
    sorted by name and joined with a newline; empty text is refused in one line."""
    path = Path(path).expanduser()
    text = "\n".join(decode(file, read_bytes(file)) for file in text_files(path))
    if not text:
        raise fail(path, "holds no text")
    return text


class TextSpec(WindowSpec):
    """Text tokenized by `tokenizer`, then cut into next-token windows."""

    tokenizer: str = Field("char", description=TOKENIZER_HELP)

    @abstractmethod
    def source(self) -> str:
        """The path of the text to read."""

    def load(self) -> Dataset:
        """Windows x, y int64 [N, block_size] (y = x shifted by one token), num_classes the
        vocabulary size, `vocabulary` describing the tokenizer."""
        source = self.source()
        with dataset_errors(self.registered_name):
            text = read_text(source)
            tokens = tokenize(text, self.tokenizer)
            if tokens.vocab_size < 2:
                raise NoiseproofError(
                    f"the text holds a single distinct token ({text[:1]!r}): a model needs >= 2"
                )
            ids = torch.from_numpy(tokens.ids)
            return windowed(self, ids, tokens.vocab_size, tokens.vocabulary)


@datasets.register("text")
class TextFile(TextSpec):
    """Your own text for language modelling: a UTF-8 file or a folder of *.txt files."""

    path: str = Field(
        ...,
        description=(
            "UTF-8 text file (gzip-compressed allowed), or a folder whose *.txt files are "
            "joined in name order with a newline"
        ),
    )

    def source(self) -> str:
        """The user's file or folder."""
        return self.path


@datasets.register("english-text")
class EnglishText(TextSpec):
    """The Jargon File 4.4.7 (public-domain English, 1.6 MB) from Debian's jargon-text."""

    def source(self) -> str:
        """The corpus file, refused in one line naming the install command when absent."""
        if not Path(ENGLISH_TEXT).is_file():
            raise NoiseproofError(ENGLISH_TEXT_MISSING.format(path=ENGLISH_TEXT))
        return ENGLISH_TEXT

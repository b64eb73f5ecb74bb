"""The one exception type that reaches users as a single line and exit code 2, and how a value
is shown in such a line (`elide`: never more than a few dozen characters)."""

from __future__ import annotations

import reprlib
from typing import Any

MESSAGE_LIMIT = 400
"""The most characters of an error line the command line prints (a longer one is cut)."""

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 2, 40, 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4


class NoiseproofError(Exception):
    """A problem with the user's input (name, value, file) that the CLI reports in one line.

    >>> import noiseproof as nf
    >>> try:
    ...     nf.load_dataset("nope")
    ... except nf.NoiseproofError as error:
    ...     print(str(error).split(" (")[0])
    unknown dataset 'nope'
    """


class LaunchStopped(NoiseproofError):
    """A process of a torchrun launch stopped (killed, or the launch was stopped): the process
    group is gone, so every remaining job stops, not only the one that noticed it."""


def elide(value: Any, limit: int = 80) -> str:
    """`repr(value)` short enough for an error line: nested containers and long strings cut
    with '...', at most `limit` characters (a YAML alias bomb shows as '[[[...], ...], ...]',
    not as millions of characters). Never builds the full repr."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """`message` on one line (line breaks become spaces), cut to `limit` characters."""
    text = " ".join(message.split("\n"))
    return text if len(text) <= limit else text[: limit - 3] + "..."

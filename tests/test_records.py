"""Records read back under --resume: ours are accepted, anything else refused in one line."""

from __future__ import annotations

import json

import pytest

from noiseproof.errors import NoiseproofError
from noiseproof.experiments.records import check_record, read_record


def test_a_matching_record_is_returned(tmp_path):
    path = tmp_path / "r.json"
    record = {"method": "a", "seed": 0, "level": 0.5, "config": {"levels": [1, 2]}}
    path.write_text(json.dumps(record))
    expect = {"method": "a", "seed": 0, "level": 0.5, "config": {"levels": (1, 2)}}
    assert read_record(path, expect) == record


def test_a_list_record_is_checked_item_by_item(tmp_path):
    path = tmp_path / "attack.json"
    path.write_text(json.dumps([{"method": "a", "seed": 0}, {"method": "b", "seed": 0}]))
    with pytest.raises(NoiseproofError, match="its method is 'b', expected 'a'"):
        read_record(path, {"method": "a", "seed": 0})


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"method": "a", "se', "truncated or not valid JSON"),
        (b"\x80\x81binary", "not UTF-8"),
        (b"", "not valid JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"seed": 0}', "no 'method'"),
        (b'{"method": "a", "seed": 3}', "its seed is 3, expected 0"),
    ],
)
def test_bad_records_are_one_line_naming_the_file(tmp_path, content, words):
    path = tmp_path / "job.json"
    path.write_bytes(content)
    with pytest.raises(NoiseproofError) as caught:
        read_record(path, {"method": "a", "seed": 0})
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and words in message
    assert "delete it to recompute it" in message


def test_a_nested_difference_is_named_by_key(tmp_path):
    with pytest.raises(NoiseproofError, match="its config differs"):
        check_record(tmp_path / "x.json", {"config": {"lr": 1}}, {"config": {"lr": 2}})

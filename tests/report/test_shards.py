"""The report's data files: shard keys and packing, against their definitions."""

from __future__ import annotations

import base64
import zlib

import pytest

from tiops.report.shards import index_script, packed, shard_key, shard_script


def defined_key(object_id: str, width: int) -> str:
    """The key as static/object.js defines it: the UUID's first ``width`` hex digits in
    lower case, or zeros when they are not hex digits."""
    head = object_id.partition("--")[2][:width].lower()
    return head if len(head) == width and all(c in "0123456789abcdef" for c in head) else "0" * width


IDS = ["indicator--ab12cd34-0000-4000-8000-000000000000", "malware--AB12CD34-0000-4000-8000-000000000000",
       "x--Fa", "x--fZ", "x--A", "x--", "no-separator", "x--0", "x--9f", "x--g1", "x----ab", "x--é1", "x--\uff21\uff22",  # full-width A and B
       "x--\u0660\u0661", "relationship--ffffffff-ffff-4fff-bfff-ffffffffffff", "x-custom--Ee-01"]


@pytest.mark.parametrize("width", [1, 2])
def test_shard_key_follows_its_definition(width: int) -> None:
    for object_id in IDS:
        assert shard_key(object_id, width) == defined_key(object_id, width), object_id
    # every head of one or two characters made of hex digits in either case, and some that are not
    for first in "0123456789abcdefABCDEFgG-":
        for second in ("", *"0123456789abcdefABCDEFzZ-"):
            object_id = f"t--{first}{second}"
            assert shard_key(object_id, width) == defined_key(object_id, width), object_id


def test_packed_data_inflates_to_the_json_and_is_the_same_every_time() -> None:
    text = b'[{"o":{"id":"indicator--1","name":"\xc3\xa9 <b>"}}]' * 200
    first = packed(text)
    assert zlib.decompress(base64.b64decode(first, validate=True)) == text
    assert packed(text) == first and len(first) < len(text)
    shard = shard_script("ab", text)
    assert shard.startswith(b'TiopsReport.shard("ab","') and shard.endswith(b'");\n')
    assert index_script(text) == b'TiopsReport.index("' + first + b'");\n'

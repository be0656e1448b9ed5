"""The report's data files: a compact index for the browser and object shards for the object page.

A page opened from ``file://`` cannot ``fetch()`` a file next to it (Chromium blocks it),
but it can load a ``<script src>``: every data file is therefore a script that hands its
JSON to a function of the page (``TiopsReport.index(...)``, ``TiopsReport.shard(key, ...)``).

* ``data/index.js``: one row per object with the columns of :data:`INDEX_FIELDS`, what
  the browser's first view, free-text search, sorting and most queries read.
* ``data/objects/<key>.js``: the objects whose UUID starts with ``<key>`` (one or two hex
  digits, see :func:`shard_width`): each object with its query-only fields, the names of
  what it references, its relationships and its provenance. The object page loads the one
  shard its id names; the browser loads them all only for a query over other fields.
  Each object also has the objects naming it in a ``*_ref(s)`` property, when any (build.py
  ``_referrers``).
"""

from __future__ import annotations

import base64
import string
from collections.abc import Mapping
from typing import Any

from deflate import zlib_compress

# The fields the browser's index holds, besides source (row "s") and TLP (row "t").
# A query reading any other field makes the browser load the object shards first.
# The aliases are there for free-text search: an analyst looks up "Cozy Bear", not APT29's
# name (STIX ``aliases``; ATT&CK keeps a malware's or tool's in ``x_mitre_aliases``).
INDEX_FIELDS = ("id", "type", "name", "labels", "confidence", "created", "modified", "valid_from", "valid_until",
                "revoked", "x_mitre_deprecated", "indicator_types", "observable", "observable_type", "external_id",
                "aliases", "x_mitre_aliases")
_HEX = frozenset(string.hexdigits.lower())
_SMALL = 16_000  # up to this many objects, 16 shards; above, 256 (about 400 objects each at 100k)


def shard_width(total: int) -> int:
    """How many leading hex digits of the UUID name a shard: 1 (16 shards) or 2 (256)."""
    return 1 if total <= _SMALL else 2


def shard_key(object_id: str, width: int) -> str:
    """The shard holding ``object_id``; static/object.js computes the same key."""
    head = object_id.partition("--")[2][:width]
    key = _KEYS.get(head)  # the common case: one lookup instead of lowering and a set test
    if key is not None and len(key) == width:
        return key
    head = head.lower()
    return head if len(head) == width and set(head) <= _HEX else "0" * width


# Every one- and two-digit UUID head, in either case -> its shard key.
_KEYS: dict[str, str] = {a + b: (a + b).lower() for a in string.hexdigits for b in ("", *string.hexdigits)}


def index_row(data: Mapping[str, Any], name: str, source: str | None, tlp: str | None) -> list[Any]:
    """One index row: the display name, source, TLP, then :data:`INDEX_FIELDS` (None: absent).
    The display name is None when it is the ``name`` property, to keep the index small."""
    return [None if name == data.get("name") else name, source, tlp, *map(data.get, INDEX_FIELDS)]


def packed(json_text: bytes) -> bytes:
    """JSON deflated in the zlib format (RFC 1950; static/data.js inflates it with
    DecompressionStream("deflate")) and in base64 (RFC 4648), to sit in a script as a string.

    libdeflate at level 1: at 100k objects, half the time of zlib's fastest level and
    a tenth smaller (docs/performance.md, "Report"). The same input gives the same bytes
    with the same libdeflate (every version is deterministic); like zlib's, its output
    may change with a new version of the library, never from one run to the next."""
    return base64.b64encode(zlib_compress(json_text, 1))


def shard_script(key: str, json_text: bytes) -> bytes:
    """The shard file: a call with the key and the packed JSON list of the shard's objects."""
    return b"TiopsReport.shard(\"" + key.encode() + b"\",\"" + packed(json_text) + b"\");\n"


def index_script(json_text: bytes) -> bytes:
    return b"TiopsReport.index(\"" + packed(json_text) + b"\");\n"

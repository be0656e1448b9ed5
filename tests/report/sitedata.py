"""Read a report's data files (data/index.js, data/objects/*.js) back as Python data."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any


def unpack(literal: str) -> Any:
    """The JSON value of a data file's string argument: base64 of deflated JSON."""
    assert literal.startswith('"') and literal.endswith('"')
    return json.loads(zlib.decompress(base64.b64decode(literal[1:-1], validate=True)))


def index_data(site: Path) -> dict[str, Any]:
    text = (site / "data" / "index.js").read_text(encoding="utf-8")
    assert text.startswith("TiopsReport.index(") and text.endswith(");\n")
    data: dict[str, Any] = unpack(text[len("TiopsReport.index("):-3])
    return data


def index_rows(site: Path) -> list[dict[str, Any]]:
    """Each index row as {field: value}, absent fields left out."""
    data = index_data(site)
    return [{field: value for field, value in zip(data["fields"], row, strict=True) if value is not None}
            for row in data["rows"]]


def shard_entries(site: Path) -> dict[str, dict[str, Any]]:
    """Every object of every shard, by id; each entry also says which shard holds it."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((site / "data" / "objects").glob("*.js")):
        text = path.read_text(encoding="utf-8")
        prefix = f'TiopsReport.shard("{path.stem}",'
        assert text.startswith(prefix) and text.endswith(");\n"), path
        for entry in unpack(text[len(prefix):-3]):
            found[entry["o"]["id"]] = {**entry, "shard": path.stem}
    return found


def object_url(site: Path, object_id: str) -> str:
    return (site / "object.html").as_uri() + "#" + object_id

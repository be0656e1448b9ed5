"""The compiled view: what ``tiops query``, report panels and the report browser search.

A row is one object, the latest version of its id (as a store holds it), with the
fields the query language adds to STIX properties (docs/query.md):

* ``observable``: every value an indicator's pattern compares with (STIX 2.1 section 9),
  unescaped, or an SCO's own value (tiops.observables);
* ``observable_type``: the SCO types of those values (``ipv4-addr``, ``file``);
* ``external_id``: the ``external_id`` of every external reference (ATT&CK ``T0865``,
  ``CAPEC-112``, ``CVE-2024-3400``);
* ``source``: the source system (tiops' source-system extension).

Reading patterns is the costly part, so a view built from a bundle file is kept
under ``.tiops/cache/`` beside the bundle's size and modification time, and the next
query loads it in one read (the "compiled view").
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from tiops.errors import UsageError
from tiops.memory import paused_gc
from tiops.observables import object_observables
from tiops.stix import source_of, timestamp_key

VIEW_FORMAT = 1
DERIVED_FIELDS = ("observable", "observable_type", "external_id")


class Row:
    """One object as a condition sees it: ``data`` is the object plus the derived fields."""

    __slots__ = ("data", "obj")
    file = ""  # compiled objects have no file

    def __init__(self, obj: dict[str, Any], data: dict[str, Any]) -> None:
        self.obj, self.data = obj, data

    @property
    def source(self) -> str | None:
        return source_of(self.obj)

    @property
    def id(self) -> str:
        return str(self.obj.get("id", ""))


def derived_fields(obj: Mapping[str, Any]) -> dict[str, list[str]]:
    """The query language's own fields of one object (only those it has)."""
    found: dict[str, list[str]] = {}
    observables = object_observables(obj)
    if observables:
        found["observable"] = list(dict.fromkeys(o.value for o in observables))
        found["observable_type"] = list(dict.fromkeys(o.object_type for o in observables))
    references = obj.get("external_references")
    if isinstance(references, list):
        ids = [r["external_id"] for r in references if isinstance(r, dict) and isinstance(r.get("external_id"), str)]
        if ids:
            found["external_id"] = list(dict.fromkeys(ids))
    return found


def latest_versions(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One object per id, the latest ``modified`` (STIX 2.1 section 3.6), in (type, id) order."""
    latest: dict[str, dict[str, Any]] = {}
    for obj in objects:
        stix_id = obj.get("id")
        if not isinstance(stix_id, str):
            continue
        kept = latest.get(stix_id)
        if kept is None or _version(obj) > _version(kept):
            latest[stix_id] = obj
    return [latest[k] for k in sorted(latest, key=lambda i: (latest[i].get("type", ""), i))]


def _version(obj: Mapping[str, Any]) -> tuple[str, str]:
    stamp = obj.get("modified") or obj.get("created")
    return (timestamp_key(stamp) or ("", "")) if isinstance(stamp, str) else ("", "")


def make_rows(objects: Iterable[dict[str, Any]], derived: Mapping[int, dict[str, list[str]]] | None = None) -> list[Row]:
    """Rows of the latest versions; ``derived`` (by position) skips reading patterns again."""
    rows = []
    with paused_gc():
        for index, obj in enumerate(objects):
            extra = derived.get(index) if derived is not None else derived_fields(obj)
            rows.append(Row(obj, {**obj, **extra} if extra else obj))
    return rows


def rows_from_objects(objects: Iterable[dict[str, Any]]) -> list[Row]:
    return make_rows(latest_versions(objects))


def read_bundle_objects(path: Path) -> list[dict[str, Any]]:
    """The objects of a STIX bundle file (a bundle, or a bare list of objects)."""
    try:
        with paused_gc():
            data = orjson.loads(path.read_bytes())
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    except orjson.JSONDecodeError as error:
        raise UsageError(f"{path} is not JSON: {error}") from None
    objects = data.get("objects") if isinstance(data, dict) else data
    if not isinstance(objects, list):
        raise UsageError(f"{path} is not a STIX bundle (no 'objects' list)",
                         hint="Pass a bundle such as dist/bundle.json from 'tiops compile'.")
    return [o for o in objects if isinstance(o, dict)]


def bundle_rows(path: Path, cache_dir: Path | None) -> list[Row]:
    """The rows of a bundle file, through the kept view when ``cache_dir`` is given."""
    if cache_dir is None:
        return rows_from_objects(read_bundle_objects(path))
    try:
        stat = path.stat()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    resolved = str(path.resolve())
    stamp = {"path": resolved, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "format": VIEW_FORMAT}
    view_file = cache_dir / f"query-view-{hashlib.sha256(resolved.encode()).hexdigest()[:16]}.json"
    try:
        with paused_gc():  # a hundred thousand acyclic dicts: nothing for the collector to find
            kept = orjson.loads(view_file.read_bytes())
        if kept.get("stamp") == stamp:
            derived = {int(k): v for k, v in kept["derived"].items()}
            return make_rows(kept["objects"], derived)
    except (OSError, orjson.JSONDecodeError, AttributeError, KeyError, ValueError):
        pass  # no view yet, or an unreadable one: build it again
    objects = latest_versions(read_bundle_objects(path))
    derived = {index: extra for index, obj in enumerate(objects) if (extra := derived_fields(obj))}
    _write_view(view_file, {"stamp": stamp, "objects": objects, "derived": {str(k): v for k, v in derived.items()}})
    return make_rows(objects, derived)


def _write_view(view_file: Path, view: dict[str, Any]) -> None:
    try:
        view_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = view_file.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(orjson.dumps(view))
        os.replace(temporary, view_file)
    except OSError:
        pass  # a read-only checkout still answers, only more slowly next time

"""The compiled view: what ``tiops query``, report panels and the report browser search.

A row is one object, the latest version of its id (as a store holds it), with the
fields the query language adds to STIX properties (docs/query.md):

* ``observable``: every value an indicator's pattern compares with (STIX 2.1 section 9),
  unescaped, or an SCO's own value (tiops.observables);
* ``observable_type``: the SCO types of those values (``ipv4-addr``, ``file``);
* ``external_id``: the ``external_id`` of every external reference (ATT&CK ``T0865``,
  ``CAPEC-112``, ``CVE-2024-3400``);
* ``source``: the source system (tiops' source-system extension).

A view is columnar: one list per top-level property (and per added field), a value
per row. A query reads only the columns its fields name, so "observable = 1.2.3.4"
over 100k objects parses one column, not 100k objects. :class:`MemoryView` holds
objects already in memory (a store's, a fresh in-memory compile, the report);
:class:`StoredView` is kept on disk under ``.tiops/cache/`` for a bundle file, beside
the bundle's size and modification time, and is built once per bundle.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from tiops.enrich.fields import field_path
from tiops.errors import UsageError
from tiops.memory import paused_gc, write_in_pieces
from tiops.observables import object_observables
from tiops.outputs import kept_out_of_git
from tiops.query.keys import KEY_FIELD, keys_column, query_keys
from tiops.stix import source_of, timestamp_key

VIEW_FORMAT = 4  # 3: observable holds = and IN values only; 4: kept keys of hosts written another way
DERIVED_FIELDS = ("observable", "observable_type", "external_id")
SOURCE = "source"
EVERY_FIELD = "*"


class Row:
    """One object as a condition sees it: ``data`` holds the object's properties a
    query asked for (or all of them) plus the added fields; ``obj`` is the STIX object."""

    __slots__ = ("data", "index", "source", "view")
    file = ""  # compiled objects have no file

    def __init__(self, data: dict[str, Any], source: str | None, index: int, view: View) -> None:
        self.data, self.source, self.index, self.view = data, source, index, view

    @property
    def obj(self) -> dict[str, Any]:
        return self.view.object(self.index)

    @property
    def id(self) -> str:
        return str(self.data.get("id", ""))


def derived_fields(obj: Mapping[str, Any]) -> dict[str, list[str]]:
    """The query language's own fields of one object (only those it has)."""
    found: dict[str, list[str]] = {}
    # The values the pattern says an observable is (= and IN), as the store's ThreatIntelIndicators
    # has a row for: not one it says an observable is not (NOT, !=), nor a MATCHES, LIKE or ISSUBSET
    # operand. "observable = V" found "anything but V" as intel about V.
    observables = [o for o in object_observables(obj) if o.is_equality]
    if observables:
        found["observable"] = list(dict.fromkeys(o.value for o in observables))
        found["observable_type"] = list(dict.fromkeys(o.object_type for o in observables))
    references = obj.get("external_references")
    if isinstance(references, list):
        ids = [r["external_id"] for r in references if isinstance(r, dict) and isinstance(r.get("external_id"), str)]
        if ids:
            found["external_id"] = list(dict.fromkeys(ids))
    return found


def column_names(fields: Iterable[str]) -> set[str]:
    """The columns the fields of a query read (a dotted path reads its first step;
    ``enrichment.*`` and ``whois.*`` read the extension that carries them)."""
    names = {"id", "type"}
    for field in fields:
        if field == EVERY_FIELD:
            return {EVERY_FIELD}
        path = field_path(field)
        head = path[0] if path is not None else field.split(".", 1)[0]
        names.add({"tags": "labels", "tlp": "object_marking_refs"}.get(head, head))
    return names


class View:
    """Columns of the latest version of each object, and the objects themselves."""

    size: int
    property_names: frozenset[str]

    def column(self, name: str) -> Sequence[Any]:
        raise NotImplementedError

    def object(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def _keys_column(self) -> list[list[str] | None]:
        """The :data:`~tiops.query.keys.KEY_FIELD` column: each row's host keys (tiops.query.keys)."""
        return keys_column(self.column("observable"))

    def candidates(self, condition: Mapping[str, Any] | None) -> list[int] | None:
        """Row numbers that can match ``condition`` (None: any row can). Only a superset:
        the caller still tests every candidate.

        Each test of one column that the whole condition needs (the condition itself, or
        one of an ``and``) is run down its column with the rules' own test of one value
        (tiops.rules.conditions.element_test): "type = indicator and confidence >= 80"
        over 100k objects makes rows for the few that pass both, not for all of them.
        """
        found: set[int] | None = None
        for test in _needed_tests(condition):
            rows = self._column_hits(test)
            if rows is not None:
                found = rows if found is None else found & rows
                if not found:
                    break
        return None if found is None else sorted(found)

    def _column_hits(self, test: Mapping[str, Any]) -> set[int] | None:
        from tiops.rules.conditions import ConditionError, element_test, simple_property

        field, op = test["field"], test["op"]
        name = SOURCE if field == SOURCE else simple_property(field)
        if name is None or op not in _COLUMN_OPERATORS or "value" not in test:
            return None
        expected = test["value"]
        keys = query_keys(expected if isinstance(expected, list) else [expected]) if name == "observable" and op in (
            "equals", "in") else []
        if keys:
            # The same host written another way (tiops.query.keys): a value equal to one asked for
            # or to its key, as select tests it (keyed_condition); the rows whose own key is one
            # of those keys are added below.
            op, expected = "in", [*(expected if isinstance(expected, list) else [expected]), *keys]
        try:
            each = element_test(op, expected, None, ()).call
        except ConditionError:
            return None  # the full test reports it
        column = self.column(name)
        # As ConditionWriter.any_value: a list matches when an element does; absent never does.
        found = {index for index, value in enumerate(column)
                 if value is not None and (any(map(each, value)) if value.__class__ is list else each(value))}
        if keys:
            wanted = frozenset(keys)
            found.update(index for index, row_keys in enumerate(self.column(KEY_FIELD))
                         if row_keys is not None and not wanted.isdisjoint(row_keys))
        return found

    def rows(self, fields: Iterable[str], only: Sequence[int] | None = None) -> list[Row]:
        """Rows whose ``data`` holds the columns ``fields`` read (EVERY_FIELD: all of them);
        ``only`` limits them to those row numbers."""
        names = column_names(fields)
        if EVERY_FIELD in names:
            names = set(self.property_names) | set(DERIVED_FIELDS) | {SOURCE}
        wanted = sorted(n for n in names if n != SOURCE)
        columns = [self.column(name) for name in wanted]
        sources = self.column(SOURCE) if SOURCE in names else [None] * self.size
        rows = []
        indexes: Sequence[int] = range(self.size)
        if only is not None:  # the cut columns, each picked in one comprehension
            indexes = only
            columns = [[column[index] for index in only] for column in columns]
            sources = [sources[index] for index in only]
        with paused_gc():
            for index, values, source in zip(indexes, zip(*columns, strict=True), sources, strict=True):
                data = dict(zip(wanted, values, strict=True))
                if None in values:  # a missing property is absent, as in the object
                    data = {name: value for name, value in data.items() if value is not None}
                rows.append(Row(data, source, index, self))
        return rows


class MemoryView(View):
    """A view of objects in memory; columns are made when first asked for."""

    def __init__(self, objects: Iterable[dict[str, Any]]) -> None:
        self.objects = latest_versions(objects)
        self.size = len(self.objects)
        self.property_names = frozenset(key for obj in self.objects for key in obj)
        self._columns: dict[str, list[Any]] = {}

    def column(self, name: str) -> list[Any]:
        if name not in self._columns:
            if name == SOURCE:
                self._columns[name] = [source_of(obj) for obj in self.objects]
            elif name == KEY_FIELD:
                self._columns[name] = self._keys_column()
            elif name in DERIVED_FIELDS:
                derived = [derived_fields(obj) for obj in self.objects]
                for field in DERIVED_FIELDS:
                    self._columns[field] = [d.get(field) for d in derived]
            else:
                self._columns[name] = [obj.get(name) for obj in self.objects]
        return self._columns[name]

    def object(self, index: int) -> dict[str, Any]:
        return self.objects[index]

    def fill_columns(self) -> None:
        """Make every column in one pass over the objects (a column at a time would walk
        all objects once per property: 40-odd passes over 100k objects)."""
        size = len(self.objects)
        columns: dict[str, list[Any]] = {name: [None] * size for name in (*DERIVED_FIELDS, SOURCE)}
        observable, observable_type, external_id, sources = (columns[name] for name in (*DERIVED_FIELDS, SOURCE))
        with paused_gc():
            for index, obj in enumerate(self.objects):
                for key, value in obj.items():
                    column = columns.get(key)
                    if column is None:
                        column = columns[key] = [None] * size
                    column[index] = value
                # Written for every object: the added fields win over a property of the same name.
                derived = derived_fields(obj)
                observable[index] = derived.get("observable")
                observable_type[index] = derived.get("observable_type")
                external_id[index] = derived.get("external_id")
                sources[index] = source_of(obj) if "extensions" in obj else None
        self._columns.update(columns)


class StoredView(View):
    """A view kept on disk: ``meta.json`` (stamp, size, columns), one JSON list per
    column, and ``objects.jsonl`` (one object per line) with its line offsets."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        self.folder, self.meta = folder, meta
        self.size = int(meta["size"])
        self.property_names = frozenset(meta["properties"])
        self._files: dict[str, str] = meta["columns"]
        self._columns: dict[str, list[Any]] = {}
        self._lines: bytes | None = None
        self._offsets: list[int] = []

    def column(self, name: str) -> list[Any]:
        if name not in self._columns:
            file = self._files.get(name)
            if file is None:  # no object has it (the keys too: _store writes them whenever one has a key)
                self._columns[name] = [None] * self.size
            else:
                with paused_gc():
                    self._columns[name] = orjson.loads((self.folder / file).read_bytes())
        return self._columns[name]

    def candidates(self, condition: Mapping[str, Any] | None) -> list[int] | None:
        """The rows an ``observable = V`` or ``observable in [...]`` test (alone, or one of
        an ``and``) can hold for, from the kept index of observable values: "do we already
        have 1.2.3.4?" reads no column at all."""
        test = _observable_test(condition)
        if test is None or "observable-index" not in self.meta:
            return super().candidates(condition)
        with paused_gc():
            index = orjson.loads((self.folder / self.meta["observable-index"]).read_bytes())
        values = test["value"] if isinstance(test["value"], list) else [test["value"]]
        values = [*values, *query_keys(values)]  # and under their keys (tiops.query.keys)
        return sorted({row for value in values for row in index.get(str(value).casefold(), ())})

    def object(self, index: int) -> dict[str, Any]:
        if self._lines is None:
            self._lines = (self.folder / "objects.jsonl").read_bytes()
            self._offsets = orjson.loads((self.folder / "offsets.json").read_bytes())
        loaded: dict[str, Any] = orjson.loads(self._lines[self._offsets[index]:self._offsets[index + 1]])
        return loaded


# Operators whose test holds only for a present value, one value at a time.
_COLUMN_OPERATORS = frozenset({"equals", "in", "contains", "starts-with", "ends-with", "matches", ">", ">=", "<", "<="})


def _needed_tests(condition: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The tests ``condition`` cannot hold without: itself, or the tests of its ``and``."""
    if condition is None:
        return []
    if "field" in condition:
        return [condition]
    return [part for part in condition.get("all", ()) if "field" in part]


def _observable_test(condition: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if condition is None:
        return None
    if condition.get("field") == "observable" and condition.get("op") in ("equals", "in"):
        return condition
    for part in condition.get("all", ()):
        found = _observable_test(part)
        if found is not None:
            return found
    return None


def latest_versions(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One object per id, the latest ``modified`` (STIX 2.1 section 3.6), in (type, id) order."""
    listed = [obj for obj in objects if isinstance(obj.get("id"), str)]
    keys = [(str(obj.get("type", "")), obj["id"]) for obj in listed]
    if all(a < b for a, b in itertools.pairwise(keys)) and len({key[1] for key in keys}) == len(keys):
        return listed  # a compiled bundle: one version of each id, already in order
    latest: dict[str, dict[str, Any]] = {}
    for obj in listed:
        stix_id = obj.get("id")
        if not isinstance(stix_id, str):
            continue
        kept = latest.get(stix_id)
        if kept is None or _version(obj) > _version(kept):
            latest[stix_id] = obj
    return [latest[k] for k in sorted(latest, key=lambda i: (str(latest[i].get("type", "")), i))]


def _version(obj: Mapping[str, Any]) -> tuple[str, str]:
    stamp = obj.get("modified") or obj.get("created")
    return (timestamp_key(stamp) or ("", "")) if isinstance(stamp, str) else ("", "")


def rows_from_objects(objects: Iterable[dict[str, Any]]) -> list[Row]:
    """Rows with every field, of the latest versions of ``objects``: what ``rows([EVERY_FIELD])``
    gives, made by copying each object rather than column by column (half the time at 100k)."""
    view = MemoryView(objects)
    rows = []
    with paused_gc():
        for index, (obj, source) in enumerate(zip(view.objects, view.column(SOURCE), strict=True)):
            data = {**obj, **derived_fields(obj)}
            if None in data.values():  # a missing property is absent, as in the column view
                data = {name: value for name, value in data.items() if value is not None}
            rows.append(Row(data, source, index, view))
    return rows


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


def bundle_view(path: Path, cache_dir: Path | None) -> View:
    """The view of a bundle file: the one kept in ``cache_dir`` if it matches the bundle,
    else a new one (kept there for next time)."""
    if cache_dir is None:
        return MemoryView(read_bundle_objects(path))
    try:
        stat = path.stat()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    resolved = str(path.resolve())
    stamp = {"path": resolved, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "format": VIEW_FORMAT}
    folder = cache_dir / f"query-view-{hashlib.sha256(resolved.encode()).hexdigest()[:16]}"
    try:
        meta = orjson.loads((folder / "meta.json").read_bytes())
        if isinstance(meta, dict) and meta.get("stamp") == stamp:
            return StoredView(folder, meta)
    except (OSError, orjson.JSONDecodeError):
        pass  # no view yet, or an unreadable one: build it again
    memory = MemoryView(read_bundle_objects(path))
    memory.fill_columns()
    _store(memory, folder, stamp)
    return memory


def _store(view: MemoryView, folder: Path, stamp: dict[str, Any]) -> None:
    """Write the view beside a new folder name, then move it in place (readers never see half a view)."""
    names = sorted(view.property_names | set(DERIVED_FIELDS) | {SOURCE, KEY_FIELD})
    temporary = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(temporary, ignore_errors=True)
        if folder.parent.parent.name == ".tiops":
            kept_out_of_git(folder.parent.parent)  # .tiops/cache/VIEW: the cache is no intel to commit
        temporary.mkdir(parents=True)
        files = {}
        for number, name in enumerate(names):
            values = view.column(name)
            if values.count(None) != len(values):  # counted in C: 40-odd columns of 100k
                files[name] = f"c{number}.json"
                _write_file(temporary / files[name], orjson.dumps(values))
        offsets = [0]
        with (temporary / "objects.jsonl").open("wb") as lines:
            for obj in view.objects:
                line = orjson.dumps(obj) + b"\n"
                lines.write(line)
                offsets.append(offsets[-1] + len(line))
        _write_file(temporary / "offsets.json", orjson.dumps(offsets))
        # Equality folds case (tiops.rules.conditions), so the index is keyed by the folded value,
        # and by the key of a host written another way (tiops.query.keys): 8.8.8.8/32 under 8.8.8.8.
        observable_index: dict[str, list[int]] = {}
        for row, (values, keys) in enumerate(zip(view.column("observable"), view.column(KEY_FIELD), strict=True)):
            for value in values or ():
                observable_index.setdefault(str(value).casefold(), []).append(row)
            for key in keys or ():
                rows = observable_index.setdefault(key, [])
                if not rows or rows[-1] != row:  # a value may already be written as its key
                    rows.append(row)
        _write_file(temporary / "observable-index.json", orjson.dumps(observable_index))
        meta = {"stamp": stamp, "size": view.size, "properties": sorted(view.property_names), "columns": files,
                "observable-index": "observable-index.json"}
        _write_file(temporary / "meta.json", orjson.dumps(meta))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(temporary, folder)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)  # a read-only checkout still answers, only more slowly


def _write_file(path: Path, data: bytes) -> None:
    """``data`` into a new file, in pieces (a column is megabytes at a million objects: tiops.memory.WRITE_PIECE)."""
    with path.open("wb") as out:
        write_in_pieces(out.write, data)

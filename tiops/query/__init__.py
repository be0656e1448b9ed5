"""Find and count compiled intel with the ``--where`` language (docs/query.md).

One engine for ``tiops query``, report panels and (in JavaScript, checked against this
one in the browser tests) the report browser: :func:`select` filters, sorts and cuts a
list of :class:`Row`; :func:`group_counts` counts a field's values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tiops.errors import UsageError
from tiops.query.keys import KEY_FIELD, keyed_condition, reads_observable_keys
from tiops.query.view import (
    EVERY_FIELD,
    MemoryView,
    Row,
    View,
    bundle_view,
    derived_fields,
    rows_from_objects,
)
from tiops.rules.conditions import MISSING, ConditionError, compile_condition, field_getter
from tiops.stix import timestamp_key
from tiops.where import QUERY_FIELDS, Condition, check_fields, parse_where

__all__ = [
    "EVERY_FIELD",
    "MemoryView",
    "Query",
    "Row",
    "View",
    "bundle_view",
    "derived_fields",
    "group_counts",
    "parse_query",
    "query_fields",
    "rows_from_objects",
    "select",
    "value_counts",
]


@dataclass(frozen=True)
class Query:
    """A parsed query: the condition (None: everything), sort field and direction, limit."""

    condition: Condition | None = None
    sort: str | None = None
    descending: bool = False
    limit: int | None = None


def parse_query(expression: str | None, *, types: Sequence[str] = (), sort: str | None = None,
                limit: int | None = None, seen: Iterable[str] = (), seen_types: Iterable[str] = ()) -> Query:
    """Check and parse an expression, ``--type`` shortcuts, ``--sort FIELD[:desc]`` and ``--limit``."""
    parts: list[Condition] = []
    if expression is not None and expression.strip():
        parts.append(parse_where(expression, QUERY_FIELDS, seen, seen_types))
    if types:
        type_test: Condition = {"field": "type", "op": "in", "value": list(types)}
        check_fields(type_test, QUERY_FIELDS, seen_types=seen_types)
        parts.append(type_test)
    condition = None if not parts else parts[0] if len(parts) == 1 else {"all": parts}
    descending = False
    if sort is not None:
        sort, _, direction = sort.partition(":")
        if direction not in ("", "asc", "desc"):
            raise UsageError(f"--sort: {direction!r} is not a direction", hint="Write --sort FIELD or --sort FIELD:desc.")
        descending = direction == "desc"
        check_fields({"field": sort, "op": "exists"}, QUERY_FIELDS, seen)
    if limit is not None and limit < 0:
        raise UsageError("--limit must be 0 or more")
    return Query(condition, sort, descending, limit)


def query_fields(query: Query, *more: str | None) -> set[str]:
    """Every field a query (and the further fields ``more``, e.g. a group-by) reads."""
    fields = {field for field in more if field is not None}
    if query.sort is not None:
        fields.add(query.sort)
    pending: list[Any] = [query.condition] if query.condition is not None else []
    while pending:
        node = pending.pop()
        if "field" in node:
            fields.add(node["field"])
        for key in ("all", "any"):
            pending.extend(node.get(key, ()))
        if "not" in node:
            pending.append(node["not"])
    return fields


def select(rows: Sequence[Row], query: Query) -> list[Row]:
    """The rows the condition holds for, sorted (by ``sort``, then id) and cut to ``limit``.

    ``observable`` equality also holds for the same host written another way (tiops.query.keys):
    the condition is tested as :func:`~tiops.query.keys.keyed_condition` writes it, over each row
    with its keys (kept by its view, made once for all rows)."""
    condition = query.condition
    keyed = reads_observable_keys(condition)
    try:
        predicate = compile_condition(keyed_condition(condition) if keyed and condition is not None else condition)
    except ConditionError as error:
        raise UsageError(f"query: {error.message}") from None
    if condition is None:
        found = list(rows)
    elif keyed:
        found = [row for row in rows if predicate(_with_keys(row))]
    else:
        found = [row for row in rows if predicate(row)]
    if query.sort is not None:
        found = _sorted(found, query.sort, query.descending)
    return found if query.limit is None else found[: query.limit]


class _KeyedRow:
    """A row as a keyed condition sees it: its data with its keys in :data:`KEY_FIELD`."""

    __slots__ = ("data", "file", "source")

    def __init__(self, row: Row, keys: list[str]) -> None:
        self.data, self.source, self.file = {**row.data, KEY_FIELD: keys}, row.source, row.file


def _with_keys(row: Row) -> Row | _KeyedRow:
    keys = row.view.column(KEY_FIELD)[row.index]
    return row if keys is None else _KeyedRow(row, keys)


def _sorted(rows: list[Row], field: str, descending: bool) -> list[Row]:
    """Missing values last whatever the direction; numbers before text; ties by id."""
    getter = field_getter(field)
    present: list[tuple[tuple[Any, ...], Row]] = []
    missing: list[Row] = []
    for row in rows:
        value = getter(row)
        if value.__class__ is list:
            value = value[0] if value else MISSING
        if value is MISSING or value is None or isinstance(value, dict):
            missing.append(row)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            present.append(((0, value, ""), row))
        elif isinstance(value, str) and (moment := timestamp_key(value)) is not None:
            present.append(((1, *moment), row))  # a moment, whatever its precision (section 3.2)
        else:
            present.append(((2, str(value), ""), row))
    present.sort(key=lambda item: item[1].id)
    present.sort(key=lambda item: item[0], reverse=descending)
    return [row for _, row in present] + sorted(missing, key=lambda row: row.id)


def group_counts(rows: Sequence[Row], field: str, limit: int | None = None) -> list[tuple[Any, int]]:
    """How many rows have each value of ``field``; a list counts each element once.

    Rows without the field are not counted. Sorted by count (most first), then value.
    """
    counts = value_counts(rows, field)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], _value_order(item[0])))
    return ordered if limit is None else ordered[:limit]


def rows_without(rows: Sequence[Row], field: str) -> int:
    """How many rows :func:`group_counts` leaves out: those without ``field`` (or with null)."""
    getter = field_getter(field)
    return sum(1 for row in rows if (value := getter(row)) is MISSING or value is None)


def value_counts(rows: Sequence[Row], field: str) -> Counter[Any]:
    """What :func:`group_counts` counts, unsorted: for a caller that groups the values
    further (a timeline by month), sorting 100k distinct timestamps first costs more than the count."""
    getter = field_getter(field)
    counts: Counter[Any] = Counter()
    for row in rows:
        value = getter(row)
        if value is MISSING or value is None:
            continue
        if value.__class__ is list:
            for counted in {_countable(v) for v in value}:  # an object counts once per value
                counts[counted] += 1
        else:
            counts[_countable(value)] += 1
    return counts


def _countable(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return value


def _value_order(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return 0, int(value)
    if isinstance(value, (int, float)):
        return 1, value
    return 2, str(value)

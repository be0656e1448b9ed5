"""What the per-object checks learn from an object's property names alone, once per list of names.

Objects of one producer carry the same property names in the same order (a feed writes
every indicator alike), so the questions that depend on the names only -- which of them
the type's schema does not define, which hold timestamps or open-vocabulary values,
which time windows (STIX 2.1 sections 4.7, 4.2, 4.13, 5.1) apply -- are answered once
per (type, names) and looked up for every further object of that shape. The checks
then visit only the properties that can give a finding. tests/validate/test_shapes.py
holds each check to its result without the shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tiops.jsonschemas import known_properties, open_vocabularies
from tiops.stix import TIME_WINDOWS

__all__ = ["TIMESTAMP_PROPERTIES", "Shape", "shape_of"]

# Properties whose values are timestamps, checked for real calendar dates beyond the
# schema's format pattern (a pattern accepts 2025-02-30).
TIMESTAMP_PROPERTIES = frozenset(
    {
        "created", "modified", "valid_from", "valid_until", "first_seen", "last_seen",
        "first_observed", "last_observed", "start_time", "stop_time", "published",
        "object_modified", "submitted", "analysis_started", "analysis_ended",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Shape:
    """The property names of objects of one STIX type (with a schema), read for the checks.

    ``unknown``: the names the type's schema does not define, in the order written;
    ``custom``: those of them starting with ``x_`` (custom properties, section 11.1);
    ``vocabularies``: (name, vocabulary, suggested values) of the open-vocabulary
    properties present, in the schema's order; ``timestamps``: the timestamp
    properties present; ``created_and_modified``: both present; ``windows``: the
    TIME_WINDOWS entries whose start and end are both present.
    """

    unknown: tuple[str, ...]
    custom: tuple[str, ...]
    vocabularies: tuple[tuple[str, str, frozenset[str]], ...]
    timestamps: frozenset[str]
    created_and_modified: bool
    windows: tuple[tuple[str, str, bool, str], ...]


def shape_of(stix_type: str, data: dict[str, Any]) -> Shape:
    """The :class:`Shape` of ``data``, an object of ``stix_type`` (a type with a schema)."""
    names = tuple(data)
    by_names = _SHAPES.get(stix_type)
    if by_names is None:
        by_names = _SHAPES[stix_type] = {}
    shape = by_names.get(names)
    if shape is None:
        shape = _shape(stix_type, names)
        if len(by_names) < _SHAPES_LIMIT:
            by_names[names] = shape
    return shape


def _shape(stix_type: str, names: tuple[str, ...]) -> Shape:
    known = known_properties(stix_type)
    unknown = tuple(name for name in names if name not in known)
    present = frozenset(names)
    return Shape(
        unknown=unknown,
        custom=tuple(name for name in unknown if name.startswith("x_")),
        vocabularies=tuple((name, vocabulary, values) for name, (vocabulary, values)
                           in open_vocabularies(stix_type).items() if name in present),
        # Built from the names in their order, as the checks built it from the object:
        # the same set, iterated in the same order.
        timestamps=TIMESTAMP_PROPERTIES.intersection(names),
        created_and_modified="created" in present and "modified" in present,
        windows=tuple(window for window in TIME_WINDOWS if window[0] in present and window[1] in present),
    )


# Object type -> property names in order -> their Shape. A repository has few shapes;
# the limit keeps a stream of one-off shapes (hand-written objects) from growing it.
_SHAPES: dict[str, dict[tuple[str, ...], Shape]] = {}
_SHAPES_LIMIT = 4096

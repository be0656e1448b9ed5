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

import functools
from dataclasses import dataclass
from typing import Any

from tiops.jsonschemas import known_properties, open_vocabularies, stix_schema
from tiops.limits import STIX_INTEGER_MAX, STIX_INTEGER_MIN
from tiops.stix import ALL_TYPES, SCO_TYPES, TIME_WINDOWS

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
    TIME_WINDOWS entries whose start and end are both present; ``number_free``: every
    name is one whose schema admits no number tiops.limits.number_problems reports
    (see :func:`number_free_property`), so a schema-valid object of this shape has none.
    """

    unknown: tuple[str, ...]
    custom: tuple[str, ...]
    vocabularies: tuple[tuple[str, str, frozenset[str]], ...]
    timestamps: frozenset[str]
    created_and_modified: bool
    windows: tuple[tuple[str, str, bool, str], ...]
    number_free: bool
    # Nothing the STIX 2.1 rules of tiops.validate.rules21 look at is present: no unknown
    # name, external reference, granular marking, extensions, observed-data objects, nor an
    # SCO or marking-definition type.
    rules_free: bool
    # Nothing tiops.validate.values looks at outside an SCO's own values and a pattern is
    # present: no extensions, custom property, lang, granular marking, external reference
    # (whose hashes are checked) or language contents.
    values_plain: bool


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
        number_free=not unknown and all(number_free_property(stix_type, name) for name in names),
        rules_free=(not unknown and stix_type in ALL_TYPES and stix_type not in SCO_TYPES and stix_type != "marking-definition"
                    and "external_references" not in present and "granular_markings" not in present
                    and "extensions" not in present
                    and not (stix_type == "observed-data" and "objects" in present)),
        values_plain=(not unknown and not stix_type.startswith("x-") and stix_type != "language-content"
                      and present.isdisjoint(("extensions", "lang", "granular_markings", "external_references"))),
    )


@functools.cache
def number_free_property(stix_type: str, name: str) -> bool:
    """Whether every value of property ``name`` that the schema of ``stix_type`` accepts is
    free of the numbers STIX cannot hold (integers beyond section 2.16's range, NaN, Infinity).

    True when the property's own schema or a common definition it is also held to (allOf)
    admits only strings, booleans, integers bounded inside the STIX range, or lists of
    those. Anything else, including any ``number``, is False: the value is walked.
    """
    schema = stix_schema(stix_type)
    held_to = [(schema.get("properties", {}).get(name), stix_type)]
    for part in schema.get("allOf", []):
        document, _, pointer = part.get("$ref", "").partition("#")
        if document == "common.json":
            held_to.append((_resolve("common", pointer).get("properties", {}).get(name), "common"))
    return any(_admits_no_number(node, document, 0) for node, document in held_to if node is not None)


def _admits_no_number(node: Any, document: str, depth: int) -> bool:
    if type(node) is not dict or depth > 16:
        return False
    if "const" in node and type(node["const"]) in (str, bool):
        return True
    if "enum" in node and type(node["enum"]) is list and all(type(value) in (str, bool) for value in node["enum"]):
        return True
    kind = node.get("type")
    if kind == "string" or kind == "boolean":
        return True
    if kind == "integer":
        low, high = node.get("minimum"), node.get("maximum")
        if type(low) is int and type(high) is int and low >= STIX_INTEGER_MIN and high <= STIX_INTEGER_MAX:
            return True
    if kind == "array" and _admits_no_number(node.get("items"), document, depth + 1):
        return True
    if any(_admits_no_number(part, document, depth + 1) for part in node.get("allOf", [])):
        return True
    reference = node.get("$ref")
    if type(reference) is str:
        target_document, _, pointer = reference.partition("#")
        if target_document == "common.json":
            target_document = "common"
        elif target_document == "":
            target_document = document
        else:
            return False
        return _admits_no_number(_resolve(target_document, pointer), target_document, depth + 1)
    return False


def _resolve(document: str, pointer: str) -> Any:
    """The node at a JSON pointer (RFC 6901, without escapes: the schemas' names need none)."""
    node: Any = stix_schema(document)
    for step in pointer.split("/")[1:]:
        if type(node) is not dict or step not in node:
            return None
        node = node[step]
    return node


# Object type -> property names in order -> their Shape. A repository has few shapes;
# the limit keeps a stream of one-off shapes (hand-written objects) from growing it.
_SHAPES: dict[str, dict[tuple[str, ...], Shape]] = {}
_SHAPES_LIMIT = 4096

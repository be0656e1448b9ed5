"""Access to the JSON Schemas shipped in ``schemas/`` (also inside the package).

Validation uses jsonschema-rs: on 20k indicators it took 0.03 s where the pure
Python jsonschema took 3.3 s (docs/performance.md). Validators are compiled once
per process and cached.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import jsonschema_rs

_BASE_URI = "https://schemas.tiops.example/"


def _schema_dir() -> Traversable:
    return resources.files("tiops") / "schemas"


@functools.cache
def _load(relative: str) -> dict[str, Any]:
    with (_schema_dir() / relative).open("rb") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


@functools.cache
def _registry(folders: tuple[str, ...] = ("stix", "tiops")) -> jsonschema_rs.Registry:
    """The schemas of ``folders``, by id, for references between them."""
    entries = []
    for folder in folders:
        for entry in (_schema_dir() / folder).iterdir():
            if entry.name.endswith(".json"):
                schema = _load(f"{folder}/{entry.name}")
                entries.append((schema.get("$id", f"{_BASE_URI}{folder}/{entry.name}"), schema))
    return jsonschema_rs.Registry(entries)


@functools.cache
def stix_types_with_schema() -> frozenset[str]:
    names = {entry.name[:-5] for entry in (_schema_dir() / "stix").iterdir() if entry.name.endswith(".json")}
    return frozenset(names - {"common", "vocabularies"})


@functools.cache
def stix_validator(stix_type: str) -> Any | None:
    if stix_type not in stix_types_with_schema():
        return None
    return jsonschema_rs.validator_for(_load(f"stix/{stix_type}.json"), registry=_registry())


@functools.cache
def common_properties_validator(kind: str) -> Any:
    """A validator of the common properties of ``kind`` ("sdo", "sro" or "sco", STIX 2.1 section 3.2 / 6.1).

    What an object of a type defined by an extension-definition (section 7.3) is checked against.
    """
    return jsonschema_rs.validator_for({"$ref": f"{_BASE_URI}stix/common.json#/$defs/{kind}"}, registry=_registry())


@functools.cache
def _tiops_validator(kind: str) -> Any:
    # tiops' own schemas refer only to each other: every command reads tiops.yaml, and reading
    # the 44 STIX schemas too cost each a few milliseconds.
    return jsonschema_rs.validator_for(_load(f"tiops/{kind}.json"), registry=_registry(("tiops",)))


def tiops_schema_errors(kind: str, data: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Schema errors of one of tiops' own files (config, defaults, relationships, ingestion-rules)."""
    validator = _tiops_validator(kind)
    if validator.is_valid(data):
        return []
    found: list[tuple[tuple[str | int, ...], str]] = []
    for error in validator.iter_errors(data):
        path = tuple(error.instance_path)
        unexpected = _unexpected_keys(error, kind)
        if unexpected:
            # additionalProperties reports the mapping; each key it did not expect is placed at its own line.
            for key, known in unexpected:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                where = ".".join(str(part) for part in (*path, key))
                found.append(((*path, key), f"{where}: unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close
                                                                              else f" (known: {', '.join(known)})")))
            continue
        found.append((path, _describe(error, data)))
    return sorted(found, key=lambda item: (len(item[0]), [str(p) for p in item[0]], item[1]))


def _unexpected_keys(error: Any, kind: str) -> list[tuple[str, list[str]]]:
    """The keys an additionalProperties error is about, each with the names the schema knows there."""
    unexpected = getattr(error.kind, "unexpected", None)
    if list(error.schema_path)[-1:] != ["additionalProperties"] or not unexpected:
        return []
    node: Any = _load(f"tiops/{kind}.json")
    try:
        for part in list(error.schema_path)[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
    except (KeyError, IndexError, ValueError, TypeError):
        return []
    known = sorted(node.get("properties", {})) if isinstance(node, dict) else []
    return [(str(key), known) for key in unexpected] if known else []


def _describe(error: Any, data: Any) -> str:
    where = ".".join(str(part) for part in error.instance_path)
    message = str(error.message)
    value = _value_at(data, tuple(error.instance_path))
    if isinstance(value, float) and not math.isfinite(value):
        # The validator reads NaN and infinity as null, which it then names: they are no JSON
        # numbers (RFC 8259 section 6), so say what was written.
        message = f"{_yaml_spelling(value)} is not a number tiops can use (NaN and infinity are not JSON numbers)"
    elif _holds_non_finite(value):
        message += " (NaN and infinity, written there, are read as null: they are not JSON numbers)"
    return f"{where}: {message}" if where else message


def _value_at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _yaml_spelling(value: float) -> str:
    return ".nan" if math.isnan(value) else ".inf" if value > 0 else "-.inf"


def _holds_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_holds_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_non_finite(item) for item in value)
    return False


def _referenced_defs(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for part in schema.get("allOf", []):
        ref = part.get("$ref", "")
        if ref.startswith("common.json#/$defs/"):
            yield _load("stix/common.json")["$defs"][ref.rsplit("/", 1)[1]]


def stix_schema(name: str) -> dict[str, Any]:
    """The shipped STIX schema ``name`` (a type, or ``common``), parsed once; not to be modified."""
    return _load(f"stix/{name}.json")


@functools.cache
def known_properties(stix_type: str) -> frozenset[str]:
    """Every property name the specification defines for ``stix_type``."""
    if stix_type not in stix_types_with_schema():
        return frozenset()
    schema = _load(f"stix/{stix_type}.json")
    names = set(schema.get("properties", {}))
    for common in _referenced_defs(schema):
        names.update(common.get("properties", {}))
    return frozenset(names)


@functools.cache
def common_property_names() -> frozenset[str]:
    """The common properties of every kind of object (STIX 2.1 sections 3.2, 6.1, 7.2.1, 7.3):
    those of SDOs and SROs, SCOs, marking definitions, extension definitions and language content."""
    kinds = _load("stix/common.json")["$defs"]
    return frozenset().union(*(kinds[kind].get("properties", {}) for kind in
                               ("sdo", "sro", "sco", "marking", "extension-definition", "language-content")))


@functools.cache
def sco_common_property_names() -> frozenset[str]:
    """The common properties of an SCO (STIX 2.1 section 6.1), fewer than an SDO's."""
    return frozenset(_load("stix/common.json")["$defs"]["sco"].get("properties", {}))


@functools.cache
def required_properties(stix_type: str) -> frozenset[str]:
    """The properties the specification requires on ``stix_type`` (empty for types without a schema)."""
    if stix_type not in stix_types_with_schema():
        return frozenset()
    schema = _load(f"stix/{stix_type}.json")
    names = set(schema.get("required", []))
    for part in schema.get("allOf", []):
        names.update(part.get("required", []))
    for common in _referenced_defs(schema):
        names.update(common.get("required", []))
    return frozenset(names)


@functools.cache
def open_vocabularies(stix_type: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Property -> (vocabulary name, suggested values) for open-vocabulary properties."""
    if stix_type not in stix_types_with_schema():
        return {}
    schema = _load(f"stix/{stix_type}.json")
    vocabularies = _load("stix/vocabularies.json").get("$defs", {})
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for name, prop in schema.get("properties", {}).items():
        vocab = prop.get("x-open-vocab") or (prop.get("items") or {}).get("x-open-vocab")
        if vocab and vocab in vocabularies:
            found[name] = (vocab, frozenset(vocabularies[vocab].get("x-values", [])))
    return found


@functools.cache
def property_json_type(stix_type: str, name: str) -> str | None:
    """The JSON type ("string", "integer", "array", ...) the schema gives property ``name`` of ``stix_type``.

    None for properties the schema does not define or types it leaves open.
    """
    if stix_type not in stix_types_with_schema():
        return None
    schema = _load(f"stix/{stix_type}.json")
    prop = schema.get("properties", {}).get(name)
    if prop is None:
        prop = next((common["properties"][name] for common in _referenced_defs(schema)
                     if name in common.get("properties", {})), None)
    seen = 0
    while isinstance(prop, dict) and "type" not in prop and "$ref" in prop and seen < 10:
        prop, seen = _resolve_common(prop["$ref"]), seen + 1
    found = prop.get("type") if isinstance(prop, dict) else None
    return found if isinstance(found, str) else None


def _resolve_common(ref: str) -> dict[str, Any] | None:
    """A JSON pointer into common.json ("common.json#/$defs/x" or "#/$defs/x/$defs/y")."""
    _, _, pointer = ref.partition("#")
    node: Any = _load("stix/common.json")
    for part in pointer.strip("/").split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


@functools.cache
def property_kinds() -> dict[str, str]:
    """Every property name the specification defines, over all types, with the kind of
    value it holds: ``number``, ``boolean``, ``timestamp`` or ``any`` (text, lists,
    mappings, or kinds that differ between types)."""
    kinds: dict[str, set[str]] = {}
    for stix_type in stix_types_with_schema():
        schema = _load(f"stix/{stix_type}.json")
        properties = dict(schema.get("properties", {}))
        for common in _referenced_defs(schema):
            properties.update(common.get("properties", {}))
        for name, prop in properties.items():
            kinds.setdefault(name, set()).add(_value_kind(prop))
    return {name: found.pop() if len(found) == 1 else "any" for name, found in kinds.items()}


def _value_kind(prop: dict[str, Any]) -> str:
    if prop.get("type") in ("integer", "number"):
        return "number"
    if prop.get("type") == "boolean":
        return "boolean"
    if "timestamp" in str(prop.get("$ref", "")):
        return "timestamp"
    return "any"

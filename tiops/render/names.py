"""Names beside ids: how text for people shows an object (plan, apply, tag, import, relate, explain)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from tiops.lookup import object_name

# Names longer than this are cut: a plan line must stay one readable line.
_MAX_NAME = 60
# What a terminal would act on rather than show: C0 and C1 controls (ESC starts colour,
# hyperlink and screen-clearing sequences, CR overwrites the line) and the bidirectional
# overrides and isolates that reorder what is shown.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` as a terminal shows it and does nothing else with: each control character
    written as an escape (``\x1b``, ``\u202e``), so partner intel cannot recolour, relink,
    clear or rewrite the lines a reviewer reads."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def labelled(stix_id: str, name: str | None) -> str:
    """``"Name" (type--uuid)``, or the bare id when the object has no name."""
    if not name:
        return stix_id
    shown = name if len(name) <= _MAX_NAME else name[: _MAX_NAME - 1] + "…"
    return f'"{shown}" ({stix_id})'


def labelled_from(stix_id: str, names: Mapping[str, str]) -> str:
    return labelled(stix_id, names.get(stix_id))


def names_of(objects: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Object id -> name, for every object that has one (see :func:`tiops.lookup.object_name`)."""
    names: dict[str, str] = {}
    for obj in objects:
        name = object_name(obj)
        identifier = obj.get("id")
        if name and isinstance(identifier, str):
            names[identifier] = printable(name)
    return names


def what(obj: Mapping[str, Any] | None, stix_id: str, names: Mapping[str, str]) -> str:
    """An object as a person reads it: a relationship as 'A uses B', anything else by name."""
    if obj is not None and obj.get("type") == "relationship":
        source, target = str(obj.get("source_ref")), str(obj.get("target_ref"))
        return f"{_short(source, names)} {obj.get('relationship_type')} {_short(target, names)}"
    if obj is not None and obj.get("type") == "sighting":
        return f"sighting of {_short(str(obj.get('sighting_of_ref')), names)}"
    name = names.get(stix_id)
    return f'"{name}"' if name else ""


def _short(stix_id: str, names: Mapping[str, str]) -> str:
    name = names.get(stix_id)
    if not name:
        return stix_id
    return '"' + (name if len(name) <= _MAX_NAME else name[: _MAX_NAME - 1] + "…") + '"'

"""Names beside ids: how text for people shows an object (plan, apply, tag, import, relate)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tiops.lookup import object_name

# Names longer than this are cut: a plan line must stay one readable line.
_MAX_NAME = 60


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
            names[identifier] = name
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

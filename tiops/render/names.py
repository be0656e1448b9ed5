"""Names beside ids: how text for people shows an object (plan, apply, tag, import, relate)."""

from __future__ import annotations

from collections.abc import Mapping

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

"""Names beside ids: how text for people shows an object (plan, apply, tag, import, relate, explain)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from tiops.lookup import object_name

# Names longer than this are cut: a plan line must stay one readable line.
_MAX_NAME = 60
# What a terminal would act on rather than show: C0 and C1 controls (ESC starts colour,
# hyperlink and screen-clearing sequences, CR overwrites the line) and the bidirectional
# overrides and isolates that reorder what is shown. And the second "#" of "##[": a CI log runner
# reads "##[add-mask]x", "##[error]x" or "##[stop-commands]x" anywhere in a line as a command
# (GitHub's runner, ActionCommand.TryParse, the legacy form: IndexOf("##["), not only at the start).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]|(?<=#)#(?=\[)")


def printable(text: str) -> str:
    """``text`` as a terminal shows it and does nothing else with: each control character
    written as an escape (``\x1b``, ``\u202e``), so partner intel cannot recolour, relink,
    clear or rewrite the lines a reviewer reads, nor give a CI runner a command (``##[`` is
    written ``#\x23[``)."""
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


class NamesOf(Mapping[str, str]):
    """:func:`names_of` of ``objects``, worked out only for the ids asked for.

    A plan after a one-file change shows a few lines, each naming an object or two, but
    its compiled intel holds every object of the repository: naming 100k objects up
    front took about 0.2 s of such a plan. The first look-up indexes the objects' positions
    by id (from ``ids``, each object's id in order, when given: a plan's compiled lines
    know them without parsing a line, tiops.plan.CompiledLines); then only the versions of
    an id asked for are read, the last first, as :func:`names_of` keeps the last name.
    Iterating, or taking the length, names every object.
    """

    def __init__(self, objects: Sequence[Mapping[str, Any]], ids: Sequence[Any] | None = None) -> None:
        self._objects = objects
        self._ids = ids
        self._positions: dict[Any, list[int]] | None = None
        self._all: dict[str, str] | None = None

    def __getitem__(self, stix_id: str) -> str:
        if self._all is not None:
            return self._all[stix_id]
        if self._positions is None:
            positions: dict[Any, list[int]] = {}
            ids = self._ids if self._ids is not None else [obj.get("id") for obj in self._objects]
            for position, identifier in enumerate(ids):
                positions.setdefault(identifier, []).append(position)
            self._positions = positions
        # The last version with a name: names_of keeps the name of the last version that has one.
        for position in reversed(self._positions.get(stix_id, ()) if isinstance(stix_id, str) else ()):
            if name := object_name(self._objects[position]):
                return printable(name)
        raise KeyError(stix_id)

    def _named(self) -> dict[str, str]:
        if self._all is None:
            self._all = names_of(self._objects)
        return self._all

    def __iter__(self) -> Iterator[str]:
        return iter(self._named())

    def __len__(self) -> int:
        return len(self._named())


class FirstNames(Mapping[str, str]):
    """The names of ``first``, and of ``then`` for ids ``first`` does not name (a read-only ChainMap)."""

    def __init__(self, first: Mapping[str, str], then: Mapping[str, str]) -> None:
        self._first, self._then = first, then

    def __getitem__(self, stix_id: str) -> str:
        name = self._first.get(stix_id)
        return name if name is not None else self._then[stix_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first.keys() | self._then.keys())

    def __len__(self) -> int:
        return len(self._first.keys() | self._then.keys())


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

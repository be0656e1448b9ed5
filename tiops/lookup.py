"""Find an object the way a person names it: its id, a unique id prefix, or its name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from tiops.errors import UsageError
from tiops.load import IntelObject, Repo

# How many candidates an ambiguous name lists.
_SHOWN = 5


def object_name(data: Mapping[str, Any]) -> str | None:
    """What a person calls an object: its name, or an observable's value (STIX 2.1 sections 4, 6)."""
    for key in ("name", "value", "path", "display_name", "abstract"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def describe(obj: IntelObject) -> str:
    """``name (id)``, or the id alone for objects without a name."""
    name = object_name(obj.data)
    return f"{name} ({obj.id})" if name else obj.id


def find_object(repo: Repo, text: str, *, role: str = "object", candidates: Iterable[IntelObject] | None = None) -> IntelObject:
    """The one object ``text`` names: an exact id, a unique id prefix (with or without the
    type), or a unique name (exact case first, then any case)."""
    pool = list(repo.objects if candidates is None else candidates)
    wanted = text.strip()
    exact = [obj for obj in pool if obj.id == wanted]
    if exact:
        return exact[0]
    if wanted:
        by_prefix = _unique_by_id([obj for obj in pool if obj.id.startswith(wanted)
                                   or obj.id.partition("--")[2].startswith(wanted.lower())])
        if len(by_prefix) == 1:
            return by_prefix[0]
        if by_prefix:
            raise _ambiguous(role, text, by_prefix, "id prefix")
    for fold in (False, True):
        key = wanted.casefold() if fold else wanted
        named = _unique_by_id([obj for obj in pool if (name := object_name(obj.data)) is not None
                               and (name.casefold() if fold else name) == key])
        if len(named) == 1:
            return named[0]
        if named:
            raise _ambiguous(role, text, named, "name")
    names = sorted({name for obj in pool if (name := object_name(obj.data))})
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
    raise UsageError(f"{role} {text!r}: no object has that id, id prefix or name",
                     hint=f"Did you mean {', '.join(repr(c) for c in close)}?" if close else
                     "Give an id (type--uuid), a unique start of one, or the object's name.")


def _unique_by_id(objects: list[IntelObject]) -> list[IntelObject]:
    seen: dict[str, IntelObject] = {}
    for obj in objects:
        seen.setdefault(obj.id, obj)
    return list(seen.values())


def _ambiguous(role: str, text: str, matches: list[IntelObject], how: str) -> UsageError:
    listed = "; ".join(describe(obj) for obj in sorted(matches, key=lambda o: o.id)[:_SHOWN])
    more = f" and {len(matches) - _SHOWN} more" if len(matches) > _SHOWN else ""
    return UsageError(f"{role} {text!r}: {len(matches)} objects match this {how}: {listed}{more}",
                      hint="Give more of the id, or the full id.")

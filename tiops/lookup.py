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
    """The one object ``text`` names: an exact id, a unique id prefix with its type
    (``malware--50b8``), a unique name (exact case first, then any case), or a unique
    start of the UUID alone (``50b859d6``). A name wins over a bare UUID prefix, so a
    name that looks like hex still finds its object."""
    pool = list(repo.objects if candidates is None else candidates)
    wanted = text.strip()
    exact = [obj for obj in pool if obj.id == wanted]
    if exact:
        return exact[0]
    if wanted and "--" in wanted:
        # A UUID's hex digits are the same in either case (RFC 9562): an id pasted from a tool
        # that prints GUIDs in upper case names the same object. The case as written is tried
        # first, so ids that differ only in case (partner intel keeps its own) stay reachable,
        # and two objects matching only in another case are ambiguous, not the first one.
        folded = wanted.lower()
        for how, matches in (("id", [obj for obj in pool if obj.id.lower() == folded]),
                             ("id prefix", [obj for obj in pool if obj.id.startswith(wanted)]),
                             ("id prefix", [obj for obj in pool if obj.id.lower().startswith(folded)])):
            found = _one_or_none(role, text, matches, how)
            if found is not None:
                return found
    for fold in (False, True):
        key = wanted.casefold() if fold else wanted
        found = _one_or_none(role, text, [obj for obj in pool if (name := object_name(obj.data)) is not None
                                          and (name.casefold() if fold else name) == key], "name")
        if found is not None:
            return found
    if wanted and "--" not in wanted:
        found = _one_or_none(role, text, [obj for obj in pool if obj.id.partition("--")[2].startswith(wanted.lower())],
                             "id prefix")
        if found is not None:
            return found
    names = sorted({name for obj in pool if (name := object_name(obj.data))})
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
    raise UsageError(f"{role} {text!r}: no object has that id, id prefix or name",
                     hint=f"Did you mean {', '.join(repr(c) for c in close)}?" if close else
                     "Give an id (type--uuid), a unique start of one, or the object's name.")


def _one_or_none(role: str, text: str, matches: list[IntelObject], how: str) -> IntelObject | None:
    """The single match, None for none; several are a usage error listing them."""
    unique = _unique_by_id(matches)
    if len(unique) > 1:
        raise _ambiguous(role, text, unique, how)
    return unique[0] if unique else None


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

"""Memory habits of the pipeline's hot loops.

Loading, rules and compilation each build hundreds of thousands of small dicts and
lists. Two things made that slow, both measured on 100k objects
(``python benchmarks/bench_validate_compile.py``):

* the cyclic garbage collector rescanned every object already loaded at each
  allocation burst (about a third of load time);
* keeping one short-lived buffer per object alive touched a fresh memory page for
  nearly every object, and first touches of memory are expensive system calls on
  virtual machines. Streaming into one growing buffer reuses the same pages.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from sys import intern
from typing import Any


@contextmanager
def paused_gc() -> Iterator[None]:
    """Hold the cyclic garbage collector while building big acyclic data.

    Reference counting still frees everything here; the data built is a tree of
    dicts and lists, with no cycles for the collector to find.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            promote_to_oldest_generation()
            gc.enable()


def promote_to_oldest_generation() -> None:
    """Move every tracked object to the collector's oldest generation without scanning it.

    What was allocated while the collector was paused all sits in the youngest
    generation; the first allocation after re-enabling it would scan it all at once
    (measured: a quarter of a second after loading 100k objects). The oldest generation
    is still collected, only later and with everything else. freeze() moves all objects
    to the permanent generation and unfreeze() moves them back into the oldest one:
    two list splices, no scan. Skipped when the program froze objects of its own, which
    unfreeze() would release.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()



# The most bytes one write to a file is handed at a time. Linux (6.x) gives a buffered write of n
# bytes page-cache folios of up to n bytes, and a folio of 2 MiB, aligned, is a whole free block of
# the page allocator: on a virtual machine that hands free blocks back to its host (free-page
# reporting), every page of such a block is backed again as it is first written. Measured on a
# 2-core VM (docs/performance.md, "Large writes and the page cache"): 77 MB into a new ext4 file,
# 0.35-0.60 s in 2, 4 or 8 MiB writes, 0.02-0.03 s in 1 MiB writes, the same bytes.
WRITE_PIECE = 1 << 20


def write_in_pieces(write: Callable[[memoryview], object], data: bytes | memoryview) -> None:
    """Hand ``data`` to ``write`` (a stream's, which writes all it is given) in pieces of at
    most :data:`WRITE_PIECE` bytes."""
    view = memoryview(data)
    for start in range(0, len(view), WRITE_PIECE):
        write(view[start:start + WRITE_PIECE])


def write_all(descriptor: int, data: bytes | memoryview, offset: int | None = None) -> None:
    """Write all of ``data`` to a file descriptor (at ``offset`` when one is given), in pieces
    of at most :data:`WRITE_PIECE` bytes; a short write is followed by the rest."""
    view = memoryview(data)
    while view:
        piece = view[:WRITE_PIECE]
        written = os.write(descriptor, piece) if offset is None else os.pwrite(descriptor, piece, offset)
        view = view[written:]
        if offset is not None:
            offset += written


# What a command built, held to the end of the process when the command line ends it
# without freeing anything (tiops.cli.run). Freeing a compile's objects one by one, as
# the function that made them returns, took 0.1-0.2 s at 100k objects and more than a
# second at a million (docs/performance.md, "Ending without freeing"); the process's end
# gives all of its memory back at once. None: nothing is held (a library caller, a test,
# a command that goes on working).
_held: list[object] | None = None
# Whether the program ends the process with os._exit after a command (tiops.cli.run does;
# a caller running a command in its own process, as click's test runner does, does not).
_may_end_without_freeing = False


def allow_ending_without_freeing() -> None:
    """Say that this process ends with ``os._exit`` after its command, once it has held
    anything (:func:`hold_until_exit`): for tiops.cli.run alone."""
    global _may_end_without_freeing
    _may_end_without_freeing = True


def end_without_freeing() -> None:
    """For a command that ends right after its pipeline: from now on :func:`hold_until_exit`
    holds what it is given, when the program allows it (:func:`allow_ending_without_freeing`)."""
    global _held
    if _may_end_without_freeing and _held is None:
        _held = []


def hold_until_exit(*values: object) -> None:
    """Keep ``values`` until the process ends, when it will end without freeing them
    (:func:`end_without_freeing`); otherwise do nothing: they are freed as usual.

    Only for what a command has finished with at its very end: held any earlier, their
    memory could not be reused by the work after it.
    """
    if _held is not None:
        _held.extend(values)


def holds_anything() -> bool:
    """Whether :func:`hold_until_exit` has held anything in this process."""
    return bool(_held)

# Properties whose string values recur across objects: vocabularies, versions and
# references (STIX 2.1 sections 3.1, 10). Together with every property name they were
# 150 MB of the 270 MB a 100k-object repository held as separate copies of the same
# text (docs/performance.md, Memory at 1M objects). Free text, ids and timestamps are
# nearly all distinct and are left alone: interning them would only add table entries.
_SHARED_VALUE_PROPERTIES = frozenset(
    {
        "type", "spec_version", "labels", "lang", "pattern_type", "pattern_version", "sectors",
        "capabilities", "roles", "goals", "resource_level", "primary_motivation",
        "secondary_motivations", "personal_motivations", "sophistication", "aliases", "confidence",
        "tlp", "definition_type", "extension_type", "extension_types", "region", "country",
        "architecture_execution_envs", "implementation_languages", "opinion", "result",
        "infrastructure_types", "tool_types", "malware_types", "indicator_types",
        "report_types", "threat_actor_types", "identity_class", "relationship_type",
        "kill_chain_name", "phase_name", "source_name", "protocols",
    }
)  # fmt: skip
_SHARED_VALUE_SUFFIXES = ("_ref", "_refs")


def share_strings(parsed: dict[str, Any]) -> dict[str, Any]:
    """Parsed data in which equal property names, and equal values of recurring
    properties, are one string object each.

    A parser returns a fresh string for every key and value it reads, so a million
    objects held about sixteen million copies of a few dozen property names. Interned
    strings also compare by identity in the dict lookups every later stage makes.
    Mappings are rebuilt (a key cannot be swapped in place); lists are changed in
    place, so pass data nothing else holds yet, as a parser returns it.
    """
    return _share_mapping(parsed, 1, _UNLIMITED)


class NotShareable(Exception):
    """A document :func:`shared_document` cannot vouch for: a key that is not a string,
    or nesting deeper than the limit. tiops.limits.check_structure says which and where."""


def shared_document(document: Any, max_depth: int) -> Any:
    """A parsed document with its strings shared as :func:`share_strings` shares them.

    The same walk proves the document's structure (tiops.limits): it raises
    :class:`NotShareable` at the first key that is not a string or the first mapping
    or list nested more than ``max_depth`` levels deep, so a clean document is walked
    once instead of twice. The items of a top-level list (a bulk file) are shared one
    by one, each an object of its own. Lists are changed in place, as in share_strings.
    """
    kind = document.__class__
    if kind is dict:
        return _share_mapping(document, 1, max_depth)
    if kind is list:
        _share_in_list(document, False, 1, max_depth)
    return document


# Deeper than any parser tiops uses can nest: share_strings walks what it is given.
_UNLIMITED = 1 << 30

# Property name -> whether its values are shared; a bounded cache, names are few.
_shares_values: dict[str, bool] = {}


def _learn(name: str) -> bool:
    shared = name in _SHARED_VALUE_PROPERTIES or name.endswith(_SHARED_VALUE_SUFFIXES)
    if len(_shares_values) < 4096:
        _shares_values[name] = shared
    return shared


# A mapping's shape (its keys, then the types of its values) -> how to share it: its
# keys as shared strings, the keys of its string values to share, of its mappings, of
# its lists whose strings are shared and of its other lists. Objects of one kind have
# few shapes, so the per-key decisions are made once per shape, and most of the work
# per mapping runs in C (dict(zip(...)), update(zip(map(...)))).
_Plan = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]
_plans: dict[tuple[Any, ...], _Plan] = {}
_MAX_PLANS = 8192


def _share_mapping(parsed: dict[str, Any], depth: int, max_depth: int) -> dict[str, Any]:
    if depth > max_depth:
        raise NotShareable
    values = parsed.values()
    shape = (*parsed, *map(type, values))
    plan = _plans.get(shape)
    if plan is None:
        plan = _plan(parsed, shape)
    keys, strings, mappings, shared_lists, lists = plan
    if depth == max_depth and (mappings or shared_lists or lists):
        raise NotShareable  # a mapping or list one level too deep
    out = dict(zip(keys, values, strict=True))
    if strings:
        out.update(zip(strings, map(intern, map(out.__getitem__, strings)), strict=True))
    for key in mappings:
        out[key] = _share_mapping(out[key], depth + 1, max_depth)
    for key in shared_lists:
        items = out[key]
        try:
            # A list of strings only, the usual case; one with other items fails here
            # before changing anything and is walked item by item.
            items[:] = map(intern, items)
        except TypeError:
            _share_in_list(items, True, depth + 1, max_depth)
    for key in lists:
        _share_in_list(out[key], False, depth + 1, max_depth)
    return out


def _plan(parsed: dict[Any, Any], shape: tuple[Any, ...]) -> _Plan:
    for key in parsed:
        if key.__class__ is not str:
            raise NotShareable
    keys = tuple(map(intern, parsed))
    strings: list[str] = []
    mappings: list[str] = []
    shared_lists: list[str] = []
    lists: list[str] = []
    for key, value in zip(keys, parsed.values(), strict=True):
        kind = value.__class__
        if kind is dict:
            mappings.append(key)
        elif kind is str or kind is list:
            share = _shares_values.get(key)
            if share is None:
                share = _learn(key)
            if kind is list:
                (shared_lists if share else lists).append(key)
            elif share:
                strings.append(key)
    plan = (keys, tuple(strings), tuple(mappings), tuple(shared_lists), tuple(lists))
    if len(_plans) < _MAX_PLANS:
        _plans[shape] = plan
    return plan


def _share_in_list(items: list[Any], share: bool, depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise NotShareable
    kinds = set(map(type, items))
    if dict not in kinds and list not in kinds:
        if share and str in kinds:
            items[:] = [intern(value) if value.__class__ is str else value for value in items]
        return
    for index, value in enumerate(items):
        kind = value.__class__
        if kind is str:
            if share:
                items[index] = intern(value)
        elif kind is dict:
            items[index] = _share_mapping(value, depth + 1, max_depth)
        elif kind is list:
            _share_in_list(value, share, depth + 1, max_depth)

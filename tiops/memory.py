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
from collections.abc import Iterator
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
    out: dict[str, Any] = {}
    shares = _shares_values.get
    for key, value in parsed.items():
        key = intern(key)
        kind = value.__class__
        if kind is str:
            share = shares(key)
            if share if share is not None else _learn(key):
                value = intern(value)
        elif kind is dict:
            value = share_strings(value)
        elif kind is list:
            share = shares(key)
            _share_in_list(value, share if share is not None else _learn(key))
        out[key] = value
    return out


# Property name -> whether its values are shared; a bounded cache, names are few.
_shares_values: dict[str, bool] = {}


def _learn(name: str) -> bool:
    shared = name in _SHARED_VALUE_PROPERTIES or name.endswith(_SHARED_VALUE_SUFFIXES)
    if len(_shares_values) < 4096:
        _shares_values[name] = shared
    return shared


def _share_in_list(items: list[Any], share: bool) -> None:
    for index, value in enumerate(items):
        kind = value.__class__
        if kind is str:
            if share:
                items[index] = intern(value)
        elif kind is dict:
            items[index] = share_strings(value)
        elif kind is list:
            _share_in_list(value, share)

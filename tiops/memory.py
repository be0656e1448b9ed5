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


"""References the bundle keeps to objects ingestion rules dropped (TI514).

A drop takes with it what cannot stand without the object: relationships and sightings
that point at it (tiops.rules.engine.POINTERS). Every other reference stays as written:
a ``created_by_ref`` to a dropped identity, a report's ``object_refs`` naming a dropped
malware. The bundle then names an object it does not hold, which ``tiops validate
BUNDLE`` reports as a dangling reference (TI300); compile says so first, at the
reference, as a warning: the rule may be right to drop the object, and whether the
references should go too is the author's call.

The references are the ones the authors wrote (each surviving object as loaded), as the
cascade itself is worked out from them, so every build route gives the same findings: a
full build from its objects, a build through the build cache from the file indexes'
reference lists (tiops.validate.indexed.FileIndex.reference_targets), reading only the
files that hold such a reference.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Final

from tiops.codes import make_finding
from tiops.findings import Finding, Location
from tiops.load import IntelObject
from tiops.validate.reference_index import object_references

__all__ = ["LISTED_PER_TARGET", "dropped_reference_findings", "names_any"]


# References to one dropped object listed one by one; the rest are one finding that counts
# them. An identity that every object names would otherwise be a warning per object (20,000
# at 100k objects), which hides every other finding of the run.
LISTED_PER_TARGET: Final = 10


def dropped_reference_findings(objects: Iterable[IntelObject], by_rules: Container[str],
                               with_targets: Container[str]) -> list[Finding]:
    """TI514 for each reference of ``objects`` to an id a rule dropped (``by_rules``) or that went
    with a dropped object (``with_targets``). ``objects``: the surviving objects as loaded, in
    their order. The first :data:`LISTED_PER_TARGET` references to one id are listed; the
    others are one finding, at the first of them, that counts them and their files."""
    findings: list[Finding] = []
    listed: dict[str, int] = {}
    # Past the first ones: where the next reference is, why the target went, the referring files, the count.
    unlisted: dict[str, tuple[Location, str, set[str], list[int]]] = {}
    for obj in objects:
        for prop, target, path in object_references(obj):
            if type(target) is not str or target == obj.id:
                continue
            if target in by_rules:
                why = "an ingestion rule dropped"
            elif target in with_targets:
                why = "was dropped with the object it points at"
            else:
                continue
            count = listed.get(target, 0)
            if count < LISTED_PER_TARGET:
                listed[target] = count + 1
                findings.append(make_finding(
                    "TI514", f"{prop} names {target}, which {why}: the bundle refers to an object it does not hold "
                    f"('tiops explain {target}' says which rule)", obj.location(*path), stix_id=obj.id))
            else:
                past = unlisted.get(target)
                if past is None:
                    past = unlisted[target] = (obj.location(*path), why, set(), [0])
                past[2].add(obj.file)
                past[3][0] += 1
    for target, (where, why, files, (more,)) in unlisted.items():
        findings.append(make_finding(
            "TI514", f"{target}, which {why}, is named by {more} more reference{'s' if more > 1 else ''} in "
            f"{len(files)} file{'s' if len(files) > 1 else ''}, from this one on; only the first {LISTED_PER_TARGET} "
            f"are listed ('tiops explain {target}' says which rule)", where))
    return findings


def names_any(reference_targets: str | None, ids: Container[str]) -> bool:
    """Whether a file's reference list (FileIndex.reference_targets: ``type NUL property NUL id``
    lines) names one of ``ids``; True when the file has no such list (it is then read)."""
    if reference_targets is None:
        return True
    return any(line.rpartition("\0")[2] in ids for line in reference_targets.split("\n"))

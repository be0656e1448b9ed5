"""Findings at a property an object took from a folder's ``_defaults.yaml``, reported there.

A default is written once and given to every object below its folder, so a defect in it
(a ``created_by_ref`` naming no identity, a marking of the wrong type) was one finding per
object, each at the object's first line, where nothing of it is written. Such findings are
moved to the default's own line and said once, with the number of objects that take it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from tiops.findings import Finding, Location
from tiops.load import DEFAULTS_FILE, IntelObject

__all__ = ["at_default_places", "one_per_default"]


def at_default_places(findings: list[Finding], objects: Sequence[IntelObject],
                      origins: dict[tuple[str, ...], dict[str, str]]) -> list[Finding]:
    """``findings``, those at a defaulted property of one of ``objects`` moved to the
    ``_defaults.yaml`` line that gives it (``origins``: tiops.load.Repo.default_origins).

    Each keeps its object's id, so a check of named files still keeps the findings of their
    objects; :func:`one_per_default` then makes one finding of each default's.
    """
    if not origins:
        return findings
    given = set().union(*origins.values())
    # Only a finding whose path names a default's key can be at one: most findings are not looked at twice.
    if all(finding.stix_id is None or given.isdisjoint(finding.location.path) for finding in findings):
        return findings
    wanted = {finding.stix_id for finding in findings}
    by_id = {obj.id: obj for obj in objects if obj.defaulted_properties and obj.id in wanted}
    result = []
    for finding in findings:
        obj = by_id.get(finding.stix_id) if finding.stix_id is not None else None
        where = finding.location
        depth = len(obj.path) if obj is not None else 0
        if (obj is None or where.file != obj.file or len(where.path) <= depth or where.path[:depth] != obj.path
                or where.path[depth] not in obj.defaulted_properties):
            result.append(finding)
            continue
        origin = origins.get(obj.defaults_files, {}).get(str(where.path[depth]))
        if origin is None:
            result.append(finding)
            continue
        result.append(replace(finding, location=Location(origin, path=("defaults", *where.path[depth:]))))
    return result


def one_per_default(findings: list[Finding]) -> list[Finding]:
    """``findings`` (located) with those :func:`at_default_places` moved to one place made one,
    saying how many objects take that default (the object's id kept when it is one)."""
    groups: dict[tuple[str, str, str, str, int, int], list[int]] = {}
    for index, finding in enumerate(findings):
        where = finding.location
        if finding.stix_id is not None and where.file.rpartition("/")[2] == DEFAULTS_FILE:
            groups.setdefault((finding.code, finding.message, finding.hint, where.file, where.line, where.column),
                              []).append(index)
    if not groups:
        return findings
    firsts = {indexes[0]: len(indexes) for indexes in groups.values()}
    result = []
    for index, finding in enumerate(findings):
        if finding.stix_id is None or finding.location.file.rpartition("/")[2] != DEFAULTS_FILE:
            result.append(finding)
        elif (count := firsts.get(index)) == 1:
            result.append(replace(finding, message=f"{finding.message} (a default, given to 1 object)"))
        elif count is not None:
            result.append(replace(finding, stix_id=None, message=f"{finding.message} (a default, given to {count} objects)"))
    return result

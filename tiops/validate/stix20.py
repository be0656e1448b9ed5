"""Findings on STIX 2.0 objects, which are checked through their upgrade to 2.1
(tiops.stix20), moved back to the places the 2.0 text has."""

from __future__ import annotations

from dataclasses import replace

from tiops.findings import Finding, PathPart


def at_stix20_places(findings: list[Finding], upgraded: dict[tuple[PathPart, ...], dict[str, str]]) -> list[Finding]:
    """``findings`` with paths into upgraded objects mapped back to the 2.0 properties.

    A property the upgrade renamed (``labels`` -> ``indicator_types``) is reported at
    its 2.0 name; one it added (``spec_version``, ``is_family``) at the object.
    """
    moved: list[Finding] = []
    for finding in findings:
        path = finding.location.path
        added = None
        depth = 0
        for depth in (2, 1, 0):  # bundle items sit at ("objects", N), arrays at (N,), a lone object at ()
            if len(path) >= depth and path[:depth] in upgraded:
                added = upgraded[path[:depth]]
                break
        if added is None:
            moved.append(finding)
            continue
        rest = path[depth:]
        if rest and rest[0] in added:
            original = added[str(rest[0])]
            rest = (original, *rest[1:]) if original else ()
        message = f"{finding.message} [STIX 2.0 object, checked as upgraded to 2.1]"
        moved.append(replace(finding, message=message, location=replace(finding.location, path=(*path[:depth], *rest))))
    return moved

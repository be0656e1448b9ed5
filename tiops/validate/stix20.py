"""Findings on STIX 2.0 objects, which are checked through their upgrade to 2.1
(tiops.stix20), moved back to the places the 2.0 text has, and the STIX 2.0 rules that
STIX 2.1 dropped, so the upgrade does not hide them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tiops.codes import cut_message, make_finding
from tiops.findings import Finding, Location, PathPart
from tiops.jsonschemas import open_vocabularies
from tiops.stix20 import MOVED_FROM_LABELS, VOCABULARIES_20

# Findings about the versions themselves (tiops.load), never about an upgraded property.
_ABOUT_VERSIONS = frozenset({"TI210", "TI215"})
# STIX 2.0 Part 2 sections of the types whose labels 2.0 requires (2.1 made the
# *_types property that took their place optional).
_LABELS_SECTIONS = {"indicator": "2.5", "malware": "2.7", "report": "2.9", "threat-actor": "2.10", "tool": "2.11"}


def at_stix20_places(findings: list[Finding], upgraded: dict[tuple[PathPart, ...], dict[str, str]],
                     objects: dict[tuple[PathPart, ...], dict[str, Any]] | None = None) -> list[Finding]:
    """``findings`` with paths into upgraded objects mapped back to the 2.0 properties.

    A property the upgrade renamed (``labels`` -> ``indicator_types``) is reported at
    its 2.0 name; one it added (``spec_version``, ``is_family``) at the object.
    ``objects``: the upgraded objects by path; with them, an open-vocabulary value
    (TI209) that the STIX 2.0 vocabulary suggests is no finding on a 2.0 object.
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
        if added is None or finding.code in _ABOUT_VERSIONS:
            moved.append(finding)
            continue
        rest = path[depth:]
        message = finding.message
        hint = finding.hint
        if finding.code == "TI209" and objects is not None and rest:
            vocabulary = _vocabulary_20(objects.get(path[:depth]), rest)
            if vocabulary is not None:
                name_20, values, value = vocabulary
                if isinstance(value, str) and value in values:
                    continue  # a value STIX 2.0 suggests (Part 1, vocabularies)
                data = objects.get(path[:depth]) or {}
                vocabulary_21 = open_vocabularies(str(data.get("type"))).get(str(rest[0]))
                message = (f"{rest[0]}: {value!r} is in neither the STIX 2.0 {name_20} vocabulary"
                           f"{f' nor the STIX 2.1 {vocabulary_21[0]} one' if vocabulary_21 else ''}")
                hint = f"Suggested values (STIX 2.0 Part 1, vocabularies): {', '.join(sorted(values))}."
        if rest and rest[0] in added:
            renamed = str(rest[0])
            original = added[renamed]
            if original and message.startswith(renamed):
                message = original + message[len(renamed):]  # "malware_types: ..." -> "labels: ..."
            rest = (original, *rest[1:]) if original else ()
        message = f"{message} [STIX 2.0 object, checked as upgraded to 2.1]"
        moved.append(replace(finding, message=cut_message(message), hint=hint,
                             location=replace(finding.location, path=(*path[:depth], *rest))))
    return moved


def _vocabulary_20(data: dict[str, Any] | None, rest: tuple[PathPart, ...]) -> tuple[str, frozenset[str], Any] | None:
    """The STIX 2.0 vocabulary of the property at ``rest`` in ``data``, its values and the value there."""
    if data is None:
        return None
    entry = VOCABULARIES_20.get((str(data.get("type")), str(rest[0])))
    if entry is None:
        return None
    value = data.get(str(rest[0]))
    if len(rest) > 1 and isinstance(value, list) and isinstance(rest[1], int) and rest[1] < len(value):
        value = value[rest[1]]
    return entry[0], entry[1], value


def check_stix20_objects(file: str, objects: dict[tuple[PathPart, ...], dict[str, Any]]) -> list[Finding]:
    """The STIX 2.0 MUSTs that STIX 2.1 dropped, on the upgraded 2.0 objects at their paths.

    2.0 required ``labels`` on indicators, malware, reports, threat actors and tools and
    ``identity_class`` on identities (2.1 made both optional), and its observed-data
    held its cyber observables in ``objects``, whose references name keys of that same
    dictionary (STIX 2.0 Part 3, object references).
    """
    findings: list[Finding] = []
    for path, data in objects.items():
        stix_type = data.get("type")
        stix_id = data.get("id") if isinstance(data.get("id"), str) else None
        moved = MOVED_FROM_LABELS.get(str(stix_type))
        if moved is not None and moved not in data and "labels" not in data:
            findings.append(make_finding(
                "TI201", f"labels is required on a STIX 2.0 {stix_type} (STIX 2.0 Part 2 section "
                f"{_LABELS_SECTIONS[str(stix_type)]}; 2.1 calls it {moved})", Location(file, path=path), stix_id=stix_id,
                hint=f"Add labels with a value from the STIX 2.0 {VOCABULARIES_20[(str(stix_type), moved)][0]} vocabulary."))
        elif stix_type == "identity" and "identity_class" not in data:
            findings.append(make_finding(
                "TI201", "identity_class is required on a STIX 2.0 identity (STIX 2.0 Part 2 section 2.4)",
                Location(file, path=path), stix_id=stix_id,
                hint="Add identity_class with a value from the STIX 2.0 identity-class-ov vocabulary."))
        elif stix_type == "observed-data" and isinstance(data.get("objects"), dict):
            findings.extend(_observables_without_type(file, path, data["objects"], stix_id))
    return findings


def _observables_without_type(file: str, path: tuple[PathPart, ...], observables: dict[str, Any],
                              stix_id: str | None) -> list[Finding]:
    """Entries of an observed-data's objects that are no cyber observable object with a type."""
    findings: list[Finding] = []
    for key, observable in observables.items():
        if not isinstance(observable, dict) or not isinstance(observable.get("type"), str):
            defect = "is not an object" if not isinstance(observable, dict) else (
                "has no type" if "type" not in observable else "has a type that is not a string")
            findings.append(make_finding(
                "TI201" if defect == "has no type" else "TI200",
                f"objects.{key} {defect}: every cyber observable object is a JSON object with a type "
                "(STIX 2.0 Part 3, common properties)", Location(file, path=(*path, "objects", key)), stix_id=stix_id,
                hint="Write each entry of objects as an object naming its type, e.g. {\"type\": \"ipv4-addr\", ...}."))
    # References that name no key of the dictionary are TI300 of the STIX 2.1 rules, which hold the
    # upgraded object to the same rule (tiops.validate.rules21, section 4.14).
    return findings



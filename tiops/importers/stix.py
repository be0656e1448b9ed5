"""STIX input: a bundle or a bare array of objects, STIX 2.1 or 2.0 (upgraded to 2.1)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tiops.importers import Candidate, ParsedInput, Rejection
from tiops.lookup import object_name
from tiops.stix import SCO_TYPES
from tiops.yamlio import YamlProblem, parse_json

# STIX 2.0 put the required open-vocabulary category of these types in `labels`;
# STIX 2.1 moved it to a dedicated property (2.1 sections 4.7, 4.11, 4.14, 4.17, 4.18)
# and made `labels` free tagging.
_TYPES_PROPERTY_FROM_LABELS = {
    "indicator": "indicator_types",
    "malware": "malware_types",
    "report": "report_types",
    "threat-actor": "threat_actor_types",
    "tool": "tool_types",
}


def parse(raw: bytes, source: str) -> ParsedInput:
    result = ParsedInput()
    try:
        data = parse_json(raw)
    except YamlProblem as problem:
        result.rejections.append(Rejection(f"line {problem.line}", (problem.message,)))
        return result
    if isinstance(data, dict) and data.get("type") == "bundle":
        items = data.get("objects")
        if not isinstance(items, list):
            result.rejections.append(Rejection("bundle", ("the bundle has no 'objects' array",)))
            return result
    elif isinstance(data, list):
        items = data
    else:
        result.rejections.append(Rejection("document", ("expected a STIX bundle or a JSON array of STIX objects",)))
        return result
    result.total = len(items)
    upgrades: Counter[str] = Counter()
    for index, item in enumerate(items):
        position = f"index {index}"
        if not isinstance(item, dict):
            result.rejections.append(Rejection(position, (f"item is a {type(item).__name__}, not a STIX object",)))
            continue
        missing = [name for name in ("type", "id") if not isinstance(item.get(name), str) or not item.get(name)]
        if missing:
            reasons = tuple(f"missing required property '{name}'" for name in missing)
            result.rejections.append(Rejection(position, reasons, item.get("id") if isinstance(item.get("id"), str) else None,
                                               object_name(item)))
            continue
        if "spec_version" not in item and item["type"] not in SCO_TYPES:
            item = upgrade_from_20(item, upgrades)
        result.candidates.append(Candidate(position, item))
    if upgrades:
        changes = ", ".join(f"{what}: {count}" for what, count in sorted(upgrades.items()))
        result.notes.append(f"upgraded {upgrades['objects']} STIX 2.0 object(s) to 2.1 ({changes})")
    return result


def upgrade_from_20(item: dict[str, Any], upgrades: Counter[str]) -> dict[str, Any]:
    """A STIX 2.0 object rewritten as 2.1, counting each kind of change made.

    Section 3.2 of 2.1 requires spec_version on SDOs, SROs and marking definitions;
    the type-specific changes follow STIX 2.1 Appendix (changes from 2.0).
    """
    upgraded = {"type": item["type"], "spec_version": "2.1", **{k: v for k, v in item.items() if k != "type"}}
    upgrades["objects"] += 1
    stix_type = item["type"]
    types_property = _TYPES_PROPERTY_FROM_LABELS.get(stix_type)
    if types_property and types_property not in upgraded and isinstance(upgraded.get("labels"), list):
        upgraded[types_property] = upgraded.pop("labels")
        upgrades[f"labels moved to {types_property}"] += 1
    if stix_type == "malware" and "is_family" not in upgraded:
        upgraded["is_family"] = True  # 2.1 section 4.11: required; 2.0 malware described families
        upgrades["malware is_family set to true"] += 1
    if stix_type == "indicator" and "pattern_type" not in upgraded:
        upgraded["pattern_type"] = "stix"  # 2.1 section 4.7: required; 2.0 patterns were STIX
        upgrades["indicator pattern_type set to stix"] += 1
    return upgraded

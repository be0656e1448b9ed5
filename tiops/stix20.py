"""STIX 2.0 content read as STIX 2.1: the upgrade `tiops import` makes and the bundle
linter checks through.

A low module (it imports nothing from tiops) so that both the importer and the loader
can use it. The changes follow STIX 2.1's list of changes from 2.0.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["MOVED_FROM_LABELS", "upgrade_from_20"]

# STIX 2.0 put the required open-vocabulary category of these types in `labels`;
# STIX 2.1 moved it to a dedicated property (2.1 sections 4.7, 4.11, 4.14, 4.17, 4.18)
# and made `labels` free tagging.
MOVED_FROM_LABELS = {
    "indicator": "indicator_types",
    "malware": "malware_types",
    "report": "report_types",
    "threat-actor": "threat_actor_types",
    "tool": "tool_types",
}


def upgrade_from_20(item: dict[str, Any], upgrades: Counter[str]) -> dict[str, Any]:
    """A STIX 2.0 object rewritten as 2.1, counting each kind of change made.

    Section 3.2 of 2.1 requires spec_version on SDOs, SROs and marking definitions;
    the type-specific changes follow STIX 2.1 Appendix (changes from 2.0).
    """
    upgraded = {"type": item["type"], **{k: v for k, v in item.items() if k != "type"}, "spec_version": "2.1"}
    upgraded["spec_version"] = "2.1"  # also over a producer's own "2.0"
    upgrades["objects"] += 1
    stix_type = item["type"]
    types_property = MOVED_FROM_LABELS.get(stix_type)
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

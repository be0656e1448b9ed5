"""STIX 2.0 content read as STIX 2.1: the upgrade `tiops import` makes and the bundle
linter checks through, and the STIX 2.0 vocabularies the linter checks 2.0 values against.

A low module (it imports only tiops.stix, itself a low module) so that both the importer
and the loader can use it. The changes follow STIX 2.1's list of changes from 2.0.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tiops.stix import SCO_TYPES, TLP1_MARKINGS, derive_sco_id

__all__ = ["MOVED_FROM_LABELS", "TYPES_21_ONLY", "VOCABULARIES_20", "upgrade_from_20", "upgrade_observables"]

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

# Object types STIX 2.1 added (sections 4, 7.2.1, 7.3): no such object is STIX 2.0
# content, whatever it leaves out, so one without spec_version is a 2.1 object lacking it.
TYPES_21_ONLY = frozenset({
    "grouping", "infrastructure", "location", "malware-analysis", "note", "opinion",
    "language-content", "extension-definition",
})  # fmt: skip

# The object types STIX 2.0 defines (Part 2, SDOs and SROs; Part 1, marking-definition):
# only these can be 2.0 content that left spec_version out (2.0 had no such property).
TYPES_20 = frozenset({
    "attack-pattern", "campaign", "course-of-action", "identity", "indicator", "intrusion-set", "malware",
    "observed-data", "report", "threat-actor", "tool", "vulnerability", "relationship", "sighting",
    "marking-definition",
})  # fmt: skip

def is_stix20_object(item: dict[str, Any], *, in_stix20_bundle: bool, custom_as_20: bool = False) -> bool:
    """Whether a bundle item is STIX 2.0 content (docs/findings.md, STIX 2.0 content).

    Everything in a bundle with spec_version 2.0 is. In other bundles, an object of a type
    STIX 2.0 defines that leaves spec_version out is (STIX 2.1 section 3.2: "the implicit
    value for all STIX Objects other than SCOs is 2.0"), and so is an object that says
    spec_version 2.0 itself. A type 2.1 added is 2.1 content even without spec_version,
    which 2.1 then misses. So is a custom object (section 11.2 gives it spec_version too),
    unless ``custom_as_20``: its bundle's other objects are 2.0 content and none says 2.1.
    """
    if in_stix20_bundle or item.get("spec_version") == "2.0":
        return True
    if "spec_version" in item or "id" not in item:
        return False
    stix_type = item.get("type")
    if type(stix_type) is not str:
        return False
    if stix_type in TYPES_20:
        return True
    return custom_as_20 and stix_type not in SCO_TYPES and stix_type not in TYPES_21_ONLY


def holds_only_implicit_20(items: list[Any]) -> bool:
    """Whether the items hold an object of a STIX 2.0 type without spec_version, and none
    that says spec_version 2.1: STIX 2.0 content outside a bundle that says so (a list of
    2.0 objects, or a 2.0 bundle that lost its spec_version), whose custom objects are
    then 2.0 content as well."""
    implicit_20 = False
    for item in items:
        if type(item) is not dict:
            continue
        version = item.get("spec_version")
        if version == "2.1":
            return False
        stix_type = item.get("type")
        # Any JSON may stand where a type should (a list, an object): only a string names one.
        if version is None and type(stix_type) is str and stix_type in TYPES_20:
            implicit_20 = True
    return implicit_20


# The reserved TLP marking-definition ids, the same in both versions -> their level.
_TLP_LEVELS = {marking_id: level for level, marking_id in TLP1_MARKINGS.items()}

# STIX 2.0 Part 1, vocabularies, by (type, STIX 2.1 property name).
# A 2.0 object's value is a suggested one when it is in the 2.0 vocabulary, even where
# 2.1 renamed or dropped it ("defence" became "defense" in industry-sector-ov).
_MOTIVATIONS_20 = frozenset({
    "accidental", "coercion", "dominance", "ideology", "notoriety", "organizational-gain",
    "personal-gain", "personal-satisfaction", "revenge", "unpredictable",
})  # fmt: skip
_RESOURCE_LEVELS_20 = frozenset({"individual", "club", "contest", "team", "organization", "government"})
VOCABULARIES_20: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    ("identity", "identity_class"): ("identity-class-ov", frozenset({"individual", "group", "organization", "class", "unknown"})),
    ("identity", "sectors"): ("industry-sector-ov", frozenset({
        "agriculture", "aerospace", "automotive", "communications", "construction", "defence", "education",
        "energy", "entertainment", "financial-services", "government-national", "government-regional",
        "government-local", "government-public-services", "healthcare", "hospitality-leisure", "infrastructure",
        "insurance", "manufacturing", "mining", "non-profit", "pharmaceuticals", "retail", "technology",
        "telecommunications", "transportation", "utilities",
    })),
    ("indicator", "indicator_types"): ("indicator-label-ov", frozenset({
        "anomalous-activity", "anonymization", "benign", "compromised", "malicious-activity", "attribution",
    })),
    ("malware", "malware_types"): ("malware-label-ov", frozenset({
        "adware", "backdoor", "bot", "ddos", "dropper", "exploit-kit", "keylogger", "ransomware",
        "remote-access-trojan", "resource-exploitation", "rogue-security-software", "rootkit", "screen-capture",
        "spyware", "trojan", "virus", "worm",
    })),
    ("report", "report_types"): ("report-label-ov", frozenset({
        "threat-report", "attack-pattern", "campaign", "identity", "indicator", "malware", "observed-data",
        "threat-actor", "tool", "vulnerability",
    })),
    ("threat-actor", "threat_actor_types"): ("threat-actor-label-ov", frozenset({
        "activist", "competitor", "crime-syndicate", "criminal", "hacker", "insider-accidental",
        "insider-disgruntled", "nation-state", "sensationalist", "spy", "terrorist",
    })),
    ("threat-actor", "roles"): ("threat-actor-role-ov", frozenset({
        "agent", "director", "independent", "infrastructure-architect", "infrastructure-operator",
        "malware-author", "sponsor",
    })),
    ("threat-actor", "sophistication"): ("threat-actor-sophistication-ov", frozenset({
        "none", "minimal", "intermediate", "advanced", "expert", "innovator", "strategic",
    })),
    ("threat-actor", "resource_level"): ("attack-resource-level-ov", _RESOURCE_LEVELS_20),
    ("intrusion-set", "resource_level"): ("attack-resource-level-ov", _RESOURCE_LEVELS_20),
    ("threat-actor", "primary_motivation"): ("attack-motivation-ov", _MOTIVATIONS_20),
    ("threat-actor", "secondary_motivations"): ("attack-motivation-ov", _MOTIVATIONS_20),
    ("threat-actor", "personal_motivations"): ("attack-motivation-ov", _MOTIVATIONS_20),
    ("intrusion-set", "primary_motivation"): ("attack-motivation-ov", _MOTIVATIONS_20),
    ("intrusion-set", "secondary_motivations"): ("attack-motivation-ov", _MOTIVATIONS_20),
    ("tool", "tool_types"): ("tool-label-ov", frozenset({
        "denial-of-service", "exploitation", "information-gathering", "network-capture",
        "credential-exploitation", "remote-access", "vulnerability-scanning",
    })),
}  # fmt: skip


def upgrade_from_20(item: dict[str, Any], upgrades: Counter[str], *, import_labels: bool = False) -> dict[str, Any]:
    """A STIX 2.0 object rewritten as 2.1, counting each kind of change made.

    Section 3.2 of 2.1 requires spec_version on SDOs, SROs and marking definitions;
    the type-specific changes follow STIX 2.1 Appendix (changes from 2.0). ``import_labels``:
    for intel imported to be kept, a label that only restates the type is left out (below);
    a 2.0 file linted where it is keeps it, and the warning its vocabulary gives.
    """
    upgraded = {"type": item["type"], **{k: v for k, v in item.items() if k != "type"}, "spec_version": "2.1"}
    upgraded["spec_version"] = "2.1"  # also over a producer's own "2.0"
    upgrades["objects"] += 1
    stix_type = item["type"]
    types_property = MOVED_FROM_LABELS.get(stix_type)
    if types_property and types_property not in upgraded and isinstance(upgraded.get("labels"), list):
        # A label that only restates the type ("malware" on a malware, "tool" on a tool: all 696
        # malware and 91 tools of ATT&CK's 2.0 release) is in neither version's vocabulary and says
        # nothing the type does not: it is left out, so the object reads as its 2.1 release does
        # (which has no malware_types) and no warning nobody can act on is made of it.
        labels = upgraded.pop("labels")
        categories = [label for label in labels if label != stix_type] if import_labels else labels
        if categories or not import_labels:
            upgraded[types_property] = categories
            upgrades[f"labels moved to {types_property}"] += 1
        else:
            upgrades[f"labels that only named the type left out (no {types_property})"] += 1
    if stix_type == "malware" and "is_family" not in upgraded:
        upgraded["is_family"] = True  # 2.1 section 4.11: required; 2.0 malware described families
        upgrades["malware is_family set to true"] += 1
    if stix_type == "indicator" and "pattern_type" not in upgraded:
        upgraded["pattern_type"] = "stix"  # 2.1 section 4.7: required; 2.0 patterns were STIX
        upgrades["indicator pattern_type set to stix"] += 1
    level = _TLP_LEVELS.get(str(upgraded.get("id")))
    if level is not None and stix_type == "marking-definition" and "name" not in upgraded:
        # STIX 2.0 Part 1 (TLP marking) gave the TLP markings without a name (2.0 marking
        # definitions had none); STIX 2.1 section 7.2.1.4 gives the same ids with one.
        upgraded["name"] = f"TLP:{level.upper()}"
        upgrades["TLP marking-definition name added"] += 1
    return upgraded



def upgrade_observables(upgraded: dict[str, Any], upgrades: Counter[str]) -> dict[str, Any]:
    """An upgraded 2.0 observed-data whose cyber observables are STIX 2.1 SCOs.

    STIX 2.1 keeps 2.0's ``objects`` dictionary as a deprecated property of observed-data
    (section 4.13), but its SCOs have an ``id`` (section 6.1), which 2.0 observables had
    not; consumers of 2.1 (the OASIS reference validator among them) fail on one without.
    Each gets the id section 2.9 derives from its properties (tiops.stix.derive_sco_id),
    the same for the same object in every run; the references between them stay
    dictionary keys, as in the deprecated form. An HTTP request header's value, a string
    in 2.0, is a list of strings in 2.1 (section 6.12.2). Objects with an id are kept.
    """
    observables = upgraded.get("objects")
    if upgraded.get("type") != "observed-data" or not isinstance(observables, dict):
        return upgraded
    if all(not isinstance(item, dict) or "id" in item or not isinstance(item.get("type"), str)
           for item in observables.values()):
        return upgraded
    identified: dict[str, Any] = {}
    for key, item in observables.items():
        if isinstance(item, dict) and "id" not in item and isinstance(item.get("type"), str):
            item = _with_listed_request_header(item, upgrades)
            item = {"type": item["type"], "id": derive_sco_id(item), **{k: v for k, v in item.items() if k != "type"}}
            upgrades["observed-data observables given an id"] += 1
        identified[key] = item
    return {**upgraded, "objects": identified}


def _with_listed_request_header(item: dict[str, Any], upgrades: Counter[str]) -> dict[str, Any]:
    extensions = item.get("extensions")
    if not isinstance(extensions, dict):
        return item
    request = extensions.get("http-request-ext")
    header = request.get("request_header") if isinstance(request, dict) else None
    if not isinstance(request, dict) or not isinstance(header, dict) or not any(isinstance(v, str) for v in header.values()):
        return item
    listed = {name: [value] if isinstance(value, str) else value for name, value in header.items()}
    upgrades["HTTP request_header values listed"] += 1
    return {**item, "extensions": {**extensions, "http-request-ext": {**request, "request_header": listed}}}

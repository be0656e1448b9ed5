"""Checks of the shipped STIX 2.1 relationship table (tiops/data/relationships.yaml)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml_rs

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_TABLE = REPO_ROOT / "tiops" / "data" / "relationships.yaml"
EXAMPLE_RULES = REPO_ROOT / "rules" / "relationships.yaml"

Triple = tuple[str, str, str]

# STIX 2.1 section 4: the 19 STIX Domain Objects.
SDO_TYPES = frozenset(
    {
        "attack-pattern", "campaign", "course-of-action", "grouping", "identity",
        "incident", "indicator", "infrastructure", "intrusion-set", "location",
        "malware", "malware-analysis", "note", "observed-data", "opinion",
        "report", "threat-actor", "tool", "vulnerability",
    }
)  # fmt: skip
# STIX 2.1 section 6: the 18 STIX Cyber-observable Objects.
SCO_TYPES = frozenset(
    {
        "artifact", "autonomous-system", "directory", "domain-name", "email-addr",
        "email-message", "file", "ipv4-addr", "ipv6-addr", "mac-addr", "mutex",
        "network-traffic", "process", "software", "url", "user-account",
        "windows-registry-key", "x509-certificate",
    }
)  # fmt: skip
WILDCARD = "*"
# The common relationships, allowed between any two objects; the only ones
# that may use the wildcard.
COMMON_RELATIONSHIPS = frozenset({"derived-from", "duplicate-of", "related-to"})


def load_triples(path: Path) -> list[Triple]:
    document = yaml_rs.loads(path.read_text(encoding="utf-8"), parse_datetime=False)
    assert isinstance(document, dict)
    entries = document["relationships"]
    assert isinstance(entries, list)
    triples: list[Triple] = []
    for entry in entries:
        assert set(entry) == {"source", "type", "target"}, entry
        triples.append((entry["source"], entry["type"], entry["target"]))
    return triples


@pytest.fixture(scope="module")
def shipped_triples() -> list[Triple]:
    return load_triples(SHIPPED_TABLE)


def test_table_has_no_duplicate_triples(shipped_triples: list[Triple]) -> None:
    duplicates = [triple for triple, count in Counter(shipped_triples).items() if count > 1]
    assert duplicates == []


def test_every_type_named_is_a_stix_object_type_or_wildcard(
    shipped_triples: list[Triple],
) -> None:
    known = SDO_TYPES | SCO_TYPES | {WILDCARD}
    unknown = sorted(
        {end for source, _, target in shipped_triples for end in (source, target)} - known
    )
    assert unknown == []


def test_wildcard_is_used_only_by_the_common_relationships(
    shipped_triples: list[Triple],
) -> None:
    wildcard_triples = {t for t in shipped_triples if WILDCARD in (t[0], t[2])}
    assert wildcard_triples == {(WILDCARD, name, WILDCARD) for name in COMMON_RELATIONSHIPS}


@pytest.mark.parametrize(
    "triple",
    [
        # 4.17: a threat actor impersonates an identity (Sentinel's "Impersonates").
        ("threat-actor", "impersonates", "identity"),
        # 4.11: malware targets vulnerability (also listed in Appendix B).
        ("malware", "targets", "vulnerability"),
        # 4.7: an indicator indicates a campaign.
        ("indicator", "indicates", "campaign"),
        # 4.3: remediates is defined for course-of-action though Appendix B omits it.
        ("course-of-action", "remediates", "malware"),
        # 4.18: tool uses infrastructure, likewise only in the per-object section.
        ("tool", "uses", "infrastructure"),
        # 6.4: SCO relationships are part of the table too.
        ("domain-name", "resolves-to", "ipv4-addr"),
    ],
)
def test_spec_triple_is_allowed(shipped_triples: list[Triple], triple: Triple) -> None:
    assert triple in shipped_triples


@pytest.mark.parametrize(
    "triple",
    [
        # An indicator detects things; it never "uses" them (4.7 defines only
        # indicates and based-on).
        ("indicator", "uses", "malware"),
        # impersonates has threat-actor as its only source (4.17).
        ("malware", "impersonates", "identity"),
        # attributed-to from a campaign goes to intrusion-set/threat-actor, not identity (4.2).
        ("campaign", "attributed-to", "identity"),
        # Appendix B's misspelling; section 4.11 names it exfiltrates-to.
        ("malware", "exfiltrate-to", "infrastructure"),
        # Vulnerability defines no relationships of its own (4.19).
        ("vulnerability", "impacts", "infrastructure"),
    ],
)
def test_triple_outside_the_spec_is_absent(shipped_triples: list[Triple], triple: Triple) -> None:
    assert triple not in shipped_triples


def test_example_rules_extend_the_shipped_table(shipped_triples: list[Triple]) -> None:
    # rules/relationships.yaml is the example repository's copy: the full
    # shipped table plus team additions, never a subset of it.
    if not EXAMPLE_RULES.exists():
        pytest.skip(
            "rules/relationships.yaml is not present (installed package without the example repository)"
        )
    example = load_triples(EXAMPLE_RULES)
    assert set(shipped_triples) <= set(example)
    assert len(set(example)) > len(set(shipped_triples))

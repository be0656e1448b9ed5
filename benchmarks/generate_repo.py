"""Write a deterministic synthetic tiops intel repository for benchmarks.

    python benchmarks/generate_repo.py N OUT_DIR [--seed 1] [--bulk-share 0.5] [--json FILE]

The repository holds N STIX 2.1 objects once compiled, counting relationships
(standalone relationship objects and the SROs that inline ``relationships:``
entries compile to). The mix follows what a real intel repository looks like:
about 80% indicators, 8% SDOs and 12% relationships.

Everything comes from ``random.Random(seed)``: ids, values and timestamps. The
wall clock is never read, so the same N and seed always give the same bytes.

Layout written under OUT_DIR::

    tiops.yaml
    intel/identities/<slug>.yaml                   one identity per file
    intel/<sdo-type>/<slug>.yaml                   one SDO per file
    intel/relationships/relationships-0001.yaml    lists of 1,000 relationships
    intel/feeds/<feed>/_defaults.yaml              source + default created_by_ref
    intel/feeds/<feed>/bulk-0001.yaml              lists of 1,000 indicators
    intel/feeds/<feed>/indicators/<kind>/0001/...  one indicator per file

A folder never holds more than 1,000 object files: larger groups are split into
numbered subfolders.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

StixObject = dict[str, Any]

#: Share of each category in the N objects.
INDICATOR_SHARE = 0.80
SDO_SHARE = 0.08
RELATIONSHIP_SHARE = 0.12
#: Share of the relationships written inline (``relationships:``) rather than as
#: standalone relationship objects.
INLINE_RELATIONSHIP_SHARE = 0.25
#: Share of the relationships between SDOs; the rest are indicator → SDO.
SDO_RELATIONSHIP_SHARE = 0.20

OBJECTS_PER_BULK_FILE = 1000
FILES_PER_FOLDER = 1000
#: Below this, the mix cannot give every SDO type at least one object.
MIN_OBJECTS = 150

#: TLP 2.0 marking definitions, which tiops knows without them being in the repository.
TLP_MARKINGS = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
TLP_WEIGHTS = {"clear": 25, "green": 40, "amber": 25, "amber+strict": 5, "red": 5}

#: Ids of inline relationships are not written in the repository: tiops derives
#: them when it loads the repository, as a UUIDv5 of "SOURCE|TYPE|TARGET" under
#: this namespace (tiops.stix). The generator derives them the same way so that
#: the expanded objects (``generate_objects``, ``--json``) carry the same ids.
INLINE_RELATIONSHIP_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:tiops:stix-identifiers")

# Timestamps fall between these two instants (STIX 2.1 section 3.2: RFC 3339, UTC, "Z").
TIME_WINDOW_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
TIME_WINDOW_SECONDS = int(
    (dt.datetime(2026, 6, 30, tzinfo=dt.UTC) - TIME_WINDOW_START).total_seconds()
)

# fmt: off
# Open vocabularies from STIX 2.1 section 10; only suggested values are used so
# that validation reports no vocabulary warnings either.
INDICATOR_TYPES = {  # indicator-type-ov
    "malicious-activity": 60,
    "anomalous-activity": 10,
    "compromised": 10,
    "anonymization": 8,
    "attribution": 7,
    "benign": 3,
    "unknown": 2,
}
THREAT_ACTOR_TYPES = [  # threat-actor-type-ov
    "activist", "competitor", "crime-syndicate", "criminal", "hacker",
    "insider-disgruntled", "nation-state", "spy", "terrorist",
]
THREAT_ACTOR_ROLES = ["agent", "director", "independent", "malware-author", "sponsor"]
SOPHISTICATION = ["minimal", "intermediate", "advanced", "expert", "innovator", "strategic"]
RESOURCE_LEVELS = ["individual", "club", "team", "organization", "government"]
MOTIVATIONS = [  # attack-motivation-ov
    "coercion", "dominance", "ideology", "notoriety", "organizational-gain",
    "personal-gain", "revenge",
]
MALWARE_TYPES = [  # malware-type-ov
    "backdoor", "bot", "downloader", "dropper", "keylogger", "ransomware",
    "remote-access-trojan", "spyware", "trojan", "webshell", "wiper", "worm",
]
MALWARE_CAPABILITIES = [  # malware-capabilities-ov
    "captures-input-peripherals", "communicates-with-c2", "evades-av", "exfiltrates-data",
    "persists-after-system-reboot", "steals-authentication-credentials",
]
TOOL_TYPES = [  # tool-type-ov
    "credential-exploitation", "exploitation", "information-gathering",
    "network-capture", "remote-access", "vulnerability-scanning",
]
INDUSTRY_SECTORS = [  # industry-sector-ov
    "education", "energy", "financial-services", "government", "healthcare",
    "manufacturing", "technology", "telecommunications",
]

# (technique id, name, kill chain phase) from MITRE ATT&CK Enterprise.
ATTACK_TECHNIQUES = [
    ("T1566", "Phishing", "initial-access"),
    ("T1190", "Exploit Public-Facing Application", "initial-access"),
    ("T1059", "Command and Scripting Interpreter", "execution"),
    ("T1047", "Windows Management Instrumentation", "execution"),
    ("T1053", "Scheduled Task/Job", "persistence"),
    ("T1078", "Valid Accounts", "defense-evasion"),
    ("T1027", "Obfuscated Files or Information", "defense-evasion"),
    ("T1003", "OS Credential Dumping", "credential-access"),
    ("T1110", "Brute Force", "credential-access"),
    ("T1082", "System Information Discovery", "discovery"),
    ("T1021", "Remote Services", "lateral-movement"),
    ("T1071", "Application Layer Protocol", "command-and-control"),
    ("T1105", "Ingress Tool Transfer", "command-and-control"),
    ("T1041", "Exfiltration Over C2 Channel", "exfiltration"),
    ("T1486", "Data Encrypted for Impact", "impact"),
]

ADJECTIVES = [
    "Amber", "Ashen", "Azure", "Bitter", "Black", "Bronze", "Cobalt", "Crimson",
    "Dusky", "Emerald", "Frozen", "Golden", "Hollow", "Iron", "Jade", "Lunar",
    "Midnight", "Obsidian", "Pale", "Quiet", "Rapid", "Rusty", "Scarlet", "Silent",
    "Silver", "Solar", "Stone", "Velvet", "Violet", "Wild",
]
NOUNS = [
    "Badger", "Comet", "Condor", "Cyclone", "Falcon", "Ferret", "Harbor", "Heron",
    "Hydra", "Jackal", "Kestrel", "Lantern", "Lynx", "Mantis", "Marlin", "Meteor",
    "Orca", "Owl", "Panda", "Raven", "Scorpion", "Serpent", "Sparrow", "Spider",
    "Tempest", "Tiger", "Viper", "Walrus", "Wasp", "Wolf",
]
MALWARE_STEMS = [
    "Bolt", "Crypt", "Dark", "Ghost", "Hex", "Lock", "Nano", "Night", "Phantom",
    "Pulse", "Shadow", "Snake", "Storm", "Stealth", "Venom", "Zero",
]
MALWARE_SUFFIXES = ["Bot", "Door", "Grab", "Loader", "Locker", "Miner", "RAT", "Spy", "Stealer", "Worm"]
TOOL_NAMES = [
    "Port Prober", "Hash Harvester", "Tunnel Kit", "Packet Sifter", "Shell Relay",
    "Cred Sweeper", "Vuln Lens", "Remote Pilot",
]
DOMAIN_WORDS = [
    "api", "auth", "cdn", "cloud", "docs", "files", "login", "mail", "portal",
    "secure", "support", "sync", "update", "verify", "account", "billing",
]
TOP_LEVEL_DOMAINS = ["com", "net", "org", "info", "biz", "io", "top", "xyz", "online", "site"]
URL_PATHS = ["login", "invoice", "update", "download", "payload", "gate", "panel", "wp-admin", "docs"]
INDICATOR_LABELS = [
    "botnet", "bruteforce", "c2", "credential-theft", "exploit", "malspam",
    "phishing", "ransomware", "scanner", "tor",
]
INDICATOR_DESCRIPTIONS = [
    "Observed by sensors during", "Reported by partners in", "Extracted from samples tied to",
    "Seen in logs during", "Shared by the community after",
]
# Kinds of indicator pattern with their weight in the mix.
INDICATOR_KINDS = {
    "ipv4": 30, "domain": 20, "url": 15, "sha256": 13, "md5": 7,
    "ipv6": 5, "email": 5, "file-hashes": 5,
}

# fmt: on


@dataclass(frozen=True)
class Feed:
    """A folder of indicators from one source, sharing a ``_defaults.yaml``."""

    slug: str
    source: str
    identity_id: str


@dataclass(frozen=True)
class InlineRelationship:
    """An entry of an object's ``relationships:`` list."""

    relationship_type: str
    target_ref: str
    properties: tuple[tuple[str, Any], ...] = ()


@dataclass
class GeneratedIntel:
    """The generated objects, plus what the repository layout needs to know."""

    identities: list[StixObject] = field(default_factory=list)
    sdos: list[StixObject] = field(default_factory=list)
    indicators: list[StixObject] = field(default_factory=list)
    relationships: list[StixObject] = field(default_factory=list)
    inline: dict[str, list[InlineRelationship]] = field(default_factory=dict)
    feeds: list[Feed] = field(default_factory=list)
    indicator_feed: dict[str, int] = field(default_factory=dict)
    indicator_kind: dict[str, str] = field(default_factory=dict)
    bundle_id: str = ""

    def expanded_objects(self) -> list[StixObject]:
        """Every object as tiops compiles it: defaults merged, inline relationships as SROs."""
        by_id = {obj["id"]: obj for obj in self.all_source_objects()}
        inline_sros = [
            expand_inline_relationship(by_id[source_id], entry)
            for source_id, entries in self.inline.items()
            for entry in entries
        ]
        return [*self.all_source_objects(), *self.relationships, *inline_sros]

    def all_source_objects(self) -> list[StixObject]:
        return [*self.identities, *self.sdos, *self.indicators]


def expand_inline_relationship(source: StixObject, entry: InlineRelationship) -> StixObject:
    """The relationship SRO an inline entry compiles to.

    created, modified, created_by_ref and object_marking_refs come from the
    source object unless the entry gives them.
    """
    name = f"{source['id']}|{entry.relationship_type}|{entry.target_ref}"
    sro: StixObject = {
        "type": "relationship",
        "spec_version": "2.1",
        "id": f"relationship--{uuid.uuid5(INLINE_RELATIONSHIP_NAMESPACE, name)}",
        "created": source["created"],
        "modified": source["modified"],
    }
    if "created_by_ref" in source:
        sro["created_by_ref"] = source["created_by_ref"]
    sro["relationship_type"] = entry.relationship_type
    sro["source_ref"] = source["id"]
    sro["target_ref"] = entry.target_ref
    if "object_marking_refs" in source:
        sro["object_marking_refs"] = list(source["object_marking_refs"])
    sro.update(dict(entry.properties))
    return sro


class _Generator:
    """Draws every value from one ``random.Random`` so that output depends only on the seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used_names: set[str] = set()

    # -- primitives -----------------------------------------------------------

    def stix_id(self, stix_type: str) -> str:
        return f"{stix_type}--{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"

    def instant(self) -> dt.datetime:
        seconds = self.rng.randrange(TIME_WINDOW_SECONDS)
        millis = self.rng.randrange(1000)
        return TIME_WINDOW_START + dt.timedelta(seconds=seconds, milliseconds=millis)

    def later(self, start: dt.datetime, min_days: int, max_days: int) -> dt.datetime:
        seconds = self.rng.randrange(min_days * 86400, max_days * 86400 + 1)
        return start + dt.timedelta(seconds=seconds, milliseconds=self.rng.randrange(1000))

    def created_modified(self) -> tuple[dt.datetime, dt.datetime]:
        created = self.instant()
        # Half the objects were never revised; the others a few days later.
        modified = created if self.rng.random() < 0.5 else self.later(created, 0, 90)
        return created, modified

    def weighted(self, weights: dict[str, int]) -> str:
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    def some(self, values: Sequence[str], low: int, high: int) -> list[str]:
        return sorted(self.rng.sample(list(values), self.rng.randint(low, high)))

    def unique_name(self, make: Callable[[], str]) -> str:
        name = make()
        base, suffix = name, 2
        while name in self.used_names:
            name, suffix = f"{base} {suffix}", suffix + 1
        self.used_names.add(name)
        return name

    def marking(self) -> list[str]:
        return [TLP_MARKINGS[self.weighted(TLP_WEIGHTS)]]

    def common(self, stix_type: str, created_by_ref: str | None) -> StixObject:
        created, modified = self.created_modified()
        obj: StixObject = {
            "type": stix_type,
            "spec_version": "2.1",
            "id": self.stix_id(stix_type),
            "created": timestamp(created),
            "modified": timestamp(modified),
        }
        if created_by_ref is not None:
            obj["created_by_ref"] = created_by_ref
        return obj

    def seen_window(self, obj: StixObject) -> None:
        first_seen = self.instant()
        obj["first_seen"] = timestamp(first_seen)
        if self.rng.random() < 0.7:
            # last_seen must not be before first_seen (STIX 2.1 sections 4.2 and 4.9).
            obj["last_seen"] = timestamp(self.later(first_seen, 1, 400))

    # -- observable values ----------------------------------------------------

    def ipv4(self) -> str:
        first = self.rng.choice(
            [n for n in range(1, 224) if n not in (10, 100, 127, 169, 172, 192)]
        )
        rest = ".".join(str(self.rng.randrange(256)) for _ in range(3))
        return f"{first}.{rest}"

    def ipv6(self) -> str:
        groups = ":".join(format(self.rng.getrandbits(16), "x") for _ in range(3))
        return f"2a0{self.rng.randint(1, 9)}:{groups}::{format(self.rng.getrandbits(16), 'x')}"

    def domain(self) -> str:
        letters = "".join(
            self.rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(self.rng.randint(4, 9))
        )
        word = self.rng.choice(DOMAIN_WORDS)
        label = f"{word}-{letters}" if self.rng.random() < 0.5 else f"{letters}{word}"
        return f"{label}.{self.rng.choice(TOP_LEVEL_DOMAINS)}"

    def url(self) -> str:
        scheme = self.rng.choice(["http", "https"])
        path = "/".join(self.rng.sample(URL_PATHS, self.rng.randint(1, 3)))
        query = f"?id={self.rng.randrange(100000)}" if self.rng.random() < 0.3 else ""
        return f"{scheme}://{self.domain()}/{path}{query}"

    def email(self) -> str:
        local = self.rng.choice(
            ["admin", "billing", "hr", "invoice", "it-support", "noreply", "payroll", "security"]
        )
        return f"{local}{self.rng.randrange(1000)}@{self.domain()}"

    def sha256(self) -> str:
        return format(self.rng.getrandbits(256), "064x")

    def md5(self) -> str:
        return format(self.rng.getrandbits(128), "032x")

    def pattern(self, kind: str) -> tuple[str, str]:
        """A STIX pattern (STIX 2.1 section 9) and a human name for the indicator."""
        if kind == "ipv4":
            value = self.ipv4()
            if self.rng.random() < 0.1:
                value += f"/{self.rng.choice([24, 28, 32])}"
            return f"[ipv4-addr:value = '{value}']", f"Malicious IPv4 address {value}"
        if kind == "ipv6":
            value = self.ipv6()
            return f"[ipv6-addr:value = '{value}']", f"Malicious IPv6 address {value}"
        if kind == "domain":
            value = self.domain()
            return f"[domain-name:value = '{value}']", f"Malicious domain {value}"
        if kind == "url":
            value = self.url()
            return f"[url:value = '{value}']", f"Malicious URL {value}"
        if kind == "email":
            value = self.email()
            return f"[email-addr:value = '{value}']", f"Phishing sender {value}"
        if kind == "sha256":
            value = self.sha256()
            return f"[file:hashes.'SHA-256' = '{value}']", f"Malicious file SHA-256 {value[:12]}"
        if kind == "md5":
            value = self.md5()
            return f"[file:hashes.MD5 = '{value}']", f"Malicious file MD5 {value[:12]}"
        md5, sha256 = self.md5(), self.sha256()
        return (
            f"[file:hashes.MD5 = '{md5}' OR file:hashes.'SHA-256' = '{sha256}']",
            f"Malicious file {sha256[:12]}",
        )

    # -- objects --------------------------------------------------------------

    def identity(self, name: str, identity_class: str, created_by_ref: str | None) -> StixObject:
        obj = self.common("identity", created_by_ref)
        obj["name"] = name
        obj["identity_class"] = identity_class
        if identity_class == "organization":
            obj["sectors"] = self.some(INDUSTRY_SECTORS, 1, 2)
        return obj

    def indicator(self, created_by_ref: str) -> tuple[StixObject, str]:
        kind = self.weighted(INDICATOR_KINDS)
        pattern, name = self.pattern(kind)
        obj = self.common("indicator", created_by_ref)
        obj["name"] = name
        # Name and description SHOULD both be present on an indicator (STIX 2.1 section 4.7).
        obj["description"] = (
            f"{self.rng.choice(INDICATOR_DESCRIPTIONS)} {self.rng.choice(INDICATOR_LABELS)} activity."
        )
        obj["indicator_types"] = [self.weighted(INDICATOR_TYPES)]
        obj["pattern"] = pattern
        obj["pattern_type"] = "stix"
        obj["pattern_version"] = "2.1"
        obj["valid_from"] = obj["created"]
        if self.rng.random() < 0.5:
            # valid_until must be later than valid_from (STIX 2.1 section 4.7).
            valid_from = parse_timestamp(obj["valid_from"])
            obj["valid_until"] = timestamp(self.later(valid_from, 1, 365))
        obj["confidence"] = self.rng.randint(0, 100)
        obj["labels"] = self.some(INDICATOR_LABELS, 1, 2)
        obj["object_marking_refs"] = self.marking()
        return obj, kind

    def threat_actor(self, created_by_ref: str) -> StixObject:
        obj = self.common("threat-actor", created_by_ref)
        obj["name"] = self.unique_name(
            lambda: f"{self.rng.choice(ADJECTIVES)} {self.rng.choice(NOUNS)}"
        )
        obj["description"] = (
            "Financially or politically motivated group tracked across several intrusions."
        )
        obj["threat_actor_types"] = self.some(THREAT_ACTOR_TYPES, 1, 2)
        obj["aliases"] = [f"{self.rng.choice(NOUNS)}-{self.rng.randrange(10, 100)}"]
        obj["first_seen"] = timestamp(self.instant())
        obj["roles"] = self.some(THREAT_ACTOR_ROLES, 1, 2)
        obj["sophistication"] = self.rng.choice(SOPHISTICATION)
        obj["resource_level"] = self.rng.choice(RESOURCE_LEVELS)
        obj["primary_motivation"] = self.rng.choice(MOTIVATIONS)
        obj["object_marking_refs"] = self.marking()
        return obj

    def intrusion_set(self, created_by_ref: str) -> StixObject:
        obj = self.common("intrusion-set", created_by_ref)
        obj["name"] = self.unique_name(
            lambda: f"{self.rng.choice(NOUNS)} Cluster {self.rng.randrange(1, 100)}"
        )
        obj["description"] = "Activity cluster grouped by shared infrastructure and tooling."
        self.seen_window(obj)
        obj["goals"] = ["Steal credentials", "Gain persistent access"]
        obj["resource_level"] = self.rng.choice(RESOURCE_LEVELS)
        obj["primary_motivation"] = self.rng.choice(MOTIVATIONS)
        obj["object_marking_refs"] = self.marking()
        return obj

    def malware(self, created_by_ref: str) -> StixObject:
        obj = self.common("malware", created_by_ref)
        obj["name"] = self.unique_name(
            lambda: self.rng.choice(MALWARE_STEMS) + self.rng.choice(MALWARE_SUFFIXES)
        )
        obj["description"] = "Malware family observed in campaigns against several sectors."
        obj["malware_types"] = self.some(MALWARE_TYPES, 1, 2)
        # name is required when is_family is true (STIX 2.1 section 4.11).
        obj["is_family"] = True
        obj["capabilities"] = self.some(MALWARE_CAPABILITIES, 1, 3)
        obj["object_marking_refs"] = self.marking()
        return obj

    def tool(self, created_by_ref: str) -> StixObject:
        obj = self.common("tool", created_by_ref)
        obj["name"] = self.unique_name(lambda: self.rng.choice(TOOL_NAMES))
        obj["tool_types"] = self.some(TOOL_TYPES, 1, 2)
        obj["tool_version"] = f"v{self.rng.randint(1, 9)}.{self.rng.randrange(10)}"
        obj["object_marking_refs"] = self.marking()
        return obj

    def attack_pattern(self, created_by_ref: str, index: int) -> StixObject:
        technique_id, technique_name, phase = ATTACK_TECHNIQUES[index % len(ATTACK_TECHNIQUES)]
        variant = index // len(ATTACK_TECHNIQUES)
        if variant:
            technique_id = f"{technique_id}.{variant:03d}"
            technique_name = f"{technique_name}: variant {variant}"
        obj = self.common("attack-pattern", created_by_ref)
        obj["name"] = technique_name
        # No url: the reference validator warns about an external reference with a url but no hashes.
        obj["external_references"] = [{"source_name": "mitre-attack", "external_id": technique_id}]
        obj["kill_chain_phases"] = [{"kill_chain_name": "mitre-attack", "phase_name": phase}]
        obj["object_marking_refs"] = self.marking()
        return obj

    def campaign(self, created_by_ref: str) -> StixObject:
        obj = self.common("campaign", created_by_ref)
        obj["name"] = self.unique_name(
            lambda: f"Operation {self.rng.choice(ADJECTIVES)} {self.rng.choice(NOUNS)}"
        )
        obj["description"] = "Series of intrusions sharing lures, infrastructure and objectives."
        self.seen_window(obj)
        obj["objective"] = self.rng.choice(["Credential theft", "Espionage", "Extortion", "Fraud"])
        obj["object_marking_refs"] = self.marking()
        return obj

    def relationship(
        self, relationship_type: str, source_ref: str, target_ref: str, created_by_ref: str
    ) -> StixObject:
        obj = self.common("relationship", created_by_ref)
        obj["relationship_type"] = relationship_type
        obj["source_ref"] = source_ref
        obj["target_ref"] = target_ref
        if self.rng.random() < 0.5:
            obj["confidence"] = self.rng.randint(0, 100)
        obj["object_marking_refs"] = self.marking()
        return obj


FEEDS = [
    ("abuse-tracker", "Abuse Tracker"),
    ("honeypot-sensors", "Honeypot Sensors"),
    ("partner-isac", "Partner ISAC"),
    ("osint-collector", "OSINT Collector"),
]
FEED_WEIGHTS = [40, 25, 20, 15]

# Shares of the non-identity SDOs; identities are about 10% of the SDOs.
# fmt: off
SDO_TYPE_WEIGHTS = {
    "threat-actor": 15, "intrusion-set": 10, "malware": 30, "tool": 10,
    "attack-pattern": 25, "campaign": 10,
}
# fmt: on


def split_counts(total: int, weights: dict[str, int], minimum: int) -> dict[str, int]:
    """Split ``total`` in proportion to ``weights``, each part at least ``minimum``."""
    weight_sum = sum(weights.values())
    if total < minimum * len(weights):
        raise ValueError(f"cannot split {total} into {len(weights)} parts of at least {minimum}")
    counts = {key: max(minimum, total * weight // weight_sum) for key, weight in weights.items()}
    # Settle the rounding difference on the largest categories, in a fixed order.
    keys = sorted(weights, key=lambda key: (-weights[key], key))
    index = 0
    while sum(counts.values()) < total:
        counts[keys[index % len(keys)]] += 1
        index += 1
    while sum(counts.values()) > total:
        key = max(keys, key=lambda k: counts[k])
        counts[key] -= 1
    return counts


def generate(n: int, seed: int = 1) -> GeneratedIntel:
    """Generate N objects (relationships included) for ``seed``."""
    if n < MIN_OBJECTS:
        raise ValueError(f"N must be at least {MIN_OBJECTS} to hold every object type, got {n}")
    gen = _Generator(seed)
    intel = GeneratedIntel()

    n_sdos = round(n * SDO_SHARE)
    n_relationships = round(n * RELATIONSHIP_SHARE)
    n_indicators = n - n_sdos - n_relationships

    # Identities: the repository owner, one per feed provider, then target organisations.
    n_identities = max(len(FEEDS) + 1, n_sdos // 10)
    owner = gen.identity("Example Threat Intelligence Team", "organization", None)
    owner["created_by_ref"] = owner["id"]
    intel.identities.append(owner)
    for slug, source in FEEDS:
        provider = gen.identity(f"{source} Provider", "organization", owner["id"])
        intel.identities.append(provider)
        intel.feeds.append(Feed(slug=slug, source=source, identity_id=provider["id"]))
    for _ in range(n_identities - len(intel.identities)):
        name = gen.unique_name(
            lambda: (
                f"{gen.rng.choice(NOUNS)} {gen.rng.choice(['Bank', 'Health', 'Energy', 'Telecom', 'University'])}"
            )
        )
        intel.identities.append(gen.identity(name, "organization", owner["id"]))

    by_type: dict[str, list[StixObject]] = {}
    for stix_type, count in split_counts(n_sdos - n_identities, SDO_TYPE_WEIGHTS, 1).items():
        for index in range(count):
            if stix_type == "threat-actor":
                obj = gen.threat_actor(owner["id"])
            elif stix_type == "intrusion-set":
                obj = gen.intrusion_set(owner["id"])
            elif stix_type == "malware":
                obj = gen.malware(owner["id"])
            elif stix_type == "tool":
                obj = gen.tool(owner["id"])
            elif stix_type == "attack-pattern":
                obj = gen.attack_pattern(owner["id"], index)
            else:
                obj = gen.campaign(owner["id"])
            by_type.setdefault(stix_type, []).append(obj)
            intel.sdos.append(obj)

    feed_ids = list(range(len(FEEDS)))
    for _ in range(n_indicators):
        feed_index = gen.rng.choices(feed_ids, weights=FEED_WEIGHTS)[0]
        creator = intel.feeds[feed_index].identity_id
        if gen.rng.random() < 0.02:
            # A few indicators name another creator, overriding the folder default.
            creator = owner["id"]
        indicator, kind = gen.indicator(creator)
        intel.indicators.append(indicator)
        intel.indicator_feed[indicator["id"]] = feed_index
        intel.indicator_kind[indicator["id"]] = kind

    _add_relationships(gen, intel, by_type, n_relationships, owner["id"])
    intel.bundle_id = gen.stix_id("bundle")
    return intel


def _add_relationships(
    gen: _Generator,
    intel: GeneratedIntel,
    by_type: dict[str, list[StixObject]],
    n_relationships: int,
    creator: str,
) -> None:
    """Add standalone and inline relationships, all (source, type, target) triples distinct.

    Only triples from the STIX 2.1 Appendix B relationship summary are used:
    indicator indicates malware / threat-actor, threat-actor uses malware /
    attack-pattern, campaign attributed-to threat-actor.
    """
    n_inline_wanted = round(n_relationships * INLINE_RELATIONSHIP_SHARE)
    triples: list[tuple[str, str, str, bool]] = []  # source, type, target, inline
    seen: set[tuple[str, str, str]] = set()

    def add(source: str, relationship_type: str, target: str, inline: bool) -> None:
        seen.add((source, relationship_type, target))
        triples.append((source, relationship_type, target, inline))

    actors = by_type["threat-actor"]
    sdo_budget = round(n_relationships * SDO_RELATIONSHIP_SHARE)
    # Each campaign is attributed to one threat actor, written inline in the campaign file.
    for campaign in by_type["campaign"][:sdo_budget]:
        add(campaign["id"], "attributed-to", gen.rng.choice(actors)["id"], True)
    uses_targets = by_type["malware"] + by_type["attack-pattern"]
    possible = len(actors) * len(uses_targets)
    attempts = 0
    while len(triples) < sdo_budget and attempts < 20 * sdo_budget and len(seen) < possible:
        attempts += 1
        triple = (gen.rng.choice(actors)["id"], "uses", gen.rng.choice(uses_targets)["id"])
        if triple not in seen:
            add(*triple, inline=gen.rng.random() < 0.5)

    # The rest: indicators indicating malware (mostly) or a threat actor, one per indicator.
    n_inline = sum(1 for triple in triples if triple[3])
    n_left = n_relationships - len(triples)
    sources = gen.rng.sample(intel.indicators, n_left)
    for position, indicator in enumerate(sources):
        targets = by_type["malware"] if gen.rng.random() < 0.85 else actors
        inline = n_inline < n_inline_wanted and position % 2 == 0
        n_inline += inline
        add(indicator["id"], "indicates", gen.rng.choice(targets)["id"], inline)

    for source, relationship_type, target, inline in triples:
        if inline:
            properties: tuple[tuple[str, Any], ...] = ()
            if gen.rng.random() < 0.2:
                properties = (("description", "Reported by analysts during triage."),)
            intel.inline.setdefault(source, []).append(
                InlineRelationship(relationship_type, target, properties)
            )
        else:
            intel.relationships.append(gen.relationship(relationship_type, source, target, creator))


def generate_objects(n: int, seed: int = 1) -> list[StixObject]:
    """N valid STIX 2.1 objects as tiops compiles them (defaults merged, inline relationships expanded)."""
    return generate(n, seed).expanded_objects()


# -- timestamps ---------------------------------------------------------------


def timestamp(moment: dt.datetime) -> str:
    """RFC 3339 UTC with millisecond precision, as STIX 2.1 section 3.2 recommends."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


# -- YAML output --------------------------------------------------------------

# Plain scalars that a YAML 1.1 or 1.2 reader (or a lenient one) may turn into a
# boolean, null, number, date or timestamp. Anything starting with a digit, a
# sign or a dot is quoted, which covers numbers in every notation, dates,
# timestamps and .inf/.nan; the keywords cover booleans and null.
_NON_STRING_START = re.compile(r"[0-9+\-.]")
_NON_STRING_WORDS = frozenset(
    ["", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"]
)


class IntelDumper(yaml.CSafeDumper):
    """PyYAML's C dumper, quoting every string that could be read as another type."""


def _represent_str(dumper: IntelDumper, value: str) -> yaml.ScalarNode:
    if value.startswith("["):
        # STIX patterns: double quotes keep their single-quoted literals readable.
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    if _NON_STRING_START.match(value) or value.lower() in _NON_STRING_WORDS:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_str(value)


IntelDumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    text: str = yaml.dump(
        data,
        Dumper=IntelDumper,
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
        width=4096,  # keep long patterns on one line, as a person would write them
    )
    return text


# -- repository layout --------------------------------------------------------


SDO_FOLDERS = {
    "threat-actor": "threat-actors",
    "intrusion-set": "intrusion-sets",
    "malware": "malware",
    "tool": "tools",
    "attack-pattern": "attack-patterns",
    "campaign": "campaigns",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _chunks(items: Sequence[Any], size: int) -> Iterable[tuple[int, Sequence[Any]]]:
    for start in range(0, len(items), size):
        yield start // size + 1, items[start : start + size]


def _spread(folder: str, file_names: Sequence[str]) -> list[str]:
    """Paths for ``file_names`` in ``folder``, split into numbered subfolders past the limit."""
    if len(file_names) <= FILES_PER_FOLDER:
        return [f"{folder}/{name}" for name in file_names]
    return [
        f"{folder}/{chunk:04d}/{name}"
        for chunk, names in _chunks(file_names, FILES_PER_FOLDER)
        for name in names
    ]


def _as_written(obj: StixObject, intel: GeneratedIntel, default_creator: str | None) -> StixObject:
    """The object as it appears in its file: defaults left out, inline relationships added."""
    written = {
        key: value
        for key, value in obj.items()
        if not (key == "created_by_ref" and value == default_creator)
    }
    entries = intel.inline.get(obj["id"])
    if entries:
        written["relationships"] = [
            {entry.relationship_type: entry.target_ref, **dict(entry.properties)}
            for entry in entries
        ]
    return written


def repository_files(intel: GeneratedIntel, bulk_share: float) -> dict[str, str]:
    """Relative path → file text for the whole repository."""
    if not 0.0 <= bulk_share <= 1.0:
        raise ValueError(f"bulk share must be between 0 and 1, got {bulk_share}")
    files: dict[str, str] = {"tiops.yaml": dump_yaml({"intel": "intel", "output": "dist"})}

    def add_single_files(
        folder: str, objects: Sequence[StixObject], names: Sequence[str], creator: str | None
    ) -> None:
        for path, obj in zip(_spread(folder, names), objects, strict=True):
            if path in files:
                raise ValueError(f"two objects would be written to {path}")
            files[path] = dump_yaml(_as_written(obj, intel, creator))

    identity_names = [f"{_slug(obj['name'])}.yaml" for obj in intel.identities]
    add_single_files("intel/identities", intel.identities, identity_names, None)

    sdos_by_type: dict[str, list[StixObject]] = {}
    for obj in intel.sdos:
        sdos_by_type.setdefault(obj["type"], []).append(obj)
    for stix_type, objects in sdos_by_type.items():
        names = [f"{_slug(obj['name'])}.yaml" for obj in objects]
        add_single_files(f"intel/{SDO_FOLDERS[stix_type]}", objects, names, None)

    for chunk, relationships in _chunks(intel.relationships, OBJECTS_PER_BULK_FILE):
        files[f"intel/relationships/relationships-{chunk:04d}.yaml"] = dump_yaml(
            list(relationships)
        )

    for feed_index, feed in enumerate(intel.feeds):
        folder = f"intel/feeds/{feed.slug}"
        files[f"{folder}/_defaults.yaml"] = dump_yaml(
            {"source": feed.source, "defaults": {"created_by_ref": feed.identity_id}}
        )
        indicators = [
            obj for obj in intel.indicators if intel.indicator_feed[obj["id"]] == feed_index
        ]
        n_bulk = int(len(indicators) * bulk_share)
        for chunk, bulk in _chunks(indicators[:n_bulk], OBJECTS_PER_BULK_FILE):
            files[f"{folder}/bulk-{chunk:04d}.yaml"] = dump_yaml(
                [_as_written(obj, intel, feed.identity_id) for obj in bulk]
            )
        singles_by_kind: dict[str, list[StixObject]] = {}
        for obj in indicators[n_bulk:]:
            singles_by_kind.setdefault(intel.indicator_kind[obj["id"]], []).append(obj)
        for kind, objects in sorted(singles_by_kind.items()):
            names = [f"{kind}-{obj['id'].split('--', 1)[1]}.yaml" for obj in objects]
            add_single_files(f"{folder}/indicators/{kind}", objects, names, feed.identity_id)
    return files


def write_repository(
    out_dir: Path, n: int, seed: int = 1, bulk_share: float = 0.5
) -> GeneratedIntel:
    """Generate N objects and write them as a tiops intel repository under ``out_dir``."""
    intel = generate(n, seed)
    for relative_path, text in sorted(repository_files(intel, bulk_share).items()):
        path = out_dir / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    return intel


def bundle_json(intel: GeneratedIntel) -> str:
    """The expanded objects as a plain STIX 2.1 bundle (section 8)."""
    bundle = {"type": "bundle", "id": intel.bundle_id, "objects": intel.expanded_objects()}
    return json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a deterministic synthetic tiops intel repository."
    )
    parser.add_argument(
        "n", type=int, metavar="N", help="number of STIX objects, relationships included"
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--bulk-share",
        type=float,
        default=0.5,
        help="share of indicators written in bulk list files",
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the expanded objects as a STIX bundle"
    )
    args = parser.parse_args(argv)
    try:
        intel = write_repository(args.out_dir, args.n, args.seed, args.bulk_share)
    except ValueError as error:
        parser.error(str(error))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(bundle_json(intel), encoding="utf-8", newline="\n")
    print(f"wrote {len(intel.expanded_objects())} objects to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

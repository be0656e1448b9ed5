"""Differential testing of tiops against the OASIS reference validator (stix2-validator).

    python benchmarks/spec_diff.py [--corpora ../shared/corpora] [--per-type 6] [--originals 1500]
                                   [--show CLASS|all] [--limit 20] [--json FILE]

Takes real STIX 2.1 objects (the OASIS examples, the SCO examples bundle, the MISP
exports and samples of the ATT&CK and CAPEC bundles) and makes mutations of them, one
rule of STIX 2.1 touched per mutation, by the classes of rule the validation work
covers: SCO values (IP addresses, e-mail addresses, media types, character sets, URLs,
CPE, language tags, hashes), the same values inside patterns, timestamps at any depth,
external references, property names, empty lists, SCO ids and extension names,
markings, custom objects, reference targets and bundles. Each mutation carries the
verdict the specification's text gives (``expected``: valid or invalid; None where the
text leaves it open, listed but not scored).

Both validators judge each case alone: tiops through its library on a one-object
bundle (references to absent objects are warnings there), stix2-validator in process
with its default options; the verdict is "invalid" when there is at least one error.
The report gives, per class, how many cases each validator judges as the
specification does and how often they agree, then the disagreements with both
sides' errors, so a reader can tell which side the text supports.

The unmutated objects are judged too (class ``original``): real data the reference
accepts should pass tiops, so a disagreement there is a false positive to read.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Case = tuple[str, "bool | None", dict[str, Any], str]  # class, expected valid, object (or bundle), what changed

UUID4 = "6d6d6d6d-6d6d-4d6d-8d6d-6d6d6d6d6d6d"
UUID5 = "6d6d6d6d-6d6d-5d6d-8d6d-6d6d6d6d6d6d"
T = "2024-01-01T00:00:00.000Z"
TLP_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
SCO_TYPES = frozenset({
    "artifact", "autonomous-system", "directory", "domain-name", "email-addr", "email-message", "file",
    "ipv4-addr", "ipv6-addr", "mac-addr", "mutex", "network-traffic", "process", "software", "url",
    "user-account", "windows-registry-key", "x509-certificate",
})  # fmt: skip
TIMESTAMP_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$")


def ref(stix_type: str) -> str:
    return f"{stix_type}--{UUID4}"


# --- Seeds ---------------------------------------------------------------------------


def _bundle_objects(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    objects = data.get("objects") if isinstance(data, dict) else data
    return [o for o in objects or [] if isinstance(o, dict) and isinstance(o.get("type"), str)]


def seeds(corpora: Path, originals: int) -> list[dict[str, Any]]:
    """STIX 2.1 objects of the corpora: all of the small ones, an even sample of the big bundles."""
    small: list[dict[str, Any]] = []
    for path in sorted((corpora / "oasis").rglob("*.json")):
        small.extend(_bundle_objects(path))
    for path in sorted((corpora / "misp-stix").glob("*.json")):
        small.extend(_bundle_objects(path))
    big_by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted((corpora / "stix21").glob("*.json")):
        for obj in _bundle_objects(path):
            big_by_type[obj["type"]].append(obj)
    # Every type of the big bundles, the numerous ones (relationships) not crowding out the rest.
    share = max(1, originals // max(1, len(big_by_type)))
    big = [obj for group in big_by_type.values() for obj in group[:: max(1, len(group) // share)][:share]]
    found = [o for o in small + big if o.get("spec_version") == "2.1" or o["type"] in SCO_TYPES]
    unique: dict[str, dict[str, Any]] = {}
    for obj in found:
        unique.setdefault(json.dumps(obj, sort_keys=True), obj)
    return list(unique.values())


# --- Mutations -----------------------------------------------------------------------


def _with(obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    new.update(changes)
    return new


def _set_path(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    target: Any = new
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return new


def _strings(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))
    elif isinstance(value, str):
        yield path, value


# Values by SCO property: (good values, bad values). The bad ones break the rule the
# property's section gives (STIX 2.1 sections 6.x and the RFCs they name).
VALUES: dict[tuple[str, str], tuple[list[str], list[str]]] = {
    ("ipv4-addr", "value"): (["198.51.100.3", "10.0.0.0/8", "0.0.0.0/0", "255.255.255.255"],
                             ["999.999.999.999", "198.51.100.3/33", "198.51.100.3/", "010.1.1.1", "1.2.3",
                              "1.2.3.4.5", "198.51.100.3/08", "198.51.100.3 ", "2001:db8::1", "a.b.c.d",
                              "198.51.100.3/-1", "1.2.3.4/24/8"]),
    ("ipv6-addr", "value"): (["2001:db8::1", "::1", "2001:db8::/32", "::ffff:192.0.2.1", "fe80::/10"],
                             ["2001:db8::/129", "2001:db8:::1", "2001:db8::1/", "fe80::1%eth0", "198.51.100.3",
                              "2001:db8::g", "1:2:3:4:5:6:7:8:9", "2001:db8::/033"]),
    ("email-addr", "value"): (["jdoe@example.com", "first.last+tag@sub.example.org", '"john doe"@example.com'],
                              ["John Doe <jdoe@example.com>", "jdoe", "jdoe@", "@example.com", "jd oe@example.com",
                               "jdoe@@example.com", "<jdoe@example.com>", "jdoe@example.com, eve@example.com"]),
    ("artifact", "mime_type"): (["application/zip", "text/plain; charset=utf-8", "application/vnd.ms-excel"],
                                ["zip", "application", "application/", "executable/pe", "text/ plain", "/plain",
                                 "application/zip/extra"]),
    ("file", "mime_type"): (["application/x-dosexec", "image/png"], ["exe", "binary/exe", "text plain"]),
    ("file", "name_enc"): (["UTF-8", "windows-1252", "ISO-8859-1", "utf-8"], ["utf 8", "UTF_8!", "no such charset"]),
    ("directory", "path_enc"): (["UTF-16LE", "US-ASCII"], ["latin 1", "UTF-8/16"]),
    ("url", "value"): (["https://example.com/a?b=c#d", "ftp://198.51.100.3/x", "http://[2001:db8::1]:8080/",
                        "mailto:jdoe@example.com"],
                       ["example.com/a", "http://example.com/a b", "://example.com", "http://exa mple.com",
                        "http://example.com/<script>", "www.example.com", "http//example.com", ""]),
    ("software", "cpe"): (["cpe:2.3:a:microsoft:word:2000:*:*:*:*:*:*:*", "cpe:2.3:o:linux:linux_kernel:5.4:-:*:*:*:*:*:*"],
                          ["cpe:/a:microsoft:word:2000", "cpe:2.3:a:microsoft:word", "cpe:2.3:x:microsoft:word:2000:*:*:*:*:*:*:*",
                           "microsoft word 2000", "cpe:2.3:a:micro soft:word:2000:*:*:*:*:*:*:*"]),
    ("software", "languages"): (["en", "de-CH", "zh-Hant", "sr-Latn-RS"], ["english", "en_US", "e", "123", "en-", "toolonglang"]),
    ("domain-name", "value"): (["example.com", "www.example.co.uk", "xn--bcher-kva.example", "bücher.example",
                                "_dmarc.example.com", "example.com.", "3322.org"],
                               ["-bad-.example.com", "bad-.example.com", "www..example.com", ".example.com",
                                "domain example.com", "*.example.com", "http://example.com/", "a" * 64 + ".example.com",
                                "xn--zz.example", ""]),
    ("windows-registry-key", "key"): (["HKEY_LOCAL_MACHINE\\System\\Acme", "hkey_current_user\\Software", "HKEY_USERS"],
                                      ["HKLM\\System\\Acme", "hkcu\\Software", "HKU", "HKCR\\.exe", "HKCC\\x"]),
}

HASH_VALUES: dict[str, tuple[str, list[str]]] = {
    "MD5": ("d41d8cd98f00b204e9800998ecf8427e", ["d41d8cd98f00b204e9800998ecf8427", "g41d8cd98f00b204e9800998ecf8427e",
                                                  "da39a3ee5e6b4b0d3255bfef95601890afd80709"]),
    "SHA-1": ("da39a3ee5e6b4b0d3255bfef95601890afd80709", ["da39a3ee5e6b4b0d3255bfef95601890afd8070",
                                                             "d41d8cd98f00b204e9800998ecf8427e"]),
    "SHA-256": ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85", "zz",
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 "]),
    "SHA-512": ("cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
                ["cf83e1357eefb8bdf1542850d66d8007"]),
    "SHA3-256": ("a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a", ["a7ffc6f8"]),
    "SSDEEP": ("3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C", ["not an ssdeep", "3:AXGB"]),
    "TLSH": ("T1" + "A0" * 35, ["T1A0F0", "T1" + "G0" * 35]),
}

# Where a property's references may point (STIX 2.1 sections 3.2, 4-7), and a type
# that is not among them.
WRONG_TARGET: dict[str, str] = {
    "created_by_ref": "malware", "object_marking_refs": "identity", "sample_refs": "identity",
    "operating_system_refs": "file", "installed_software_refs": "file", "host_vm_ref": "file",
    "analysis_sco_refs": "identity", "sighting_of_ref": "ipv4-addr", "observed_data_refs": "identity",
    "where_sighted_refs": "malware", "parent_directory_ref": "file", "contains_refs": "identity",
    "content_ref": "file", "from_ref": "url", "sender_ref": "url", "to_refs": "url", "cc_refs": "url",
    "bcc_refs": "url", "raw_email_ref": "file", "body_raw_ref": "url", "belongs_to_ref": "identity",
    "resolves_to_refs": "url", "belongs_to_refs": "identity", "opened_connection_refs": "file",
    "creator_user_ref": "identity", "image_ref": "artifact", "parent_ref": "file", "child_refs": "file",
    "src_ref": "url", "dst_ref": "url", "src_payload_ref": "file", "dst_payload_ref": "file",
    "encapsulates_refs": "file", "encapsulated_by_ref": "file", "message_body_data_ref": "file",
    "source_ref": "marking-definition", "target_ref": "language-content",
}


def value_mutations(obj: dict[str, Any]) -> Iterator[Case]:
    stix_type = obj["type"]
    for (sco_type, prop), (good, bad) in VALUES.items():
        if sco_type != stix_type:
            continue
        klass = {"value": {"ipv4-addr": "ip", "ipv6-addr": "ip", "email-addr": "email", "url": "url", "domain-name": "domain"}.get(stix_type, "value"),
                 "mime_type": "mime", "name_enc": "charset", "path_enc": "charset", "cpe": "cpe",
                 "languages": "language", "key": "registry-key"}[prop]
        as_list = prop == "languages"
        for value in good:
            yield klass, True, _with(obj, **{prop: [value] if as_list else value}), f"{prop}={value!r}"
        for value in bad:
            yield klass, False, _with(obj, **{prop: [value] if as_list else value}), f"{prop}={value!r}"
    if stix_type in {"file", "artifact", "x509-certificate"}:
        for algorithm, (good_hash, bad_hashes) in HASH_VALUES.items():
            yield "hash", True, _with(obj, hashes={algorithm: good_hash}), f"hashes.{algorithm} good"
            for value in bad_hashes:
                yield "hash", False, _with(obj, hashes={algorithm: value}), f"hashes.{algorithm}={value!r}"
        # Vocabulary names in another case are custom names, which are 3-250 characters (2.7).
        yield "hash", None, _with(obj, hashes={"sha256": HASH_VALUES["SHA-256"][0]}), "hashes key sha256"
        yield "hash", False, _with(obj, hashes={"SHA-256": ""}), "hashes empty value"
    if "lang" in obj or stix_type not in SCO_TYPES:
        for tag in ("en", "fr-CA", "zh-Hant-TW"):
            yield "language", True, _with(obj, lang=tag), f"lang={tag!r}"
        for tag in ("english", "en_US", "fr-", "x", "12"):
            yield "language", False, _with(obj, lang=tag), f"lang={tag!r}"
    if stix_type == "language-content" and isinstance(obj.get("contents"), dict):
        contents = obj["contents"]
        first = next(iter(contents.values()), {"name": "x"})
        yield "language", False, _with(obj, contents={"french": first}), "contents key 'french'"
        yield "language", True, _with(obj, contents={"de-AT": first}), "contents key 'de-AT'"
    if stix_type == "malware" and obj.get("implementation_languages") is not None:
        yield "language", None, _with(obj, implementation_languages=["klingon"]), "implementation_languages open vocab"


PATTERN_CASES: list[tuple[str, bool | None, str]] = [
    ("pattern-value", True, "[ipv4-addr:value = '198.51.100.1']"),
    ("pattern-value", True, "[ipv4-addr:value = '198.51.100.0/24']"),
    ("pattern-value", False, "[ipv4-addr:value = '999.1.1.1']"),
    ("pattern-value", False, "[ipv4-addr:value = '198.51.100.0/33']"),
    ("pattern-value", False, "[ipv4-addr:value = '198.51.100.1' OR ipv4-addr:value = '300.1.1.1']"),
    ("pattern-value", False, "[ipv4-addr:value IN ('198.51.100.1', '1.2.3.999')]"),
    ("pattern-value", False, "[ipv4-addr:value != '1.2.3.999']"),
    ("pattern-value", True, "[ipv4-addr:value ISSUBSET '198.51.100.0/24']"),
    ("pattern-value", False, "[ipv4-addr:value ISSUBSET '198.51.100.0/40']"),
    # dst_ref may be an ipv4-addr, an ipv6-addr or a domain-name: no one rule applies, open.
    ("pattern-value", None, "[network-traffic:dst_ref.value = '999.1.1.1']"),
    ("pattern-value", False, "[ipv6-addr:value = '2001:db8:::1']"),
    ("pattern-value", False, "[email-addr:value = 'Eve <eve@example.com>']"),
    ("pattern-value", False, "[email-message:from_ref.value = 'eve at example.com']"),
    ("pattern-value", False, "[email-message:to_refs[*].value = 'eve']"),
    ("pattern-value", False, "[url:value = 'no scheme here']"),
    ("pattern-value", True, "[url:value LIKE '%example.com%']"),
    ("pattern-value", True, "[url:value MATCHES '^https?://']"),
    ("pattern-value", False, "[file:hashes.MD5 = 'abc']"),
    ("pattern-value", False, "[file:hashes.'SHA-256' = 'abc']"),
    ("pattern-value", True, "[file:hashes.'SHA-256' = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']"),
    ("pattern-value", False, "[file:hashes.'SHA-1' = 'd41d8cd98f00b204e9800998ecf8427e']"),
    ("pattern-value", False, "[artifact:hashes.MD5 = 'xyz'] AND [file:name = 'a']"),
    ("pattern-value", False, "[file:name = 'a' AND file:hashes.MD5 = 'q41d8cd98f00b204e9800998ecf8427e']"),
    ("pattern-value", False, "[artifact:mime_type = 'zip']"),
    ("pattern-value", False, "[file:mime_type = 'exe']"),
    ("pattern-value", False, "[file:name_enc = 'utf 8']"),
    ("pattern-value", False, "[software:cpe = 'cpe:/a:microsoft:word']"),
    ("pattern-value", False, "[software:languages[*] = 'english']"),
    ("pattern-value", False, "[ipv4-addr:value = '198.51.100.1'] FOLLOWEDBY [ipv4-addr:value = '1.1.1.256']"),
    ("pattern-value", False, "([ipv4-addr:value = '198.51.100.1'] OR [ipv6-addr:value = 'zz::zz::']) WITHIN 5 SECONDS"),
    ("pattern-value", False, "[x509-certificate:hashes.'SHA-256' = '00']"),
    ("pattern-value", False, "[file:extensions.'windows-pebinary-ext'.sections[*].hashes.'SHA-256' = '00']"),
    ("pattern-value", False, "[file:created = t'2023-02-30T00:00:00Z']"),
    ("pattern-value", False, "[ipv4-addr:value = '198.51.100.1'] START t'2023-11-31T00:00:00Z' STOP t'2024-01-01T00:00:00Z'"),
    ("pattern-value", None, "[process:pid = 1] START t'2024-01-02T00:00:00Z' STOP t'2024-01-01T00:00:00Z'"),
    ("pattern-value", False, "[file:modified = t'2023-01-01T12:00:60Z']"),
    ("pattern-value", True, "[file:name = 'at t\\'2023-02-30T00:00:00Z\\'']"),
    ("pattern-value", True, "[domain-name:value = 'example.com']"),
    ("pattern-value", False, "[domain-name:value = 'domain autuo.xicp.net']"),
    ("pattern-value", False, "[domain-name:value IN ('example.com', '-bad-.example.com')]"),
    ("pattern-value", False, "[ab:value = 'x']"),
    ("pattern-value", False, "[x--acme:value = 'x'] AND [ipv4-addr:value = '198.51.100.1']"),
    ("pattern-value", True, "[x-acme-widget:value = 'x']"),
    ("pattern-value", False, "[windows-registry-key:key = 'HKLM\\\\Software\\\\Acme']"),
    ("pattern-value", True, "[windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\Software\\\\Acme']"),
]


def pattern_mutations(obj: dict[str, Any]) -> Iterator[Case]:
    if obj["type"] != "indicator" or obj.get("pattern_type") != "stix":
        return
    for klass, expected, pattern in PATTERN_CASES:
        yield klass, expected, _with(obj, pattern=pattern), pattern


BAD_DAYS = ["2023-02-30", "2023-11-31", "2023-02-29", "2023-04-31", "2023-13-01", "2023-00-10"]


def _bad_timestamps(value: str, path_hint: tuple[Any, ...]) -> Iterator[tuple[bool | None, str, str]]:
    """Changes of one timestamp; a top-level one moved to 2016 may break its order with
    another (created, first_seen), so the leap second is scored only below the top."""
    rest = value[10:]
    for day in BAD_DAYS:
        yield False, day + rest, day
    yield False, value[:11] + "24:00:00" + value[19:], "hour 24"
    yield False, value[:11] + "12:60:00" + value[19:], "minute 60"
    # RFC 3339 section 5.7: second 60 only at 23:59:60 at the end of a month in which a leap
    # second occurred (June or December; none since 2016).
    yield (None if len(path_hint) == 1 else True), "2016-12-31T23:59:60" + value[19:], "real leap second"
    yield False, value[:11] + "12:00:60" + value[19:], "second 60 at no leap second"
    yield False, "2017-12-31T23:59:60" + value[19:], "23:59:60 in a year without one"
    yield False, value[:-1] + "+00:00", "offset instead of Z"
    yield False, value.replace("T", " "), "space instead of T"


def timestamp_mutations(obj: dict[str, Any]) -> Iterator[Case]:
    for path, value in _strings(obj):
        if not TIMESTAMP_RE.match(value) or any(isinstance(p, str) and p.startswith("x_") for p in path):
            continue
        for expected, changed, what in _bad_timestamps(value, path):
            yield "timestamp", expected, _set_path(obj, path, changed), f"{'.'.join(map(str, path))}: {what}"


def external_reference_mutations(obj: dict[str, Any]) -> Iterator[Case]:
    if obj["type"] in SCO_TYPES or obj["type"] == "bundle":
        return
    refs = list(obj.get("external_references") or [])
    cases: list[tuple[bool, dict[str, str]]] = [
        (True, {"source_name": "cve", "external_id": "CVE-2021-44228"}),
        (True, {"source_name": "cve", "external_id": "CVE-2014-0160"}),
        (True, {"source_name": "cve", "external_id": "CVE-2021-1234567"}),
        (False, {"source_name": "cve", "external_id": "2021-44228"}),
        (False, {"source_name": "cve", "external_id": "cve-2021-44228"}),
        (False, {"source_name": "cve", "external_id": "CVE-2021-123"}),
        (False, {"source_name": "cve", "external_id": "CVE-21-1234"}),
        (False, {"source_name": "cve", "external_id": "CVE-2021-44228 "}),
        (True, {"source_name": "capec", "external_id": "CAPEC-98"}),
        (False, {"source_name": "capec", "external_id": "98"}),
        (False, {"source_name": "capec", "external_id": "CAPEC 98"}),
        (False, {"source_name": "capec", "external_id": "capec-98"}),
        (False, {"source_name": "capec", "external_id": "CAPEC-"}),
        (True, {"source_name": "acme", "external_id": "anything"}),
        (True, {"source_name": "acme", "url": "https://example.com/r", "hashes": {"SHA-256": HASH_VALUES["SHA-256"][0]}}),
        (False, {"source_name": "acme", "url": "https://example.com/r", "hashes": {"SHA-256": "abc"}}),
        (False, {"source_name": "acme", "url": "https://example.com/r", "hashes": {"MD5": HASH_VALUES["SHA-1"][0]}}),
        (False, {"source_name": "acme"}),
        (False, {"external_id": "CVE-2021-44228"}),
    ]
    for expected, reference in cases:
        yield "external-id", expected, _with(obj, external_references=[*refs, reference]), json.dumps(reference)


def name_mutations(obj: dict[str, Any]) -> Iterator[Case]:
    if obj["type"] == "marking-definition" and obj.get("definition_type") == "tlp":
        return  # any change makes a TLP marking differ from the specification's
    for name in ("severity", "action", "username", "phone_numbers"):
        if name in obj:
            continue
        yield "reserved-name", False, _with(obj, **{name: "x"}), name
    good = ["x_acme_score", "abc", "x_a1_b2", "a" * 250]
    bad = ["x_Score", "xs", "X_SCORE", "x-acme", "1abc", "_abc", "x_ac me", "a" * 251, "x_é"]
    for name in good:
        yield "custom-name", True, _with(obj, **{name: 1}), name[:40]
    for name in bad:
        yield "custom-name", False, _with(obj, **{name: 1}), name[:40]


def empty_list_mutations(obj: dict[str, Any]) -> Iterator[Case]:
    for path, _value in _lists(obj):
        if path == ("objects",) or any(isinstance(p, str) and p.startswith(("x_", "extension-definition--")) for p in path):
            continue
        yield "empty-list", False, _set_path(obj, path, []), ".".join(map(str, path))


def _lists(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], list[Any]]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, list):
                yield (*path, key), item
            yield from _lists(item, (*path, key)) if isinstance(item, dict) else ()
            if isinstance(item, list):
                for index, element in enumerate(item):
                    if isinstance(element, dict):
                        yield from _lists(element, (*path, key, index))


def sco_mutations(obj: dict[str, Any]) -> Iterator[Case]:
    stix_type = obj["type"]
    if stix_type not in SCO_TYPES:
        return
    if stix_type == "process":
        yield "sco-id", False, _with(obj, id=f"process--{UUID5}"), "process id UUIDv5"
        yield "sco-id", True, _with(obj, id=f"process--{UUID4}"), "process id UUIDv4"
    extensions = dict(obj.get("extensions") or {})
    body = next(iter(extensions.values()), {"x_note": "x"}) if extensions else {"x_note": "x"}
    for key, expected in (("pebinary", False), ("ntfs", False), ("x-acme", False), ("acme-ext", True),
                          ("x-acme-ext", True), (f"extension-definition--{UUID4}", True),
                          ("extension-definition--6d6d", False), ("EXT", False)):
        body_for = {"extension_type": "property-extension", "x_note": "x"} if key.startswith("extension-definition") else body
        yield "sco-extension", expected if key.startswith("extension-definition") or expected is False else None, \
            _with(obj, extensions={**extensions, key: body_for}), key


def marking_mutations(obj: dict[str, Any]) -> Iterator[Case]:
    if obj["type"] == "marking-definition" and obj.get("definition_type") == "tlp":
        yield from _tlp_mutations(obj)
        return
    markings = list(obj.get("object_marking_refs") or [])
    yield "marking", False, _with(obj, object_marking_refs=[*markings, ref("identity")]), "object_marking_refs identity"
    yield "marking", False, _with(obj, object_marking_refs=[*markings, "marking-definition--6d6d"]), "truncated marking ref"
    granular = list(obj.get("granular_markings") or [])
    present = [k for k in obj if k not in {"type", "id", "spec_version", "granular_markings"}]
    first = present[0] if present else "type"
    cases: list[tuple[bool | None, dict[str, Any], str]] = [
        (True, {"marking_ref": TLP_GREEN, "selectors": [first]}, f"selector {first}"),
        (False, {"marking_ref": ref("identity"), "selectors": [first]}, "marking_ref identity"),
        (False, {"marking_ref": TLP_GREEN, "selectors": ["no_such_property"]}, "selector absent"),
        (False, {"marking_ref": TLP_GREEN, "selectors": [f"{first}."]}, "selector trailing dot"),
        (False, {"marking_ref": TLP_GREEN, "selectors": [f"{first}..x"]}, "selector double dot"),
        (False, {"marking_ref": TLP_GREEN, "selectors": []}, "selectors empty"),
        (False, {"marking_ref": TLP_GREEN, "selectors": ["[0]"]}, "selector starting with index"),
        (False, {"marking_ref": TLP_GREEN}, "no selectors"),
        (False, {"selectors": [first]}, "neither marking_ref nor lang"),
        (False, {"marking_ref": TLP_GREEN, "lang": "en", "selectors": [first]}, "marking_ref and lang"),
        (True, {"lang": "en", "selectors": [first]}, "lang marking"),
    ]
    for name, value in obj.items():
        if isinstance(value, list) and value and name not in {"granular_markings"}:
            cases.append((True, {"marking_ref": TLP_GREEN, "selectors": [f"{name}.[0]"]}, f"selector {name}.[0]"))
            cases.append((False, {"marking_ref": TLP_GREEN, "selectors": [f"{name}.[{len(value)}]"]}, f"selector {name} past end"))
            break
    for expected, marking, what in cases:
        yield "marking", expected, _with(obj, granular_markings=[*granular, marking]), what


TLP = {
    "white": ("613f2e26-407d-48c7-9eca-b8e91df99dc9", "TLP:WHITE"),
    "green": ("34098fce-860f-48ae-8e50-ebd3cc5e41da", "TLP:GREEN"),
    "amber": ("f88d31f6-486f-44da-b317-01333bde0b82", "TLP:AMBER"),
    "red": ("5e57c739-391a-4eb3-b6be-7d15ca92d5ed", "TLP:RED"),
}


def _tlp_mutations(obj: dict[str, Any]) -> Iterator[Case]:
    for colour, (uuid, name) in TLP.items():
        exact = {"type": "marking-definition", "spec_version": "2.1", "id": f"marking-definition--{uuid}",
                 "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp", "name": name,
                 "definition": {"tlp": colour}}
        yield "tlp", True, exact, f"{name} exact"
        yield "tlp", False, _with(exact, name=name.lower()), f"{name} name lower case"
        yield "tlp", False, _with(exact, created="2017-01-20T00:00:00.001Z"), f"{name} other created"
        yield "tlp", False, _with(exact, definition={"tlp": "clear" if colour != "white" else "green"}), f"{name} other colour"
        yield "tlp", False, _with(exact, id=f"marking-definition--{UUID4}"), f"{name} other id"
        yield "tlp", False, _with(exact, created_by_ref=ref("identity")), f"{name} with created_by_ref"


def custom_object_mutations(obj: dict[str, Any]) -> Iterator[Case]:
    if obj["type"] in SCO_TYPES or obj["type"] in {"marking-definition", "bundle"} or "created" not in obj:
        return
    custom = {k: v for k, v in obj.items() if k in {"spec_version", "created", "modified", "created_by_ref",
                                                     "labels", "confidence", "external_references", "object_marking_refs"}}
    custom |= {"type": "x-acme-ticket", "id": f"x-acme-ticket--{UUID4}", "x_summary": "s"}
    yield "custom-object", True, custom, "custom object from seed"
    for name in ("created", "modified", "id"):
        yield "custom-object", False, {k: v for k, v in custom.items() if k != name}, f"without {name}"
    # Without spec_version, or with 2.0, the object is STIX 2.0 content, which a bundle may
    # carry (docs/findings.md, STIX 2.0 content): open here.
    yield "custom-object", None, {k: v for k, v in custom.items() if k != "spec_version"}, "without spec_version"
    yield "custom-object", None, _with(custom, spec_version="2.0"), "spec_version 2.0"
    yield "custom-object", False, _with(custom, created="2024-01-01T00:00:00Z"), "created to the second"
    yield "custom-object", False, _with(custom, modified="2023-01-01T00:00:00.000Z", created="2024-01-01T00:00:00.000Z"), \
        "modified before created"
    yield "custom-object", False, _with(custom, id=f"x-other--{UUID4}"), "id of another type"
    yield "custom-object", False, _with(custom, type="x-AB", id=f"x-AB--{UUID4}"), "type with capitals"
    yield "custom-object", False, _with(custom, type="xy", id=f"xy--{UUID4}"), "type of two characters"
    yield "custom-object", False, _with(custom, created_by_ref=ref("malware")), "created_by_ref malware"
    yield from (("uuid", expected, _with(custom, id=changed), f"custom object id {what}")
                for expected, changed, what in _uuid_variants(custom["id"]))
    yield "custom-object", False, _with(custom, x_when="2023-02-30T00:00:00.000Z"), "custom timestamp-shaped Feb 30"
    yield "custom-object", False, _with(custom, confidence=101), "confidence 101"
    yield "custom-object", False, _with(custom, labels=[]), "labels empty"
    yield "custom-object", False, _with(custom, severity="high"), "reserved severity"


def reference_mutations(obj: dict[str, Any]) -> Iterator[Case]:
    for path, value in _strings(obj):
        names = [p for p in path if isinstance(p, str)]
        if not names or not names[-1].endswith(("_ref", "_refs")) or names[-1] not in WRONG_TARGET:
            continue
        if names[-1] == "object_refs":
            continue
        wrong = WRONG_TARGET[names[-1]]
        if names[-1] in {"source_ref", "target_ref"} and obj["type"] != "relationship":
            continue
        yield "reference-target", False, _set_path(obj, path, ref(wrong)), f"{'.'.join(map(str, path))} -> {wrong}"
        yield "identifier", False, _set_path(obj, path, value[: value.index("--") + 10] if "--" in value else "x"), \
            f"{'.'.join(map(str, path))} truncated"
    if obj["type"] == "observed-data" and isinstance(obj.get("object_refs"), list):
        refs = obj["object_refs"]
        for wrong, expected in (("identity", False), ("indicator", False), ("relationship", True),
                                ("ipv4-addr", True), ("marking-definition", False), ("x-acme-sco", None)):
            yield "reference-target", expected, _with(obj, object_refs=[*refs, ref(wrong)]), f"object_refs + {wrong}"
    if obj["type"] == "sighting":
        for prop, wrong, expected in (("where_sighted_refs", "ipv4-addr", False), ("where_sighted_refs", "location", True),
                                      ("observed_data_refs", "indicator", False), ("sighting_of_ref", "relationship", False),
                                      ("sighting_of_ref", "ipv4-addr", False), ("sighting_of_ref", "x-acme-thing", True)):
            value_: Any = ref(wrong) if prop.endswith("_ref") else [ref(wrong)]
            yield "reference-target", expected, _with(obj, **{prop: value_}), f"{prop} -> {wrong}"
    if obj["type"] not in SCO_TYPES:
        yield "reference-target", False, _with(obj, created_by_ref=ref("threat-actor")), "created_by_ref -> threat-actor"


def _uuid_variants(identifier: str) -> Iterator[tuple[bool, str, str]]:
    """An id with the UUID's version and variant changed (section 2.9: RFC 4122, versions 1-5, variant 10x)."""
    prefix, _, uuid = identifier.partition("--")
    if len(uuid) != 36:
        return
    yield False, f"{prefix}--{uuid[:14]}0{uuid[15:]}", "version 0"
    yield False, f"{prefix}--{uuid[:14]}7{uuid[15:]}", "version 7"
    yield False, f"{prefix}--{uuid[:19]}c{uuid[20:]}", "variant 110"
    yield False, f"{prefix}--{uuid[:19]}0{uuid[20:]}", "variant 0"
    yield True, f"{prefix}--{uuid[:14]}1{uuid[15:19]}9{uuid[20:]}", "version 1"
    yield False, f"{prefix}--{uuid.upper().replace('-', '')}", "no hyphens"


def uuid_mutations(obj: dict[str, Any]) -> Iterator[Case]:
    if obj["type"] in SCO_TYPES:
        return  # an SCO's id may be a UUIDv5 of its contributing properties: left to sco-id
    if isinstance(obj.get("id"), str):
        for expected, changed, what in _uuid_variants(obj["id"]):
            yield "uuid", expected, _with(obj, id=changed), f"id {what}"
    for path, value in _strings(obj):
        names = [p for p in path if isinstance(p, str)]
        if names and names[-1].endswith(("_ref", "_refs")) and "--" in value:
            for expected, changed, what in _uuid_variants(value):
                yield "uuid", expected, _set_path(obj, path, changed), f"{'.'.join(map(str, path))} {what}"
            break


def bundle_cases(objects: list[dict[str, Any]]) -> Iterator[Case]:
    some = [o for o in objects if o["type"] in {"identity", "indicator"}][:2]
    good = {"type": "bundle", "id": f"bundle--{UUID4}", "objects": some}
    yield "bundle", True, good, "bundle"
    yield "bundle", False, {k: v for k, v in good.items() if k != "id"}, "bundle without id"
    yield "bundle", False, _with(good, id="bundle--6d6d"), "bundle id truncated"
    yield "bundle", False, _with(good, id=f"report--{UUID4}"), "bundle id of another type"
    yield "bundle", False, _with(good, objects=[]), "objects empty"
    yield "bundle", False, _with(good, objects="x"), "objects not a list"
    yield "bundle", None, _with(good, spec_version="2.1"), "bundle with spec_version 2.1"
    yield "bundle", True, {k: v for k, v in good.items() if k != "objects"}, "bundle without objects"


MUTATORS: list[Callable[[dict[str, Any]], Iterator[Case]]] = [
    value_mutations, pattern_mutations, timestamp_mutations, external_reference_mutations, name_mutations,
    empty_list_mutations, sco_mutations, marking_mutations, custom_object_mutations, reference_mutations,
    uuid_mutations,
]


def cases(objects: list[dict[str, Any]], per_type: int, cap: int, clean: list[dict[str, Any]]) -> list[Case]:
    """The mutations of up to ``per_type`` seeds of each type, the seeds taken from ``clean``
    (the objects neither validator finds an error in: a mutation then breaks one rule only),
    at most ``cap`` of one class for one type (evenly spaced among those made)."""
    made: list[Case] = []
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in clean:
        by_type[obj["type"]].append(obj)
    for stix_type in sorted(by_type):
        group = by_type[stix_type]
        # The seeds with the most properties first: they give the most to mutate.
        chosen = sorted(group, key=lambda o: -len(json.dumps(o)))[: max(1, per_type // 2)]
        chosen += [o for o in group[:: max(1, len(group) // per_type)] if o not in chosen][: per_type - len(chosen)]
        by_class: dict[str, list[Case]] = defaultdict(list)
        for seed in chosen:
            # Any change to a TLP marking-definition makes it differ from the specification's
            # (section 7.2.1.4): only the TLP cases are made from one.
            tlp = seed["type"] == "marking-definition" and seed.get("definition_type") == "tlp"
            for mutate in [marking_mutations] if tlp else MUTATORS:
                for case in mutate(seed):
                    by_class[case[0]].append(case)
        for group_cases in by_class.values():
            unique = list({json.dumps(case[2], sort_keys=True): case for case in group_cases}.values())
            made.extend(unique[:: max(1, -(-len(unique) // cap))])
    made.extend(bundle_cases(clean))
    return made


# --- The two validators -------------------------------------------------------------


def tiops_errors(document: dict[str, Any], folder: Path) -> list[str]:
    from tiops.findings import Severity
    from tiops.load import load_bundle
    from tiops.validate import validate_repo

    bundle = document if document.get("type") == "bundle" else {"type": "bundle", "id": f"bundle--{UUID4}", "objects": [document]}
    path = folder / "case.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return [f"{f.code} {f.message}" for f in validate_repo(load_bundle(path)) if f.severity is Severity.ERROR]


def reference_errors(document: dict[str, Any]) -> list[str]:
    from stix2validator import ValidationOptions, validate_instance

    try:
        result = validate_instance(copy.deepcopy(document), ValidationOptions(version="2.1"))
    except Exception as error:  # the reference fails on some malformed input instead of reporting it
        return [f"(stix2-validator raised {type(error).__name__}: {error})"]
    return [str(error) for error in result.errors]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "corpora")
    parser.add_argument("--per-type", type=int, default=6, help="seeds mutated per object type")
    parser.add_argument("--originals", type=int, default=600, help="objects sampled from the big bundles")
    parser.add_argument("--cap", type=int, default=40, help="mutations of one class kept per object type")
    parser.add_argument("--show", default="", help="list the disagreements of a class ('all' for every class)")
    parser.add_argument("--limit", type=int, default=20, help="disagreements listed per class")
    parser.add_argument("--json", type=Path, help="write every disagreement to this file")
    args = parser.parse_args()
    corpora = args.corpora if args.corpora.is_dir() else Path("../shared/corpora")
    if not corpora.is_dir():
        sys.exit(f"no corpora at {args.corpora}")
    objects = seeds(corpora, args.originals)
    originals: list[Case] = [("original", None, obj, "unchanged") for obj in objects]
    clean: list[dict[str, Any]] = []
    totals: Counter[str] = Counter()
    agree: Counter[str] = Counter()
    spec_right: dict[str, Counter[str]] = defaultdict(Counter)
    scored: Counter[str] = Counter()
    disagreements: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as folder:
        verdicts = {id(obj): (tiops_errors(obj, Path(folder)), reference_errors(obj)) for obj in objects}
        clean = [obj for obj in objects if not any(verdicts[id(obj)])]
        for klass, expected, document, what in originals + cases(objects, args.per_type, args.cap, clean):
            ours, theirs = verdicts.get(id(document)) or (tiops_errors(document, Path(folder)), reference_errors(document))
            totals[klass] += 1
            same = bool(ours) == bool(theirs)
            agree[klass] += same
            if expected is not None:
                scored[klass] += 1
                spec_right[klass]["tiops"] += (not ours) == expected
                spec_right[klass]["stix2-validator"] += (not theirs) == expected
            if not same or (expected is not None and (not ours) != expected):
                disagreements[klass].append({
                    "class": klass, "case": what, "type": document.get("type"),
                    "expected": None if expected is None else ("valid" if expected else "invalid"),
                    "tiops": ours[:3] or "valid", "stix2-validator": theirs[:3] or "valid",
                })
    print(f"{sum(totals.values())} cases from {len(objects)} objects of {corpora} ({len(clean)} clean seeds)")
    print(f"{'class':18} {'cases':>6} {'agree':>6} {'scored':>6} {'tiops=spec':>10} {'ref=spec':>9}  tiops wrong: accepts/rejects")
    for klass in sorted(totals):
        wrong = Counter(d["expected"] for d in disagreements[klass]
                        if d["expected"] is not None and (d["tiops"] == "valid") == (d["expected"] == "invalid"))
        print(f"{klass:18} {totals[klass]:6} {agree[klass]:6} {scored[klass]:6} {spec_right[klass]['tiops']:10} "
              f"{spec_right[klass]['stix2-validator']:9}  {wrong['invalid']}/{wrong['valid']}")
    all_agree, all_total = sum(agree.values()), sum(totals.values())
    all_scored = sum(scored.values())
    print(f"agreement {all_agree}/{all_total} ({100 * all_agree / all_total:.1f} %); of {all_scored} cases with the "
          f"specification's verdict, tiops gives it on {sum(c['tiops'] for c in spec_right.values())}, "
          f"stix2-validator on {sum(c['stix2-validator'] for c in spec_right.values())}")
    for klass in sorted(disagreements):
        if args.show not in {"all", klass}:
            continue
        print(f"\n[{klass}] {len(disagreements[klass])} cases where tiops and the reference or the specification differ")
        for item in disagreements[klass][: args.limit]:
            print(f"  {item['type']}: {item['case']} (spec: {item['expected'] or 'open'})\n"
                  f"    tiops: {item['tiops']}\n    stix2-validator: {item['stix2-validator']}")
    if args.json:
        args.json.write_text(json.dumps(disagreements, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()

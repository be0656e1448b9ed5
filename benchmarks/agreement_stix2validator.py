"""How often tiops and the OASIS reference validator (stix2-validator) agree.

    python benchmarks/agreement_stix2validator.py [--show-disagreements]

Each case is one STIX 2.1 object, valid or breaking one MUST of the specification,
grouped by the class of rule it exercises. Both validators judge it alone (as a
one-object bundle for tiops; references to absent objects are warnings there):
the verdict is "invalid" when there is at least one error. The figure is the share
of cases with the same verdict; every disagreement is listed with what each said, and
with ``expected`` (the verdict the specification's text gives), so a reader can tell
where tiops is ahead and where it is behind.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

CREATED = "2024-01-01T00:00:00.000Z"
UUID = "5b5b5b5b-5b5b-4b5b-8b5b-5b5b5b5b5b5b"


def sdo(stix_type: str, **props: Any) -> dict[str, Any]:
    return {"type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{UUID}", "created": CREATED,
            "modified": CREATED, **props}


def sco(stix_type: str, uuid: str = "5b5b5b5b-5b5b-5b5b-8b5b-5b5b5b5b5b5b", **props: Any) -> dict[str, Any]:
    return {"type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{uuid}", **props}


def indicator(pattern: str, **props: Any) -> dict[str, Any]:
    return sdo("indicator", name="x", pattern=pattern, pattern_type="stix", valid_from="2024-01-01T00:00:00Z",
               indicator_types=["malicious-activity"], **props)


IDENTITY = sdo("identity", name="Acme", identity_class="organization")
MARKING_REF = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"

# (class, expected valid by the specification, object)
CASES: list[tuple[str, bool, dict[str, Any]]] = [
    # SCO values (section 6)
    ("ip", True, sco("ipv4-addr", value="198.51.100.3")),
    ("ip", True, sco("ipv4-addr", value="198.51.100.0/24")),
    ("ip", False, sco("ipv4-addr", value="999.999.999.999")),
    ("ip", False, sco("ipv4-addr", value="198.51.100.0/33")),
    ("ip", False, sco("ipv4-addr", value="198.51.100.0/")),
    ("ip", False, sco("ipv4-addr", value="010.1.1.1")),
    ("ip", True, sco("ipv6-addr", value="2001:db8::1")),
    ("ip", True, sco("ipv6-addr", value="2001:db8::/32")),
    ("ip", False, sco("ipv6-addr", value="2001:db8::/129")),
    ("ip", False, sco("ipv6-addr", value="2001:db8:::1")),
    ("email", True, sco("email-addr", value="jdoe@example.com")),
    ("email", False, sco("email-addr", value="John Doe <jdoe@example.com>")),
    ("email", False, sco("email-addr", value="jdoe")),
    ("mime", True, sco("artifact", mime_type="application/zip", payload_bin="aGVsbG8=")),
    ("mime", False, sco("artifact", mime_type="zip", payload_bin="aGVsbG8=")),
    ("mime", False, sco("file", name="a", mime_type="executable/pe")),
    ("charset", True, sco("file", name="a", name_enc="windows-1252")),
    ("charset", False, sco("file", name="a", name_enc="utf 8")),
    ("url", True, sco("url", value="https://example.com/a?b=c")),
    ("url", False, sco("url", value="example.com/a")),
    ("url", False, sco("url", value="http://example.com/a b")),
    ("cpe", True, sco("software", name="Word", cpe="cpe:2.3:a:microsoft:word:2000:*:*:*:*:*:*:*")),
    ("cpe", False, sco("software", name="Word", cpe="cpe:/a:microsoft:word:2000")),
    ("language", True, sco("software", name="Word", languages=["en", "de-CH"])),
    ("language", False, sco("software", name="Word", languages=["english"])),
    ("language", True, sdo("identity", name="Acme", lang="fr")),
    ("language", False, sdo("identity", name="Acme", lang="french")),
    ("hash", True, sco("file", hashes={"MD5": "d41d8cd98f00b204e9800998ecf8427e"})),
    ("hash", False, sco("file", hashes={"MD5": "d41d8cd98f00b204e9800998ecf8427"})),
    ("hash", False, sco("file", hashes={"SHA-256": "zz"})),
    # The same values inside patterns (section 9)
    ("pattern-value", True, indicator("[ipv4-addr:value = '198.51.100.1']")),
    ("pattern-value", False, indicator("[ipv4-addr:value = '999.1.1.1']")),
    ("pattern-value", False, indicator("[email-addr:value = 'Eve <eve@example.com>']")),
    ("pattern-value", False, indicator("[url:value = 'no scheme here']")),
    ("pattern-value", False, indicator("[file:hashes.MD5 = 'abc']")),
    # Timestamps at any depth (section 2.16)
    ("timestamp", True, sco("x509-certificate", serial_number="01", validity_not_before="2016-02-29T00:00:00Z")),
    ("timestamp", False, sco("x509-certificate", serial_number="01", validity_not_before="2017-02-29T00:00:00Z")),
    ("timestamp", False, sco("file", name="a.exe", extensions={"windows-pebinary-ext": {
        "pe_type": "exe", "time_date_stamp": "2023-11-31T00:00:00Z"}})),
    # External references (section 2.5)
    ("external-id", True, sdo("vulnerability", name="CVE-2021-44228",
                              external_references=[{"source_name": "cve", "external_id": "CVE-2021-44228"}])),
    ("external-id", False, sdo("vulnerability", name="Log4Shell",
                               external_references=[{"source_name": "cve", "external_id": "2021-44228"}])),
    ("external-id", False, sdo("attack-pattern", name="Phishing",
                               external_references=[{"source_name": "capec", "external_id": "98"}])),
    # Property names and empty lists
    ("reserved-name", False, indicator("[ipv4-addr:value = '198.51.100.1']", severity="high")),
    ("reserved-name", False, indicator("[ipv4-addr:value = '198.51.100.1']", action="block")),
    ("custom-name", True, indicator("[ipv4-addr:value = '198.51.100.1']", x_acme_score=5)),
    ("custom-name", False, indicator("[ipv4-addr:value = '198.51.100.1']", x_Score=5)),
    ("custom-name", False, indicator("[ipv4-addr:value = '198.51.100.1']", xs=5)),
    ("empty-list", False, indicator("[ipv4-addr:value = '198.51.100.1']", labels=[])),
    ("empty-list", False, sdo("identity", name="Acme", roles=[])),
    # SCO rules (sections 2.9, 6)
    ("sco-id", True, sco("process", uuid="5b5b5b5b-5b5b-4b5b-8b5b-5b5b5b5b5b5b", pid=42)),
    ("sco-id", False, sco("process", pid=42)),
    ("sco-extension", False, sco("file", name="a", extensions={"pebinary": {"pe_type": "exe"}})),
    # Markings (section 7.2)
    ("marking", True, sdo("identity", name="Acme", object_marking_refs=[MARKING_REF])),
    ("marking", False, sdo("identity", name="Acme", object_marking_refs=[f"identity--{UUID}"])),
    ("marking", True, sdo("identity", name="Acme", description="d", granular_markings=[
        {"marking_ref": MARKING_REF, "selectors": ["description"]}])),
    ("marking", False, sdo("identity", name="Acme", granular_markings=[
        {"marking_ref": MARKING_REF, "selectors": ["description"]}])),
    ("marking", False, sdo("identity", name="Acme", granular_markings=[
        {"marking_ref": MARKING_REF, "selectors": ["name."]}])),
    ("tlp", True, {"type": "marking-definition", "spec_version": "2.1", "id": MARKING_REF,
                   "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp", "name": "TLP:GREEN",
                   "definition": {"tlp": "green"}}),
    ("tlp", False, {"type": "marking-definition", "spec_version": "2.1", "id": MARKING_REF,
                    "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp", "name": "TLP:GREEN",
                    "definition": {"tlp": "amber"}}),
    # Custom objects (section 11.2)
    ("custom-object", True, {**sdo("x-acme-ticket"), "x_summary": "s"}),
    ("custom-object", False, {"type": "x-acme-ticket", "spec_version": "2.1", "id": f"x-acme-ticket--{UUID}"}),
    ("custom-object", False, {**sdo("x-acme-ticket"), "created": "2024-01-01T00:00:00Z"}),
    # Reference targets (sections 4.13, 5.2)
    ("reference-target", True, sdo("observed-data", first_observed=CREATED, last_observed=CREATED, number_observed=1,
                                   object_refs=[f"ipv4-addr--{UUID}"])),
    ("reference-target", False, sdo("observed-data", first_observed=CREATED, last_observed=CREATED, number_observed=1,
                                    object_refs=[f"identity--{UUID}"])),
    ("reference-target", False, sdo("sighting", sighting_of_ref=f"malware--{UUID}", where_sighted_refs=[f"ipv4-addr--{UUID}"])),
    ("reference-target", False, sdo("sighting", sighting_of_ref=f"malware--{UUID}", observed_data_refs=[f"identity--{UUID}"])),
    ("identifier", False, sdo("relationship", relationship_type="related-to", source_ref=f"identity--{UUID}",
                              target_ref="identity--5b5b5b5b-5b5b-4b5b")),
    # Found by benchmarks/spec_diff.py: an RFC 4122 UUID (version 1-5, variant 10x; section 2.9)
    ("identifier", False, sdo("identity", name="Acme", created_by_ref="identity--5b5b5b5b-5b5b-0b5b-8b5b-5b5b5b5b5b5b")),
    ("identifier", True, sdo("identity", name="Acme", created_by_ref="identity--5b5b5b5b-5b5b-1b5b-9b5b-5b5b5b5b5b5b")),
    # custom objects' common properties (sections 3.2, 11.2)
    ("custom-object", False, {**sdo("x-acme-ticket"), "confidence": 101}),
    ("custom-object", False, {**sdo("x-acme-ticket"), "created_by_ref": "identity--5b5b5b5b"}),
    ("custom-object", False, {**sdo("x-acme-ticket"), "x_summary": "s",
                              "granular_markings": [{"marking_ref": MARKING_REF}]}),
    ("custom-object", False, {**sdo("x-acme-ticket"), "external_references": [{"source_name": "acme"}]}),
    # SCO extension keys and the references inside predefined extensions (sections 6, 7.3)
    ("sco-extension", False, sco("file", name="a", extensions={"extension-definition--5b5b5b5b": {
        "extension_type": "property-extension", "x_note": "n"}})),
    ("reference-target", False, sco("file", name="a.zip", extensions={"archive-ext": {
        "contains_refs": [f"identity--{UUID}"]}})),
    ("reference-target", True, sco("file", name="a.zip", extensions={"archive-ext": {
        "contains_refs": [f"directory--{UUID}"]}})),
    ("reference-target", False, sco("email-message", is_multipart=True, body_multipart=[
        {"content_type": "text/plain", "body_raw_ref": f"url--{UUID}"}])),
    # Empty lists of header values (section 2, list type)
    ("empty-list", False, sco("email-message", is_multipart=False, additional_header_fields={"Received": []})),
    # Hashes of external references (sections 2.5, 2.7)
    ("hash", False, sdo("identity", name="Acme", external_references=[
        {"source_name": "acme", "url": "https://example.com/r", "hashes": {"SHA-256": "abc"}}])),
    # Registry hives written in full (section 6.17), as SCO values and in patterns
    ("registry-key", False, sco("windows-registry-key", key="HKLM\\Software\\Acme")),
    ("registry-key", True, sco("windows-registry-key", key="HKEY_LOCAL_MACHINE\\Software\\Acme")),
    ("pattern-value", False, indicator("[windows-registry-key:key = 'HKCU\\\\Software\\\\Acme']")),
    # Leap seconds (section 2.16, RFC 3339 section 5.7)
    ("timestamp", True, sco("x509-certificate", serial_number="01", validity_not_before="2016-12-31T23:59:60Z")),
    ("timestamp", False, sco("x509-certificate", serial_number="01", validity_not_before="2016-12-31T12:00:60Z")),
]


def tiops_valid(obj: dict[str, Any]) -> tuple[bool, list[str]]:
    from tiops.findings import Severity
    from tiops.load import load_bundle
    from tiops.validate import validate_repo

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "case.json"
        path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{UUID}", "objects": [obj]}), encoding="utf-8")
        errors = [f"{f.code} {f.message}" for f in validate_repo(load_bundle(path)) if f.severity is Severity.ERROR]
    return not errors, errors


def reference_valid(obj: dict[str, Any]) -> tuple[bool, list[str]]:
    from stix2validator import ValidationOptions, validate_instance

    result = validate_instance(copy.deepcopy(obj), ValidationOptions(version="2.1"))
    return bool(result.is_valid), [str(error) for error in result.errors]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show-disagreements", action="store_true")
    args = parser.parse_args()
    agree = 0
    right: Counter[str] = Counter()
    disagreements: list[str] = []
    for klass, expected, obj in CASES:
        ours, our_errors = tiops_valid(obj)
        theirs, their_errors = reference_valid(obj)
        right["tiops"] += ours == expected
        right["stix2-validator"] += theirs == expected
        if ours == theirs:
            agree += 1
        else:
            disagreements.append(f"  [{klass}] expected {'valid' if expected else 'invalid'}; "
                                 f"tiops: {our_errors or 'valid'}; stix2-validator: {their_errors or 'valid'}")
    total = len(CASES)
    print(f"{total} cases; tiops and stix2-validator agree on {agree} ({100 * agree / total:.1f} %)")
    for name, count in sorted(right.items()):
        print(f"  {name}: the specification's verdict on {count} of {total} ({100 * count / total:.1f} %)")
    if args.show_disagreements and disagreements:
        print("disagreements:")
        print("\n".join(disagreements))


if __name__ == "__main__":
    main()

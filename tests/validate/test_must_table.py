"""The MUST table of docs/findings.md, tested row by row.

Every checked row of the table names a case here by its id. Each case is an object
(or a few) written from the sentence of STIX 2.1 that the row quotes, breaking that
rule and nothing else; the test asserts that validating it gives the row's code. A
second test keeps the table and these cases in step.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tiops.codes import CODES
from tiops.load import load_bundle
from tiops.validate import validate_repo

DOC = Path(__file__).resolve().parents[2] / "docs" / "findings.md"
T = "2024-01-01T00:00:00.000Z"
U = "6c6c6c6c-6c6c-4c6c-8c6c-6c6c6c6c6c6c"
TLP_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


def sdo(stix_type: str, **props: Any) -> dict[str, Any]:
    base = {"type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{U}", "created": T, "modified": T}
    return {**base, **props}


def sco(stix_type: str, **props: Any) -> dict[str, Any]:
    return {"type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{U}", **props}


def drop(obj: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in names}


IDENTITY = sdo("identity", name="Acme")
INDICATOR = sdo("indicator", pattern="[ipv4-addr:value = '198.51.100.1']", pattern_type="stix",
                valid_from="2024-01-01T00:00:00Z")
OBSERVED = sdo("observed-data", first_observed=T, last_observed=T, number_observed=1,
               object_refs=[f"ipv4-addr--{U}"])
MARKING = {"type": "marking-definition", "spec_version": "2.1", "id": f"marking-definition--{U}", "created": T,
           "definition_type": "statement", "definition": {"statement": "Copyright Acme"}}
RELATIONSHIP = sdo("relationship", relationship_type="related-to", source_ref=f"identity--{U}",
                   target_ref=f"indicator--{U}")
SIGHTING = sdo("sighting", sighting_of_ref=f"indicator--{U}")

# case id -> (code the row names, objects breaking the rule)
MUST_CASES: dict[str, tuple[str, list[dict[str, Any]]]] = {
    # Section 2: common data types
    "binary-base64": ("TI200", [sco("artifact", payload_bin="not base64!")]),
    "boolean-literal": ("TI200", [sdo("identity", name="Acme", revoked="yes")]),
    "dictionary-key-length": ("TI200", [sco("network-traffic", protocols=["tcp"], src_ref=f"ipv4-addr--{U}",
                                            ipfix={"x" * 251: 1})]),
    "enumeration-closed": ("TI200", [sco("artifact", payload_bin="aGk=", encryption_algorithm="rot13")]),
    "external-reference-source-name": ("TI201", [sdo("identity", name="Acme", external_references=[{"url": "https://a.example"}])]),
    "external-reference-one-of": ("TI200", [sdo("identity", name="Acme", external_references=[{"source_name": "acme"}])]),
    "external-reference-cve": ("TI240", [sdo("vulnerability", name="v", external_references=[
        {"source_name": "cve", "external_id": "CVE-21-1"}])]),
    "external-reference-capec": ("TI240", [sdo("attack-pattern", name="p", external_references=[
        {"source_name": "capec", "external_id": "capec 1"}])]),
    "float-type": ("TI200", [sdo("location", latitude="ten", longitude=0)]),
    "hashes-value": ("TI237", [sco("file", hashes={"SHA-1": "abc"})]),
    "external-reference-hashes": ("TI237", [sdo("identity", name="Acme", external_references=[
        {"source_name": "acme", "url": "https://a.example/r", "hashes": {"SHA-256": "abc"}}])]),
    "hashes-custom-key": ("TI200", [sco("file", hashes={"x": "abc"})]),
    "hex-even": ("TI200", [sco("file", name="a", magic_number_hex="abc")]),
    "identifier-form": ("TI203", [{**IDENTITY, "id": "identity-6c6c6c6c"}]),
    "identifier-own-type": ("TI203", [{**IDENTITY, "id": f"malware--{U}"}]),
    "identifier-rfc4122": ("TI200", [{**RELATIONSHIP, "target_ref": f"indicator--{U[:14]}0{U[15:]}"}]),
    "identifier-custom-object-rfc4122": ("TI203", [{**sdo("x-acme-thing"), "id": f"x-acme-thing--{U[:19]}c{U[20:]}"}]),
    "identifier-reference-form": ("TI200", [{**RELATIONSHIP, "target_ref": "indicator--6c6c6c6c-6c6c-4c6c"}]),
    "identifier-sco-uuid4": ("TI244", [sco("process", id=f"process--{U[:14]}5{U[15:]}", pid=1)]),
    "kill-chain-phase-names": ("TI201", [sdo("attack-pattern", name="p", kill_chain_phases=[{"phase_name": "x"}])]),
    "list-not-empty-header-values": ("TI243", [sco("email-message", is_multipart=False,
                                                   additional_header_fields={"Received": []})]),
    "list-not-empty": ("TI243", [sdo("identity", name="Acme", roles=[])]),
    "timestamp-rfc3339": ("TI204", [{**INDICATOR, "valid_from": "2024-01-01 00:00:00"}]),
    "timestamp-leap-second": ("TI204", [{**INDICATOR, "valid_from": "2024-03-01T12:00:60Z"}]),
    "timestamp-real-date": ("TI204", [{**INDICATOR, "valid_from": "2024-02-30T00:00:00Z"}]),
    "timestamp-any-depth": ("TI204", [sco("x509-certificate", serial_number="01",
                                          validity_not_after="2023-11-31T00:00:00Z")]),
    # Section 3: common properties
    "type-characters": ("TI202", [{**sdo("x-Acme_Thing"), "id": f"x-Acme_Thing--{U}"}]),
    "spec-version-21": ("TI200", [{**IDENTITY, "spec_version": "2.2"}]),
    "id-required": ("TI201", [drop(IDENTITY, "id")]),
    "created-required": ("TI201", [drop(IDENTITY, "created")]),
    "created-millisecond": ("TI204", [{**IDENTITY, "created": "2024-01-01T00:00:00Z"}]),
    "modified-not-before-created": ("TI205", [{**IDENTITY, "modified": "2023-01-01T00:00:00.000Z"}]),
    "created-by-ref-identity": ("TI301", [{**IDENTITY, "created_by_ref": f"indicator--{U}"}, INDICATOR]),
    "confidence-range": ("TI200", [{**IDENTITY, "confidence": 101}]),
    "lang-rfc5646": ("TI236", [{**IDENTITY, "lang": "english"}]),
    "object-marking-refs-type": ("TI301", [{**IDENTITY, "object_marking_refs": [f"identity--{U[:-1]}d"]}]),
    "reserved-property": ("TI241", [{**INDICATOR, "severity": "high"}]),
    "custom-property-name": ("TI242", [{**IDENTITY, "x_Score": 1}]),
    "custom-object-common": ("TI201", [{"type": "x-acme-thing", "spec_version": "2.1", "id": f"x-acme-thing--{U}"}]),
    "custom-object-spec-version": ("TI211", [{**sdo("x-acme-thing"), "spec_version": "2.0.1"}]),
    "custom-object-common-values": ("TI200", [{**sdo("x-acme-thing"), "confidence": 101}]),
    "reference-target-exists": ("TI300", [{**IDENTITY, "created_by_ref": f"identity--{U[:-1]}d"}]),
    "duplicate-id": ("TI302", [IDENTITY, {**IDENTITY, "name": "Other"}]),
    # Section 4: SDOs
    "attack-pattern-name": ("TI201", [sdo("attack-pattern")]),
    "campaign-seen-order": ("TI206", [sdo("campaign", name="c", first_seen="2024-02-01T00:00:00Z",
                                          last_seen="2024-01-01T00:00:00Z")]),
    "course-of-action-action-reserved": ("TI241", [sdo("course-of-action", name="c", action="block")]),
    "grouping-context": ("TI201", [sdo("grouping", object_refs=[f"identity--{U}"]), IDENTITY]),
    "identity-name": ("TI201", [sdo("identity")]),
    "incident-name": ("TI201", [sdo("incident")]),
    "indicator-required": ("TI201", [drop(INDICATOR, "pattern")]),
    "indicator-valid-until": ("TI206", [{**INDICATOR, "valid_until": "2024-01-01T00:00:00Z"}]),
    "indicator-pattern-valid": ("TI207", [{**INDICATOR, "pattern": "[ipv4-addr:value = ]"}]),
    "indicator-pattern-type-names": ("TI207", [{**INDICATOR, "pattern": "[ab:value = 'x']"}]),
    "indicator-pattern-timestamps": ("TI204", [{**INDICATOR, "pattern": "[file:created = t'2023-02-30T00:00:00Z']"}]),
    "indicator-pattern-values": ("TI230", [{**INDICATOR, "pattern": "[ipv4-addr:value = '1.2.3.999']"}]),
    "infrastructure-name": ("TI201", [sdo("infrastructure")]),
    "intrusion-set-name": ("TI201", [sdo("intrusion-set")]),
    "location-one-of": ("TI200", [sdo("location", name="l")]),
    "location-latitude-range": ("TI200", [sdo("location", latitude=91, longitude=0)]),
    "location-latitude-longitude": ("TI200", [sdo("location", latitude=10)]),
    "malware-is-family": ("TI201", [sdo("malware", name="m")]),
    "malware-family-name": ("TI201", [sdo("malware", is_family=True)]),
    "malware-sample-refs": ("TI301", [sdo("malware", name="m", is_family=True, sample_refs=[f"identity--{U}"]), IDENTITY]),
    "malware-analysis-result": ("TI200", [sdo("malware-analysis", product="p")]),
    "note-content": ("TI201", [sdo("note", object_refs=[f"identity--{U}"]), IDENTITY]),
    "observed-data-number": ("TI200", [{**OBSERVED, "number_observed": 0}]),
    "observed-data-order": ("TI206", [{**OBSERVED, "first_observed": "2024-02-01T00:00:00.000Z"}]),
    "observed-data-refs-one-of": ("TI200", [drop(OBSERVED, "object_refs")]),
    "observed-data-refs-types": ("TI301", [{**OBSERVED, "object_refs": [f"identity--{U}"]}, IDENTITY]),
    "observed-data-objects-refs": ("TI300", [{**drop(OBSERVED, "object_refs"), "objects": {
        "0": {"type": "ipv4-addr", "value": "198.51.100.3"},
        "1": {"type": "network-traffic", "src_ref": "0", "dst_ref": "2", "protocols": ["tcp"]}}}]),
    "opinion-enum": ("TI200", [sdo("opinion", opinion="meh", object_refs=[f"identity--{U}"]), IDENTITY]),
    "report-published": ("TI201", [sdo("report", name="r", object_refs=[f"identity--{U}"]), IDENTITY]),
    "threat-actor-name": ("TI201", [sdo("threat-actor")]),
    "tool-name": ("TI201", [sdo("tool")]),
    "vulnerability-name": ("TI201", [sdo("vulnerability")]),
    # Section 5: SROs
    "relationship-required": ("TI201", [drop(RELATIONSHIP, "relationship_type"), IDENTITY, INDICATOR]),
    "relationship-ends": ("TI301", [{**RELATIONSHIP, "source_ref": f"marking-definition--{U}"}, MARKING, INDICATOR]),
    "relationship-time-order": ("TI206", [{**RELATIONSHIP, "start_time": "2024-02-01T00:00:00Z",
                                           "stop_time": "2024-01-01T00:00:00Z"}, IDENTITY, INDICATOR]),
    "sighting-of-ref": ("TI201", [drop(SIGHTING, "sighting_of_ref")]),
    "sighting-count": ("TI200", [{**SIGHTING, "count": -1}, INDICATOR]),
    "sighting-seen-order": ("TI206", [{**SIGHTING, "first_seen": "2024-02-01T00:00:00Z",
                                       "last_seen": "2024-01-01T00:00:00Z"}, INDICATOR]),
    "sighting-observed-data-refs": ("TI301", [{**SIGHTING, "observed_data_refs": [f"identity--{U}"]}, INDICATOR, IDENTITY]),
    "sighting-where-sighted-refs": ("TI301", [{**SIGHTING, "where_sighted_refs": [f"indicator--{U}"]}, INDICATOR]),
    # Section 6: SCOs
    "sdo-extension-key": ("TI251", [sdo("attack-pattern", name="a", extensions={"my-extension": {}})]),
    "extension-property-names": ("TI242", [sdo("attack-pattern", name="a", extensions={
        f"extension-definition--{U}": {"extension_type": "property-extension", "Rank": 1}})]),
    "sco-extension-names": ("TI245", [sco("file", name="a", extensions={"pe": {}})]),
    "sco-extension-definition-id": ("TI245", [sco("file", name="a", extensions={
        "extension-definition--6c6c6c6c": {"extension_type": "property-extension", "x_note": "n"}})]),
    "archive-ext-contains-refs": ("TI301", [sco("file", name="a.zip", extensions={
        "archive-ext": {"contains_refs": [f"identity--{U}"]}})]),
    "http-request-ext-message-body": ("TI301", [sco("network-traffic", protocols=["tcp", "http"], src_ref=f"ipv4-addr--{U}",
                                                    extensions={"http-request-ext": {
                                                        "request_method": "post", "request_value": "/",
                                                        "message_body_data_ref": f"file--{U}"}})]),
    "windows-service-ext-dll-refs": ("TI301", [sco("process", pid=1, extensions={
        "windows-service-ext": {"service_name": "s", "service_dll_refs": [f"artifact--{U}"]}})]),
    "artifact-payload-or-url": ("TI200", [sco("artifact", payload_bin="aGk=", url="https://a.example/x",
                                              hashes={"MD5": "d41d8cd98f00b204e9800998ecf8427e"})]),
    "artifact-url-hashes": ("TI200", [sco("artifact", url="https://a.example/x")]),
    "artifact-decryption-key": ("TI200", [sco("artifact", payload_bin="aGk=", decryption_key="k")]),
    "artifact-mime-type": ("TI232", [sco("artifact", payload_bin="aGk=", mime_type="zip")]),
    "autonomous-system-number": ("TI201", [sco("autonomous-system")]),
    "directory-path": ("TI201", [sco("directory")]),
    "directory-path-enc": ("TI233", [sco("directory", path="/tmp", path_enc="utf 8")]),
    "domain-name-value": ("TI201", [sco("domain-name")]),
    # 6.4: "The value of this property MUST conform to [RFC1034], and each domain and
    # sub-domain contained within the domain name MUST conform to [RFC5890]."
    "domain-name-rfc1034": ("TI239", [sco("domain-name", value="-bad-.example.com")]),
    "email-addr-value": ("TI231", [sco("email-addr", value="Eve <eve@example.com>")]),
    "email-message-body": ("TI200", [sco("email-message", is_multipart=True, body="hello")]),
    "email-message-body-raw-ref": ("TI301", [sco("email-message", is_multipart=True, body_multipart=[
        {"content_type": "image/png", "body_raw_ref": f"url--{U}"}])]),
    "file-hashes-or-name": ("TI200", [sco("file", size=1)]),
    "file-name-enc": ("TI233", [sco("file", name="a", name_enc="utf 8")]),
    "ipv4-addr-value": ("TI230", [sco("ipv4-addr", value="198.51.100.0/33")]),
    "ipv6-addr-value": ("TI230", [sco("ipv6-addr", value="2001:db8::/129")]),
    "mac-addr-value": ("TI200", [sco("mac-addr", value="00-00-5E-00-53-00")]),
    "mutex-name": ("TI201", [sco("mutex")]),
    "network-traffic-protocols": ("TI201", [sco("network-traffic", src_ref=f"ipv4-addr--{U}")]),
    "network-traffic-src-or-dst": ("TI200", [sco("network-traffic", protocols=["tcp"])]),
    "network-traffic-active-end": ("TI200", [sco("network-traffic", protocols=["tcp"], src_ref=f"ipv4-addr--{U}",
                                                 is_active=True, end=T)]),
    "network-traffic-end-order": ("TI206", [sco("network-traffic", protocols=["tcp"], src_ref=f"ipv4-addr--{U}",
                                                start="2024-02-01T00:00:00Z", end="2024-01-01T00:00:00Z")]),
    "network-traffic-port": ("TI200", [sco("network-traffic", protocols=["tcp"], src_ref=f"ipv4-addr--{U}",
                                           src_port=70000)]),
    "windows-registry-key-hive": ("TI211", [sco("windows-registry-key", key="HKLM\\Software\\Acme")]),
    "process-uuid4": ("TI244", [sco("process", id=f"process--{U[:14]}5{U[15:]}", pid=1)]),
    "software-cpe": ("TI235", [sco("software", name="s", cpe="cpe:/a:x:y")]),
    "software-languages": ("TI236", [sco("software", name="s", languages=["english"])]),
    "url-value": ("TI234", [sco("url", value="no scheme")]),
    "x509-timestamps": ("TI204", [sco("x509-certificate", serial_number="01", validity_not_before="2023-02-29T00:00:00Z")]),
    # Section 7: meta objects and markings
    "language-content-keys": ("TI236", [sdo("language-content", object_ref=f"identity--{U}", object_modified=T,
                                            contents={"english": {"name": "Acme"}}), IDENTITY]),
    "language-content-required": ("TI201", [sdo("language-content", object_ref=f"identity--{U}"), IDENTITY]),
    "language-content-object-modified": ("TI303", [sdo("language-content", object_ref=f"identity--{U}",
                                                       object_modified="2023-06-01T00:00:00.000Z",
                                                       contents={"de": {"name": "Acme"}}), IDENTITY]),
    "marking-definition-definition": ("TI200", [drop(MARKING, "definition")]),
    "marking-definition-no-modified": ("TI211", [{**MARKING, "modified": T}]),
    "marking-tlp-exact": ("TI247", [{"type": "marking-definition", "spec_version": "2.1", "id": TLP_GREEN,
                                     "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp",
                                     "name": "TLP:GREEN", "definition": {"tlp": "red"}}]),
    "marking-tlp-only-the-four": ("TI247", [{**MARKING, "definition_type": "tlp", "definition": {"tlp": "green"}}]),
    "marking-not-circular": ("TI248", [{**MARKING, "object_marking_refs": [f"marking-definition--{U}"]}]),
    "granular-marking-one-of": ("TI200", [{**IDENTITY, "description": "d", "granular_markings": [
        {"selectors": ["description"]}]}]),
    "granular-marking-selector-syntax": ("TI246", [{**IDENTITY, "granular_markings": [
        {"marking_ref": TLP_GREEN, "selectors": ["name..x"]}]}]),
    "granular-marking-selector-present": ("TI246", [{**IDENTITY, "granular_markings": [
        {"marking_ref": TLP_GREEN, "selectors": ["description"]}]}]),
    "granular-marking-lang": ("TI236", [{**IDENTITY, "granular_markings": [{"lang": "english", "selectors": ["name"]}]}]),
    "extension-definition-properties": ("TI200", [{
        "type": "extension-definition", "spec_version": "2.1", "id": f"extension-definition--{U}", "created": T,
        "modified": T, "created_by_ref": f"identity--{U}", "name": "acme", "schema": "https://example.com/s.json",
        "version": "1.0", "extension_types": ["property-extension"], "extension_properties": ["x_acme_score"]}]),
    "bundle-id": ("TI249", []),
}


def _findings(objects: list[dict[str, Any]], tmp_path: Path, bundle_id: bool = True) -> list[str]:
    bundle: dict[str, Any] = {"type": "bundle", "objects": objects}
    if bundle_id:
        bundle["id"] = f"bundle--{U}"
    path = tmp_path / "case.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return [f"{f.code} {f.message}" for f in validate_repo(load_bundle(path))]


@pytest.mark.parametrize("case", sorted(MUST_CASES))
def test_must_case_gives_its_code(case: str, tmp_path: Path) -> None:
    code, objects = MUST_CASES[case]
    findings = _findings(objects or [IDENTITY], tmp_path, bundle_id=case != "bundle-id")
    assert any(f.startswith(code + " ") for f in findings), findings


def test_the_well_formed_objects_the_cases_start_from_are_clean(tmp_path: Path) -> None:
    objects = [IDENTITY, INDICATOR, OBSERVED, MARKING, sco("ipv4-addr", value="198.51.100.1"),
               {**RELATIONSHIP, "relationship_type": "related-to"}, SIGHTING]
    assert [f for f in _findings(objects, tmp_path) if not f.startswith("TI400")] == []


def _must_rows() -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("## The MUST table", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| Section")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows if not row.startswith("| ---")]


def test_every_checked_must_row_has_a_case_with_its_code() -> None:
    rows = _must_rows()
    assert len(rows) > 80
    used: set[str] = set()
    for section, _rule, code, test in rows:
        code = code.strip("`")
        if code == "—":
            assert test, f"{section}: an unchecked MUST says why"
            continue
        assert code in CODES, f"{section}: {code} is not a finding code"
        case = test.strip("`")
        if "/" in case:  # a rule checked across revisions or files has its own test module
            assert code in (DOC.parents[1] / case).read_text(encoding="utf-8"), f"{section}: {case} does not test {code}"
            continue
        assert case in MUST_CASES, f"{section}: no case {case!r} in tests/validate/test_must_table.py"
        assert MUST_CASES[case][0] == code, f"{section}: case {case} gives {MUST_CASES[case][0]}, the table says {code}"
        used.add(case)
    assert used == set(MUST_CASES), f"cases without a row: {sorted(set(MUST_CASES) - used)}"

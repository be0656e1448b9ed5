"""Rules of STIX 2.1 that differential runs against the reference validator found
unchecked (benchmarks/spec_diff.py), each tested from the specification's sentence:
what breaks it is reported at its place, and what the sentence allows is clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tiops.findings import Severity
from tiops.load import load_bundle
from tiops.validate import validate_repo

T = "2024-01-01T00:00:00.000Z"
U = "7e7e7e7e-7e7e-4e7e-8e7e-7e7e7e7e7e7e"
TLP_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


def _errors(obj: dict[str, Any], tmp_path: Path) -> list[tuple[str, tuple[Any, ...]]]:
    """(code, path inside the object) of every error validating ``obj`` alone in a bundle."""
    path = tmp_path / "case.json"
    path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{U}", "objects": [obj]}), encoding="utf-8")
    return [(f.code, f.location.path[2:]) for f in validate_repo(load_bundle(path)) if f.severity is Severity.ERROR]


def custom(**props: Any) -> dict[str, Any]:
    return {"type": "x-acme-ticket", "spec_version": "2.1", "id": f"x-acme-ticket--{U}", "created": T, "modified": T,
            "x_summary": "s", **props}


def sco(stix_type: str, **props: Any) -> dict[str, Any]:
    return {"type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{U}", **props}


# Section 11.2: custom objects carry the common properties of section 3.2, which hold what
# that section says whatever the object's type.
def test_a_custom_object_with_well_formed_common_properties_is_clean(tmp_path: Path) -> None:
    obj = custom(confidence=100, created_by_ref=f"identity--{U}", labels=["a"], revoked=False, lang="en",
                 external_references=[{"source_name": "acme", "url": "https://example.com/t/1"}],
                 object_marking_refs=[TLP_GREEN], granular_markings=[{"marking_ref": TLP_GREEN, "selectors": ["x_summary"]}])
    assert _errors(obj, tmp_path) == []


@pytest.mark.parametrize(("props", "code", "where"), [
    ({"confidence": 101}, "TI200", ("confidence",)),  # 3.2: an integer from 0 to 100
    ({"created_by_ref": "identity--7e7e7e7e"}, "TI200", ("created_by_ref",)),  # 2.9: an identifier, not part of one
    ({"revoked": "yes"}, "TI200", ("revoked",)),  # 3.2: a boolean
    ({"external_references": [{"source_name": "acme"}]}, "TI200", ("external_references", 0)),  # 2.5: description, url or id
    ({"external_references": [{"url": "https://example.com"}]}, "TI201", ("external_references", 0)),  # 2.5: source_name
    ({"granular_markings": [{"marking_ref": TLP_GREEN}]}, "TI201", ("granular_markings", 0)),  # 7.2.3: selectors required
    ({"granular_markings": [{"marking_ref": TLP_GREEN, "lang": "en", "selectors": ["x_summary"]}]},
     "TI200", ("granular_markings", 0)),  # 7.2.3: marking_ref and lang never together
    ({"object_marking_refs": ["marking-definition--7e7e"]}, "TI200", ("object_marking_refs", 0)),
])
def test_a_custom_objects_common_property_breaking_section_3_2_is_an_error_at_its_place(
        props: dict[str, Any], code: str, where: tuple[Any, ...], tmp_path: Path) -> None:
    errors = _errors(custom(**props), tmp_path)
    assert (code, where) in errors, errors


def test_a_custom_objects_own_properties_are_its_producers(tmp_path: Path) -> None:
    # Section 11.2 leaves the rest of a custom object to its producer: a confidence-like or
    # list-of-objects property of its own is not held to section 3.2.
    assert _errors(custom(x_confidence=500, x_parts=[{"source_name": 1}]), tmp_path) == []


# Section 2.9: the UUID of an identifier is an RFC 4122 UUID (versions 1 to 5, variant 10x).
@pytest.mark.parametrize("uuid", [U, "7e7e7e7e-7e7e-1e7e-9e7e-7e7e7e7e7e7e", "7e7e7e7e-7e7e-5e7e-be7e-7e7e7e7e7e7e"])
def test_references_with_rfc_4122_uuids_are_clean(uuid: str, tmp_path: Path) -> None:
    assert _errors(custom(created_by_ref=f"identity--{uuid}"), tmp_path) == []


@pytest.mark.parametrize("uuid", ["7e7e7e7e-7e7e-0e7e-8e7e-7e7e7e7e7e7e", "7e7e7e7e-7e7e-7e7e-8e7e-7e7e7e7e7e7e",
                                  "7e7e7e7e-7e7e-4e7e-ce7e-7e7e7e7e7e7e", "7e7e7e7e-7e7e-4e7e-0e7e-7e7e7e7e7e7e"])
def test_a_uuid_of_another_version_or_variant_is_no_identifier(uuid: str, tmp_path: Path) -> None:
    identity = {"type": "identity", "spec_version": "2.1", "id": f"identity--{U}", "created": T, "modified": T,
                "name": "Acme", "created_by_ref": f"identity--{uuid}"}
    assert ("TI200", ("created_by_ref",)) in _errors(identity, tmp_path)
    assert ("TI203", ("id",)) in _errors(custom(id=f"x-acme-ticket--{uuid}"), tmp_path)


# Sections 6 and 7.3: an SCO's extensions key is a predefined name ending in -ext or an
# extension-definition's id, which is that type, two hyphens and a UUID.
def test_an_extension_key_that_is_part_of_an_extension_definition_id_is_an_error(tmp_path: Path) -> None:
    body = {"extension_type": "property-extension", "x_note": "n"}
    whole = sco("file", name="a", extensions={f"extension-definition--{U}": body})
    truncated = sco("file", name="a", extensions={"extension-definition--7e7e7e7e": body})
    assert ("TI245", ("extensions", "extension-definition--7e7e7e7e")) in _errors(truncated, tmp_path)
    assert [code for code, _ in _errors(whole, tmp_path) if code == "TI245"] == []


# Section 6: the references inside the predefined extensions point where their sections say.
@pytest.mark.parametrize(("obj", "where"), [
    # 6.7 archive-ext: contains_refs MUST be of type file or directory.
    (sco("file", name="a.zip", extensions={"archive-ext": {"contains_refs": [f"directory--{U}", f"ipv4-addr--{U}"]}}),
     ("extensions", "archive-ext", "contains_refs", 1)),
    # 6.12 http-request-ext: message_body_data_ref MUST be of type artifact.
    (sco("network-traffic", protocols=["tcp", "http"], src_ref=f"ipv4-addr--{U}", extensions={"http-request-ext": {
        "request_method": "get", "request_value": "/", "message_body_data_ref": f"file--{U}"}}),
     ("extensions", "http-request-ext", "message_body_data_ref")),
    # 6.13 windows-service-ext: service_dll_refs MUST be of type file.
    (sco("process", pid=4, extensions={"windows-service-ext": {"service_name": "s", "service_dll_refs": [f"url--{U}"]}}),
     ("extensions", "windows-service-ext", "service_dll_refs", 0)),
    # 6.6 mime-part-type: body_raw_ref MUST be of type artifact or file.
    (sco("email-message", is_multipart=True, body_multipart=[{"body_raw_ref": f"file--{U}"}, {"body_raw_ref": f"url--{U}"}]),
     ("body_multipart", 1, "body_raw_ref")),
])
def test_references_in_predefined_extensions_point_to_the_types_their_sections_name(
        obj: dict[str, Any], where: tuple[Any, ...], tmp_path: Path) -> None:
    assert [w for code, w in _errors(obj, tmp_path) if code == "TI301"] == [where]


def test_references_inside_an_extension_definitions_extension_are_not_held_to_section_6(tmp_path: Path) -> None:
    # Section 7.3: the extension-definition's own schema defines those properties.
    obj = sco("file", name="a", extensions={f"extension-definition--{U}": {
        "extension_type": "property-extension", "contains_refs": [f"identity--{U}"]}})
    assert [code for code, _ in _errors(obj, tmp_path) if code == "TI301"] == []


# Section 2 (list type) with 6.6 and 6.12 (http-request-ext): a header field's values, when written as a
# list (a repeated header), are a list like any other, never an empty one.
@pytest.mark.parametrize(("obj", "where"), [
    (sco("email-message", is_multipart=False, additional_header_fields={"X-Mailer": "m", "Received": [], "X-Tag": ["a", "b"]}),
     ("additional_header_fields", "Received")),
    (sco("network-traffic", protocols=["tcp", "http"], src_ref=f"ipv4-addr--{U}", extensions={"http-request-ext": {
        "request_method": "get", "request_value": "/", "request_header": {"Host": ["example.com"], "Accept": []}}}),
     ("extensions", "http-request-ext", "request_header", "Accept")),
])
def test_an_empty_list_of_header_values_is_an_empty_list(obj: dict[str, Any], where: tuple[Any, ...],
                                                         tmp_path: Path) -> None:
    assert [error for error in _errors(obj, tmp_path) if error[0] != "TI300"] == [("TI243", where)]


# Section 2.5: an external reference's hashes are of the hashes type of section 2.7.
def test_an_external_references_hash_fits_its_algorithm(tmp_path: Path) -> None:
    sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    identity = {"type": "identity", "spec_version": "2.1", "id": f"identity--{U}", "created": T, "modified": T,
                "name": "Acme", "external_references": [
                    {"source_name": "acme", "url": "https://example.com/a", "hashes": {"SHA-256": sha256}},
                    {"source_name": "acme", "url": "https://example.com/b", "hashes": {"SHA-256": sha256[:-1]}}]}
    assert _errors(identity, tmp_path) == [("TI237", ("external_references", 1, "hashes", "SHA-256"))]


# Section 2.16 with RFC 3339 section 5.7: second 60 exists only as a leap second, at
# 23:59:60 "at the end of months in which a leap second occurs" (Appendix D's table, which
# IERS has extended to 27 leap seconds, the last at the end of 2016).
LEAP_SECOND_CASES = [
    ("2016-12-31T23:59:60Z", True), ("2015-06-30T23:59:60.000Z", True), ("1972-06-30T23:59:60Z", True),
    ("2016-12-31T12:00:60Z", False), ("2016-05-31T23:59:60Z", False), ("2016-12-31T23:58:60Z", False),
    ("2017-12-31T23:59:60Z", False), ("2014-06-30T23:59:60Z", False), ("1971-12-31T23:59:60Z", False),
    ("2030-06-30T23:59:60Z", True),  # later than any bulletin: it may still get one
]


@pytest.mark.parametrize(("when", "allowed"), LEAP_SECOND_CASES)
def test_second_60_is_a_leap_second_only(when: str, allowed: bool, tmp_path: Path) -> None:
    certificate = sco("x509-certificate", serial_number="01", validity_not_before=when)
    assert _errors(certificate, tmp_path) == ([] if allowed else [("TI204", ("validity_not_before",))])


@pytest.mark.parametrize(("when", "allowed"), LEAP_SECOND_CASES)
def test_second_60_is_a_leap_second_only_at_any_depth(when: str, allowed: bool, tmp_path: Path) -> None:
    # A custom property, an extension's property, a pattern literal and a common property.
    extension = f"extension-definition--{U}"
    holder = custom(x_seen=when, extensions={extension: {"extension_type": "property-extension", "seen": when}})
    expected = [("TI204", ("x_seen",)), ("TI204", ("extensions", extension, "seen"))]
    assert sorted(_errors(holder, tmp_path)) == ([] if allowed else sorted(expected))
    indicator = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{U}", "created": T, "modified": T,
                 "pattern": f"[file:created = t'{when}']", "pattern_type": "stix", "valid_from": T}
    assert _errors(indicator, tmp_path) == ([] if allowed else [("TI204", ("pattern",))])
    millisecond = when[:19] + ".000Z"
    tool = {**custom(), "type": "tool", "id": f"tool--{U}", "name": "t", "created": millisecond,
            "modified": "2031-01-01T00:00:00.000Z"}
    del tool["x_summary"]
    assert _errors(tool, tmp_path) == ([] if allowed else [("TI204", ("created",))])


# Section 6.17: "The hive portion of the key MUST be fully expanded and not truncated;
# e.g., HKEY_LOCAL_MACHINE must be used instead of HKLM." The value of a pattern's
# comparison is held to the same rule (section 9: a pattern compares SCO properties).
@pytest.mark.parametrize(("key", "allowed"), [
    ("HKEY_LOCAL_MACHINE\\System\\Acme", True), ("hkey_current_user\\Software", True), ("HKEY_USERS", True),
    ("HKLM\\System\\Acme", False), ("hkcu\\Software", False), ("HKU", False), ("HKCR\\.exe", False),
    ("HKCC\\Software", False), ("HKLMX\\Software", True),
])
def test_a_registry_keys_hive_is_written_in_full(key: str, allowed: bool, tmp_path: Path) -> None:
    escaped = key.replace("\\", "\\\\")
    indicator = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{U}", "created": T, "modified": T,
                 "pattern_type": "stix", "valid_from": T, "pattern": f"[windows-registry-key:key = '{escaped}']"}
    assert _errors(sco("windows-registry-key", key=key), tmp_path) == ([] if allowed else [("TI211", ("key",))])
    assert _errors(indicator, tmp_path) == ([] if allowed else [("TI211", ("pattern",))])


# Sections 2.16 and 9.3: a pattern's timestamp literal is a STIX timestamp, so its day
# exists and its second 60 is a leap second, as everywhere else.
@pytest.mark.parametrize(("pattern", "allowed"), [
    ("[file:created = t'2024-02-29T00:00:00Z']", True),
    ("[file:created = t'2023-02-29T00:00:00Z']", False),
    ("[file:created = t'2016-12-31T23:59:60Z']", True),
    ("[file:created = t'2016-12-31T12:00:60Z']", False),
    ("[ipv4-addr:value = '198.51.100.1'] START t'2023-11-31T00:00:00Z' STOP t'2024-01-01T00:00:00Z'", False),
    ("[file:name = 'at t\\'2023-02-30T00:00:00Z\\'']", True),  # text inside a string literal, not a timestamp
])
def test_a_patterns_timestamp_literals_are_real(pattern: str, allowed: bool, tmp_path: Path) -> None:
    indicator = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{U}", "created": T, "modified": T,
                 "pattern_type": "stix", "valid_from": T, "pattern": pattern}
    assert _errors(indicator, tmp_path) == ([] if allowed else [("TI204", ("pattern",))])


# Section 7.3: extension_properties "MUST only be used when the extension_types property
# contains a value of toplevel-property-extension".
@pytest.mark.parametrize(("types", "allowed"), [
    (["toplevel-property-extension"], True), (["property-extension", "toplevel-property-extension"], True),
    (["property-extension"], False), (["new-sdo"], False),
])
def test_extension_properties_come_with_a_toplevel_property_extension(types: list[str], allowed: bool,
                                                                      tmp_path: Path) -> None:
    definition = {"type": "extension-definition", "spec_version": "2.1", "id": f"extension-definition--{U}",
                  "created": T, "modified": T, "created_by_ref": f"identity--{U}", "name": "acme",
                  "schema": "https://example.com/s.json", "version": "1.0", "extension_types": types,
                  "extension_properties": ["x_acme_score"]}
    assert _errors(definition, tmp_path) == ([] if allowed else [("TI200", ("extension_types",))])
    assert _errors({k: v for k, v in definition.items() if k != "extension_properties"}, tmp_path) == []


# Sections 3.1 and 9.2: a comparison's object type is an object type name, 3 to 250
# characters of a-z, 0-9 and single hyphens; custom types of that shape are names.
@pytest.mark.parametrize(("pattern", "allowed"), [
    ("[x-acme-widget:value = 'x']", True),
    ("[ab:value = 'x']", False),
    ("[file:name = 'a' AND ab:value = 'x']", False),
    ("[x--acme:value = 'x'] AND [ipv4-addr:value = '198.51.100.1']", False),
    ("[acme-:value = 'x'] OR [ipv4-addr:value = '198.51.100.1']", False),
])
def test_a_patterns_object_types_are_type_names(pattern: str, allowed: bool, tmp_path: Path) -> None:
    indicator = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{U}", "created": T, "modified": T,
                 "pattern_type": "stix", "valid_from": T, "pattern": pattern}
    assert _errors(indicator, tmp_path) == ([] if allowed else [("TI207", ("pattern",))])


TLP2_RED_ID = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"


def tlp2_red(**changes: Any) -> dict[str, Any]:
    """TLP:RED as the OASIS CTI TC publishes it (cti-stix-common-objects), with ``changes``."""
    marking = {"type": "marking-definition", "spec_version": "2.1", "id": TLP2_RED_ID,
               "created": "2022-10-01T00:00:00.000Z", "name": "TLP:RED",
               "extensions": {TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": "red"}}}
    marking.update(changes)
    return {key: value for key, value in marking.items() if value is not None}


@pytest.mark.parametrize(("changes", "allowed"), [
    ({}, True),
    ({"created": "2022-10-01T00:00:00.000000Z"}, True),  # the same instant, written with microseconds
    ({"name": "TLP:CLEAR"}, False),  # a consumer showing the name would read another level
    ({"extensions": {TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": "clear"}}}, False),
    ({"created": "2023-10-01T00:00:00.000Z"}, False),
    ({"created_by_ref": f"identity--{U}"}, False),
    ({"name": None}, False),
])
def test_a_tlp_2_marking_under_its_published_id_is_the_published_one(changes: dict[str, Any], allowed: bool,
                                                                      tmp_path: Path) -> None:
    # A warning, not an error: the specification knows TLP 1.0 only (section 7.2.1.4).
    path = tmp_path / "case.json"
    path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{U}", "objects": [tlp2_red(**changes)]}),
                    encoding="utf-8")
    findings = [(f.code, f.severity) for f in validate_repo(load_bundle(path))]
    assert [f for f in findings if f[1] is Severity.ERROR] == []
    assert [f for f in findings if f[0] in ("TI247", "TI250")] == ([] if allowed else [("TI250", Severity.WARNING)])


def _messages(obj: dict[str, Any], tmp_path: Path) -> list[tuple[str, tuple[Any, ...], str]]:
    path = tmp_path / "case.json"
    path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{U}", "objects": [obj]}), encoding="utf-8")
    return [(f.code, f.location.path[2:], f.message) for f in validate_repo(load_bundle(path))
            if f.severity is Severity.ERROR]


INDICATOR = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{U}", "created": T, "modified": T,
             "pattern": "[ipv4-addr:value = '198.51.100.1']", "pattern_type": "stix", "valid_from": T}


def test_a_network_traffic_that_ends_before_it_starts_is_an_error_at_end(tmp_path: Path) -> None:
    # Section 6.12: end, if present, MUST be later than or equal to start. It was not checked.
    obj = sco("network-traffic", start="2024-02-01T00:00:00Z", end="2024-01-01T00:00:00Z", protocols=["tcp"],
              src_ref=f"ipv4-addr--{U}")
    assert [(code, where) for code, where, _ in _messages(obj, tmp_path) if code == "TI206"] == [("TI206", ("end",))]
    clean = sco("network-traffic", start="2024-01-01T00:00:00Z", end="2024-01-01T00:00:00Z", protocols=["tcp"])
    assert not [m for m in _messages(clean, tmp_path) if m[0] == "TI206"]


def test_a_predefined_sco_extension_name_on_an_sdo_is_an_error(tmp_path: Path) -> None:
    # Sections 3.2 and 7.3: an SDO's extension key is an extension-definition id; only an SCO's
    # predefined extensions are named '...-ext'. Only keys not ending in -ext were caught.
    found = _messages({**INDICATOR, "extensions": {"ntfs-ext": {"sid": "1"}}}, tmp_path)
    assert [(code, where) for code, where, _ in found] == [("TI251", ("extensions", "ntfs-ext"))], found


@pytest.mark.parametrize(("props", "code", "where", "message"), [
    # Well formed, but created and modified need milliseconds (section 3.2): not "not RFC 3339".
    ({"created": "2024-01-01T00:00:00Z"}, "TI204", ("created",), "is not precise to the millisecond"),
    # Section 2.5, said as such rather than the schema's anyOf dumped.
    ({"external_references": [{"source_name": "acme"}]}, "TI200", ("external_references", 0),
     "an external reference (section 2.5) needs at least one of description, url or external_id"),
    # A reference to a relationship: TI301 alone, named by category, with its article.
    ({"created_by_ref": f"relationship--{U}"}, "TI301", ("created_by_ref",), "a relationship object; it must point to"),
])
def test_messages_say_the_rule_not_the_schema(props: dict[str, Any], code: str, where: tuple[Any, ...], message: str,
                                              tmp_path: Path) -> None:
    found = [m for m in _messages({**INDICATOR, **props}, tmp_path) if m[0] != "TI300"]
    assert [(c, w) for c, w, _ in found] == [(code, where)], found
    assert message in found[0][2], found


def test_a_multipart_email_with_a_body_names_the_body_and_the_condition(tmp_path: Path) -> None:
    part = {"content_type": "text/plain", "body": "part"}
    found = _messages(sco("email-message", is_multipart=True, body="hello", body_multipart=[part]), tmp_path)
    assert [(c, w) for c, w, _ in found] == [("TI200", ("body",))], found
    assert found[0][2].startswith("body must be absent when is_multipart is true (STIX 2.1 section 6.6")


def test_an_id_with_upper_case_hex_is_a_warning(tmp_path: Path) -> None:
    upper = f"indicator--{U.upper()}"
    path = tmp_path / "case.json"
    path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{U}", "objects": [{**INDICATOR, "id": upper}]}))
    found = [(f.code, f.severity, f.location.path[2:]) for f in validate_repo(load_bundle(path))]
    assert found == [("TI252", Severity.WARNING, ("id",))], found
    lower = tmp_path / "lower.json"
    lower.write_text(json.dumps({"type": "bundle", "id": f"bundle--{U}", "objects": [INDICATOR]}))
    assert not [f for f in validate_repo(load_bundle(lower)) if f.code == "TI252"]

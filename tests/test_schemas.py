"""The JSON Schemas in schemas/: well-formed, true to STIX 2.1, and in agreement with real data.

Every STIX object is checked with both validators tiops relies on: jsonschema (pure
Python, with a ``referencing`` registry) and jsonschema-rs (what ``tiops validate``
uses). A schema change that only one of them accepts would show up here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import referencing
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing.jsonschema import DRAFT202012

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = REPO_ROOT / "schemas"
STIX_SCHEMAS = SCHEMAS / "stix"
EXAMPLES = Path(__file__).resolve().parent / "data" / "schemas"
CORPORA = REPO_ROOT.parent / "shared" / "corpora"
SHARED_FILES = frozenset({"common", "vocabularies"})

SDO_TYPES = {
    "attack-pattern", "campaign", "course-of-action", "grouping", "identity", "incident", "indicator",
    "infrastructure", "intrusion-set", "location", "malware", "malware-analysis", "note", "observed-data",
    "opinion", "report", "threat-actor", "tool", "vulnerability",
}  # fmt: skip
SRO_TYPES = {"relationship", "sighting"}
SCO_TYPES = {
    "artifact", "autonomous-system", "directory", "domain-name", "email-addr", "email-message", "file",
    "ipv4-addr", "ipv6-addr", "mac-addr", "mutex", "network-traffic", "process", "software", "url",
    "user-account", "windows-registry-key", "x509-certificate",
}  # fmt: skip
META_KINDS = {
    "marking-definition": "marking",
    "extension-definition": "extension-definition",
    "language-content": "language-content",
}
ALL_TYPES = SDO_TYPES | SRO_TYPES | SCO_TYPES | set(META_KINDS)

# Objects in the corpora that break a STIX 2.1 MUST, keyed by (file name, object id) with
# the failing property paths. Each was looked at; none is a schema mistake.
KNOWN_DEFECTS: dict[tuple[str, str], tuple[set[str], str]] = {
    ("capec-2.1.json", "attack-pattern--c9b31907-c466-4325-af55-c418aea8b964"): (
        {"external_references/3/url"},
        "the URL starts with a space, which RFC 3986 does not allow",
    ),
    ("capec-2.1.json", "attack-pattern--ea2e5cbd-8278-4f8a-b56b-3cfb955d2366"): (
        {"external_references/4/url"},
        "the URL starts with a space, which RFC 3986 does not allow",
    ),
    ("sco-examples-bundle.json", "artifact--4cce66f8-6eaa-53cb-85d5-3a85fca3a6c5"): (
        {"payload_bin"},
        "payload_bin is a truncated example ('... ' is not base64, section 2.2)",
    ),
    ("sco-examples-bundle.json", "artifact--6f437177-6e48-5cf8-9d9e-872a2bddd641"): (
        {"payload_bin"},
        "payload_bin is a truncated example ('... ' is not base64, section 2.2)",
    ),
    ("sco-examples-bundle.json", "artifact--ca17bcf8-9846-5ab4-8662-75c1bf6e63ee"): (
        {"payload_bin"},
        "payload_bin is a truncated example ('... ' is not base64, section 2.2)",
    ),
}


# --------------------------------------------------------------------------- loading
@cache
def _stix_schemas() -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(STIX_SCHEMAS.glob("*.json"))
    }


@cache
def _tiops_schemas() -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((SCHEMAS / "tiops").glob("*.json"))
    }


def _type_schemas() -> dict[str, dict[str, Any]]:
    return {name: schema for name, schema in _stix_schemas().items() if name not in SHARED_FILES}


@cache
def _python_validators() -> dict[str, Draft202012Validator]:
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        (schema["$id"], DRAFT202012.create_resource(schema)) for schema in _stix_schemas().values()
    )
    return {
        name: Draft202012Validator(schema, registry=registry)
        for name, schema in _type_schemas().items()
    }


@cache
def _rust_validators() -> dict[str, Any]:
    registry = jsonschema_rs.Registry(
        [(schema["$id"], schema) for schema in _stix_schemas().values()]
    )
    return {
        name: jsonschema_rs.validator_for(schema, registry=registry)
        for name, schema in _type_schemas().items()
    }


def _failing_paths(stix_object: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Instance paths of the errors each validator finds: (jsonschema, jsonschema-rs)."""
    stix_type = stix_object["type"]
    python_validator, rust_validator = (
        _python_validators()[stix_type],
        _rust_validators()[stix_type],
    )
    if python_validator.is_valid(stix_object) and rust_validator.is_valid(stix_object):
        return set(), set()  # the fast path: most objects are valid
    python = {
        "/".join(map(str, error.absolute_path))
        for error in _python_validators()[stix_type].iter_errors(stix_object)
    }
    rust = {
        "/".join(map(str, error.instance_path))
        for error in _rust_validators()[stix_type].iter_errors(stix_object)
    }
    return python, rust


def _assert_valid(stix_object: dict[str, Any]) -> None:
    python, rust = _failing_paths(stix_object)
    assert python == set() and rust == set(), (stix_object.get("id"), python, rust)


def _assert_invalid_at(stix_object: dict[str, Any], path: str) -> None:
    python, rust = _failing_paths(stix_object)
    assert path in python, (path, python)
    assert path in rust, (path, rust)


@cache
def _examples() -> dict[str, dict[str, Any]]:
    examples: list[dict[str, Any]] = json.loads(
        (EXAMPLES / "valid-objects.json").read_text(encoding="utf-8")
    )
    return {example["type"]: example for example in examples}


def _example(stix_type: str) -> dict[str, Any]:
    """A fresh copy of the valid example of ``stix_type``, for a test to break."""
    return copy.deepcopy(_examples()[stix_type])


# --------------------------------------------------------------------------- the schemas themselves
def test_every_schema_is_a_valid_draft_2020_12_schema() -> None:
    schemas = {**_stix_schemas(), **{f"tiops/{k}": v for k, v in _tiops_schemas().items()}}
    assert len(schemas) == 44 + 4
    for name, schema in schemas.items():
        assert schema.get("$schema") == "https://json-schema.org/draft/2020-12/schema", name
        Draft202012Validator.check_schema(schema)


def test_there_is_one_schema_per_stix_2_1_type() -> None:
    assert set(_type_schemas()) == ALL_TYPES


@pytest.mark.parametrize("stix_type", sorted(ALL_TYPES))
def test_type_schema_shape(stix_type: str) -> None:
    schema = _type_schemas()[stix_type]
    kind = (
        "sdo"
        if stix_type in SDO_TYPES
        else "sro"
        if stix_type in SRO_TYPES
        else "sco"
        if stix_type in SCO_TYPES
        else META_KINDS[stix_type]
    )
    assert schema["$id"] == f"https://schemas.tiops.example/stix/{stix_type}.json"
    assert "STIX 2.1 section" in schema["description"]
    assert schema["allOf"][0] == {"$ref": f"common.json#/$defs/{kind}"}
    assert schema["properties"]["type"]["const"] == stix_type
    # tiops.validate.objects skips its own id check for schema-valid objects on this promise:
    # an id is required and anchored to the object's own type.
    assert schema["properties"]["id"]["pattern"].startswith(f"^{stix_type}--")
    assert schema["properties"]["id"]["pattern"].endswith("$")
    # Unknown properties are warnings reported by tiops, never schema errors.
    assert "additionalProperties" not in schema and "unevaluatedProperties" not in schema
    common = _stix_schemas()["common"]["$defs"][kind]
    assert set(common["required"]) <= set(common["properties"])
    assert "id" in common["required"]
    assert set(schema["required"]) <= set(schema["properties"])


def test_common_property_sets_follow_section_3_2() -> None:
    defs = _stix_schemas()["common"]["$defs"]
    assert set(defs["sco"]["properties"]) == {
        "type",
        "spec_version",
        "id",
        "object_marking_refs",
        "granular_markings",
        "defanged",
        "extensions",
    }
    assert defs["sco"]["required"] == ["type", "id"]
    assert set(defs["sdo"]["properties"]) == set(defs["sro"]["properties"])
    assert "lang" not in defs["language-content"]["properties"]
    assert "created_by_ref" in defs["extension-definition"]["required"]
    assert "modified" not in defs["marking"]["properties"]


def test_every_open_vocabulary_annotation_names_a_vocabulary() -> None:
    vocabularies = _stix_schemas()["vocabularies"]["$defs"]
    open_vocabularies = {name for name in vocabularies if name.endswith("-ov")}
    assert len(open_vocabularies) == 22
    used: set[str] = set()
    for schema in _type_schemas().values():
        for node in _walk(schema):
            if "x-open-vocab" in node:
                used.add(node["x-open-vocab"])
                assert "enum" not in node  # open vocabularies suggest, they never restrict
    assert used <= open_vocabularies
    assert (
        _type_schemas()["indicator"]["properties"]["indicator_types"]["x-open-vocab"]
        == "indicator-type-ov"
    )
    assert "malicious-activity" in vocabularies["indicator-type-ov"]["x-values"]


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# --------------------------------------------------------------------------- valid objects
@pytest.mark.parametrize("stix_type", sorted(ALL_TYPES))
def test_example_of_every_type_validates(stix_type: str) -> None:
    _assert_valid(_example(stix_type))


def _corpus_objects(corpora: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    files = [
        *sorted((corpora / "stix21").glob("*.json")),
        *sorted((corpora / "oasis" / "examples").rglob("*.json")),
        corpora / "oasis" / "sco-examples-bundle.json",
        *sorted((corpora / "oasis" / "markings").glob("*.json")),
        *sorted((corpora / "misp-stix").glob("*.json")),
    ]
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        objects = data if isinstance(data, list) else data.get("objects", [data])
        for stix_object in objects:
            yield path.name, stix_object


def test_every_corpus_object_validates_except_known_defects() -> None:
    if not CORPORA.is_dir():
        pytest.skip(
            f"shared corpora not found at {CORPORA} (they sit beside the repository checkout)"
        )
    defects: dict[tuple[str, str], set[str]] = {}
    checked: set[str] = set()
    for file_name, stix_object in _corpus_objects(CORPORA):
        if stix_object.get("type") not in ALL_TYPES:
            continue  # custom object types (x-mitre-tactic, ...) have no schema
        checked.add(stix_object["type"])
        python, rust = _failing_paths(stix_object)
        assert python == rust, (file_name, stix_object["id"], python, rust)
        if python:
            defects[(file_name, stix_object["id"])] = python
    assert defects == {key: paths for key, (paths, _reason) in KNOWN_DEFECTS.items()}
    assert checked >= SCO_TYPES and len(checked) >= 35


# --------------------------------------------------------------------------- MUST rules
def test_missing_required_property_fails() -> None:
    indicator = _example("indicator")
    del indicator["pattern"]
    _assert_invalid_at(indicator, "")


def test_id_of_another_type_fails() -> None:
    indicator = _example("indicator")
    indicator["id"] = "malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
    _assert_invalid_at(indicator, "id")


def test_timestamp_without_z_fails() -> None:
    indicator = _example("indicator")
    indicator["valid_from"] = "2024-05-01T12:00:00"
    _assert_invalid_at(indicator, "valid_from")


def test_confidence_above_100_fails() -> None:
    indicator = _example("indicator")
    indicator["confidence"] = 101
    _assert_invalid_at(indicator, "confidence")


@pytest.mark.parametrize(
    ("stix_type", "change", "path"),
    [
        # created and modified are precise to at least the millisecond (section 3.2).
        ("campaign", {"created": "2024-05-01T12:00:00Z"}, "created"),
        ("campaign", {"spec_version": "2.0"}, "spec_version"),
        ("campaign", {"labels": []}, "labels"),  # lists are never empty (section 2.8)
        (
            "campaign",
            {"created_by_ref": "campaign--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"},
            "created_by_ref",
        ),
        (
            "campaign",
            {"object_marking_refs": ["identity--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"]},
            "object_marking_refs/0",
        ),
        (
            "campaign",
            {"external_references": [{"source_name": "only a name"}]},
            "external_references/0",
        ),
        ("campaign", {"lang": ""}, "lang"),
        ("opinion", {"opinion": "somewhat-agree"}, "opinion"),  # closed enumeration
        ("relationship", {"relationship_type": "Uses"}, "relationship_type"),
        (
            "relationship",
            {"source_ref": "relationship--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"},
            "source_ref",
        ),
        (
            "sighting",
            {"where_sighted_refs": ["malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"]},
            "where_sighted_refs/0",
        ),
        (
            "location",
            {"country": None, "region": None, "latitude": None},
            "",
        ),  # region, country or lat+long
        ("malware", {"name": None}, ""),  # a family needs a name
        (
            "observed-data",
            {"objects": {"0": {"type": "ipv4-addr", "value": "198.51.100.7"}}},
            "",
        ),  # not both
        ("mac-addr", {"value": "00:00:AB:CD:EF:01"}, "value"),
        ("network-traffic", {"is_active": True}, "is_active"),  # end is present
        ("network-traffic", {"dst_port": 70000}, "dst_port"),
        (
            "windows-registry-key",
            {"values": [{"name": "Run", "data_type": "REG_TEXT"}]},
            "values/0/data_type",
        ),
        ("file", {"name": None, "hashes": None}, ""),
        ("email-message", {"body": "a multipart message has no body"}, ""),
        ("artifact", {"url": "https://example.com/a.bin"}, ""),  # url and payload_bin are exclusive
        ("marking-definition", {"definition": {"tlp": "purple"}}, "definition/tlp"),
        ("extension-definition", {"extension_types": ["new-thing"]}, "extension_types/0"),
        (
            "indicator",
            {
                "extensions": {
                    "extension-definition--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f": {"rank": 1}
                }
            },
            "extensions/extension-definition--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        ),
    ],
)
def test_must_rule_is_enforced(stix_type: str, change: dict[str, Any], path: str) -> None:
    stix_object = _example(stix_type)
    for name, value in change.items():
        if value is None:
            stix_object.pop(name, None)
        else:
            stix_object[name] = value
    _assert_invalid_at(stix_object, path)


def test_tlp_2_marking_levels_are_closed() -> None:
    marking: dict[str, Any] = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        "created": "2022-10-01T00:00:00.000Z",
        "name": "TLP:GREEN",
        "extensions": {
            "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d": {
                "extension_type": "property-extension",
                "tlp_2_0": "green",
            }
        },
    }
    _assert_valid(marking)
    marking["extensions"]["extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"][
        "tlp_2_0"
    ] = "white"
    _assert_invalid_at(
        marking, "extensions/extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d/tlp_2_0"
    )


def test_custom_properties_and_open_vocabulary_values_pass() -> None:
    indicator = _example("indicator")
    indicator["x_acme_score"] = {"any": ["shape"]}
    indicator["indicator_types"] = ["not-in-the-vocabulary"]
    _assert_valid(indicator)


# --------------------------------------------------------------------------- tiops' own files
def _tiops_errors(kind: str, data: Any) -> list[str]:
    validator = Draft202012Validator(_tiops_schemas()[kind])
    return [error.message for error in validator.iter_errors(data)]


def test_tiops_schemas_are_closed_and_described() -> None:
    for name, schema in _tiops_schemas().items():
        assert schema["$id"] == f"https://schemas.tiops.example/tiops/{name}.json"
        assert schema["description"]
        # Target settings belong to each target's own code, so only they stay open.
        open_nodes = [schema["$defs"]["target"]] if name == "config" else []
        for node in _walk(schema):
            if (
                node.get("type") == "object"
                and "properties" in node
                and all(node is not n for n in open_nodes)
            ):
                assert node.get("additionalProperties") is False, (name, node.get("description"))


def test_config_schema() -> None:
    good = {
        "intel": "intel",
        "output": "dist",
        "default_target": "prod",
        "targets": {
            "prod": {"type": "taxii", "url": "https://taxii.example.com/api/"},
            "local": {"type": "sqlite", "path": "x.db"},
        },
        "validation": {"strict": True},
    }
    assert _tiops_errors("config", good) == []
    assert _tiops_errors("config", {}) == []
    assert _tiops_errors("config", {"intell": "intel"})  # a typo is caught
    assert _tiops_errors("config", {"targets": {"x": {"type": "s3"}}})
    assert _tiops_errors("config", {"targets": {"x": {"path": "no-type.db"}}})
    assert _tiops_errors("config", {"validation": {"strict": "yes"}})


def test_defaults_schema() -> None:
    repo_defaults = yaml.safe_load(
        (REPO_ROOT / "intel" / "_defaults.yaml").read_text(encoding="utf-8")
    )
    assert _tiops_errors("defaults", repo_defaults) == []
    assert _tiops_errors("defaults", {"defaults": {"confidence": 80}, "source": "Feed"}) == []
    assert _tiops_errors("defaults", {"default": {"confidence": 80}})
    assert _tiops_errors(
        "defaults", {"defaults": {"id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"}}
    )
    assert _tiops_errors("defaults", {"source": 3})


def test_relationships_schema() -> None:
    for path in (
        REPO_ROOT / "rules" / "relationships.yaml",
        REPO_ROOT / "tiops" / "data" / "relationships.yaml",
    ):
        if path.is_file():
            assert (
                _tiops_errors("relationships", yaml.safe_load(path.read_text(encoding="utf-8")))
                == []
            ), path
    good = {
        "relationships": [
            {"source": "*", "type": "related-to", "target": "*"},
            {"source": "malware", "type": "uses", "target": "tool", "note": "x"},
        ]
    }
    assert _tiops_errors("relationships", good) == []
    assert _tiops_errors(
        "relationships",
        {"relationships": [{"source": "malware", "type": "Uses", "target": "tool"}]},
    )
    assert _tiops_errors(
        "relationships", {"relationships": [{"source": "malware", "type": "uses"}]}
    )
    assert _tiops_errors(
        "relationships",
        {"relationships": [{"source": "Malware!", "type": "uses", "target": "tool"}]},
    )
    assert _tiops_errors("relationships", [{"source": "malware", "type": "uses", "target": "tool"}])


INGESTION_RULES = """
- name: drop-stale-indicators
  order: 10
  enabled: true
  object_types: [indicator]
  when:
    all:
      - {field: valid_until, op: older-than, value: 90d}
      - not: {field: labels, op: contains, value: keep}
      - any:
          - {field: confidence, op: "<", value: 30}
          - {field: x_source, op: in, value: [feed-a, feed-b]}
          - {field: revoked, op: exists}
  actions:
    - drop: true
  tests:
    - name: an old indicator is dropped
      input: {type: indicator, valid_until: "2020-01-01T00:00:00Z", confidence: 10}
      expect: {dropped: true}
- name: enrich
  actions:
    - {extend: valid_until, by: 30d}
    - set: {x_reviewed: true}
    - add_tags: [reviewed]
    - remove_tags: [new]
    - set_confidence: 70
    - revoke: true
  tests:
    - input: {type: indicator}
      expect: {fields: {confidence: 70}}
"""


def test_ingestion_rules_schema() -> None:
    rules = yaml.safe_load(INGESTION_RULES)
    assert _tiops_errors("ingestion-rules", rules) == []
    bad_rules: list[dict[str, Any]] = [
        {
            "name": "x",
            "actions": [{"drop": True}],
            "when": {"field": "a", "op": "like", "value": 1},
        },
        {
            "name": "x",
            "actions": [{"drop": True}],
            "when": {"field": "a", "op": "equals"},
        },  # value needed
        {
            "name": "x",
            "actions": [{"drop": True}],
            "when": {"field": "a", "op": "exists", "value": 1},
        },
        {
            "name": "x",
            "actions": [{"drop": True}],
            "when": {"field": "a", "op": "in", "value": "b"},
        },
        {
            "name": "x",
            "actions": [{"drop": True}],
            "when": {"field": "a", "op": "older-than", "value": "soon"},
        },
        {"name": "x", "actions": [{"set_confidence": 101}]},
        {"name": "x", "actions": [{"extend": "valid_until"}]},
        {"name": "x", "actions": [{"drop": True, "revoke": True}]},
        {"name": "x", "actions": []},
        {
            "name": "x",
            "actions": [{"drop": True}],
            "tests": [{"input": {}, "expect": {"dropped": True, "fields": {}}}],
        },
        {"actions": [{"drop": True}]},
        {"name": "x", "actions": [{"drop": True}], "order": "first"},
    ]
    for rule in bad_rules:
        assert _tiops_errors("ingestion-rules", [rule]), rule

"""compile reads only the lock: enrichment as a STIX property-extension, no network, same bytes."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rdap_server import RdapServer
from stix2validator import ValidationOptions, validate_string

from enrich.helpers import write_repo
from tiops import build
from tiops.cli import main
from tiops.enrich.attach import ENRICHMENT_EXTENSION_ID
from tiops.stix import TIOPS_IDENTITY_ID

RULES = """- name: Drop our own network
  order: 10
  object_types: [indicator]
  when: {field: enrichment.asn, op: equals, value: 15169}
  actions: [{drop: true}]
- name: Tag young domains
  order: 20
  object_types: [indicator]
  when: {field: whois.age_days, op: "<", value: 30}
  actions:
    - {add_tags: [newly-registered]}
- name: Tag by country
  order: 30
  when: {field: enrichment.country_code, op: in, value: [US, AU]}
  actions:
    - {add_tags: [geo-checked]}
"""


@pytest.fixture
def enriched(tmp_path: Path, rdap_server: RdapServer) -> Path:
    root = write_repo(tmp_path / "repo", rdap_server.url)
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    return root


def _objects(bundle: bytes) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in json.loads(bundle)["objects"]}


def test_enriched_bundle_is_valid_stix_with_the_results_beside_the_indicator(enriched: Path) -> None:
    bundle = build(enriched).bundle
    objects = _objects(bundle)
    google = objects["indicator--00000000-0000-4000-8000-000000000000"]
    extension = google["extensions"][ENRICHMENT_EXTENSION_ID]
    assert extension["extension_type"] == "property-extension"
    assert extension["enrichment"] == [{"value": "8.8.8.8", "country": "United States", "country_code": "US",
                                        "asn": 15169, "as_organization": "Google LLC"}]
    assert extension["whois"][0]["network_name"] == "GOGL"
    phish = objects["indicator--00000000-0000-4000-8000-000000000002"]["extensions"][ENRICHMENT_EXTENSION_ID]
    assert phish["whois"][0]["registered"] == "2025-02-20T08:15:00Z"
    assert phish["whois"][0]["age_days"] == 11  # registered 11 days before valid_from
    assert "retrieved" not in phish["whois"][0] and "server" not in phish["whois"][0]
    assert "extensions" not in objects["indicator--00000000-0000-4000-8000-000000000001"]  # private: nothing
    assert "extensions" not in objects["indicator--00000000-0000-4000-8000-000000000004"]  # not found: nothing
    assert objects[ENRICHMENT_EXTENSION_ID]["type"] == "extension-definition"
    outcome = validate_string(bundle.decode(), ValidationOptions(version="2.1"))
    results = outcome if isinstance(outcome, list) else [outcome]
    errors = [str(error) for result in results for error in result.errors]
    assert errors == [] and all(result.is_valid for result in results)


def test_compile_with_no_network_is_byte_identical(enriched: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = build(enriched).bundle

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("compile tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert build(enriched).bundle == first
    assert build(enriched).bundle == first


def test_without_a_lock_nothing_is_added(enriched: Path, tmp_path: Path) -> None:
    with_lock = _objects(build(enriched).bundle)
    for path in sorted((enriched / "intel" / ".enrichment").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    without = _objects(build(enriched).bundle)
    assert ENRICHMENT_EXTENSION_ID not in without
    assert set(with_lock) - set(without) == {ENRICHMENT_EXTENSION_ID, TIOPS_IDENTITY_ID}  # its definition's author
    for stix_id, obj in without.items():
        stripped = dict(with_lock[stix_id])
        stripped.get("extensions", {}).pop(ENRICHMENT_EXTENSION_ID, None)
        if stripped.get("extensions") == {}:
            del stripped["extensions"]
        assert stripped == obj


def test_ingestion_rules_see_enrichment_and_whois_fields(enriched: Path) -> None:
    (enriched / "rules" / "ingestion").mkdir(parents=True)
    (enriched / "rules" / "ingestion" / "enrichment.yaml").write_text(RULES, encoding="utf-8")
    objects = _objects(build(enriched, as_of="2026-01-01").bundle)
    assert "indicator--00000000-0000-4000-8000-000000000000" not in objects  # in our own AS: dropped
    phish = objects["indicator--00000000-0000-4000-8000-000000000002"]
    assert phish["labels"] == ["newly-registered"]
    old = objects["indicator--00000000-0000-4000-8000-000000000003"]  # registered in 2019
    assert "labels" not in old
    assert "labels" not in objects["indicator--00000000-0000-4000-8000-000000000001"]


def test_age_days_counts_from_the_registration_instant_with_its_fraction_and_offset(tmp_path: Path,
                                                                                    rdap_server: RdapServer) -> None:
    # woodgrove-invoices.net was registered 2025-02-01T19:00:00.5-05:00: 2025-02-02T00:00:00.5Z, half a
    # second after midnight. The indicator is valid from 2025-03-04T00:00:00Z: 29 days and 23:59:59.5
    # later, so 29 whole days, and the rule "younger than 30 days" holds. Cut to the second, the lock
    # said midnight, age_days was 30, and the rule missed it.
    root = write_repo(tmp_path / "repo", rdap_server.url, ["invoices"],
                      {"invoices": "[domain-name:value = 'woodgrove-invoices.net']"})
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    (root / "rules" / "ingestion").mkdir(parents=True)
    (root / "rules" / "ingestion" / "enrichment.yaml").write_text(RULES, encoding="utf-8")
    indicator = _objects(build(root, as_of="2026-01-01").bundle)["indicator--00000000-0000-4000-8000-000000000000"]
    whois = indicator["extensions"][ENRICHMENT_EXTENSION_ID]["whois"][0]
    assert whois["registered"] == "2025-02-02T00:00:00.5Z"
    assert whois["age_days"] == 29
    assert indicator["labels"] == ["newly-registered"]


def test_a_broken_lock_stops_validate_and_compile_with_a_located_finding(enriched: Path) -> None:
    shard = next((enriched / "intel" / ".enrichment" / "geo").glob("*.json"))
    shard.write_text("{not json", encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(enriched), "validate"])
    assert result.exit_code == 1
    assert f"intel/.enrichment/geo/{shard.name}:1:2: error TI150" in result.output
    assert CliRunner().invoke(main, ["-C", str(enriched), "compile"]).exit_code == 1


def test_a_misspelt_enrichment_field_is_a_rule_finding(enriched: Path) -> None:
    (enriched / "rules" / "ingestion").mkdir(parents=True)
    (enriched / "rules" / "ingestion" / "typo.yaml").write_text(
        "- name: typo\n  when: {field: enrichment.contry, op: equals, value: US}\n  actions: [{drop: true}]\n",
        encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(enriched), "validate"])
    assert result.exit_code == 1
    assert "rules/ingestion/typo.yaml:2:" in result.output and "TI502" in result.output
    assert "unknown field 'enrichment.contry'" in result.output and "country_code" in result.output


def test_a_rule_on_the_as_number_reads_it_from_an_mmdb_written_lock(enriched: Path) -> None:
    # The shipped database names no AS number (docs/enrich.md); an mmdb backend writes it
    # into the lock as a number, and a rule compares it as one.
    from tiops.enrich.lock import read_lock, write_lock

    intel = enriched / "intel"
    lock, _ = read_lock(intel, enriched)
    lock.geo["8.8.8.8"] = {**lock.geo["8.8.8.8"], "asn": 15169}
    write_lock(intel, lock)
    (enriched / "rules" / "ingestion").mkdir(parents=True)
    (enriched / "rules" / "ingestion" / "asn.yaml").write_text(
        "- name: Drop our own AS\n  object_types: [indicator]\n  when: {field: enrichment.asn, op: in, value: [15169]}\n"
        "  actions: [{drop: true}]\n", encoding="utf-8")
    objects = _objects(build(enriched, as_of="2026-01-01").bundle)
    assert "indicator--00000000-0000-4000-8000-000000000000" not in objects  # names 8.8.8.8
    assert "indicator--00000000-0000-4000-8000-000000000002" in objects


TAG_ALL = """- name: Tag every indicator
  order: 10
  object_types: [indicator]
  actions: [{add_tags: [reviewed]}]
"""
NEVER_MATCHES = """- name: Reads enrichment, matches nothing
  order: 20
  when: {field: enrichment.country_code, op: equals, value: ZZ}
  actions: [{add_tags: [never]}]
"""


def _rules(root: Path, text: str) -> None:
    folder = root / "rules" / "ingestion"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yaml").write_text(text, encoding="utf-8")


def test_enrichment_added_with_the_bundle_gives_the_bytes_of_enrichment_seen_by_rules(enriched: Path) -> None:
    """With no rule reading enrichment it is added as the bundle is assembled: the same bytes."""
    from tiops.load import load_repo
    from tiops.rules import apply_repo_rules, resolve_as_of

    def compiled(text: str) -> tuple[bytes, bool]:
        _rules(enriched, text)
        outcome = apply_repo_rules(load_repo(enriched), resolve_as_of(enriched, "2026-01-01"))[0]
        return build(enriched, as_of="2026-01-01").bundle, outcome.enrichment is not None

    deferred, was_deferred = compiled(TAG_ALL)
    attached, was_attached_first = compiled(TAG_ALL + NEVER_MATCHES)
    assert was_deferred and not was_attached_first  # both paths ran
    assert deferred == attached
    tagged = _objects(deferred)["indicator--00000000-0000-4000-8000-000000000002"]
    assert tagged["labels"] == ["reviewed"] and tagged["extensions"][ENRICHMENT_EXTENSION_ID]["whois"][0]["age_days"] == 11


@pytest.mark.parametrize("rule", [
    # changes valid_from, which whois age_days counts from: attach before the rule, as written
    "- name: later\n  actions: [{extend: valid_from, by: 30d}]\n",
    "- name: reads extensions\n  when: {field: extensions, op: exists}\n  actions: [{add_tags: [x]}]\n",
    "- name: reads whois\n  when: {field: whois.registrar, op: exists}\n  actions: [{add_tags: [x]}]\n",
])
def test_enrichment_goes_on_before_rules_that_read_it_or_change_what_it_reads(enriched: Path, rule: str) -> None:
    from tiops.load import load_repo
    from tiops.rules import apply_repo_rules, resolve_as_of

    _rules(enriched, rule)
    outcome = apply_repo_rules(load_repo(enriched), resolve_as_of(enriched, "2026-01-01"))[0]
    assert outcome.enrichment is None
    assert any(ENRICHMENT_EXTENSION_ID in (o.data.get("extensions") or {}) for o in outcome.objects)


def test_every_way_of_assembling_the_objects_builds_the_same_enrichment(enriched: Path) -> None:
    """The bundle builds each extension as it writes the object; the object lists of plan, report
    and diff (compiled_objects, with and without reuse) build them the same way."""
    from tiops.compile import compiled_objects
    from tiops.load import load_repo
    from tiops.rules import apply_repo_rules, resolve_as_of

    _rules(enriched, TAG_ALL)
    bundle = json.loads(build(enriched, as_of="2026-01-01").bundle)["objects"]
    repo = load_repo(enriched)
    outcome = apply_repo_rules(repo, resolve_as_of(enriched, "2026-01-01"))[0]
    assert outcome.enrichment is not None  # added by the bundle, not before the rules
    built: dict[int, Any] = {}
    assert compiled_objects(repo, rules=outcome) == bundle
    assert compiled_objects(repo, rules=outcome, built=built) == bundle
    assert compiled_objects(repo, rules=outcome, built=built) == bundle  # the reused objects, enrichment built again
    assert sum(ENRICHMENT_EXTENSION_ID in (o.get("extensions") or {}) for o in bundle) == 3


@pytest.mark.parametrize("cache", [False, True])
def test_one_build_reads_the_lock_once(enriched: Path, monkeypatch: pytest.MonkeyPatch, cache: bool) -> None:
    """Validation (TI150, TI151) and the bundle share one read of the lock, with the build cache or without."""
    from tiops.enrich import lock
    from tiops.pipeline import ValidationFailed

    reads: list[Path] = []
    real_read = lock.read_lock

    def counting_read(intel_path: Path, root: Path, source: Any = None) -> Any:
        reads.append(intel_path)
        return real_read(intel_path, root, source)

    monkeypatch.setattr(lock, "read_lock", counting_read)
    lock._CACHE.clear()  # as in a fresh process
    first = build(enriched, cache=cache).bundle
    assert len(reads) == 1
    assert ENRICHMENT_EXTENSION_ID in _objects(first)
    # A changed shard is read again (and a damaged one still stops the build: TI150).
    shard = next((enriched / "intel" / ".enrichment" / "whois").glob("*.json"))
    shard.write_bytes(shard.read_bytes().replace(b'"status":"found"', b'"status":"lost"', 1))
    with pytest.raises(ValidationFailed, match="validation found 1 error"):
        build(enriched, cache=cache)
    assert len(reads) == 2


def test_a_rule_that_changes_what_enrichment_is_found_from_leaves_no_stale_result(enriched: Path) -> None:
    """Rules see the enrichment of an object as it comes in; the bundle carries that of the object
    as it leaves them: a new pattern's values, and age_days from the new valid_from."""
    phish = "indicator--00000000-0000-4000-8000-000000000002"
    google = "indicator--00000000-0000-4000-8000-000000000000"
    _rules(enriched, """- name: Repattern
  order: 1
  object_types: [indicator]
  when: {field: enrichment.country_code, op: equals, value: US}
  actions:
    - {set: {pattern: "[ipv4-addr:value = '10.9.9.9']"}}
- name: Earlier
  order: 2
  object_types: [indicator]
  when: {field: whois.age_days, op: "<", value: 30}
  actions:
    - {set: {valid_from: "2025-03-24T00:00:00Z"}}
""")
    for flags in ([], ["--no-cache"]):
        result = CliRunner().invoke(main, ["-C", str(enriched), "compile", "--as-of", "2026-01-01", *flags])
        assert result.exit_code == 0, result.output
        objects = _objects((enriched / "dist" / "bundle.json").read_bytes())
        assert objects[google]["pattern"] == "[ipv4-addr:value = '10.9.9.9']"
        assert ENRICHMENT_EXTENSION_ID not in (objects[google].get("extensions") or {})  # 10.9.9.9: nothing locked
        whois = objects[phish]["extensions"][ENRICHMENT_EXTENSION_ID]["whois"][0]
        assert objects[phish]["valid_from"] == "2025-03-24T00:00:00Z" and whois["age_days"] == 31  # registered 02-20
        explained = CliRunner().invoke(main, ["-C", str(enriched), "explain", google, "--as-of", "2026-01-01"])
        assert "8.8.8.8" not in explained.output.split("enrichment:")[-1]

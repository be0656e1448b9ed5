"""A cold build's lock work done by a forked helper: the same bundle bytes and findings as one process."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tiops import build
from tiops.enrich import beside
from tiops.enrich import lock as lock_module
from tiops.enrich.lock import EnrichmentLock, lock_directory, write_lock
from tiops.forkwork import can_fork
from tiops.pipeline import ValidationFailed

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork, two CPUs and no other thread")

AS_OF = "2025-06-01"
INDICATOR = """- type: indicator
  spec_version: "2.1"
  id: indicator--00000000-0000-4000-8000-{number:012d}
  created: 2025-03-01T00:00:00.000Z
  modified: 2025-03-01T00:00:00.000Z
  pattern: "{pattern}"
  pattern_type: stix
{valid_from}"""
# Every shape the bundle enriches: one value as the lock writes it, one written otherwise, a URL's
# host, several values in one pattern, values the lock has without a result or has not at all,
# registration after valid_from (negative age), no registration moment, and SCOs, which have no
# valid_from or created to count age_days from.
PATTERNS = [
    "[ipv4-addr:value = '8.8.8.8']",
    "[ipv4-addr:value = '10.0.0.1']",
    "[domain-name:value = 'woodgrove.example']",
    "[domain-name:value = 'WoodGrove.Example']",
    "[url:value = 'https://young.example/login']",
    "[domain-name:value = 'young.example' OR ipv4-addr:value = '8.8.4.4']",
    "[ipv6-addr:value = '2001:db8::1']",
    "[domain-name:value = 'unknown.example']",
    "[domain-name:value = 'failed.example']",
    "[domain-name:value = 'undated.example']",
    "[ipv4-addr:value = '198.51.100.0/24']",
]
SCOS = """- {type: ipv4-addr, spec_version: "2.1", id: ipv4-addr--00000000-0000-4000-8000-000000000001, value: 8.8.8.8}
- {type: domain-name, spec_version: "2.1", id: domain-name--00000000-0000-4000-8000-000000000002, value: young.example}
- {type: domain-name, spec_version: "2.1", id: domain-name--00000000-0000-4000-8000-000000000003, value: undated.example}
"""
# Changes no property attaching reads, so the bundle still adds the lock's results itself; the
# objects it tags are copies, not the loaded ones.
RULES = """- name: Tag every indicator
  order: 10
  object_types: [indicator]
  when: {field: confidence, op: exists}
  actions: [{add_tags: [reviewed]}]
- name: Tag the rest
  order: 20
  object_types: [indicator]
  when: {field: confidence, op: not-exists}
  actions: [{add_tags: [unscored]}]
"""


# Reads the lock's results: they are attached before the rules, from the lock read here.
RULES_READING_ENRICHMENT = """- name: Tag young domains
  order: 10
  object_types: [indicator]
  when: {field: whois.age_days, op: "<", value: 30}
  actions: [{add_tags: [newly-registered]}]
"""


def _geo(country: str, asn: int) -> dict[str, Any]:
    return {"status": "found", "country": country, "country_code": country[:2].upper(), "asn": asn,
            "as_organization": f"AS {asn} \"quoted\", with commas"}


def _whois(registered: str | None, **more: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"status": "found", "retrieved": "2025-05-01T00:00:00Z", "server": "https://rdap.example/",
                              "registrar": "Example Registrar", "rdap_status": ["active"], **more}
    if registered is not None:
        result["registered"] = registered
    return result


def _lock(padding: int) -> EnrichmentLock:
    lock = EnrichmentLock()
    lock.geo.update({
        "8.8.8.8": _geo("United States", 15169),
        "8.8.4.4": _geo("United States", 15169),
        "10.0.0.1": {"status": "private"},
        "2001:db8::1": {"status": "not-found"},
        "198.51.100.0/24": _geo("Documentation", 64496),
    })
    lock.whois.update({
        "8.8.8.8": _whois(None, network_name="GOGL", abuse_email="network-abuse@google.com"),
        "woodgrove.example": _whois("2020-02-29T12:00:00Z", registrant_country="AU"),
        "young.example": _whois("2025-03-20T23:59:59Z"),  # after valid_from: a negative age
        "undated.example": _whois(None),
        "unknown.example": {"status": "not-found", "retrieved": "2025-05-01T00:00:00Z"},
        "failed.example": {"status": "failed", "retrieved": "2025-05-01T00:00:00Z"},
    })
    # Values no object names, so the lock is as large as the caller wants.
    lock.whois.update({f"pad-{number}.example": _whois("2019-01-01T00:00:00Z") for number in range(padding)})
    return lock


def _repo(root: Path, *, padding: int = 50, rules: str = RULES) -> Path:
    (root / "intel" / "indicators").mkdir(parents=True)
    (root / "rules" / "ingestion").mkdir(parents=True)
    (root / "rules" / "ingestion" / "tags.yaml").write_text(rules, encoding="utf-8")
    text = "".join(INDICATOR.format(number=number, pattern=pattern,
                                    valid_from="  valid_from: 2025-03-04T00:00:00Z\n")
                   for number, pattern in enumerate(PATTERNS))
    (root / "intel" / "indicators" / "all.yaml").write_text(text, encoding="utf-8")
    (root / "intel" / "observables.yaml").write_text(SCOS, encoding="utf-8")
    write_lock(root / "intel", _lock(padding))
    return root


@pytest.fixture
def helper_used(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Helpers forked for any lock, whatever its size; the list counts extensions built from their results."""
    monkeypatch.setattr(beside, "LOCK_BYTES_TO_FORK", 0)
    built: list[int] = []
    extension = beside.PreparedEnrichment.extension

    def counted(self: beside.PreparedEnrichment, data: dict[str, Any], plan: Any) -> Any:
        built.append(1)
        return extension(self, data, plan)

    monkeypatch.setattr(beside.PreparedEnrichment, "extension", counted)
    yield built


def _built(root: Path, monkeypatch: pytest.MonkeyPatch, fork: str, *, cache: bool = False) -> tuple[bytes, list[Any]]:
    monkeypatch.setenv("TIOPS_LOAD_FORK", fork)
    result = build(root, as_of=AS_OF, cache=cache)
    return result.bundle, result.findings


@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "first-build"])
def test_the_helper_gives_the_bundle_one_process_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       helper_used: list[int], cache: bool) -> None:
    alone = _built(_repo(tmp_path / "alone"), monkeypatch, "0", cache=cache)
    assert not helper_used
    helped = _built(_repo(tmp_path / "helped"), monkeypatch, "1", cache=cache)
    # Every enriched object (eight indicators, two SCOs) took its extension from the helper's pieces.
    assert len(helper_used) == 10
    assert helped == alone
    assert b'"age_days":-17' in alone[0] and b'"age_days":1829' in alone[0]  # both signs of age
    assert b'"value":"undated.example"' in alone[0]
    assert alone[0].count(b'"reviewed"') + alone[0].count(b'"unscored"') == len(PATTERNS)  # the rules ran


def test_an_age_at_a_day_boundary_past_the_microsecond_is_the_one_process_age(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helper_used: list[int]) -> None:
    # Registered a tenth of a microsecond after midnight (a server writing nanoseconds), 30 days
    # before valid_from: 29 whole days. The helper counts in microseconds, which are 30 days exactly:
    # the digits past them decide, as tiops.enrich.attach.days_between does.
    import json

    starts = ["2025-03-04T00:00:00Z", "2025-03-04T00:00:00.00000005Z", "2025-03-04T00:00:00.0000001Z",
              "2025-03-04T00:00:00.5Z"]

    def repo(name: str) -> Path:
        root = _repo(tmp_path / name)
        lock = lock_module.read_lock(root / "intel", root)[0]
        lock.whois["nano.example"] = _whois("2025-02-02T00:00:00.0000001Z")
        lock.whois["half.example"] = _whois("2025-02-02T00:00:00.5Z")
        write_lock(root / "intel", lock)
        text = "".join(INDICATOR.format(number=100 + number, pattern=f"[domain-name:value = '{value}.example']",
                                        valid_from=f"  valid_from: {start}\n")
                       for number, (value, start) in enumerate((v, s) for v in ("nano", "half") for s in starts))
        (root / "intel" / "indicators" / "boundary.yaml").write_text(text, encoding="utf-8")
        return root

    alone = _built(repo("alone"), monkeypatch, "0")
    helped = _built(repo("helped"), monkeypatch, "1")
    assert helper_used
    ages = {obj["id"][-3:]: obj["extensions"][next(iter(obj["extensions"]))]["whois"][0]["age_days"]
            for obj in json.loads(alone[0])["objects"] if obj["id"].startswith("indicator--") and obj["id"][-3:] >= "100"}
    assert ages == {"100": 29, "101": 29, "102": 30, "103": 30, "104": 29, "105": 29, "106": 29, "107": 30}
    assert helped == alone


def test_rules_that_read_the_results_get_them_from_the_lock_as_ever(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    helper_used: list[int]) -> None:
    alone = _built(_repo(tmp_path / "alone", rules=RULES_READING_ENRICHMENT), monkeypatch, "0")
    helped = _built(_repo(tmp_path / "helped", rules=RULES_READING_ENRICHMENT), monkeypatch, "1")
    assert helped == alone
    assert not helper_used  # the helper's check is used, its pieces are not
    assert alone[0].count(b"newly-registered") == 2  # young.example, by URL and by name


def test_the_helper_reports_the_lock_findings_one_process_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  helper_used: list[int]) -> None:
    def damaged(name: str) -> Path:
        root = _repo(tmp_path / name)
        shard = next((lock_directory(root / "intel") / "whois").glob("*.json"))
        shard.write_bytes(shard.read_bytes().replace(b'"status":"found"', b'"status": "found"', 1))  # TI151
        return root

    alone = _built(damaged("alone"), monkeypatch, "0")
    helped = _built(damaged("helped"), monkeypatch, "1")
    assert [f.code for f in alone[1]] == ["TI151"]
    assert helped == alone and helper_used

    def broken(name: str) -> Path:
        root = _repo(tmp_path / name)
        shard = next((lock_directory(root / "intel") / "geo").glob("*.json"))
        shard.write_bytes(b"{not json")  # TI150: an error, nothing compiled
        return root

    failures = []
    for name, fork in (("broken-alone", "0"), ("broken-helped", "1")):
        monkeypatch.setenv("TIOPS_LOAD_FORK", fork)
        with pytest.raises(ValidationFailed) as failed:
            build(broken(name), as_of=AS_OF)
        failures.append(failed.value.findings)
    assert [f.code for f in failures[0]] == ["TI150"] and failures[1] == failures[0]


def test_a_first_build_keeps_the_check_for_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    helper_used: list[int]) -> None:
    root = _repo(tmp_path / "repo")
    shard = next((lock_directory(root / "intel") / "whois").glob("*.json"))
    shard.write_bytes(shard.read_bytes().replace(b'"status":"found"', b'"status": "found"', 1))
    first = _built(root, monkeypatch, "1", cache=True)
    assert helper_used and [f.code for f in first[1]] == ["TI151"]
    # A new process: nothing of this one's reads of the lock.
    monkeypatch.setattr(lock_module, "_CACHE", {})
    kept: list[Any] = []
    kept_findings = lock_module._kept_findings
    monkeypatch.setattr(lock_module, "_kept_findings", lambda digest: kept.append(kept_findings(digest)) or kept[-1])
    (root / "intel" / "indicators" / "extra.yaml").write_text(
        INDICATOR.format(number=99, pattern="[ipv4-addr:value = '192.0.2.1']",
                         valid_from="  valid_from: 2025-03-04T00:00:00Z\n"), encoding="utf-8")
    warm = build(root, as_of=AS_OF, cache=True)
    # The warm build took the lock's findings from the record the helped first build kept.
    assert [f.code for f in warm.findings] == ["TI151"]
    assert [[f.code for f in findings] for findings in kept] == [["TI151"]]


def _helper_returning(monkeypatch: pytest.MonkeyPatch, change: Callable[[tuple[Any, ...]], Any]) -> None:
    prepared = beside._prepared
    monkeypatch.setattr(beside, "_prepared", lambda intel_path, root: change(prepared(intel_path, root)))


def _stale(result: tuple[Any, ...]) -> tuple[Any, ...]:
    signature = tuple((path, size + 1, mtime) for path, size, mtime in result[0])
    return (signature, *result[1:])


def _fails(result: tuple[Any, ...]) -> tuple[Any, ...]:
    raise RuntimeError("the helper failed")


def _dies(result: tuple[Any, ...]) -> tuple[Any, ...]:
    os._exit(9)


def _unmarshallable(result: tuple[Any, ...]) -> Any:
    return object()


@pytest.mark.parametrize("change", [_stale, _fails, _dies, _unmarshallable],
                         ids=["lock-changed-since", "raises", "killed", "not-marshallable"])
def test_what_the_helper_cannot_give_is_done_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  helper_used: list[int], change: Any) -> None:
    alone = _built(_repo(tmp_path / "alone"), monkeypatch, "0")
    _helper_returning(monkeypatch, change)
    helped = _built(_repo(tmp_path / "helped"), monkeypatch, "1")
    assert helped == alone and not helper_used


def test_a_small_lock_is_read_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forked: list[int] = []
    monkeypatch.setattr(beside, "run_beside", lambda work: forked.append(1))
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    build(_repo(tmp_path / "small"), as_of=AS_OF)
    assert forked == []
    build(_repo(tmp_path / "large", padding=10000), as_of=AS_OF)
    assert forked == [1]

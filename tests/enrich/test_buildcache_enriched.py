"""The build cache with what it does not key entries by: ingestion rules that change objects and the enrichment lock.

An entry holds what loading and checking one file gave; rules and locked enrichment act
after it, over the whole repository, on every build. These tests prove that a cached build
still gives the same findings and bytes as an uncached one when only those change.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rdap_server import RdapServer

from enrich.helpers import write_repo
from tiops.buildcache import entries, load_repo_cached
from tiops.cli import main
from tiops.enrich.attach import ENRICHMENT_EXTENSION_ID
from tiops.enrich.lock import read_lock, write_lock
from tiops.findings import Finding
from tiops.pipeline import ValidationFailed, build
from tiops.validate import validate_paths

OLD = 1_500_000_000  # a modification time well before any index written here (files are not racily clean)
GOOGLE = "indicator--00000000-0000-4000-8000-000000000000"
RULES = """- name: Tag by country
  order: 10
  when: {{field: enrichment.country_code, op: in, value: [US, AU]}}
  actions:
    - {{add_tags: [{tag}]}}
- name: Raise confidence of young domains
  order: 20
  object_types: [indicator]
  when: {{field: whois.age_days, op: "<", value: 30}}
  actions:
    - {{set: {{confidence: 90}}}}
"""


def _age(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file() and ".tiops" not in path.parts:
            os.utime(path, ns=(OLD * 10**9, OLD * 10**9))


def _outcome(root: Path, *, cache: bool, as_of: str = "2025-06-01") -> tuple[bytes | None, list[Finding]]:
    try:
        result = build(root, as_of=as_of, cache=cache)
    except ValidationFailed as failed:
        return None, failed.findings
    return result.bundle, result.findings


def _agree(root: Path, what: str, as_of: str = "2025-06-01") -> bytes | None:
    _age(root)
    uncached = _outcome(root, cache=False, as_of=as_of)
    assert _outcome(root, cache=True, as_of=as_of) == uncached, what
    assert _outcome(root, cache=True, as_of=as_of) == uncached, f"{what}, second cached run"
    named = [root / "intel" / "indicators" / "google.yaml"]
    assert validate_paths(root, named, cache=True) == validate_paths(root, named, cache=False), f"{what}, validate FILE"
    return uncached[0]


def _google(bundle: bytes | None) -> dict[str, Any]:
    assert bundle is not None
    return next(o for o in json.loads(bundle)["objects"] if o["id"] == GOOGLE)


def _write_rules(root: Path, tag: str) -> None:
    (root / "rules" / "ingestion").mkdir(parents=True, exist_ok=True)
    (root / "rules" / "ingestion" / "enriched.yaml").write_text(RULES.format(tag=tag), encoding="utf-8")


@pytest.fixture
def enriched(tmp_path: Path, rdap_server: RdapServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The build cache is bound to the tiops files themselves, their sizes and modification times
    # (tiops.installed.package_fingerprint, part of tiops.buildcache.context_key). A tiops file edited
    # while a test runs (they run from a working tree) makes every cache file foreign from then on, and
    # the next build a cold one: the same bytes, but not the reuse these tests count. So the cache is
    # bound to the files as they are when the test starts.
    fingerprint = entries.package_fingerprint()
    monkeypatch.setattr(entries, "package_fingerprint", lambda: fingerprint)
    root = write_repo(tmp_path / "repo", rdap_server.url)
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    _write_rules(root, "geo-checked")
    return root


def test_rule_and_lock_changes_give_the_same_build_cached_or_not(enriched: Path) -> None:
    bundle = _agree(enriched, "first build")
    google = _google(bundle)
    assert "geo-checked" in google["labels"] and ENRICHMENT_EXTENSION_ID in google["extensions"]

    _write_rules(enriched, "country-known")  # rules that change objects, changed: no entry is stale
    assert "country-known" in _google(_agree(enriched, "rules changed"))["labels"]
    loaded = load_repo_cached(enriched)
    assert loaded.parsed_files == 0  # rules are not part of any entry: every file came from the cache

    lock, findings = read_lock(enriched / "intel", enriched)
    assert findings == []
    lock.geo["8.8.8.8"] = {**lock.geo["8.8.8.8"], "country_code": "FR", "country": "France"}
    write_lock(enriched / "intel", lock)  # the lock changed: enrichment and the rules reading it follow
    google = _google(_agree(enriched, "lock changed"))
    assert google["extensions"][ENRICHMENT_EXTENSION_ID]["enrichment"][0]["country_code"] == "FR"
    assert "labels" not in google or "country-known" not in google["labels"]

    shutil.rmtree(enriched / "intel" / ".enrichment")  # no lock at all
    assert "extensions" not in _google(_agree(enriched, "lock removed"))

    assert CliRunner().invoke(main, ["-C", str(enriched), "enrich"]).exit_code == 0  # and back
    assert ENRICHMENT_EXTENSION_ID in _google(_agree(enriched, "lock written again"))["extensions"]
    _agree(enriched, "another as-of time", as_of="2030-01-01")


def test_defaults_edits_and_deleted_files_give_the_same_build_cached_or_not(enriched: Path) -> None:
    _agree(enriched, "first build")
    defaults = enriched / "intel" / "indicators" / "_defaults.yaml"
    defaults.write_text("defaults:\n  confidence: 40\n", encoding="utf-8")
    assert _google(_agree(enriched, "defaults added"))["confidence"] in (40, 90)  # the rule may raise it
    defaults.write_text("defaults:\n  confidence: 70\n  labels: [from-defaults]\n", encoding="utf-8")
    assert "from-defaults" in _google(_agree(enriched, "defaults changed"))["labels"]
    (enriched / "intel" / "indicators" / "phish.yaml").unlink()
    bundle = _agree(enriched, "file deleted")
    assert bundle is not None and b"indicator--00000000-0000-4000-8000-000000000002" not in bundle
    defaults.unlink()
    assert "from-defaults" not in _google(_agree(enriched, "defaults removed")).get("labels", [])


def _compiled(root: Path, output: Path, *, cache: bool) -> tuple[bytes | None, list[Finding]]:
    from tiops.enrich import lock

    lock._CACHE.clear()  # as in a fresh process: what the build cache keeps, not this process
    try:
        result = build(root, as_of="2025-06-01", cache=cache, output=output)
    except ValidationFailed as failed:
        return None, failed.findings
    return output.read_bytes(), result.findings


class _Spy:
    """Counts parses of the lock and bundles written from the previous bundle's lines."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from tiops import pipeline
        from tiops.enrich import lock

        self.parses = self.spliced = 0
        real_read, real_write = lock.read_lock, pipeline.write_line_runs

        def read(*args: Any) -> Any:
            self.parses += 1
            return real_read(*args)

        def write(*args: Any, **kwargs: Any) -> Any:
            self.spliced += 1
            return real_write(*args, **kwargs)

        monkeypatch.setattr(lock, "read_lock", read)
        monkeypatch.setattr(pipeline, "write_line_runs", write)

    def counted(self) -> tuple[int, int]:
        counts = self.parses, self.spliced
        self.parses = self.spliced = 0
        return counts


def _agree_to_file(root: Path, tmp_path: Path, what: str) -> tuple[bytes | None, list[Finding]]:
    _age(root)
    uncached = _compiled(root, tmp_path / "uncached.json", cache=False)
    assert _compiled(root, tmp_path / "bundle.json", cache=True) == uncached, what
    return uncached


def test_a_warm_compile_with_a_lock_reuses_the_previous_bundle(enriched: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """With the lock unchanged, a warm compile splices the previous bundle's lines and neither parses
    nor checks the lock again; objects of changed files take the lock's results; a changed lock
    means a full compile. Every bundle is the uncached one."""
    (enriched / "rules" / "ingestion" / "enriched.yaml").unlink()  # enabled rules compile every object
    spy = _Spy(monkeypatch)
    bundle, _ = _agree_to_file(enriched, tmp_path, "first build")
    assert spy.counted() == (2, 0)  # the uncached build and the first cached one parse the lock
    assert ENRICHMENT_EXTENSION_ID in _google(bundle)["extensions"]
    assert _agree_to_file(enriched, tmp_path, "nothing changed")[0] == bundle
    assert spy.counted() == (1, 1)  # only the uncached build parsed it

    # A changed file's objects take the lock's results: the only one with a geo result loses it, then gets it back.
    google = enriched / "intel" / "indicators" / "google.yaml"
    google.write_text(google.read_text(encoding="utf-8").replace("8.8.8.8", "10.0.0.1"), encoding="utf-8")
    assert "extensions" not in _google(_agree_to_file(enriched, tmp_path, "one file edited")[0])
    assert spy.counted() == (2, 1)  # the uncached build, and the cached one for the changed file's objects
    google.write_text(google.read_text(encoding="utf-8").replace("10.0.0.1", "8.8.8.8"), encoding="utf-8")
    assert _agree_to_file(enriched, tmp_path, "edited back")[0] == bundle
    assert spy.counted() == (2, 1)

    # Only files with no result left: the bundle drops the extension's definition, and takes it again.
    kept = {path: path.read_bytes() for path in (enriched / "intel" / "indicators").glob("*.yaml")}
    for path in kept:
        if path.stem not in ("google", "private", "unknown"):
            path.unlink()
    google.write_text(google.read_text(encoding="utf-8").replace("8.8.8.8", "10.0.0.2"), encoding="utf-8")
    unenriched = _agree_to_file(enriched, tmp_path, "nothing enriched")[0]
    assert unenriched is not None and ENRICHMENT_EXTENSION_ID.encode() not in unenriched
    for path, content in kept.items():
        path.write_bytes(content)
    assert _agree_to_file(enriched, tmp_path, "files back")[0] == bundle
    assert spy.counted()[1] == 2

    # A changed lock: a full compile, then lines reused again under the new lock.
    lock, _ = read_lock(enriched / "intel", enriched)
    lock.geo["8.8.8.8"] = {**lock.geo["8.8.8.8"], "country_code": "FR", "country": "France"}
    write_lock(enriched / "intel", lock)
    spy.counted()
    relocked = _agree_to_file(enriched, tmp_path, "lock changed")[0]
    assert _google(relocked)["extensions"][ENRICHMENT_EXTENSION_ID]["enrichment"][0]["country_code"] == "FR"
    assert spy.counted() == (2, 0)
    assert _agree_to_file(enriched, tmp_path, "lock changed, again")[0] == relocked
    assert spy.counted() == (1, 1)


def test_a_cached_build_keeps_the_lock_findings_and_checks_a_changed_lock_again(
        enriched: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tiops.buildcache import CACHE_DIR
    from tiops.enrich.lock import CHECK_RECORD

    (enriched / "rules" / "ingestion" / "enriched.yaml").unlink()  # enabled rules need the lock's results
    spy = _Spy(monkeypatch)
    shard = next((enriched / "intel" / ".enrichment" / "whois").glob("*.json"))
    canonical = shard.read_bytes()
    shard.write_bytes(canonical.replace(b"{\n", b"{\n\n", 1))  # valid, not canonical: TI151, kept by the cache
    bundle, findings = _agree_to_file(enriched, tmp_path, "not canonical")
    assert bundle is not None and [f.code for f in findings] == ["TI151"]
    spy.counted()
    assert _compiled(enriched, tmp_path / "bundle.json", cache=True) == (bundle, findings)
    assert spy.counted() == (0, 1)  # the finding came from the cache, the lock was not parsed

    # A damaged record is ignored: the lock is checked again, with the same findings.
    record = enriched / CACHE_DIR / CHECK_RECORD
    record.write_bytes(record.read_bytes()[:-3] + b"xyz")
    assert _compiled(enriched, tmp_path / "bundle.json", cache=True) == (bundle, findings)
    assert spy.counted()[0] == 1

    # A damaged shard is found by the cached build too (its bytes differ from the checked ones).
    shard.write_bytes(canonical.replace(b'"status":"found"', b'"status":"lost"', 1))
    broken = _agree_to_file(enriched, tmp_path, "damaged shard")
    assert broken[0] is None and [f.code for f in broken[1]] == ["TI150"]
    shard.write_bytes(canonical)
    assert _agree_to_file(enriched, tmp_path, "repaired")[1] == []

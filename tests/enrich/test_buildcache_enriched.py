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
from tiops.buildcache import load_repo_cached
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
def enriched(tmp_path: Path, rdap_server: RdapServer) -> Path:
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

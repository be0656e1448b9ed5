"""tiops query reads the locked enrichment with the ingestion rules' names and meaning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from enrich.helpers import write_repo
from rdap_server import RdapServer, start_rdap_server

from tiops.cli import main

GOOGLE, PRIVATE, PHISH, URL, UNKNOWN = (f"indicator--00000000-0000-4000-8000-{n:012d}" for n in range(5))


@pytest.fixture(scope="module")
def rdap() -> Iterator[RdapServer]:
    server = start_rdap_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def enriched(tmp_path: Path, rdap: RdapServer) -> Path:
    """A repository whose lock `tiops enrich` wrote (offline geo database, RDAP from a local server)."""
    root = write_repo(tmp_path / "repo", rdap.url)
    result = CliRunner().invoke(main, ["-C", str(root), "enrich"])
    assert result.exit_code == 0, result.output
    return root


def query(root: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["-C", str(root), "query", *args])


def ids(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.stdout.split()


@pytest.mark.parametrize("compiled", [False, True], ids=["in-memory compile", "kept view of dist/bundle.json"])
def test_enrichment_and_whois_fields_select_objects(enriched: Path, compiled: bool) -> None:
    if compiled:
        assert CliRunner().invoke(main, ["-C", str(enriched), "compile"]).exit_code == 0
    assert ids(query(enriched, "enrichment.country_code = US", "--format", "ids")) == [GOOGLE]
    assert ids(query(enriched, "enrichment.as_organization = 'google llc'", "--format", "ids")) == [GOOGLE]
    assert ids(query(enriched, "enrichment exists", "--format", "ids")) == [GOOGLE]
    assert ids(query(enriched, "enrichment.asn = 15169", "--format", "ids")) == [GOOGLE]
    # The phishing domain was registered days before valid_from; the statements domain in 2019.
    assert ids(query(enriched, "whois.age_days < 30", "--format", "ids")) == [PHISH]
    assert ids(query(enriched, "whois.registered < 2020-01-01", "--format", "ids")) == [URL]
    assert ids(query(enriched, "whois.registered >= 2020-01-01", "--format", "ids")) == [GOOGLE, PHISH]
    assert ids(query(enriched, "type = indicator and whois not-exists and enrichment not-exists", "--format", "ids")) == [PRIVATE, UNKNOWN]
    ages = ids(query(enriched, "whois.age_days exists", "--sort", "whois.age_days:desc", "--format", "ids"))
    assert ages[-1] == PHISH and ages.index(URL) < ages.index(PHISH)


def test_group_by_an_enrichment_field_counts_each_object_once(enriched: Path) -> None:
    result = query(enriched, "--group-by", "enrichment.country_code", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"value": "US", "count": 1}]
    result = query(enriched, "--group-by", "whois.registrar", "--format", "json")
    assert result.exit_code == 0, result.output
    counted = json.loads(result.stdout)
    assert sum(item["count"] for item in counted) == 2 and all(item["value"] for item in counted)


def test_query_and_rules_agree_on_what_a_field_means(enriched: Path) -> None:
    """The same condition, as a rule that tags and as a query, finds the same objects."""
    conditions = ["whois.age_days < 30", "enrichment.country_code in [US, AU]", "whois.registrar exists",
                  "type = indicator and not enrichment.as_organization exists"]
    rules = "".join(
        f"- name: rule {n}\n  order: {n + 1}\n  when: {json.dumps(_tree(text))}\n"
        f"  actions: [{{add_tags: [hit-{n}]}}]\n" for n, text in enumerate(conditions))
    (enriched / "rules" / "ingestion").mkdir(parents=True)
    (enriched / "rules" / "ingestion" / "same.yaml").write_text(rules, encoding="utf-8")
    for n, text in enumerate(conditions):
        by_rule = ids(query(enriched, f"tags = hit-{n}", "--format", "ids"))
        assert by_rule == ids(query(enriched, text, "--format", "ids")), text
        assert by_rule  # every condition finds something, so agreement means something


def _tree(text: str) -> object:
    from tiops.where import QUERY_FIELDS, parse_where

    return parse_where(text, QUERY_FIELDS)


def test_a_misspelt_enrichment_field_names_the_nearest(enriched: Path) -> None:
    result = query(enriched, "enrichment.contry = US")
    assert result.exit_code == 2
    assert "unknown field 'enrichment.contry'" in result.output and "'enrichment.country'" in result.output
    result = query(enriched, "whois.age_days < young")
    assert result.exit_code == 2 and "whois.age_days is a number" in result.output

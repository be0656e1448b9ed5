from __future__ import annotations

from pathlib import Path

import pytest

from tiops import load_repo
from tiops.errors import UsageError
from tiops.rules.conditions import matches
from tiops.tagging import tag_objects
from tiops.where import parse_where


def test_where_parses_into_the_rule_condition_tree() -> None:
    assert parse_where('type = indicator and source = "Abuse feed" and confidence >= 80') == {"all": [
        {"field": "type", "op": "equals", "value": "indicator"},
        {"field": "source", "op": "equals", "value": "Abuse feed"},
        {"field": "confidence", "op": ">=", "value": 80},
    ]}
    assert parse_where("not (tags in [a, 'b c'] or tlp = amber) and name exists") == {"all": [
        {"not": {"any": [{"field": "tags", "op": "in", "value": ["a", "b c"]},
                         {"field": "tlp", "op": "equals", "value": "amber"}]}},
        {"field": "name", "op": "exists"},
    ]}
    for bad in ("type =", "type ~ x", "(type = x", "type in x"):
        with pytest.raises(UsageError):
            parse_where(bad)


def test_tag_add_and_remove_touch_only_matching_objects(example_repo: Path) -> None:
    condition = parse_where("type = indicator and confidence >= 80")
    expected = {o.id for o in load_repo(example_repo).objects if matches(condition, o)}
    assert expected
    before = {p: p.read_text() for p in (example_repo / "intel").rglob("*.yaml")}
    changes = tag_objects(example_repo, "add", ["reviewed"], condition=condition)
    assert {c.stix_id for c in changes} == expected
    changed_files = {p for p, text in before.items() if p.read_text() != text}
    assert {p.relative_to(example_repo).as_posix() for p in changed_files} == {c.file for c in changes}
    by_id = load_repo(example_repo).by_id()
    assert all("reviewed" in by_id[i].data["labels"] for i in expected)
    assert all(by_id[i].data["created"] == o.data["created"] for i, o in load_repo(example_repo).by_id().items())
    assert tag_objects(example_repo, "add", ["reviewed"], condition=condition) == []  # idempotent
    removed = tag_objects(example_repo, "remove", ["reviewed"], ids=sorted(expected)[:1])
    assert len(removed) == 1 and "reviewed" not in removed[0].after


@pytest.mark.parametrize("where,message", [
    ("typ = indicator", "did you mean 'type'"),
    ("confidence >= high", "confidence is a number"),
    ("revoked = maybe", "true or false"),
    ("tlp = orange", "not a TLP level"),
])
def test_tag_where_typos_exit_2_and_change_nothing(example_repo: Path, where: str, message: str) -> None:
    from click.testing import CliRunner

    from tiops.cli import main

    before = {p: p.read_text() for p in (example_repo / "intel").rglob("*.yaml")}
    result = CliRunner().invoke(main, ["-C", str(example_repo), "tag", "add", "x", "--where", where])
    assert result.exit_code == 2 and message in result.stderr
    assert {p: p.read_text() for p in (example_repo / "intel").rglob("*.yaml")} == before


def test_where_accepts_custom_and_seen_properties_and_completes_dates() -> None:
    assert parse_where("x_mitre_deprecated = true")["value"] is True
    assert parse_where("valid_until < 2025-06-01")["value"] == "2025-06-01T00:00:00Z"
    with pytest.raises(UsageError):
        parse_where("partner_score > 3")
    assert parse_where("partner_score > 3", seen=["partner_score"])["value"] == 3


def test_nesting_has_the_rules_limit_and_a_clear_error() -> None:
    from tiops.rules.conditions import MAX_DEPTH

    deep = "(" * MAX_DEPTH + "confidence > 1" + ")" * MAX_DEPTH
    assert parse_where(deep) == {"field": "confidence", "op": ">", "value": 1}
    assert parse_where("not " * MAX_DEPTH + "confidence > 1") is not None
    with pytest.raises(UsageError, match="nest at most"):
        parse_where("(" * 5000 + "confidence > 1" + ")" * 5000)  # was a RecursionError, an internal error
    with pytest.raises(UsageError, match="nest at most"):
        parse_where("not " * 5000 + "confidence > 1")
    wide = " or ".join(["(confidence > 1 and not (type = indicator))"] * 500)  # wide, not deep
    assert len(parse_where(wide)["any"]) == 500


def test_a_number_longer_than_any_stix_number_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="longer than any STIX number"):
        parse_where("confidence > " + "9" * 5000)  # int() of it raised past 4,300 digits
    assert parse_where("confidence > 99999999999999999999") == {"field": "confidence", "op": ">",
                                                               "value": 99999999999999999999}


@pytest.mark.parametrize("where", ["enrichment = US", "enrichment contains US", "whois > 3"])
def test_enrichment_or_whois_alone_is_tested_only_for_presence(where: str) -> None:
    from tiops.where import QUERY_FIELDS

    # The values are lists of results: such a test validated and never matched.
    with pytest.raises(UsageError, match="alone is tested with exists or not-exists"):
        parse_where(where, QUERY_FIELDS)
    assert parse_where(f"{where.split()[0]} exists", QUERY_FIELDS)["op"] == "exists"

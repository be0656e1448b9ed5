"""Ingestion rules: parsing findings, operators, actions, order, drops, explain, tests, compile."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tiops import build
from tiops.cli import main
from tiops.config import Config
from tiops.load import IntelObject
from tiops.rules import load_rules
from tiops.rules.conditions import compile_condition
from tiops.rules.engine import apply_rules
from tiops.rules.model import parse_rule_file

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)
IND: dict[str, Any] = {"type": "indicator", "id": "indicator--00000000-0000-4000-8000-000000000001", "confidence": 85,
       "labels": ["c2", "feed"], "valid_from": "2025-03-04T10:00:00Z", "valid_until": "2025-06-01T00:00:00.000Z",
       "modified": "2025-01-01T00:00:00.000Z", "name": "Copper C2",
       "external_references": [{"source_name": "contoso", "url": "https://example.com/a"}],
       "object_marking_refs": ["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"]}


def obj(data: dict[str, Any] | None = None, source: str | None = "Contoso TI", file: str = "intel/feeds/a.yaml") -> IntelObject:
    return IntelObject(data=dict(data or IND), file=file, source=source)


def rules(text: str, file: str = "rules/ingestion/a.yaml") -> Any:
    parsed, findings = parse_rule_file(text, file)
    assert findings == [], findings
    from tiops.rules.model import RuleSet
    return RuleSet(tuple(sorted(parsed, key=lambda r: r.sort_key)), "x")


@pytest.mark.parametrize(("condition", "expected"), [
    ({"field": "source", "op": "equals", "value": "contoso ti"}, True),
    ({"field": "source", "op": "not-equals", "value": "Contoso TI"}, False),
    ({"field": "confidence", "op": "in", "value": [85, 90]}, True),
    ({"field": "confidence", "op": "not-in", "value": [85]}, False),
    ({"field": "tags", "op": "contains", "value": "c2"}, True),
    ({"field": "name", "op": "contains", "value": "per c"}, True),
    ({"field": "name", "op": "starts-with", "value": "copper"}, True),
    ({"field": "name", "op": "ends-with", "value": "C3"}, False),
    ({"field": "name", "op": "matches", "value": "^Cop+er"}, True),
    ({"field": "confidence", "op": ">", "value": 85}, False),
    ({"field": "confidence", "op": ">=", "value": 85}, True),
    ({"field": "confidence", "op": "<", "value": 86}, True),
    ({"field": "confidence", "op": "<=", "value": 84}, False),
    ({"field": "valid_from", "op": ">", "value": "2025-03-04T09:59:59.999Z"}, True),
    ({"field": "revoked", "op": "exists"}, False),
    ({"field": "revoked", "op": "not-exists"}, True),
    ({"field": "modified", "op": "older-than", "value": "30d"}, True),
    ({"field": "modified", "op": "newer-than", "value": "30d"}, False),
    ({"field": "valid_until", "op": "newer-than", "value": "12h"}, True),
    ({"field": "tlp", "op": "equals", "value": "amber"}, True),
    ({"field": "file", "op": "starts-with", "value": "intel/feeds/"}, True),
    ({"field": "external_references.source_name", "op": "equals", "value": "contoso"}, True),
    ({"field": "external_references.0.url", "op": "ends-with", "value": "/a"}, True),
    ({"all": [{"field": "confidence", "op": ">", "value": 50}, {"not": {"field": "source", "op": "equals", "value": "x"}}]}, True),
    ({"any": [{"field": "confidence", "op": "<", "value": 50}, {"field": "tags", "op": "in", "value": ["nope"]}]}, False),
])
def test_every_operator(condition: dict[str, Any], expected: bool) -> None:
    assert compile_condition(condition, AS_OF)(obj()) is expected


def test_actions_order_ties_and_disabled() -> None:
    rule_set = rules("""
- {name: b-later-file-position, order: 5, actions: [{add_tags: [second]}]}
- {name: a-first, order: 1, actions: [{add_tags: [first]}, {remove_tags: [feed]}]}
- {name: off, order: 0, enabled: false, actions: [{drop: true}]}
- name: change
  order: 5
  object_types: [indicator]
  actions: [{extend: valid_until, by: 2w}, {set: {description: checked}}, {set_confidence: 40}, {revoke: true}]
""")
    outcome = apply_rules([obj()], rule_set, AS_OF)
    [result] = outcome.objects
    assert result.data["labels"] == ["c2", "first", "second"]
    assert result.data["valid_until"] == "2025-06-15T00:00:00.000Z"
    assert (result.data["description"], result.data["confidence"], result.data["revoked"]) == ("checked", 40, True)
    assert result.data["modified"] == IND["modified"]  # rules never change modified
    assert [a.rule for a in outcome.applied[IND["id"]]] == ["a-first", "b-later-file-position", "change"]
    assert obj().data["labels"] == ["c2", "feed"]  # the input object is untouched


def test_an_extension_past_the_last_timestamp_stops_there() -> None:
    # valid_until + 2 years past 9999-06-01 overflowed into an internal error; STIX timestamps
    # end with year 9999 (section 3.2), and so does the extension, at the author's precision.
    ruleset = rules("- name: a\n  actions: [{extend: valid_until, by: 730d}]\n")
    far = apply_rules([obj({**IND, "valid_until": "9999-06-01T00:00:00.000Z"}),
                       obj({**IND, "valid_until": "9990-01-01T00:00:00Z"})], ruleset, AS_OF)
    assert [o.data["valid_until"] for o in far.objects] == ["9999-12-31T23:59:59.999Z", "9992-01-01T00:00:00Z"]
    longest = rules("- name: a\n  when: {field: valid_from, op: older-than, value: 3652000d}\n  actions: [{drop: true}]\n"
                    "- name: b\n  when: {field: valid_from, op: newer-than, value: 3652000d}\n"
                    "  actions: [{add_tags: [recent]}]\n")
    kept = apply_rules([obj()], longest, AS_OF).objects  # nothing is older than year 1; 2025 is newer
    assert len(kept) == 1 and "recent" in kept[0].data["labels"]


def test_drop_stops_later_rules_and_cascades_to_relationships() -> None:
    rel = {"type": "relationship", "id": "relationship--00000000-0000-4000-8000-000000000002",
           "source_ref": IND["id"], "target_ref": "malware--00000000-0000-4000-8000-000000000003"}
    other = {"type": "relationship", "id": "relationship--00000000-0000-4000-8000-000000000004",
             "source_ref": "malware--00000000-0000-4000-8000-000000000003", "target_ref": "malware--00000000-0000-4000-8000-000000000005"}
    rule_set = rules("""
- {name: drop, order: 1, object_types: [indicator], actions: [{drop: true}]}
- {name: tag, order: 2, actions: [{add_tags: [seen]}]}
""")
    outcome = apply_rules([obj(), obj(rel), obj(other)], rule_set, AS_OF)
    assert [o.id for o in outcome.objects] == [other["id"]]
    assert (outcome.dropped_by_rules, outcome.dropped_by_cascade) == (1, 1)
    assert [a.rule for a in outcome.applied[IND["id"]]] == ["drop"]
    assert outcome.dropped[rel["id"]] == f"points at dropped {IND['id']}"


@pytest.mark.parametrize(("text", "code", "line", "column"), [
    ("- {name: a, actions: [{drop: true}], whne: {}}\n", "TI501", 1, 38),
    ("- name: a\n  when: {field: colour, op: equals, value: x}\n  actions: [{drop: true}]\n", "TI502", 2, 10),
    ("- name: a\n  when: {field: name, op: like, value: x}\n  actions: [{drop: true}]\n", "TI503", 2, 23),
    ("- name: a\n  actions: [{explode: true}]\n", "TI504", 2, 14),
    ("- name: a\n  when: {field: name, op: matches, value: '(x'}\n  actions: [{drop: true}]\n", "TI505", 2, 36),
    ("- name: a\n  actions: [{extend: valid_until, by: 30days}]\n", "TI506", 2, 35),
    ("- name: a\n  when: {field: modified, op: older-than, value: 3 weeks}\n  actions: [{drop: true}]\n", "TI506", 2, 43),
    # Longer than year 1 to year 9999, the span STIX timestamps hold: never an overflow later.
    ("- name: a\n  actions: [{extend: valid_until, by: 99999999999d}]\n", "TI506", 2, 35),
    ("- name: a\n  when: {field: modified, op: newer-than, value: 9999999999999999999999999w}\n  actions: [{drop: true}]\n",
     "TI506", 2, 43),
    ("- name: a\n  object_types: [malware]\n  when: {field: type, op: equals, value: indicator}\n  actions: [{drop: true}]\n", "TI507", 3, 35),
    ("- name: a\n  object_types: [malware]\n  when: {field: pattern, op: exists}\n  actions: [{drop: true}]\n", "TI507", 3, 10),
    ("- name: a\n  tests: [{input: {type: indicator}}]\n  actions: [{drop: true}]\n", "TI509", 2, 11),
    ("- name: a\n  actions: [{set: {modified: x}}]\n", "TI510", 2, 20),
    ("- name: a\n  object_types: [indicatr]\n  actions: [{drop: true}]\n", "TI512", 2, 18),
    ("name: a\n", "TI500", 1, 1),
    ("- name: a\n  actions: [{set_confidence: 101}]\n", "TI510", 2, 14),
    # YAML integers of any size, and .nan: the rules' digest and tests go through JSON (STIX 2.1 section 2.16).
    ("- name: a\n  order: 1000000000000000000000000000000\n  actions: [{drop: true}]\n", "TI500", 2, 3),
    ("- name: a\n  when: {field: confidence, op: '>', value: .nan}\n  actions: [{drop: true}]\n", "TI500", 2, 38),
])
def test_rule_file_findings(text: str, code: str, line: int, column: int) -> None:
    _, findings = parse_rule_file(text, "rules/ingestion/x.yaml")
    assert [(f.code, f.location.line, f.location.column) for f in findings][:1] == [(code, line, column)]


def test_a_number_json_cannot_hold_is_a_finding_not_an_internal_error(
        make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = make_repo({"rules/ingestion/a.yaml": "- {name: big, order: 99999999999999999999999, actions: [{drop: true}]}\n"})
    rule_set, findings = load_rules(Config(root=root))
    assert rule_set.rules == ()
    assert [(f.code, f.location.line) for f in findings] == [("TI500", 1)]
    assert "99999999999999999999999 is outside the STIX 2.1 integer range" in findings[0].message


def test_duplicate_names_and_validate_reports_rule_findings(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = make_repo({"rules/ingestion/a.yaml": "- {name: same, actions: [{drop: true}]}\n",
                      "rules/ingestion/b.yaml": "- {name: same, actions: [{revoke: true}]}\n"})
    _, findings = load_rules(Config(root=root))
    assert [(f.code, f.location.file) for f in findings] == [("TI508", "rules/ingestion/b.yaml")]
    result = CliRunner().invoke(main, ["-C", str(root), "validate"])
    assert result.exit_code == 1 and "TI508" in result.output


def test_a_rule_file_beside_the_ingestion_folder_is_reported_not_ignored(
        make_repo: Callable[[dict[str, str]], Path]) -> None:
    # A newcomer's rules in rules/ rather than rules/ingestion/ never ran, and nothing said so.
    root = make_repo({"rules/drop-old.yaml": "- {name: old, actions: [{drop: true}]}\n",
                      "rules/relationships.yaml": "[]\n",
                      "rules/ingestion/a.yaml": "- {name: a, actions: [{revoke: true}]}\n",
                      # a folder whose name starts with a dot is not entered (docs/format.md)
                      "rules/ingestion/.retired/b.yaml": "- {name: b, actions: [{drop: true}]}\n",
                      "rules/team/notes.yaml": "x: 1\n"})
    rule_set, findings = load_rules(Config(root=root))
    assert [r.name for r in rule_set.rules] == ["a"]
    assert [(f.code, f.severity.name, f.location.file) for f in findings] == [("TI513", "WARNING", "rules/drop-old.yaml")]
    assert "rules/ingestion/" in findings[0].message
    result = CliRunner().invoke(main, ["-C", str(root), "validate", "--strict"])
    assert result.exit_code == 1 and "TI513" in result.output


def _git(root: Path) -> None:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_AUTHOR_DATE": "2025-06-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2025-06-01T00:00:00Z", "PATH": "/usr/bin:/bin", "HOME": str(root)}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)


def test_example_repository_compiles_deterministically(example_repo: Path) -> None:
    _git(example_repo)
    first, second = build(example_repo, trace=True), build(example_repo)
    assert first.bundle == second.bundle
    assert first.metadata["as_of"] == "2025-06-01T00:00:00.000Z"
    assert first.metadata["dropped"] == {"by_rules": 2, "relationships": 2}
    ids = {o["id"] for o in json.loads(first.bundle)["objects"]}
    assert "indicator--ea3707da-8cef-434c-b3cb-6d3a30a77ffb" not in ids
    assert first.traces is not None and any(t["dropped"] for t in first.traces)
    assert build(example_repo, as_of="2020-01-01").metadata["as_of"] == "2020-01-01T00:00:00.000Z"


ROLLING = "- {name: old, when: {field: modified, op: older-than, value: 30d}, actions: [{drop: true}]}\n"
OLD_MALWARE = "{type: malware, spec_version: '2.1', id: malware--00000000-0000-4000-8000-000000000009, name: m, is_family: true, " \
              "created: '2025-01-01T00:00:00.000Z', modified: '2025-01-01T00:00:00.000Z'}\n"


def test_no_as_of_is_an_error_only_when_needed(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = make_repo({"rules/ingestion/a.yaml": ROLLING, "intel/m.yaml": OLD_MALWARE})
    result = CliRunner().invoke(main, ["-C", str(root), "compile"])
    assert result.exit_code == 1 and "--as-of" in result.output
    assert CliRunner().invoke(main, ["-C", str(root), "compile", "--as-of", "2025-06-01"]).exit_code == 0
    assert json.loads((root / "dist/build.json").read_text())["dropped"]["by_rules"] == 1
    assert build(root, as_of="2025-01-15").metadata["dropped"]["by_rules"] == 0
    (root / "rules/ingestion/a.yaml").write_text("- {name: t, actions: [{add_tags: [x]}]}\n")
    assert build(root).metadata["as_of"] is None


def test_explain_and_rule_tests_cli(example_repo: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["-C", str(example_repo), "explain", "--as-of", "2025-06-01",
                               "indicator--ea3707da-8cef-434c-b3cb-6d3a30a77ffb", "--format", "json"])
    trace = json.loads(out.output)
    assert trace["file"] == "intel/feeds/contoso/contoso-pennythief-c2-2023.yaml" and trace["line"] == 3
    assert [r["rule"] for r in trace["rules"]] == ["Tag partner intel by source", "Drop stale low-confidence partner indicators"]
    assert "intel/feeds/contoso/_defaults.yaml" in trace["defaults_files"]
    tested = runner.invoke(main, ["-C", str(example_repo), "test"])
    assert tested.exit_code == 0 and "10 passed, 0 failed" in tested.output
    path = example_repo / "rules/ingestion/feed-hygiene.yaml"
    path.write_text(path.read_text().replace("valid_until: \"2025-07-01T00:00:00.000Z\"", "valid_until: \"2025-07-02T00:00:00.000Z\""))
    failed = runner.invoke(main, ["-C", str(example_repo), "test"])
    assert failed.exit_code == 1 and "FAIL" in failed.output and "expected '2025-07-02T00:00:00.000Z'" in failed.output


def test_a_field_set_by_an_earlier_rule_is_seen_by_later_rules() -> None:
    # Equality tests are indexed; a field that some rule changes must not be indexed.
    rule_set = rules("""
- {name: team, order: 1, when: {field: source, op: equals, value: CONTOSO ti}, actions: [{set: {x_team: red}}]}
- {name: by-team, order: 2, when: {all: [{field: x_team, op: equals, value: red}]}, actions: [{add_tags: [team-red]}]}
- {name: by-tlp, order: 3, when: {field: tlp, op: in, value: [amber, red]}, actions: [{add_tags: [careful]}]}
- {name: other-source, order: 4, when: {field: source, op: equals, value: Other}, actions: [{drop: true}]}
""")
    outcome = apply_rules([obj(), obj(source="Other")], rule_set, AS_OF)
    [result] = outcome.objects
    assert result.data["labels"] == ["c2", "feed", "team-red", "careful"]
    assert outcome.dropped_by_rules == 1


def test_an_action_that_changes_nothing_keeps_the_object_as_loaded() -> None:
    # Plan/apply publish a new version for every changed object, so "changed" must mean
    # changed content, not "a rule matched".
    rule_set = rules("""
- {name: present, order: 1, actions: [{add_tags: [c2]}, {set_confidence: 85}, {set: {name: Copper C2}}]}
- {name: undone, order: 2, actions: [{add_tags: [new]}, {remove_tags: [new]}]}
- {name: gone, order: 3, actions: [{remove_tags: [absent]}]}
""")
    loaded = obj()
    outcome = apply_rules([loaded], rule_set, AS_OF)
    assert outcome.objects == [loaded] and outcome.objects[0] is loaded
    assert outcome.changed == 0
    assert [(a.rule, a.changes) for a in outcome.applied[IND["id"]]] == [("present", ()), ("undone", ()), ("gone", ())]


def test_changes_are_recorded_and_later_rules_edit_the_same_copy() -> None:
    rule_set = rules("""
- {name: first, order: 1, actions: [{add_tags: [a, a]}]}
- {name: second, order: 2, actions: [{remove_tags: [c2, feed, a]}, {revoke: true}]}
""")
    loaded = obj()
    outcome = apply_rules([loaded], rule_set, AS_OF)
    [result] = outcome.objects
    assert "labels" not in result.data and result.data["revoked"] is True
    assert outcome.changed == 1 and loaded.data == IND
    first, second = outcome.applied[IND["id"]]
    assert [(c.field, c.before, c.after) for c in first.changes] == [("labels", ["c2", "feed"], ["c2", "feed", "a"])]
    assert [(c.field, c.before, c.after) for c in second.changes] == [
        ("labels", ["c2", "feed", "a"], None), ("revoked", None, True)]
    assert result.file == loaded.file and result.source == loaded.source  # with_data keeps the provenance


def test_compile_trace_file_and_bad_as_of(example_repo: Path) -> None:
    runner = CliRunner()
    trace = example_repo / "trace.json"
    assert runner.invoke(main, ["-C", str(example_repo), "compile", "--trace", str(trace)]).exit_code == 0
    traces = {t["id"]: t for t in json.loads(trace.read_text())}
    assert traces["indicator--ea3707da-8cef-434c-b3cb-6d3a30a77ffb"]["dropped_because"] == "rule 'Drop stale low-confidence partner indicators'"
    metadata = json.loads((example_repo / "dist/build.json").read_text())
    assert metadata["rules"]["count"] == 4 and metadata["rules"]["enabled"] == 3 and len(metadata["rules"]["digest"]) == 64
    bad = runner.invoke(main, ["-C", str(example_repo), "compile", "--as-of", "yesterday"])
    assert bad.exit_code == 2 and "--as-of" in bad.output


def test_benchmark_rule_set_is_valid() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_rules", Path(__file__).resolve().parents[2] / "benchmarks" / "bench_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parsed, findings = parse_rule_file(module.rule_text(50), "rules/ingestion/bench.yaml")
    assert findings == [] and len(parsed) == 50
    # The bad case really is one: most objects meet their own combination of rules.
    tag_rules, tagged = module.tag_combination_case(300)
    assert len(tag_rules.rules) == 30 and len(tagged) == 300
    assert len({frozenset(o.data["labels"]) for o in tagged}) > 250
    outcome = apply_rules(tagged, tag_rules, AS_OF, record=False)
    assert 0 < outcome.dropped_by_rules < 300 and outcome.changed > 0


def test_a_changed_object_dropped_by_the_cascade_is_not_counted_as_changed() -> None:
    # build.json reports changed_by_rules; it must not depend on whether a trace is recorded.
    rel = {"type": "relationship", "id": "relationship--00000000-0000-4000-8000-000000000002",
           "source_ref": IND["id"], "target_ref": "malware--00000000-0000-4000-8000-000000000003"}
    rule_set = rules("""
- {name: tag, order: 1, actions: [{add_tags: [seen]}]}
- {name: drop, order: 2, object_types: [indicator], actions: [{drop: true}]}
""")
    for record in (True, False):
        outcome = apply_rules([obj(), obj(rel)], rule_set, AS_OF, record=record)
        assert (outcome.objects, outcome.dropped_by_cascade, outcome.changed) == ([], 1, 0)


def test_what_set_and_extend_would_write_is_checked_where_the_rule_is_read() -> None:
    # Rules run after every check of the objects: what they write went into the bundle unchecked.
    text = ("- name: a\n  actions:\n    - set:\n        tags: notalist\n        confidence: 500\n"
            "        valid_until: garbage\n        pattern: '[bad'\n        Bad Key: 1\n        revoked: 'yes'\n"
            "        name: fine\n        x_note: fine too\n"
            "- name: b\n  actions: [{extend: name, by: 1d}]\n"
            "- name: c\n  actions: [{set: {valid_until: '2025-01-01T00:00:00.000Z', labels: [ok]}}, {extend: valid_from, by: 1d}]\n")
    rule_set, findings = parse_rule_file(text, "rules/ingestion/x.yaml")
    reported = [(f.code, f.location.line, f.message.split(" ")[0]) for f in findings]
    assert reported == [("TI510", 4, "tags"), ("TI510", 5, "confidence"), ("TI510", 6, "valid_until"),
                        ("TI510", 7, "pattern"), ("TI510", 8, "'Bad"), ("TI510", 9, "revoked"),
                        ("TI510", 13, "'extend'")], reported
    assert [rule.name for rule in rule_set] == ["c"]  # only the rule whose actions are all sound


ENRICHMENT_RULES = """\
- name: Drop indicators in our own ASN
  object_types: [indicator]
  when: {all: [{field: enrichment.asn, op: equals, value: 64500}]}
  actions: [{drop: true}]
  tests:
    - name: our ASN
      input: {type: indicator, pattern: "[ipv4-addr:value = '198.51.100.7']", pattern_type: stix, valid_from: "2025-01-01T00:00:00Z"}
      enrichment: {geo: {198.51.100.7: {country_code: NL, asn: 64500}}}
      expect: {dropped: true}
    - name: another ASN, said to be ours
      input: {type: indicator, pattern: "[ipv4-addr:value = '198.51.100.7']", pattern_type: stix, valid_from: "2025-01-01T00:00:00Z"}
      enrichment: {geo: {198.51.100.7: {asn: 15169}}}
      expect: {dropped: true}
- name: Tag young domains
  object_types: [indicator]
  when: {all: [{field: whois.age_days, op: "<", value: 30}]}
  actions: [{add_tags: [young-domain]}]
  tests:
    - name: registered ten days before valid_from
      input: {type: indicator, pattern: "[url:value = 'https://Example.com/login']", pattern_type: stix, valid_from: "2025-01-11T00:00:00Z"}
      enrichment: {whois: {example.com: {registered: "2025-01-01T00:00:00Z"}}}
      expect: {fields: {tags: [young-domain]}}
    - name: no result in the lock
      input: {type: indicator, pattern: "[domain-name:value = 'example.com']", pattern_type: stix, valid_from: "2025-01-11T00:00:00Z"}
      expect: {fields: {tags: null}}
"""


def test_rule_tests_give_their_input_locked_enrichment(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = make_repo({"rules/ingestion/enrich.yaml": ENRICHMENT_RULES})
    result = CliRunner().invoke(main, ["-C", str(root), "test"])
    lines = result.output.splitlines()
    assert result.exit_code == 1, result.output
    assert [line.split(" :: ")[1] for line in lines if line.startswith("PASS")] == [
        "our ASN", "registered ten days before valid_from", "no result in the lock"]
    assert [line.split(" :: ")[1] for line in lines if line.startswith("FAIL")] == ["another ASN, said to be ours"]


@pytest.mark.parametrize(("enrichment", "message"), [
    ("{geo: {Example.COM: {asn: 1}}}", "write it 'example.com'"),
    ("{whois: {example.com: {registered: yesterday}}}", "'registered' of 'example.com' is 'yesterday'; tiops writes a UTC timestamp"),
    ("{geo: {198.51.100.7: {asn: 4294967296}}}", "tiops writes an integer from 0 to 4294967295"),
    ("{geo: {198.51.100.7: {colour: red}}}", "geo results have no 'colour'"),
    ("{rdap: {}}", "'enrichment' is {geo:"),
    ("{whois: {other.example: {registrar: R}}}", "the input names no 'other.example'; it names '198.51.100.7', 'example.com'"),
    # A build never attaches a location to a name (it is not resolved): such a test tested nothing.
    ("{geo: {example.com: {country_code: US}}}", "'example.com' is a domain name; GeoLocation results are for IP addresses"),
])
def test_a_rule_tests_enrichment_is_checked_as_the_lock_is(make_repo: Callable[[dict[str, str]], Path],
                                                            enrichment: str, message: str) -> None:
    subject = ("{type: indicator, pattern_type: stix, valid_from: '2025-01-01T00:00:00Z', "
               "pattern: \"[ipv4-addr:value = '198.51.100.7'] OR [domain-name:value = 'example.com']\"}")
    rule = (f"- name: r\n  actions: [{{drop: true}}]\n  tests:\n    - input: {subject}\n"
            f"      enrichment: {enrichment}\n      expect: {{dropped: true}}\n")
    _, findings = load_rules(Config(root=make_repo({"rules/ingestion/a.yaml": rule})))
    assert [(f.code, f.location.line) for f in findings] == [("TI509", 5)], findings
    assert message in findings[0].message


def test_tags_and_confidence_leave_scos_alone() -> None:
    # An SCO has neither labels nor confidence (STIX 2.1 section 6.1): a rule on every object of a feed
    # would otherwise give the feed's ipv4-addr and domain-name objects properties a validator refuses.
    sco = obj({"type": "domain-name", "spec_version": "2.1", "id": "domain-name--3c10e5f0-7b9f-5c48-9a9d-0f2b1a7c3e11",
               "value": "example.com"})
    for actions in ("[{add_tags: [seen-by-us]}]", "[{add_tags: [seen-by-us, phishing]}]", "[{set_confidence: 12}]"):
        outcome = apply_rules([sco, obj()], rules(f"- {{name: all, order: 1, actions: {actions}}}"), AS_OF)
        assert outcome.objects[0] is sco and outcome.changed == 1  # the indicator changed, the SCO did not


@pytest.mark.parametrize(("when", "message"), [
    # Each validated, and never matched: a number field compared with text, as tiops query refuses it.
    ('{field: whois.age_days, op: "<", value: "30"}', "whois.age_days is a number; '30' is not one"),
    ('{field: confidence, op: ">=", value: "80"}', "confidence is a number; '80' is not one"),
    ('{field: enrichment.asn, op: in, value: [15169, "15169"]}', "enrichment.asn is a number; '15169' is not one"),
    ("{field: revoked, op: equals, value: 'yes'}", "revoked is true or false; 'yes' is not"),
    ("{field: whois.age_days, op: older-than, value: 30d}", "'older-than' compares a timestamp with the as-of time"),
    ("{field: valid_until, op: '<', value: 2024-02-30}", "'2024-02-30' is neither a date that exists nor a STIX timestamp"),
    ("{field: whois, op: contains, value: young.example}", "whois alone is tested with exists or not-exists"),
    ("{field: enrichment, op: equals, value: US}", "enrichment alone is tested with exists or not-exists"),
])
def test_a_value_the_field_cannot_hold_is_an_error_in_a_rule_as_in_a_query(when: str, message: str) -> None:
    _, findings = parse_rule_file(f"- name: a\n  when: {when}\n  actions: [{{drop: true}}]\n", "rules/ingestion/x.yaml")
    assert [(f.code, f.location.line) for f in findings] == [("TI510", 2)], findings
    assert message in findings[0].message


@pytest.mark.parametrize(("op", "value", "expected"), [
    # A date alone is midnight UTC, as tiops query reads it: it compared as text, so equals never
    # matched and '>' held for the midnight moment itself.
    ("equals", "2025-03-04", False), ("equals", "2025-03-05", False), (">", "2025-03-04", True),
    ("<", "2025-03-05", True), (">", "2025-03-05", False), ("in", ["2024-01-01", "2025-03-04"], False),
])
def test_a_date_compared_with_a_timestamp_field_is_midnight_utc(op: str, value: Any, expected: bool) -> None:
    import json as _json

    ruled = rules(f"- name: a\n  when: {{field: valid_from, op: '{op}', value: {_json.dumps(value)}}}\n"
                  "  actions: [{add_tags: [hit]}]\n")
    outcome = apply_rules([obj()], ruled, AS_OF)
    assert ("hit" in (outcome.objects[0].data.get("labels") or [])) is expected
    at_midnight = obj({**IND, "valid_from": "2025-03-04T00:00:00.000Z"})
    equal = rules("- name: a\n  when: {field: valid_from, op: equals, value: 2025-03-04}\n  actions: [{add_tags: [hit]}]\n")
    assert "hit" in (apply_rules([at_midnight], equal, AS_OF).objects[0].data.get("labels") or [])
    later = rules("- name: a\n  when: {field: valid_from, op: '>', value: 2025-03-04}\n  actions: [{add_tags: [hit]}]\n")
    assert "hit" not in (apply_rules([at_midnight], later, AS_OF).objects[0].data.get("labels") or [])


@pytest.mark.parametrize(("subject", "message"), [
    ("{type: indicatr, confidence: 60}", "test input: 'indicatr' is not a STIX 2.1 type"),
    ("{type: indicator, confidence: '60'}", "test input: "),
])
def test_a_rule_test_whose_input_no_build_could_hold_is_refused(make_repo: Callable[[dict[str, str]], Path],
                                                                subject: str, message: str) -> None:
    # The rule never matched such an input, so a test expecting no change passed for the wrong reason.
    rule = ("- name: r\n  when: {field: confidence, op: '>=', value: 50}\n  actions: [{add_tags: [high]}]\n"
            f"  tests:\n    - input: {subject}\n      expect: {{fields: {{labels: null}}}}\n")
    _, findings = load_rules(Config(root=make_repo({"rules/ingestion/a.yaml": rule})))
    assert [f.code for f in findings] == ["TI509"], findings
    assert message in findings[0].message


@pytest.mark.parametrize("subject", [
    "{type: x-acme-ticket, size: big, number: AS13335, confidence: 60}",  # a custom type's own properties
    ("{type: acme-alert, confidence: 60, extensions: {extension-definition--00000000-0000-4000-8000-00000000000a: "
     "{extension_type: new-sdo}}}"),  # a type an extension definition defines (section 7.3)
])
def test_a_rule_test_input_of_a_custom_or_extension_defined_type_is_accepted(
        make_repo: Callable[[dict[str, str]], Path], subject: str) -> None:
    rule = ("- name: r\n  when: {field: confidence, op: '>=', value: 50}\n  actions: [{add_tags: [high]}]\n"
            f"  tests:\n    - input: {subject}\n      expect: {{fields: {{labels: [high]}}}}\n")
    _, findings = load_rules(Config(root=make_repo({"rules/ingestion/a.yaml": rule})))
    assert findings == [], findings


def test_tests_of_a_disabled_rule_run_and_say_the_rule_is_disabled(make_repo: Callable[[dict[str, str]], Path]) -> None:
    rule = ("- name: later\n  enabled: false\n  actions: [{add_tags: [seen]}]\n"
            "  tests:\n    - input: {type: indicator}\n      expect: {fields: {labels: [seen]}}\n")
    root = make_repo({"rules/ingestion/a.yaml": rule})
    result = CliRunner().invoke(main, ["-C", str(root), "test"])
    # A PASS read as what builds do, though no build runs the rule.
    assert result.exit_code == 0 and "PASS rules/ingestion/a.yaml:1: later (rule disabled) :: " in result.output, \
        result.output


def test_rule_and_test_names_are_written_out_not_sent_to_the_terminal(
        make_repo: Callable[[dict[str, str]], Path]) -> None:
    rules = """\
- name: "Evil\\n::add-mask::rule\\r\\e[2J\\u202e"
  order: 20
  object_types: [indicator]
  when: {all: [{field: confidence, op: "<", value: 50}]}
  actions:
    - {add_tags: [low]}
  tests:
    - name: "test\\n::error file=x::fake\\e]8;;http://e\\a"
      input: {type: indicator, confidence: 30}
      expect: {fields: {tags: [low]}}
"""
    result = CliRunner().invoke(main, ["-C", str(make_repo({"rules/ingestion/evil.yaml": rules})), "test"])
    assert result.exit_code == 0, result.output
    assert not any(line.lstrip().startswith("::") for line in result.output.splitlines())
    assert "\x1b" not in result.output and "\x07" not in result.output and "\u202e" not in result.output
    assert ("PASS rules/ingestion/evil.yaml:1: Evil\\x0a::add-mask::rule\\x0d\\x1b[2J\\u202e :: "
            "test\\x0a::error file=x::fake\\x1b]8;;http://e\\x07") in result.output

"""The partner pull-request loop in a real git repository, as docs/ci.md runs it.

import, commit, apply, tag (and overlay edits by hand), validate --base, commit,
plan shows the updates, apply, re-import a changed row, validate --base passes.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from pr_repo import git

from tiops.cli import main
from tiops.yamlio import parse_yaml

HEADER = "threatTypes,tags,name,description,confidence,revoked,validFrom,validUntil,tlpLevel,severity,observableType,observableValue\n"
ROWS = ("malicious-activity,c2,C2 address,,80,,2025-01-01T00:00:00Z,,green,,ipv4-addr,203.0.113.45\n"
        "malicious-activity,phishing,Phishing domain,,60,,2025-01-02T00:00:00Z,,green,,domain-name,login.example.net\n")
FOLDER = "intel/abuse-feed"


def _tiops(root: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["-C", str(root), *args])


def _ids(root: Path) -> dict[str, str]:
    """Indicator name -> id, as imported."""
    found = {}
    for path in (root / FOLDER / "indicator").glob("*.yaml"):
        data = parse_yaml(path.read_text())
        found[data["name"]] = data["id"]
    return found


def _imported_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / FOLDER / "indicator").glob("*.yaml")}


def test_partner_edits_and_reimports_pass_the_pull_request_check(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text(".tiops/\ndist/\n")
    (root / "feed.csv").write_text(HEADER + ROWS)
    imported = _tiops(root, "import", str(root / "feed.csv"), "--format", "sentinel-csv", "--source", "Abuse feed")
    assert imported.exit_code == 0, imported.output
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "import the abuse feed")
    applied = _tiops(root, "apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    ids = _ids(root)

    # The partner edits of a pull request: a tag by `tiops tag`, confidence and revoked by hand.
    before = _imported_files(root)
    tagged = _tiops(root, "tag", "add", "reviewed", "--id", ids["C2 address"])
    assert tagged.exit_code == 0, tagged.output
    overlay = root / FOLDER / "_overlay.yaml"
    overlay.write_text(overlay.read_text() + f"{ids['Phishing domain']}:\n  confidence: 20\n  revoked: true\n")
    assert _imported_files(root) == before  # partner files are never written
    checked = _tiops(root, "validate", "--base", "HEAD")
    assert checked.exit_code == 0, checked.output
    bumped = _tiops(root, "bump", "--base", "HEAD")
    assert bumped.exit_code == 0, bumped.output
    assert _imported_files(root) == before  # bump leaves imported files alone
    diff = _tiops(root, "diff", "HEAD")
    assert "partner object, overlay change (intel/abuse-feed/_overlay.yaml): 1 object(s) compile differently" in diff.output
    assert f"! revoked indicator {ids['Phishing domain']}" in diff.output
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "review the abuse feed", date="2025-03-02T12:00:00+00:00")

    plan = _tiops(root, "plan", "--format", "json")
    assert plan.exit_code == 0, plan.output
    changes = {c["id"]: c for c in json.loads(plan.output)["changes"]}
    assert {i: c["action"] for i, c in changes.items()} == {ids["C2 address"]: "update", ids["Phishing domain"]: "revoke"}
    for change in changes.values():  # each a new STIX version with a later modified than the one applied
        assert change["compiled_modified"] in change["stored"]
        assert change["effective_modified"] > change["compiled_modified"]
        assert change["object"]["modified"] == change["effective_modified"]
    text_plan = _tiops(root, "plan")
    assert "1 to update, 1 to revoke" in text_plan.output  # as the diff said: one changed, one revoked
    applied = _tiops(root, "apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "no changes" in _tiops(root, "plan").output

    # The partner changes a row (same observable and validFrom): a re-import is a new version.
    (root / "feed.csv").write_text(HEADER + ROWS.replace(",80,", ",90,"))
    reimported = _tiops(root, "import", str(root / "feed.csv"), "--format", "sentinel-csv", "--source", "Abuse feed")
    assert "updated 1, unchanged 1" in reimported.output
    c2 = parse_yaml((root / FOLDER / "indicator" / f"{ids['C2 address'].split('--')[1]}.yaml").read_text())
    assert (c2["confidence"], c2["created"], c2["modified"]) == (90, "2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00.001Z")
    checked = _tiops(root, "validate", "--base", "HEAD")
    assert checked.exit_code == 0, checked.output
    again = _tiops(root, "import", str(root / "feed.csv"), "--format", "sentinel-csv", "--source", "Abuse feed")
    assert "updated 0, unchanged 2" in again.output  # the same changed row again: nothing new
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "re-import the abuse feed", date="2025-03-03T12:00:00+00:00")
    plan = json.loads(_tiops(root, "plan", "--format", "json").output)
    assert [(c["id"], c["action"]) for c in plan["changes"]] == [(ids["C2 address"], "update")]
    assert _tiops(root, "apply", "--auto-approve").exit_code == 0


def test_an_overlay_revoke_cannot_be_taken_back(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "feed.csv").write_text(HEADER + ROWS)
    _tiops(root, "import", str(root / "feed.csv"), "--format", "sentinel-csv", "--source", "Abuse feed")
    phishing = _ids(root)["Phishing domain"]
    overlay = root / FOLDER / "_overlay.yaml"
    overlay.write_text(f"{phishing}:\n  revoked: true\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "revoke the phishing domain")
    overlay.write_text(f"{phishing}:\n  revoked: false\n")
    checked = _tiops(root, "validate", "--base", "HEAD")
    assert checked.exit_code == 1
    assert "intel/abuse-feed/_overlay.yaml:2:3: error TI804" in checked.output


def test_an_object_a_rule_drops_after_its_overlay_changed_is_listed_under_the_overlay(tmp_path: Path) -> None:
    """No rule changed, the overlay did: the drop is the overlay's effect (it was listed as the rule's,
    and a reviewer looked for a rule change that was not there). An own edit that makes a rule drop a
    team object is that object's change."""
    root = tmp_path / "repo"
    (root / "intel" / "team").mkdir(parents=True)
    (root / "rules" / "ingestion").mkdir(parents=True)
    (root / "rules" / "ingestion" / "drop.yaml").write_text(
        "- {name: Drop very low confidence, order: 10, when: {field: confidence, op: '<', value: 15},"
        " actions: [{drop: true}]}\n")
    git(root, "init", "-q", "-b", "main")
    (root / "feed.csv").write_text(HEADER + ROWS)
    assert _tiops(root, "import", str(root / "feed.csv"), "--format", "sentinel-csv", "--source", "Abuse feed").exit_code == 0
    team = {"type": "indicator", "spec_version": "2.1", "id": "indicator--5b5b5b5b-5b5b-4b5b-8b5b-5b5b5b5b5b5b",
            "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "name": "Team C2",
            "pattern": "[ipv4-addr:value = '198.51.100.7']", "pattern_type": "stix",
            "valid_from": "2025-01-01T00:00:00Z", "confidence": 70}
    (root / "intel" / "team" / "c2.yaml").write_text(json.dumps(team))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    ids = _ids(root)
    (root / FOLDER / "_overlay.yaml").write_text(f"{ids['C2 address']}:\n  confidence: 10\n")
    (root / "intel" / "team" / "c2.yaml").write_text(json.dumps({**team, "confidence": 5,
                                                                  "modified": "2025-02-01T00:00:00.000Z"}))
    diff = _tiops(root, "diff", "HEAD")
    assert diff.exit_code == 0, diff.output
    assert "* partner object, overlay change (intel/abuse-feed/_overlay.yaml): 1 object(s) compile differently" in diff.output
    assert f"indicator {ids['C2 address']}" in diff.output
    assert '(object): "kept" -> "dropped by rule Drop very low confidence"' in diff.output
    assert f"~ indicator {team['id']} 'Team C2'" in diff.output  # its own edit made the rule drop it
    assert "* rule Drop very low confidence" not in diff.output

"""Names beside ids wherever a person reads: plan, apply, tag, the overlay and explain."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from tiops import load_repo
from tiops.cli import main

DATA = Path(__file__).resolve().parent.parent / "data"
UUID_ONLY = re.compile(r"^\s+[+~-] [a-z0-9-]+--[0-9a-f-]{36} \(")


def invoke(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-C", str(root), *args])
    return result.exit_code, result.output


def _named(root: Path) -> dict[str, str]:
    return {str(o.data["name"]): o.id for o in load_repo(root).objects if o.declared_by is None and "name" in o.data}


def test_plan_and_apply_show_names_and_relationship_ends(example_repo: Path) -> None:
    ids = _named(example_repo)
    code, plan = invoke(example_repo, "plan")
    assert code == 0, plan
    assert f'+ "WickStealer" {ids["WickStealer"]} (create)' in plan
    assert re.search(r'\+ "Copper Lantern" impersonates "Woodgrove Bank" relationship--\S+ \(create\)', plan)
    # every named object and every relationship reads as words, not a bare UUID
    bare = [line for line in plan.splitlines() if UUID_ONLY.match(line)]
    assert all("marking-definition--" in line for line in bare), bare
    code, applied = invoke(example_repo, "apply", "--auto-approve")
    assert code == 0 and f'"WickStealer" {ids["WickStealer"]}' in applied
    # an update names the object whose description changed
    path = example_repo / "intel" / "malware" / "wickstealer.yaml"
    text = path.read_text()
    path.write_text(re.sub(r"(?m)^description: .*$", "description: Changed.", text, count=1)
                    .replace("modified: 2024", "modified: 2025", 1))
    code, plan = invoke(example_repo, "plan")
    assert f'~ "WickStealer" {ids["WickStealer"]} (update' in plan, plan


def test_explain_takes_a_name_or_prefix_and_prints_the_name(example_repo: Path) -> None:
    wickstealer = _named(example_repo)["WickStealer"]
    for given in ("WickStealer", "wickstealer", wickstealer[:16], wickstealer.partition("--")[2][:8]):
        code, output = invoke(example_repo, "explain", given)
        assert code == 0, output
        assert output.splitlines()[0] == f'"WickStealer" ({wickstealer})'
    code, output = invoke(example_repo, "explain", "WickStealer", "--format", "json")
    assert json.loads(output)["name"] == "WickStealer"
    code, output = invoke(example_repo, "explain", "indicator--")
    assert code == 2 and "objects match this id prefix" in output


def test_tag_output_and_overlay_name_the_objects(example_repo: Path) -> None:
    ids = _named(example_repo)
    code, output = invoke(example_repo, "tag", "add", "hot", "--id", ids["WickStealer"])
    assert code == 0 and f'"WickStealer" ({ids["WickStealer"]}): labels' in output
    assert invoke(example_repo, "import", str(DATA / "importers" / "partner_v1.json"), "--format", "stix",
                  "--source", "Partner")[0] == 0
    code, output = invoke(example_repo, "tag", "add", "reviewed", "--id", ids_of_partner(example_repo))
    assert code == 0 and '"Evil IP"' in output
    overlay = (example_repo / "intel" / "partner" / "_overlay.yaml").read_text()
    assert re.search(r"(?m)^indicator--\S+: # Evil IP$", overlay), overlay


def ids_of_partner(root: Path) -> str:
    return next(o.id for o in load_repo(root).objects if o.data.get("name") == "Evil IP")


def test_import_summary_names_rejected_objects(example_repo: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "feed.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": "bundle--11111111-1111-4111-8111-111111111111", "objects": [
        {"type": "indicator", "spec_version": "2.1", "id": "indicator--11111111-1111-4111-8111-111111111112",
         "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "name": "Bad confidence",
         "pattern": "[ipv4-addr:value = '198.51.100.1']", "pattern_type": "stix",
         "valid_from": "2025-01-01T00:00:00Z", "confidence": 300}]}))
    code, output = invoke(example_repo, "import", str(bundle), "--source", "Feed")
    assert code == 1
    assert 'index 0 "Bad confidence" (indicator--11111111-1111-4111-8111-111111111112): ' in output

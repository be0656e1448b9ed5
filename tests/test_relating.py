"""`tiops relate`: the relationship builder edits text, checks everything first, and respects partner files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from full_disk import fill_up_writing

from tiops import load_repo, validate_repo
from tiops.cli import main
from tiops.findings import Severity

DATA = Path(__file__).resolve().parent / "data"
TIME = "2025-03-04T10:00:00.000Z"
WICKSTEALER = "intel/malware/wickstealer.yaml"


def relate(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-C", str(root), "relate", *args, "--time", TIME])
    return result.exit_code, result.output


def _relationships(root: Path) -> set[tuple[str, str, str]]:
    return {(o.data["source_ref"], o.data["relationship_type"], o.data["target_ref"])
            for o in load_repo(root).objects if o.type == "relationship"}


def _ids(root: Path) -> dict[str, str]:
    return {str(o.data.get("name")): o.id for o in load_repo(root).objects if o.declared_by is None}


def _errors(root: Path) -> list[str]:
    return [str(f.location) + f.message for f in validate_repo(load_repo(root)) if f.severity is Severity.ERROR]


def test_adds_many_inline_relationships_by_name_and_prefix_as_a_text_edit(example_repo: Path) -> None:
    ids = _ids(example_repo)
    before = (example_repo / WICKSTEALER).read_text()
    prefix = ids["User Execution: Malicious File"][:20]
    code, output = relate(example_repo, "WickStealer", "uses", "Spearphishing Link", prefix, "--description", "seen: 2024")
    assert code == 0, output
    after = (example_repo / WICKSTEALER).read_text()
    assert after.startswith(before.rstrip("\n"))  # the rest of the file keeps its bytes
    assert after.count("description: \"seen: 2024\"") == 2
    for target in ("Spearphishing Link", "User Execution: Malicious File"):
        assert (ids["WickStealer"], "uses", ids[target]) in _relationships(example_repo)
        assert f'"{target}" ({ids[target]})' in output  # names beside ids
    assert _errors(example_repo) == []
    # again: nothing is duplicated
    code, output = relate(example_repo, "WickStealer", "uses", "Spearphishing Link")
    assert code == 0 and "already there" in output
    assert (example_repo / WICKSTEALER).read_text() == after


def test_remove_takes_inline_entries_and_standalone_files_away(example_repo: Path) -> None:
    ids = _ids(example_repo)
    original = (example_repo / WICKSTEALER).read_text()
    assert relate(example_repo, "WickStealer", "uses", "Spearphishing Link")[0] == 0
    code, output = relate(example_repo, "WickStealer", "uses", "Spearphishing Link", "--remove")
    assert code == 0, output
    assert (example_repo / WICKSTEALER).read_text() == original
    standalone = example_repo / "intel/relationships/lanternloader-statement-document-indicates-lanternloader.yaml"
    assert relate(example_repo, "LanternLoader statement document", "indicates", "LanternLoader", "--remove")[0] == 0
    assert not standalone.exists()
    assert (ids["LanternLoader statement document"], "indicates", ids["LanternLoader"]) not in _relationships(example_repo)


def test_every_triple_and_target_is_checked_before_writing(example_repo: Path) -> None:
    tree = {p: p.read_bytes() for p in (example_repo / "intel").rglob("*.yaml")}
    # one allowed triple and one forbidden: nothing is written
    code, output = relate(example_repo, "WickStealer", "targets", "Woodgrove Bank", "Spearphishing Link")
    assert code == 2 and "not allowed by the relationship table" in output and "allowed: " in output
    assert "malware --targets--> attack-pattern" in output and "identity" not in output.split("allowed")[0]
    code, output = relate(example_repo, "WickStealer", "uses", "Spearphishing Link", "No Such Thing")
    assert code == 2 and "'No Such Thing'" in output
    code, output = relate(example_repo, "WickStaeler", "uses", "Mimikatz")
    assert code == 2 and "Did you mean 'WickStealer'" in output
    code, output = relate(example_repo, "attack-pattern--", "uses", "Mimikatz")
    assert code == 2 and "objects match this id prefix" in output
    assert {p: p.read_bytes() for p in (example_repo / "intel").rglob("*.yaml")} == tree


def test_partner_objects_get_a_standalone_file_in_the_teams_folder(example_repo: Path) -> None:
    result = CliRunner().invoke(main, ["-C", str(example_repo), "import", str(DATA / "importers" / "partner_v1.json"),
                                       "--format", "stix", "--source", "Partner"])
    assert result.exit_code == 0, result.output
    partner_files = {p: p.read_bytes() for p in (example_repo / "intel" / "partner").rglob("*") if p.is_file()}
    code, output = relate(example_repo, "Evil IP", "indicates", "WickStealer", "--description", "partner C2")
    assert code == 0, output
    written = example_repo / "intel/relationships/evil-ip-indicates-wickstealer.yaml"
    assert written.is_file() and "description: partner C2" in written.read_text()
    assert {p: p.read_bytes() for p in (example_repo / "intel" / "partner").rglob("*") if p.is_file()} == partner_files
    ids = _ids(example_repo)
    assert (ids["Evil IP"], "indicates", ids["WickStealer"]) in _relationships(example_repo)
    assert _errors(example_repo) == []
    assert relate(example_repo, "Evil IP", "indicates", "WickStealer", "--remove")[0] == 0
    assert not written.exists()


def test_relate_compiles_into_the_bundle(example_repo: Path) -> None:
    assert relate(example_repo, "WickStealer", "uses", "Mimikatz")[0] == 0
    result = CliRunner().invoke(main, ["-C", str(example_repo), "compile"])
    assert result.exit_code == 0, result.output
    bundle = json.loads((example_repo / "dist" / "bundle.json").read_text())
    ids = _ids(example_repo)
    assert any(o["type"] == "relationship" and o["source_ref"] == ids["WickStealer"] and o["target_ref"] == ids["Mimikatz"]
               for o in bundle["objects"])


def test_a_time_that_is_no_timestamp_is_refused_before_anything_is_written(example_repo: Path) -> None:
    before = (example_repo / WICKSTEALER).read_text()
    result = CliRunner().invoke(main, ["-C", str(example_repo), "relate", "WickStealer", "uses", "Spearphishing Link",
                                       "--time", "bad"])
    assert result.exit_code == 2 and "--time 'bad' is not a timestamp" in result.output
    assert (example_repo / WICKSTEALER).read_text() == before


def test_a_standalone_file_cut_short_by_a_full_disk_is_not_left_behind(example_repo: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(main, ["-C", str(example_repo), "import", str(DATA / "importers" / "partner_v1.json"),
                                       "--format", "stix", "--source", "Partner"])
    assert result.exit_code == 0, result.output
    folder = example_repo / "intel/relationships"
    before = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    fill_up_writing(monkeypatch, "evil-ip-indicates-wickstealer.yaml")
    code, output = relate(example_repo, "Evil IP", "indicates", "WickStealer")
    monkeypatch.undo()
    assert code == 1 and "cannot write intel/relationships/evil-ip-indicates-wickstealer.yaml" in output
    assert "No space left" in output and "internal error" not in output
    # Half a relationship file would be read by every later validate: none is there, nor anything beside.
    after = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    assert after == before
    assert _errors(example_repo) == []
    assert relate(example_repo, "Evil IP", "indicates", "WickStealer")[0] == 0  # run again: it converges
    assert (folder / "evil-ip-indicates-wickstealer.yaml").is_file()

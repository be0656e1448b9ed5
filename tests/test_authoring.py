from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops import load_repo, validate_repo
from tiops.cli import main
from tiops.findings import Severity
from tiops.yamlio import parse_yaml

TIME = "2025-03-04T10:00:00.000Z"


@pytest.mark.parametrize("stix_type", ["indicator", "malware", "threat-actor", "identity", "attack-pattern", "location"])
def test_new_file_validates_as_written(example_repo: Path, stix_type: str) -> None:
    result = CliRunner().invoke(main, ["-C", str(example_repo), "new", stix_type, "--time", TIME, "--set", "name=Brand new thing"])
    assert result.exit_code == 0, result.output
    written = result.stdout.split()[1]
    data = parse_yaml((example_repo / written).read_text())
    assert (data["type"], data["created"], data["modified"]) == (stix_type, TIME, TIME)
    errors = [f for f in validate_repo(load_repo(example_repo)) if f.severity is Severity.ERROR]
    assert errors == []


def test_new_uses_the_team_folder_set_like_and_relationships(example_repo: Path) -> None:
    runner = CliRunner()
    source = next(o for o in load_repo(example_repo).objects if o.type == "indicator" and "object_marking_refs" in o.data)
    result = runner.invoke(main, ["-C", str(example_repo), "new", "indicator", "--time", TIME, "--like", source.id,
                                  "--set", "name=Evil IP", "--set", "pattern=\"[ipv4-addr:value = '198.51.100.9']\"",
                                  "--set", "confidence=80", "--relationship", f"related-to:{source.id}"])
    assert result.exit_code == 0, result.output
    path = example_repo / "intel/indicators/evil-ip.yaml"
    data = parse_yaml(path.read_text())
    assert data["confidence"] == 80 and data["pattern"] == "[ipv4-addr:value = '198.51.100.9']"
    assert data["object_marking_refs"] == source.data["object_marking_refs"]
    assert data["relationships"] == [{"related-to": source.id}]
    assert "# valid_until:" in path.read_text()
    again = runner.invoke(main, ["-C", str(example_repo), "new", "indicator", "--time", TIME, "--stdout"])
    assert again.exit_code == 0 and again.stdout == runner.invoke(
        main, ["-C", str(example_repo), "new", "indicator", "--time", TIME, "--stdout"]).stdout


def test_new_refuses_unknown_types_and_bad_options(example_repo: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["-C", str(example_repo), "new", "widget"]).exit_code == 2
    assert runner.invoke(main, ["-C", str(example_repo), "new", "indicator", "--relationship", "nonsense"]).exit_code == 2
    assert runner.invoke(main, ["-C", str(example_repo), "new", "report"]).exit_code == 2  # object_refs must be given

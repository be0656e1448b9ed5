from __future__ import annotations

import difflib
from pathlib import Path

from tiops.load import load_repo
from tiops.tagging import tag_objects
from tiops.where import parse_where


def _snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted((root / "intel").rglob("*.yaml"))}


def test_tagging_changes_only_the_labels_of_matching_objects(example_repo: Path) -> None:
    before = _snapshot(example_repo)
    changes = tag_objects(example_repo, "add", ["reviewed"], condition=parse_where("type = indicator and confidence >= 80"))
    assert changes
    after = _snapshot(example_repo)
    for name in before:
        diff = [line for line in difflib.unified_diff(before[name].splitlines(), after[name].splitlines(), lineterm="", n=0)
                if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        if name not in {change.file for change in changes}:
            assert diff == [], name
            continue
        # Every line that changed is a labels line or a new "- reviewed" item: comments,
        # quoting, timestamps and the other objects of the file keep their exact bytes.
        assert diff and all("labels" in line or line.strip() in {"+- reviewed", "+  - reviewed"} or "reviewed" in line for line in diff), diff
        assert all(line.startswith("+") or "labels" in line for line in diff), diff
    tagged = {o.id for o in load_repo(example_repo).objects if "reviewed" in (o.data.get("labels") or [])}
    assert tagged == {change.stix_id for change in changes}


def test_untagging_removes_the_label_again(example_repo: Path) -> None:
    before = _snapshot(example_repo)
    condition = parse_where("type = indicator and confidence >= 80")
    tag_objects(example_repo, "add", ["reviewed"], condition=condition)
    tag_objects(example_repo, "remove", ["reviewed"], condition=condition)
    assert _snapshot(example_repo) == before


def test_a_tag_that_is_no_label_changes_nothing(example_repo: Path) -> None:
    import pytest

    from tiops.errors import UsageError

    before = {p: p.read_bytes() for p in (example_repo / "intel").rglob("*.yaml")}
    for tag in ["", "  ", " c2", "c2 ", "a\nb", "tab\there", "nul\x00"]:
        with pytest.raises(UsageError, match="is not a tag"):
            tag_objects(example_repo, "add", ["reviewed", tag], condition=parse_where("type = indicator"))
    assert {p: p.read_bytes() for p in (example_repo / "intel").rglob("*.yaml")} == before
    assert tag_objects(example_repo, "add", ["tlp:amber"], condition=parse_where("type = indicator"))


def test_tag_relate_and_bump_keep_a_files_windows_line_breaks(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from pr_repo import git

    from tiops.cli import main

    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    malware = ("type: malware\r\nspec_version: '2.1'\r\nid: malware--98752b14-dcbf-5706-ae1a-dbb5142236d0\r\n"
               "created: 2024-01-01T00:00:00.000Z\r\nmodified: 2024-01-01T00:00:00.000Z\r\nname: CRLF\r\n"
               "is_family: true\r\n# a comment kept\r\n")
    actor = ("type: threat-actor\r\nspec_version: '2.1'\r\nid: threat-actor--98752b14-dcbf-5706-ae1a-dbb5142236d1\r\n"
             "created: 2024-01-01T00:00:00.000Z\r\nmodified: 2024-01-01T00:00:00.000Z\r\nname: Actor\r\n")
    (root / "intel" / "m.yaml").write_bytes(malware.encode())
    (root / "intel" / "a.yaml").write_bytes(actor.encode())
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "intel")
    runner = CliRunner()
    tagged = runner.invoke(main, ["-C", str(root), "tag", "add", "reviewed", "--id", "malware--98752b14-dcbf-5706-ae1a-dbb5142236d0"])
    assert tagged.exit_code == 0, tagged.output
    assert runner.invoke(main, ["-C", str(root), "relate", "Actor", "uses", "CRLF"]).exit_code == 0
    assert runner.invoke(main, ["-C", str(root), "bump", "--base", "HEAD", "--at", "2025-01-01T00:00:00.000Z"]).exit_code == 0
    for name in ("m.yaml", "a.yaml"):
        raw = (root / "intel" / name).read_bytes()
        assert raw.count(b"\n") == raw.count(b"\r\n") and raw.count(b"\n") > 6, raw
    assert b"reviewed" in (root / "intel" / "m.yaml").read_bytes() and b"# a comment kept" in (root / "intel" / "m.yaml").read_bytes()
    assert runner.invoke(main, ["-C", str(root), "validate"]).exit_code == 0


def test_an_observable_has_no_labels_to_tag(make_repo) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from tiops.cli import main

    address = "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd"
    root = make_repo({"intel/ip.yaml": f"type: ipv4-addr\nspec_version: '2.1'\nid: {address}\nvalue: 198.51.100.3\n"})
    before = (root / "intel" / "ip.yaml").read_text()
    result = CliRunner().invoke(main, ["-C", str(root), "tag", "add", "c2", "--id", address])
    assert result.exit_code == 2 and "an observable (SCO) has no labels" in result.output
    assert (root / "intel" / "ip.yaml").read_text() == before
    by_condition = CliRunner().invoke(main, ["-C", str(root), "tag", "add", "c2", "--where", "type = ipv4-addr"])
    assert (root / "intel" / "ip.yaml").read_text() == before, by_condition.output


def test_tagging_the_teams_own_objects_says_they_need_a_bump(example_repo: Path) -> None:
    from click.testing import CliRunner

    from tiops.cli import main

    result = CliRunner().invoke(main, ["-C", str(example_repo), "tag", "add", "reviewed", "--where", "type = malware"])
    assert result.exit_code == 0, result.output
    assert "of the team's own objects changed content; 'tiops bump --base REF'" in result.stderr


def test_a_marking_definition_has_no_labels_to_tag(make_repo) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from tiops.cli import main

    # STIX 2.1 section 7.2.1 gives a marking definition no labels: a tag made it invalid (TI208), and,
    # having no 'modified', the changed one could never reach a TAXII collection as a new version.
    marking = "marking-definition--4444aaaa-4444-4444-8444-444444444444"
    root = make_repo({"intel/statement.yaml": f"type: marking-definition\nspec_version: '2.1'\nid: {marking}\n"
                                              "created: '2024-01-01T00:00:00.000Z'\ndefinition_type: statement\n"
                                              "definition:\n  statement: Copyright Us\n"})
    before = (root / "intel" / "statement.yaml").read_text()
    result = CliRunner().invoke(main, ["-C", str(root), "tag", "add", "c2", "--id", marking])
    assert result.exit_code == 2 and "a marking definition has no labels" in result.output
    assert (root / "intel" / "statement.yaml").read_text() == before
    everything = CliRunner().invoke(main, ["-C", str(root), "tag", "add", "c2", "--where", "type exists"])
    assert everything.exit_code == 0, everything.output
    assert (root / "intel" / "statement.yaml").read_text() == before, everything.output


def test_a_tag_that_cannot_be_written_leaves_the_file_whole(example_repo: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import errno
    import os

    from click.testing import CliRunner

    from tiops import outputs
    from tiops.cli import main

    before = {p: p.read_bytes() for p in (example_repo / "intel").rglob("*.yaml")}
    written: list[int] = []

    def disk_full(descriptor: int, data: bytes) -> int:
        if written:  # the first write lands: a file cut short is what writing in place left behind
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(len(data) // 2)
        return os.write(descriptor, bytes(data[:len(data) // 2]))

    monkeypatch.setattr(outputs.os, "write", disk_full)
    result = CliRunner().invoke(main, ["-C", str(example_repo), "tag", "add", "triaged", "--where", "type = malware"])
    assert result.exit_code == 1 and "No space left on device; the file is unchanged" in result.output, result.output
    assert {p: p.read_bytes() for p in (example_repo / "intel").rglob("*.yaml")} == before
    assert not [p for p in (example_repo / "intel").rglob(".*editing")]  # nothing left beside it


def test_an_edited_file_keeps_its_mode(example_repo: Path) -> None:
    import os
    import stat

    from tiops.where import parse_where as where

    for path in (example_repo / "intel").rglob("*.yaml"):
        os.chmod(path, 0o664)
    previous = os.umask(0o022)
    try:
        changes = tag_objects(example_repo, "add", ["triaged"], condition=where("type = malware"))
    finally:
        os.umask(previous)
    assert changes
    # Written beside and renamed over, each took the umask's 0644.
    assert {stat.S_IMODE((example_repo / change.file).stat().st_mode) for change in changes} == {0o664}

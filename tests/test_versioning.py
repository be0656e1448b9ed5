from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from pr_repo import ACTOR, C2_ADDRESS, MALWARE, base_repo, edit, lfs_like_filter, make_pull_request

from tiops.bump import bump_repo
from tiops.cli import main
from tiops.findings import Severity
from tiops.versioning import versioning_findings


def codes(root: Path, base: str = "base") -> list[tuple[str, str | None]]:
    return [(f.code, f.stix_id) for f in versioning_findings(root, base)]


def test_a_bumped_pull_request_passes(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    make_pull_request(root, commit=False)
    assert codes(root) == []


def test_content_change_without_a_modified_bump_is_caught_at_the_modified_line(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    make_pull_request(root, bump=False, commit=False)
    findings = versioning_findings(root, "base")
    assert [(f.code, f.stix_id) for f in findings] == [("TI800", C2_ADDRESS)]
    assert findings[0].location.file == "intel/c2-address.yaml"
    assert findings[0].location.line == 5  # the modified: line
    assert "description changed" in findings[0].message


def test_created_change_unrevoke_and_deletion(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    edit(root, "intel/copper-lantern.yaml", "modified: 2025-01-03T00:00:00.000Z", "modified: 2025-01-04T00:00:00.000Z\nrevoked: true")
    from pr_repo import git

    git(root, "commit", "-q", "-am", "revoke")
    edit(root, "intel/copper-lantern.yaml", "revoked: true", "revoked: false")
    edit(root, "intel/copper-lantern.yaml", "modified: 2025-01-04T00:00:00.000Z", "modified: 2025-01-05T00:00:00.000Z")
    edit(root, "intel/fabrikam.yaml", "created: 2025-01-01T00:00:00.000Z", "created: 2024-12-01T00:00:00.000Z")
    (root / "intel" / "lanternloader.yaml").unlink()
    found = versioning_findings(root, "HEAD")
    assert sorted((f.code, f.stix_id, f.severity) for f in found) == [
        ("TI802", "identity--8f2c3b1a-6d4e-4f0a-9b7c-2e5d1a3f4b6c", Severity.ERROR),
        ("TI803", MALWARE, Severity.WARNING),
        ("TI804", ACTOR, Severity.ERROR),
    ]


def test_changed_id_is_caught(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    edit(root, "intel/lanternloader.yaml", MALWARE, "malware--6e1d7f4b-3c2f-4d9e-8a8b-2f4c6d8e0b3a")
    assert codes(root) == [("TI801", "malware--6e1d7f4b-3c2f-4d9e-8a8b-2f4c6d8e0b3a")]


def test_validate_base_renders_findings_and_config_makes_deletion_an_error(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    (root / "intel" / "lanternloader.yaml").unlink()
    runner = CliRunner()
    result = runner.invoke(main, ["-C", str(root), "validate", "--base", "base"])
    assert result.exit_code == 0 and "TI803" in result.output
    (root / "tiops.yaml").write_text("validation:\n  deleted_objects: error\n")
    result = runner.invoke(main, ["-C", str(root), "validate", "--base", "base", "--format", "github"])
    assert result.exit_code == 1 and "::error" in result.output and "TI803" in result.output


def test_validate_base_of_named_files_reports_their_versioning_findings_only(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    (root / "intel" / "lanternloader.yaml").unlink()  # TI803, at a file not named below
    make_pull_request(root, bump=False, commit=False)  # TI800 at intel/c2-address.yaml
    runner = CliRunner()
    named = runner.invoke(main, ["-C", str(root), "validate", "--base", "base", str(root / "intel" / "c2-address.yaml")])
    assert "TI800" in named.output and "TI803" not in named.output, named.output
    folder = runner.invoke(main, ["-C", str(root), "validate", "--base", "base", str(root / "intel")])
    assert "TI800" in folder.output and "TI803" in folder.output


def test_bump_edits_only_the_modified_value(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    make_pull_request(root, bump=False, commit=False)
    before = (root / "intel" / "c2-address.yaml").read_text()
    bumps = bump_repo(root, "base", "2025-03-05T09:00:00.000Z")
    assert [(b.id, b.before, b.after) for b in bumps] == [(C2_ADDRESS, "2025-02-01T00:00:00.000Z", "2025-03-05T09:00:00.000Z")]
    after = (root / "intel" / "c2-address.yaml").read_text()
    assert after == before.replace("modified: 2025-02-01T00:00:00.000Z", "modified: 2025-03-05T09:00:00.000Z")
    assert codes(root) == []
    assert bump_repo(root, "base", "2025-03-05T09:00:00.000Z") == []  # nothing left to bump


def test_bump_defaults_to_one_millisecond_after_the_base_when_that_is_later(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    edit(root, "intel/lanternloader.yaml", "is_family: true", "is_family: true\ndescription: Loader.")
    result = CliRunner().invoke(main, ["-C", str(root), "bump", "--base", "base", "--at", "2020-01-01T00:00:00.000Z"])
    assert result.exit_code == 0, result.output
    assert "modified: 2025-01-02T00:00:00.001Z" in (root / "intel" / "lanternloader.yaml").read_text()
    assert "bumped 1 object(s)" in result.output


def test_bump_keeps_unchanged_inline_relationships_at_their_version(tmp_path: Path) -> None:
    from pr_repo import git

    from tiops.revision import compile_revision

    root = base_repo(tmp_path / "repo")
    edit(root, "intel/lanternloader.yaml", "is_family: true",
         f"is_family: true\nrelationships:\n  - related-to: {ACTOR}\n  - related-to: {C2_ADDRESS}\n    description: old")
    git(root, "commit", "-q", "-am", "relationships")
    git(root, "tag", "with-relationships")
    # the malware's own content changes, and one of its two relationships too
    edit(root, "intel/lanternloader.yaml", "is_family: true", "is_family: true\ndescription: Loader.")
    edit(root, "intel/lanternloader.yaml", "description: old", "description: new")
    before = compile_revision(root, "with-relationships").authored
    bumps = bump_repo(root, "with-relationships", "2025-03-05T09:00:00.000Z")
    assert [(b.id, b.after) for b in bumps if b.column == 0] == [(MALWARE, "2025-03-05T09:00:00.000Z")]
    after = compile_revision(root, None).authored
    relationships = {i: o for i, o in after.items() if o.get("type") == "relationship" and o.get("source_ref") == MALWARE}
    unchanged = next(o for o in relationships.values() if o["target_ref"] == ACTOR)
    changed = next(o for o in relationships.values() if o["target_ref"] == C2_ADDRESS)
    assert unchanged == before[unchanged["id"]]  # the same version: nothing to publish
    assert changed["modified"] == "2025-03-05T09:00:00.000Z"  # a changed one follows its parent
    assert after[MALWARE]["modified"] == "2025-03-05T09:00:00.000Z"
    assert codes(root, "with-relationships") == []
    assert bump_repo(root, "with-relationships", "2025-03-05T09:00:00.000Z") == []  # stable
    text = (root / "intel" / "lanternloader.yaml").read_text()
    assert f"  - related-to: {ACTOR}\n    modified: 2025-01-02T00:00:00.000Z\n" in text


def test_bump_pins_each_of_several_unchanged_inline_relationships_under_its_own_entry(tmp_path: Path) -> None:
    from pr_repo import git

    root = base_repo(tmp_path / "repo")
    edit(root, "intel/lanternloader.yaml", "is_family: true",
         f"is_family: true\nrelationships:\n  - related-to: {ACTOR}\n    description: first\n"
         f"  - related-to: {C2_ADDRESS}\n  - uses: {ACTOR}\n")
    git(root, "commit", "-q", "-am", "relationships")
    git(root, "tag", "with-relationships")
    edit(root, "intel/lanternloader.yaml", "is_family: true", "is_family: true\ndescription: Loader.")
    bumps = bump_repo(root, "with-relationships", "2025-03-05T09:00:00.000Z")
    assert sum(1 for b in bumps if b.column) == 3  # three relationships pinned to their version
    text = (root / "intel" / "lanternloader.yaml").read_text()
    pinned = "    modified: 2025-01-02T00:00:00.000Z\n"
    assert (f"  - related-to: {ACTOR}\n{pinned}    description: first\n  - related-to: {C2_ADDRESS}\n{pinned}"
            f"  - uses: {ACTOR}\n{pinned}") in text
    assert codes(root, "with-relationships") == []  # no duplicate key, every object still there


def test_github_format_annotates_the_pull_requests_own_findings_first_and_summarises_them_all(tmp_path: Path) -> None:
    """GitHub annotates ten warnings a step: with a partner file's dozen warnings already in the
    base, the warning a pull request adds must be one of them, and the job summary counts all."""
    from pr_repo import git

    root = base_repo(tmp_path / "repo")
    noise = "".join(f"colour{n}: red\n" for n in range(12))
    (root / "intel" / "partner-noise.yaml").write_text(
        "type: identity\nspec_version: '2.1'\nid: identity--0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9\n"
        "created: 2025-01-01T00:00:00.000Z\nmodified: 2025-01-01T00:00:00.000Z\nname: Partner\n"
        "identity_class: organization\n" + noise, encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "partner feed")
    git(root, "tag", "-f", "base")
    (root / "intel" / "zz-ours.yaml").write_text(
        "type: identity\nspec_version: '2.1'\nid: identity--1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d\n"
        "created: 2025-03-01T00:00:00.000Z\nmodified: 2025-03-01T00:00:00.000Z\nname: Ours\n"
        "identity_class: organization\nshade: blue\n", encoding="utf-8")
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(root), "validate", "--base", "base", "--format", "github"],
                                env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("::warning")]
    assert len(warnings) == 14  # 13 findings and the count
    assert warnings[0].startswith("::warning title=tiops%3A 13 warnings::") and "TI208 x13" in warnings[0]
    assert warnings[1].startswith("::warning file=intel/zz-ours.yaml,line=8,col=1,title=TI208 unknown-property::")
    written = summary.read_text(encoding="utf-8")
    assert written.startswith("earlier step\n### tiops validate: 0 errors, 13 warnings")
    assert "| TI208 unknown-property | warning | 13 | `intel/partner-noise.yaml:8:1` |" in written
    # Without GitHub Actions' variable nothing is written anywhere.
    before = written
    result = CliRunner().invoke(main, ["-C", str(root), "validate", "--base", "base", "--format", "github"],
                                env={"GITHUB_STEP_SUMMARY": ""})
    assert result.exit_code == 0 and summary.read_text(encoding="utf-8") == before


def test_bump_at_a_time_that_is_no_timestamp_is_a_usage_error(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    make_pull_request(root, bump=False, commit=False)
    result = CliRunner().invoke(main, ["-C", str(root), "bump", "--base", "base", "--at", "tomorrow"])
    assert result.exit_code == 2 and "--at 'tomorrow' is not a STIX timestamp" in result.output


def test_a_branch_behind_its_base_is_checked_for_its_own_change_only(tmp_path: Path) -> None:
    from pr_repo import MALWARE_FILE, git

    root = base_repo(tmp_path / "repo")
    git(root, "checkout", "-q", "-b", "feature")
    make_pull_request(root)  # edits and bumps its own objects
    git(root, "checkout", "-q", "main")  # meanwhile the base branch moves on: an update and a new object
    edit(root, MALWARE_FILE, "modified: 2025-01-02T00:00:00.000Z", "modified: 2025-04-01T00:00:00.000Z")
    (root / MALWARE_FILE).write_text((root / MALWARE_FILE).read_text() + "description: Updated on main.\n")
    (root / "intel" / "main-only.yaml").write_text(
        "type: malware\nspec_version: '2.1'\nid: malware--aaaaaaaa-2222-4333-8444-555555555555\n"
        "created: 2025-01-01T00:00:00.000Z\nmodified: 2025-01-01T00:00:00.000Z\nname: MainOnly\nis_family: true\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "main moves on", date="2025-04-01T12:00:00+00:00")
    git(root, "checkout", "-q", "feature")
    # main's update read as the branch taking it back (TI800), and its new object as deleted (TI803).
    assert codes(root, "main") == []
    result = CliRunner().invoke(main, ["-C", str(root), "validate", "--base", "main"])
    assert result.exit_code == 0 and "HEAD does not contain main" in result.stderr, result.output
    # bump put a newer modified on the branch's old copy of main's object: merged, main's update undone.
    bumped = CliRunner().invoke(main, ["-C", str(root), "bump", "--base", "main", "--dry-run"])
    assert bumped.exit_code == 0 and "would bump 0 object(s)" in bumped.output, bumped.output


def test_intel_kept_in_git_lfs_is_read_from_a_revision_as_the_checkout_has_it(tmp_path: Path) -> None:
    import shutil

    from pr_repo import DATA, git

    root = tmp_path / "repo"
    shutil.copytree(DATA / "base", root)
    git(root, "init", "-q", "-b", "main")
    lfs_like_filter(root, tmp_path / "store")
    (root / ".gitattributes").write_text("intel/*.yaml filter=lfs diff=lfs merge=lfs -text\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    git(root, "tag", "base")
    assert git(root, "show", "HEAD:intel/c2-address.yaml").startswith("version https://git-lfs")  # a pointer in git
    make_pull_request(root, bump=False)
    # Read as pointer text, the revisions held no objects: the change without a bump passed.
    assert ("TI800", C2_ADDRESS) in codes(root)
    result = CliRunner().invoke(main, ["-C", str(root), "diff", "base", "HEAD"])
    assert result.exit_code == 0 and "sinkholed since March" in result.output, result.output

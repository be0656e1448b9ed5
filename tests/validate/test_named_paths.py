"""Validating named files keeps the repository-wide findings that involve them (what pre-commit runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiops.validate import validate_paths

MIMIKATZ_FILE = "intel/malware/mimikatz.yaml"


def _codes(findings: list, file: str | None = None) -> set[str]:  # type: ignore[type-arg]
    return {f.code for f in findings if f.severity.name == "ERROR" and (file is None or f.location.file == file)}


def _mimikatz_id(root: Path) -> str:
    text = (root / MIMIKATZ_FILE).read_text()
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("id:"))


def test_a_new_file_reusing_an_existing_id_is_reported(example_repo: Path) -> None:
    existing = _mimikatz_id(example_repo)
    new = example_repo / "intel" / "malware" / "aaa-new.yaml"  # sorts first: the finding lands on the other copy
    new.write_text(f"type: malware\nspec_version: '2.1'\nid: {existing}\ncreated: 2025-01-01T00:00:00.000Z\n"
                   "modified: 2025-01-01T00:00:00.000Z\nname: Copy\nis_family: true\n")
    zzz = example_repo / "intel" / "malware" / "zzz-new.yaml"  # sorts last: the finding lands on it
    zzz.write_text(new.read_text().replace("name: Copy", "name: Other copy"))
    for named in (new, zzz):
        findings = validate_paths(example_repo, [named])
        assert "TI302" in _codes(findings), named.name


def test_dangling_references_and_relationships_from_and_to_the_file(example_repo: Path) -> None:
    new = example_repo / "intel" / "indicators" / "new.yaml"
    new.write_text("type: indicator\nspec_version: '2.1'\nid: indicator--11111111-2222-4333-8444-555555555555\n"
                   "created: 2025-01-01T00:00:00.000Z\nmodified: 2025-01-01T00:00:00.000Z\nname: New\n"
                   "pattern: \"[ipv4-addr:value = '198.51.100.1']\"\npattern_type: stix\nvalid_from: 2025-01-01T00:00:00Z\n"
                   "created_by_ref: identity--99999999-9999-4999-8999-999999999999\n")
    # A relationship elsewhere that uses the new indicator in a way the table forbids.
    elsewhere = example_repo / "intel" / "relationships" / "new-uses.yaml"
    elsewhere.write_text("type: relationship\nspec_version: '2.1'\nid: relationship--11111111-2222-4333-8444-555555555556\n"
                         "created: 2025-01-01T00:00:00.000Z\nmodified: 2025-01-01T00:00:00.000Z\n"
                         f"relationship_type: uses\nsource_ref: indicator--11111111-2222-4333-8444-555555555555\ntarget_ref: {_mimikatz_id(example_repo)}\n")
    findings = validate_paths(example_repo, [new])
    assert "TI300" in _codes(findings, "intel/indicators/new.yaml")  # its own dangling reference
    assert "TI400" in _codes(findings, "intel/relationships/new-uses.yaml")  # a relationship to it, elsewhere


@pytest.mark.parametrize("cache", [True, False])
def test_a_relationship_elsewhere_reports_what_concerns_the_named_file_not_its_own_errors(
        example_repo: Path, cache: bool) -> None:
    """Naming a clean file reported, and failed on, a schema error of a relationship elsewhere that points at it."""
    target = example_repo / MIMIKATZ_FILE
    elsewhere = example_repo / "intel" / "relationships" / "confident.yaml"
    elsewhere.write_text("type: relationship\nspec_version: '2.1'\nid: relationship--11111111-2222-4333-8444-555555555557\n"
                         "created: 2025-01-01T00:00:00.000Z\nmodified: 2025-01-01T00:00:00.000Z\nconfidence: 500\n"
                         f"relationship_type: uses\nsource_ref: {_mimikatz_id(example_repo)}\n"
                         "target_ref: indicator--99999999-2222-4333-8444-555555555555\n")
    whole = validate_paths(example_repo, [], cache=cache)
    assert {"TI200", "TI300"} <= _codes(whole, "intel/relationships/confident.yaml")
    named = validate_paths(example_repo, [target], cache=cache)
    assert _codes(named, "intel/relationships/confident.yaml") == {"TI300"}  # the dangling end, not the schema
    assert validate_paths(example_repo, [elsewhere], cache=cache) == [
        f for f in whole if f.location.file == "intel/relationships/confident.yaml"]


def test_unrelated_files_stay_out(example_repo: Path) -> None:
    (example_repo / "intel" / "malware" / "broken.yaml").write_text("type: malware\nspec_version: '2.1'\nname: x\nis_family: maybe\n")
    clean = example_repo / "intel" / "actors" / "copper-lantern.yaml"
    assert _codes(validate_paths(example_repo, [clean])) == set()
    assert _codes(validate_paths(example_repo, [])) != set()


def test_a_path_outside_the_repository_is_a_usage_error_not_no_findings(example_repo: Path, tmp_path: Path) -> None:
    import pytest
    from click.testing import CliRunner

    from tiops.cli import main
    from tiops.errors import UsageError

    outside = tmp_path / "elsewhere" / "broken.yaml"
    outside.parent.mkdir()
    outside.write_text("type: indicator\nname: [unclosed\n", encoding="utf-8")  # broken: "no findings" was a lie
    with pytest.raises(UsageError, match="is not inside the repository"):
        validate_paths(example_repo, [outside])
    result = CliRunner().invoke(main, ["-C", str(example_repo), "validate", str(outside)])
    assert result.exit_code == 2 and "is not inside the repository" in result.output, result.output
    inside = example_repo / "intel" / "indicators"
    assert CliRunner().invoke(main, ["-C", str(example_repo), "validate", str(inside)]).exit_code == 0


@pytest.mark.parametrize("encrypted", [False, True])
def test_an_id_changed_in_the_named_file_reports_what_still_points_at_the_old_one(example_repo: Path,
                                                                                  encrypted: bool) -> None:
    from pr_repo import encrypting_filter, git

    git(example_repo, "init", "-q", "-b", "main")
    if encrypted:  # git-crypt's way: HEAD holds the file's ciphertext, the checkout its text
        encrypting_filter(example_repo)
        (example_repo / ".gitattributes").write_text(f"{MIMIKATZ_FILE} filter=crypt\n")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-q", "-m", "intel")
    old = _mimikatz_id(example_repo)
    pointing = {path.relative_to(example_repo).as_posix() for path in (example_repo / "intel").rglob("*.yaml")
                if old in path.read_text() and path.relative_to(example_repo).as_posix() != MIMIKATZ_FILE}
    assert pointing  # relationships elsewhere use mimikatz
    named = example_repo / MIMIKATZ_FILE
    named.write_text(named.read_text().replace(old, old[:-1] + ("0" if old[-1] != "0" else "1")))
    for cache in (False, True, True):  # uncached, then a cache written, then read
        findings = validate_paths(example_repo, [named], cache=cache)
        assert {f.location.file for f in findings if f.code == "TI300"} >= pointing, cache


def test_a_relationship_end_that_is_not_a_string_is_a_finding_not_a_crash(example_repo: Path) -> None:
    # The uncached check of named files looked a list up in a set: TypeError, exit 3.
    odd = example_repo / "intel" / "relationships" / "odd-ends.yaml"
    odd.write_text("type: relationship\nspec_version: '2.1'\nid: relationship--11111111-2222-4333-8444-555555555557\n"
                   "created: 2025-01-01T00:00:00.000Z\nmodified: 2025-01-01T00:00:00.000Z\nrelationship_type: uses\n"
                   f"source_ref: [{_mimikatz_id(example_repo)}]\ntarget_ref: {_mimikatz_id(example_repo)}\n")
    named = [example_repo / MIMIKATZ_FILE]
    assert validate_paths(example_repo, named, cache=False) == validate_paths(example_repo, named, cache=True)
    assert "TI200" in _codes(validate_paths(example_repo, [odd], cache=False), "intel/relationships/odd-ends.yaml")


def test_a_file_of_the_enrichment_lock_is_checked_as_the_lock_not_linted_as_a_bundle(example_repo: Path) -> None:
    from click.testing import CliRunner

    from tiops.cli import main

    lock = example_repo / "intel" / ".enrichment" / "lock.json"
    assert lock.is_file()  # the example carries a lock
    for cache in (False, True):
        assert validate_paths(example_repo, [lock], cache=cache) == [], cache  # not TI201 "item 0 has no 'type'"
    lock.write_text('{"format": 1, "geo": [\n')
    for cache in (False, True):
        findings = validate_paths(example_repo, [lock], cache=cache)
        assert [(f.code, f.location.file, f.location.line) for f in findings] == [
            ("TI150", "intel/.enrichment/lock.json", 2)], cache
    outside = CliRunner().invoke(main, ["-C", str(example_repo.parent), "validate", str(lock)])
    assert "TI150" in outside.output and "TI201" not in outside.output  # named from outside the repository too


def test_an_import_record_named_from_outside_its_repository_is_checked_in_that_repository(
        example_repo: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tiops.cli import main
    from tiops.importers.write import import_file

    import_file(example_repo, Path(__file__).resolve().parent.parent / "data" / "importers" / "partner_v1.json",
                "stix", "Partner")
    record = next((example_repo / "intel").glob("*/_imported.json"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = CliRunner().invoke(main, ["-C", str(elsewhere), "validate", str(record)])
    assert result.exit_code == 0 and result.output == "no findings\n", result.output  # not a usage error


@pytest.mark.parametrize("cache", [False, True])
def test_a_named_link_reports_the_findings_of_the_link_not_of_its_target(example_repo: Path, tmp_path: Path,
                                                                        cache: bool) -> None:
    """`tiops validate LINK` (pre-commit names a link of the intel as any changed file) reports what the
    repository reports at the link's path. Resolved whole, it named the target: one outside the intel
    has no findings of its own, and the link's errors passed as "no findings"."""
    shared = example_repo / "shared"
    shared.mkdir()
    (shared / "tool.yaml").write_text("type: malware\nname: Linked\nis_family: maybe\n", encoding="utf-8")
    link = example_repo / "intel" / "malware" / "linked.yaml"
    link.symlink_to(Path("..", "..", "shared", "tool.yaml"))
    whole = {(f.code, f.location.file) for f in validate_paths(example_repo, [], cache=False)}
    assert ("TI200", "intel/malware/linked.yaml") in whole
    for _ in range(2):  # the second one through a warm cache
        named = {(f.code, f.location.file) for f in validate_paths(example_repo, [link], cache=cache)}
        assert named == {item for item in whole if item[1] == "intel/malware/linked.yaml"}
    # Named by a link from outside the repository to that link: the link's findings too.
    outside = tmp_path / "outside.yaml"
    outside.symlink_to(link)
    assert {(f.code, f.location.file) for f in validate_paths(example_repo, [outside], cache=cache)} == named


@pytest.mark.parametrize("cache", [False, True])
def test_files_of_an_intel_folder_that_is_a_link_are_named_either_way(example_repo: Path, cache: bool) -> None:
    """An intel folder that is a link (``intel`` -> ``data/intel``) is walked as ``intel``. Its files named
    by that path were resolved to ``data/intel/...``, and by the path git and pre-commit give
    (``data/intel/...``) were named as such: no finding has those paths, so both said "no findings"."""
    (example_repo / "data").mkdir()
    (example_repo / "intel").rename(example_repo / "data" / "intel")
    (example_repo / "intel").symlink_to(Path("data", "intel"))
    mimikatz = example_repo / "data" / MIMIKATZ_FILE
    mimikatz.write_text(mimikatz.read_text() + "x_unchecked: [unclosed\n")  # a parse error
    whole = {(f.code, f.location.file) for f in validate_paths(example_repo, [], cache=False)}
    expected = {item for item in whole if item[1] == MIMIKATZ_FILE}
    assert expected
    for named in (example_repo / MIMIKATZ_FILE, mimikatz, example_repo / "intel" / "tools" / ".." / "malware" /
                  "mimikatz.yaml", example_repo / "data" / "intel" / "malware"):
        for _ in range(2):  # the second one through a warm cache
            found = {(f.code, f.location.file) for f in validate_paths(example_repo, [named], cache=cache)}
            assert expected <= found and all(file.startswith("intel/malware/") for _, file in found), named


def test_a_named_link_leading_nowhere_is_reported_as_the_whole_validate_reports_it(example_repo: Path) -> None:
    from click.testing import CliRunner

    from tiops.cli import main

    (example_repo / "intel" / "malware" / "gone.yaml").symlink_to("nowhere.yaml")
    whole = CliRunner().invoke(main, ["-C", str(example_repo), "validate"])
    named = CliRunner().invoke(main, ["-C", str(example_repo), "validate", "intel/malware/gone.yaml"])
    assert whole.exit_code == named.exit_code == 1
    assert "intel/malware/gone.yaml:1:1: error TI108" in named.output
    assert "intel/malware/gone.yaml:1:1: error TI108" in whole.output
    missing = CliRunner().invoke(main, ["-C", str(example_repo), "validate", "intel/malware/none.yaml"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_a_named_file_under_a_folder_link_leading_out_is_reported_not_clean(example_repo: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tiops.cli import main

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.yaml").write_text("type: malware\nid: bad\nname: s3cr3t\n", encoding="utf-8")
    (example_repo / "intel" / "sub").symlink_to(outside, target_is_directory=True)
    named = CliRunner().invoke(main, ["-C", str(example_repo), "validate", "intel/sub/x.yaml"])
    assert named.exit_code == 1, named.output
    assert "intel/sub:1:1: error TI108" in named.output and "s3cr3t" not in named.output

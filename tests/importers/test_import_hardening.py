"""Imports account for every row and object: odd CSV input is reported row by row, never an internal error."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops.cli import main
from tiops.importers.sentinel_csv import MAX_CELL_CHARACTERS, parse
from tiops.importers.write import import_file
from tiops.yamlio import parse_yaml

HEADER = "validFrom,observableType,observableValue,severity,description\n"
VALID_FROM = "2025-01-01T00:00:00.000Z"


def row(value: str, severity: str = "1", description: str = "") -> str:
    return f"{VALID_FROM},ipv4-addr,{value},{severity},{description}\n"


def imported(tmp_path: Path, text: str, *args: str) -> tuple[int, str, str]:
    (tmp_path / "repo" / "intel").mkdir(parents=True, exist_ok=True)
    source = tmp_path / "feed.csv"
    source.write_text(text, encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--format", "sentinel-csv",
                                  "--source", "Feed", *args])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, result.stdout, result.stderr


def disk_full_at(monkeypatch: pytest.MonkeyPatch, call: int) -> Callable[[], None]:
    """The import's ``call``-th rename of a written file into place fails as a full disk does; returns
    what puts the real rename back."""
    import os

    from tiops.importers import write

    real_replace, calls = os.replace, [0]

    def stopped(source: object, target: object) -> None:
        calls[0] += 1
        if calls[0] == call:
            raise OSError(28, "No space left on device")
        real_replace(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(write.os, "replace", stopped)
    return lambda: monkeypatch.setattr(write.os, "replace", real_replace)


def test_a_unicode_digit_in_severity_rejects_its_row_only(tmp_path: Path) -> None:
    code, out, err = imported(tmp_path, HEADER + row("198.51.100.1", "²") + row("198.51.100.2", "٣") + row("198.51.100.3"))
    assert code == 1
    assert "row 2: severity: '²' is not a whole number" in err
    assert "row 3: severity: '٣' is not a whole number" in err
    assert "total 3, created 1," in out and "rejected 2," in out


def test_a_cell_over_the_limit_rejects_its_row_only(tmp_path: Path) -> None:
    long_cell = "x" * (MAX_CELL_CHARACTERS + 1)
    code, out, err = imported(tmp_path, HEADER + row("198.51.100.1", description=long_cell) + row("198.51.100.2"))
    assert code == 1
    assert f"row 2: cell 5 has {MAX_CELL_CHARACTERS + 1} characters" in err
    assert len(err) < 1000  # the cell itself is not echoed back
    assert "total 2, created 1," in out


def test_an_unterminated_quote_at_the_end_names_the_rows_it_swallowed(tmp_path: Path) -> None:
    text = HEADER + row("198.51.100.1") + f'{VALID_FROM},ipv4-addr,"198.51.100.2,1,\n' + row("198.51.100.3") + row("198.51.100.4")
    code, out, err = imported(tmp_path, text)
    assert code == 1
    assert "row 3 (lines 3-5): cannot be read as CSV" in err
    assert "total 2, created 1," in out and "rejected 1," in out


def test_a_quote_closed_rows_later_is_reported_not_imported_as_one_cell(tmp_path: Path) -> None:
    text = HEADER + f'{VALID_FROM},ipv4-addr,198.51.100.1,1,"an open quote\n' + row("198.51.100.2") + row("198.51.100.3", description='closed here"')
    code, _, err = imported(tmp_path, text)
    assert code == 1
    assert "row 2 (lines 2-4): cell 5 runs over lines 2-4 and holds what looks like whole rows" in err


def test_a_multi_line_description_is_still_fine(tmp_path: Path) -> None:
    text = HEADER + f'{VALID_FROM},ipv4-addr,198.51.100.1,1,"first line\nsecond line"\n'
    code, out, _ = imported(tmp_path, text)
    assert code == 0 and "created 1" in out


def test_duplicate_header_columns_are_reported(tmp_path: Path) -> None:
    code, _, err = imported(tmp_path, "validFrom,observableType,observableValue,name,name\n" + f"{VALID_FROM},ipv4-addr,198.51.100.1,a,b\n")
    assert code == 1
    assert "row 1: the header names column 'name' twice (columns 4 and 5)" in err


def test_only_the_template_comment_row_is_skipped(tmp_path: Path) -> None:
    text = HEADER + "#comment row of the template,,,,\n" + row("198.51.100.1") + "#not a comment row,,,,\n"
    code, out, err = imported(tmp_path, text)
    assert code == 1
    assert "row 4: starts with '#' but is not the template's comment row" in err
    assert "total 2, created 1," in out


def test_duplicate_observable_rows_with_different_content_are_rejected(tmp_path: Path) -> None:
    text = HEADER + row("198.51.100.1", "1") + row("198.51.100.1", "1") + row("198.51.100.1", "5")
    code, out, err = imported(tmp_path, text)
    assert code == 1
    assert "row 4 indicator--" in err and "the same observable as row 2 with different values" in err
    assert "created 1," in out and "rejected 1," in out and "older ignored 1" in out  # row 3 repeats row 2 exactly


def test_a_same_version_duplicate_in_one_bundle_is_rejected_not_older(tmp_path: Path) -> None:
    first = {"type": "indicator", "spec_version": "2.1", "id": "indicator--0f6f9b5e-4c1e-4d8e-9a3b-6a1d2c3b4e5f",
             "created": VALID_FROM, "modified": VALID_FROM, "pattern": "[ipv4-addr:value = '198.51.100.1']",
             "pattern_type": "stix", "valid_from": VALID_FROM, "name": "first"}
    later = {**first, "modified": "2025-02-01T00:00:00.000Z", "name": "later"}
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps([first, {**first, "name": "second"}, later]), encoding="utf-8")
    report = import_file(tmp_path / "repo", bundle, "stix", "Partner")
    assert [(r.position, r.reasons[0][:40]) for r in report.rejections] == [
        ("index 1", "same id and 'modified' as index 0 but di")]
    assert report.created == 1 and report.older_ignored == 1


def test_the_error_file_neutralises_formulas(tmp_path: Path) -> None:
    parsed = parse((HEADER + row("198.51.100.1", "=cmd|' /C calc'!A0")).encode(), "Feed")
    assert parsed.rejections
    errors = tmp_path / "errors.csv"
    from tiops.importers import Rejection
    from tiops.importers.write import write_rejections

    write_rejections(errors, [*parsed.rejections, Rejection("row 9", ("=HYPERLINK(\"http://x\")", "+1", "-1", "@SUM(A1)"))])
    cells = [cell for line in csv.reader(errors.open(encoding="utf-8")) for cell in line]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@")]
    assert "'=HYPERLINK(\"http://x\")" in cells


@pytest.mark.parametrize("name", ["errors.csv", "errors.json"])
def test_the_error_file_is_replaced_by_a_new_one(tmp_path: Path, name: str) -> None:
    errors = tmp_path / "kept" / name
    errors.parent.mkdir()
    errors.write_text("the previous run's rejections\n", encoding="utf-8")
    before = errors.stat().st_ino
    code, out, _ = imported(tmp_path, HEADER + row("198.51.100.1", "high") + row("198.51.100.2"), "--errors", str(errors))
    assert code == 1 and "wrote 1 rejection(s)" in out
    assert "row 2" in errors.read_text(encoding="utf-8")
    # Written beside and renamed over: an interrupted write leaves the previous file whole.
    assert errors.stat().st_ino != before and [p.name for p in errors.parent.iterdir()] == [name]


@pytest.mark.parametrize("name", ["errors.csv", "errors.json"])
def test_an_error_file_cut_short_by_a_full_disk_leaves_the_previous_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       name: str) -> None:
    from full_disk import fill_up_writing

    errors = tmp_path / "kept" / name
    errors.parent.mkdir()
    errors.write_text("the previous run's rejections\n", encoding="utf-8")
    (tmp_path / "repo" / "intel").mkdir(parents=True)
    (tmp_path / "feed.csv").write_text(HEADER + row("198.51.100.1", "high") + row("198.51.100.2"), encoding="utf-8")
    fill_up_writing(monkeypatch, name)
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(tmp_path / "feed.csv"), "--format",
                                       "sentinel-csv", "--source", "Feed", "--errors", str(errors)])
    assert result.exit_code == 2 and f"cannot write the rejections to {errors}: No space" in result.output, result.output
    assert errors.read_text(encoding="utf-8") == "the previous run's rejections\n"
    assert [p.name for p in errors.parent.iterdir()] == [name]  # nothing left beside it


def test_csv_with_a_nul_byte_and_lone_carriage_returns_is_reported(tmp_path: Path) -> None:
    parsed = parse((HEADER + f'{VALID_FROM},ipv4-addr,"198.51.100.1\x00",1,\r' + row("198.51.100.2")).encode(), "Feed")
    assert parsed.total == len(parsed.candidates) + len(parsed.rejections)


def test_a_file_that_is_not_a_regular_file_is_named_as_such(tmp_path: Path) -> None:
    import os

    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    fifo = tmp_path / "feed.json"
    os.mkfifo(fifo)
    for given, said in [(str(fifo), "not a regular file"), ("/dev/zero", "not a regular file"),
                        (str(tmp_path / "missing.json"), "no such file")]:
        result = CliRunner().invoke(main, ["-C", str(root), "import", given, "--source", "Feed"])
        assert result.exit_code == 2 and f"{given}: {said}" in result.output, result.output
    assert not (root / "intel" / "feed").exists()


def test_an_import_stopped_while_writing_leaves_every_file_whole(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]

    import pytest


    def bundle(description: str) -> Path:
        objects = [{"type": "indicator", "spec_version": "2.1", "id": f"indicator--{n:08d}-1111-4111-8111-111111111111",
                    "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z" if description == "v1"
                    else "2025-02-01T00:00:00.000Z", "description": description, "pattern_type": "stix",
                    "pattern": f"[ipv4-addr:value = '198.51.100.{n}']", "valid_from": "2025-01-01T00:00:00Z"}
                   for n in range(1, 6)]
        path = tmp_path / f"{description}.json"
        path.write_text(json.dumps({"type": "bundle", "id": "bundle--11111111-1111-4111-8111-111111111111",
                                    "objects": objects}), encoding="utf-8")
        return path

    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    import_file(root, bundle("v1"), "stix", "Partner")
    folder = root / "intel" / "partner"
    restore = disk_full_at(monkeypatch, 3)
    from tiops.errors import TiopsError

    with pytest.raises(TiopsError, match="No space left on device"):  # a message, not an internal error
        import_file(root, bundle("v2"), "stix", "Partner")
    restore()
    texts = [path.read_text(encoding="utf-8") for path in folder.rglob("*.yaml") if not path.name.startswith("_")]
    assert len(texts) == 5 and all(("v1" in text) != ("v2" in text) for text in texts)  # each whole, old or new
    assert not [path for path in folder.rglob("*") if path.name.endswith(".importing")]
    report = import_file(root, bundle("v2"), "stix", "Partner")  # the rerun converges
    assert all("v2" in path.read_text(encoding="utf-8") for path in folder.rglob("*.yaml") if not path.name.startswith("_"))
    assert CliRunner().invoke(main, ["-C", str(root), "validate"]).exit_code == 0, report


def test_an_errors_file_that_cannot_be_written_is_a_usage_error_before_anything_is_imported(tmp_path: Path) -> None:
    (tmp_path / "repo" / "intel").mkdir(parents=True)
    source = tmp_path / "feed.csv"
    source.write_text(HEADER + row("198.51.100.1"), encoding="utf-8")
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--format", "sentinel-csv",
                                       "--source", "Feed", "--errors", str(blocker / "sub" / "errors.csv")])
    assert result.exit_code == 2 and "--errors" in result.output and "internal error" not in result.output
    assert not (tmp_path / "repo" / "intel" / "feed").exists()  # nothing imported


def test_partner_text_in_import_and_tag_output_is_shown_printable(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    name = "Evil\x1b[31m red\u202eRLO\r\nline"
    objects = [{"type": "malware", "spec_version": "2.1", "id": "malware--11111111-1111-4111-8111-111111111111",
                "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "name": name,
                "is_family": "maybe"},  # rejected: is_family is a boolean
               {"type": "malware", "spec_version": "2.1", "id": "malware--22222222-2222-4222-8222-222222222222",
                "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "name": name,
                "is_family": True}]
    source = tmp_path / "feed.json"
    source.write_text(json.dumps({"type": "bundle", "id": "bundle--11111111-1111-4111-8111-111111111111",
                                  "objects": objects}), encoding="utf-8")
    imported = CliRunner().invoke(main, ["-C", str(root), "import", str(source), "--source", "Feed"])
    tagged = CliRunner().invoke(main, ["-C", str(root), "tag", "add", "seen", "--id",
                                       "malware--22222222-2222-4222-8222-222222222222"])
    assert tagged.exit_code == 0, tagged.output
    for output in (imported.output, tagged.output):
        assert "\\x1b[31m" in output and "\\u202e" in output, output
        assert not any(character in output for character in "\x1b\u202e\r")
    overlay = (root / "intel" / "feed" / "_overlay.yaml").read_text(encoding="utf-8")
    assert "\x1b" not in overlay and "\u202e" not in overlay


def test_one_object_nested_too_deep_is_rejected_alone(tmp_path: Path) -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(120):
        node["x_deeper"] = {}
        node = node["x_deeper"]  # type: ignore[assignment]
    good = {"type": "malware", "spec_version": "2.1", "id": "malware--11111111-1111-4111-8111-111111111111",
            "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "name": "Fine",
            "is_family": True}
    bad = {**good, "id": "malware--22222222-2222-4222-8222-222222222222", "name": "Deep", "x_nest": deep}
    source = tmp_path / "feed.json"
    source.write_text(json.dumps({"type": "bundle", "id": "bundle--11111111-1111-4111-8111-111111111111",
                                  "objects": [good, bad]}), encoding="utf-8")
    (tmp_path / "repo" / "intel").mkdir(parents=True)
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--source", "Feed"])
    assert result.exit_code == 1, result.output
    assert "created 1" in result.output and "rejected 1" in result.output
    assert "index 1" in result.output and "nested more than 100 levels deep" in result.output


def _only_file(tmp_path: Path) -> Path:
    (found,) = [p for p in (tmp_path / "repo" / "intel" / "feed").rglob("*.yaml") if not p.name.startswith("_")]
    return found


def test_a_hand_edited_row_file_is_put_back_by_the_same_csv_not_versioned_again(tmp_path: Path) -> None:
    text = HEADER + row("198.51.100.1", description="first")
    imported(tmp_path, text)
    path = _only_file(tmp_path)
    original = path.read_bytes()
    for _ in range(2):
        path.write_bytes(original.replace(b"description: first", b"description: edited by hand"))
        _, out, _ = imported(tmp_path, text)
        assert path.read_bytes() == original, out  # the same version, not modified + 1 ms
        assert "restored 1 hand-edited partner file" in out


def test_a_later_row_for_the_same_observable_keeps_the_objects_created(tmp_path: Path) -> None:
    from tiops.yamlio import parse_yaml

    imported(tmp_path, HEADER + row("198.51.100.1", "1"))
    first = parse_yaml(_only_file(tmp_path).read_text(encoding="utf-8"))
    for valid_from in ("2025-03-01T00:00:00.000Z", "2024-06-01T00:00:00.000Z"):  # later, then earlier
        imported(tmp_path, HEADER + f"{valid_from},ipv4-addr,198.51.100.1,3,\n")
        now = parse_yaml(_only_file(tmp_path).read_text(encoding="utf-8"))
        assert now["id"] == first["id"] and now["created"] == first["created"]  # STIX 2.1 section 3.6
        assert now["modified"] > first["modified"]
        first = now


def test_a_column_that_is_not_sentinels_is_said_to_be_left_out(tmp_path: Path) -> None:
    header = "validFrom,observableType,observableValue,Notes,SHA-256\n"
    _, out, _ = imported(tmp_path, header + f"{VALID_FROM},ipv4-addr,198.51.100.1,our analyst note,\n")
    assert "column(s) 'Notes' of the header are not Sentinel's and are not imported" in out
    assert "SHA-256" not in out.split("column(s)")[1].split("are not")[0]  # a hash column is read
    _, plain, _ = imported(tmp_path, HEADER + row("198.51.100.2"))
    assert "column(s)" not in plain


def test_a_byte_that_is_not_utf8_rejects_its_row_only(tmp_path: Path) -> None:
    (tmp_path / "repo" / "intel").mkdir(parents=True)
    source = tmp_path / "feed.csv"
    source.write_bytes((HEADER + row("198.51.100.1", description="fine")).encode()
                       + f"{VALID_FROM},ipv4-addr,198.51.100.2,1,caf".encode() + b"\xe9\n"
                       + row("198.51.100.3").encode())
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--format", "sentinel-csv",
                                       "--source", "Feed"])
    assert result.exit_code == 1, result.output
    assert "total 3, created 2" in result.stdout and "rejected 1" in result.stdout, result.stdout
    assert "row 3" in result.stderr and "cell 5 is not UTF-8 (byte 0xe9)" in result.stderr


def test_column_names_are_read_whatever_their_case(tmp_path: Path) -> None:
    header = "ValidFrom,OBSERVABLETYPE,observablevalue,Confidence\n"
    code, out, err = imported(tmp_path, header + f"{VALID_FROM},ipv4-addr,198.51.100.1,70\n")
    assert code == 0, err
    assert "total 1, created 1," in out and "column(s)" not in out
    assert "confidence: 70" in _only_file(tmp_path).read_text(encoding="utf-8")


def test_one_column_written_in_two_cases_is_named_twice(tmp_path: Path) -> None:
    code, _, err = imported(tmp_path, "validFrom,ValidFrom,observableType,observableValue\n"
                            f"{VALID_FROM},{VALID_FROM},ipv4-addr,198.51.100.1\n")
    assert code == 1
    assert "names column 'validFrom' twice (written 'validFrom' and 'ValidFrom') (columns 1 and 2)" in err


def test_a_header_that_cannot_be_read_rejects_every_row_and_counts_them(tmp_path: Path) -> None:
    text = "validFrom;observableType;observableValue\n" + "".join(
        f"{VALID_FROM};ipv4-addr;198.51.100.{n}\n" for n in range(1, 4))
    code, out, err = imported(tmp_path, text)
    assert code == 1
    assert "total 3, created 0," in out and "rejected 3," in out  # every row is in one figure
    assert "the file looks separated by ';'" in err and "every row under the header (3) is rejected" in err
    code, out, err = imported(tmp_path, "")
    assert code == 1 and "total 0," in out and "rejected 0," in out and "the file is empty" in err


def test_hash_rows_keep_the_file_name_and_need_no_observable_value(tmp_path: Path) -> None:
    sha256, md5 = "a" * 64, "b" * 32
    header = "name,validFrom,observableType,observableValue,SHA256,MD5\n"
    code, out, err = imported(tmp_path, header + f"named,{VALID_FROM},file,evil.exe,{sha256},{md5}\n"
                              f"bare,{VALID_FROM},file,,{sha256},\n")
    assert code == 0, err
    assert "total 2, created 2," in out
    patterns = sorted(parse_yaml(path.read_text(encoding="utf-8"))["pattern"]
                      for path in (tmp_path / "repo" / "intel").rglob("indicator/*.yaml"))
    assert patterns == [
        f"[(file:hashes.'MD5' = '{md5}' OR file:hashes.'SHA-256' = '{sha256}') AND file:name = 'evil.exe']",
        f"[file:hashes.'SHA-256' = '{sha256}']",
    ]


def test_a_digest_in_observable_value_of_a_file_row_is_read_as_its_hash(tmp_path: Path) -> None:
    digests = {"MD5": "1" * 32, "SHA-1": "2" * 40, "SHA-256": "3" * 64, "SHA-512": "4" * 128}
    text = "validFrom,observableType,observableValue\n" + "".join(
        f"{VALID_FROM},file,{digest}\n" for digest in digests.values()) + f"{VALID_FROM},file,{'5' * 33}.exe\n"
    code, out, err = imported(tmp_path, text)
    assert code == 0, err
    assert "4 file row(s) hold a hash in observableValue" in out
    patterns = {parse_yaml(path.read_text(encoding="utf-8"))["pattern"]
                for path in (tmp_path / "repo" / "intel").rglob("indicator/*.yaml")}
    assert patterns == {f"[file:hashes.'{name}' = '{digest}']" for name, digest in digests.items()} | {
        f"[file:name = '{'5' * 33}.exe']"}


def test_a_json_file_with_a_byte_order_mark_is_imported(tmp_path: Path) -> None:
    (tmp_path / "repo" / "intel").mkdir(parents=True)
    source = tmp_path / "feed.json"
    indicator = {"type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                 "created": VALID_FROM, "modified": VALID_FROM, "pattern": "[ipv4-addr:value = '198.51.100.1']",
                 "pattern_type": "stix", "valid_from": VALID_FROM}
    source.write_bytes(b"\xef\xbb\xbf" + json.dumps([indicator]).encode())
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--source", "Feed"])
    assert result.exit_code == 0, result.output
    assert "total 1, created 1," in result.stdout
    source.write_bytes(b"\xef\xbb\xbf[{\n")
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--source", "Feed"])
    assert result.exit_code == 1 and "total 1, created 0," in result.stdout and "rejected 1," in result.stdout


def test_an_object_rejected_for_its_own_defect_is_given_its_reference_problems_too(tmp_path: Path) -> None:
    (tmp_path / "repo" / "intel").mkdir(parents=True)
    source = tmp_path / "feed.json"
    missing_identity = "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff"
    pattern = {"type": "attack-pattern", "spec_version": "2.1", "id": "attack-pattern--fb6aa549-c94a-4e45-b4fd-7e32602dad85",
               "created": VALID_FROM, "modified": VALID_FROM, "name": "AP", "created_by_ref": missing_identity,
               "granular_markings": [{"lang": "en", "marking_ref": "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
                                      "selectors": ["name"]}]}
    source.write_text(json.dumps([pattern]), encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--source", "Feed"])
    assert result.exit_code == 1
    assert "a granular marking has lang or marking_ref, not both (STIX 2.1 section 7.2.3)" in result.stderr
    assert f"created_by_ref refers to {missing_identity}, which is neither in the input nor in the repository" in result.stderr
    assert "rejected 1, rejected as dependent 0" in result.stdout


def test_an_errors_file_of_no_known_format_is_refused_before_importing(tmp_path: Path) -> None:
    (tmp_path / "repo" / "intel").mkdir(parents=True)
    source = tmp_path / "feed.csv"
    source.write_text(HEADER + row("198.51.100.1"), encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--source", "Feed",
                                       "--errors", str(tmp_path / "rejections.txt")])
    assert result.exit_code == 2 and "must end in .csv or .json" in result.stderr
    assert not (tmp_path / "repo" / "intel" / "feed").exists() and not (tmp_path / "rejections.txt").exists()


def test_a_bundle_tiops_compiled_imports_whole_into_another_repository(example_repo: Path, tmp_path: Path) -> None:
    # Its TLP 2.0 extension-definition names CISA's identity, which no bundle carries: a known id,
    # so neither the definition nor the markings and objects that depend on it are rejected.
    bundle = tmp_path / "bundle.json"
    assert CliRunner().invoke(main, ["-C", str(example_repo), "compile", "-o", str(bundle)]).exit_code == 0
    (tmp_path / "other" / "intel").mkdir(parents=True)
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "other"), "import", str(bundle), "--source", "Peer"])
    assert result.exit_code == 0, result.output
    total = len(json.loads(bundle.read_bytes())["objects"])
    assert f"total {total}, created {total}," in result.stdout and "rejected 0, rejected as dependent 0" in result.stdout


def test_a_header_quote_left_open_counts_the_rows_it_swallowed(tmp_path: Path) -> None:
    text = '"validFrom,observableType,observableValue\n' + "".join(
        f"{VALID_FROM},domain-name,d{n}.example\n" for n in range(3))
    code, out, err = imported(tmp_path, text)
    assert code == 1 and "total 3, created 0," in out and "rejected 3," in out, out
    assert "the header cannot be read" in err


def test_blank_lines_before_the_header_are_skipped(tmp_path: Path) -> None:
    code, out, err = imported(tmp_path, "\n\n" + HEADER + row("198.51.100.1"))
    assert code == 0 and "total 1, created 1," in out, err


def test_hash_cells_of_other_rows_are_said_to_be_left_and_a_file_hash_row_needs_one(tmp_path: Path) -> None:
    header = "validFrom,observableType,observableValue,MD5\n"
    code, out, err = imported(tmp_path, header + f"{VALID_FROM},domain-name,example.com,d41d8cd98f00b204e9800998ecf8427e\n"
                              f"{VALID_FROM},file-hash,evil.exe,\n")
    assert code == 1
    assert "1 row(s) of another observableType than file have hash cells" in out
    assert "row 3: observableType 'file-hash' needs a hash column" in err


def test_a_utf16_json_file_is_said_to_be_utf16(tmp_path: Path) -> None:
    (tmp_path / "repo" / "intel").mkdir(parents=True)
    source = tmp_path / "feed.json"
    source.write_bytes('[{"type": "indicator"}]'.encode("utf-16"))
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--source", "Feed"])
    assert result.exit_code == 1 and "the file is UTF-16 or UTF-32, not UTF-8" in result.stderr


def test_a_reference_of_the_wrong_type_is_an_objects_own_defect_whatever_its_target(tmp_path: Path) -> None:
    (tmp_path / "repo" / "intel").mkdir(parents=True)
    source = tmp_path / "feed.json"

    def malware(number: int, sample: str) -> dict[str, object]:
        return {"type": "malware", "spec_version": "2.1", "id": f"malware--00000000-0000-4000-8000-00000000001{number}",
                "created": VALID_FROM, "modified": VALID_FROM, "name": f"m{number}", "is_family": True, "sample_refs": [sample]}

    source.write_text(json.dumps([malware(1, "indicator--00000000-0000-4000-8000-000000000099"),
                                  malware(2, "file--00000000-0000-4000-8000-000000000099")]), encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--source", "Feed"])
    assert "sample_refs points to indicator--00000000-0000-4000-8000-000000000099, an indicator object" in result.stderr
    assert "rejected 1, rejected as dependent 1" in result.stdout  # m2's file is only missing: it depends on it


def test_an_id_the_teams_own_intel_defines_is_never_written_again(example_repo: Path, tmp_path: Path) -> None:
    # A peer with the same team name derives the same identity id; a bundle the team published comes back.
    bundle = tmp_path / "bundle.json"
    assert CliRunner().invoke(main, ["-C", str(example_repo), "compile", "-o", str(bundle)]).exit_code == 0
    published = json.loads(bundle.read_bytes())["objects"]
    identity = next(o for o in published if o["type"] == "identity" and o["name"] == "Fabrikam CTI")
    peer = tmp_path / "peer.json"
    peer.write_text(json.dumps([{**identity, "description": "their own words", "modified": "2030-01-01T00:00:00.000Z"}]),
                    encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(example_repo), "import", str(peer), "--source", "Peer"])
    assert result.exit_code == 1 and f"the repository's own intel defines {identity['id']}" in result.stderr
    # Its own bundle back: what compiled as written is unchanged (inline relationships too); what the
    # rules changed is refused, not written beside the team's file.
    again = CliRunner().invoke(main, ["-C", str(example_repo), "import", str(bundle), "--source", "Ourselves"])
    assert "unchanged 0," not in again.stdout and "an import does not replace the team's objects" in again.stderr
    validated = CliRunner().invoke(main, ["-C", str(example_repo), "validate"])
    assert validated.exit_code == 0 and "TI302" not in validated.output, validated.output


def test_two_copies_of_an_sco_with_different_content_are_a_conflict_not_an_older_version(tmp_path: Path) -> None:
    (tmp_path / "repo" / "intel").mkdir(parents=True)
    account = {"type": "user-account", "spec_version": "2.1", "id": "user-account--0d5b424b-93b8-5cd8-ac36-306e1789d63c",
               "user_id": "1001", "account_login": "jdoe"}
    with_extension = {**account, "extensions": {"unix-account-ext": {"gid": 1001, "home_dir": "/home/jdoe"}}}
    source = tmp_path / "feed.json"
    source.write_text(json.dumps([account, with_extension, account]), encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--source", "Feed"])
    assert result.exit_code == 1
    assert "index 1 user-account--0d5b424b-93b8-5cd8-ac36-306e1789d63c: same id as index 0 but different content" \
        in result.stderr
    assert "total 3, created 1, updated 0, unchanged 0, repaired 0, older ignored 1, rejected 1," in result.stdout


def _upstream_bundle(tmp_path: Path) -> tuple[dict[str, object], Path]:
    """An object as another tiops repository's compile writes it (its source-system extension on),
    in a JSON file, and a fresh repository to import it into."""
    from tiops.stix import SOURCE_EXTENSION_ID

    (tmp_path / "repo" / "intel").mkdir(parents=True)
    actor = {"type": "threat-actor", "spec_version": "2.1", "id": "threat-actor--0e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
             "created": VALID_FROM, "modified": VALID_FROM, "name": "Upstream",
             "extensions": {SOURCE_EXTENSION_ID: {"extension_type": "property-extension", "source_system": "Five"}}}
    source = tmp_path / "feed.json"
    source.write_text(json.dumps([actor]), encoding="utf-8")
    return actor, source


def test_the_extensions_a_tiops_compile_adds_are_not_imported(tmp_path: Path) -> None:
    _, source = _upstream_bundle(tmp_path)
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--source", "Feed"])
    assert result.exit_code == 0, result.output
    assert "1 object(s) carried the source-system or enrichment extension another tiops compile adds" in result.stdout
    (written,) = (tmp_path / "repo" / "intel" / "feed" / "threat-actor").glob("*.yaml")
    assert "extensions" not in parse_yaml(written.read_text(encoding="utf-8"))


def test_a_partner_file_an_earlier_import_wrote_with_compiles_extensions_is_put_right(tmp_path: Path) -> None:
    from tiops.importers.write import digest, ordered
    from tiops.yamlio import dump_yaml

    actor, source = _upstream_bundle(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--source", "Feed"]).exit_code == 0
    # As an import before this change left it: the file and its recorded digest with the extension.
    (written,) = (tmp_path / "repo" / "intel" / "feed" / "threat-actor").glob("*.yaml")
    written.write_text(dump_yaml(ordered(actor)), encoding="utf-8")
    record = tmp_path / "repo" / "intel" / "feed" / "_imported.json"
    lock = json.loads(record.read_text(encoding="utf-8"))
    lock["objects"][actor["id"]] = digest(ordered(actor))
    record.write_text(json.dumps(lock), encoding="utf-8")
    again = runner.invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--source", "Feed"])
    assert again.exit_code == 0, again.output
    assert "updated 1," in again.stdout and "rejected 0," in again.stdout
    assert "extensions" not in parse_yaml(written.read_text(encoding="utf-8"))
    validated = runner.invoke(main, ["-C", str(tmp_path / "repo"), "validate"])
    assert validated.exit_code == 0, validated.output


def test_a_hash_cell_that_is_no_digest_is_said_as_written(tmp_path: Path) -> None:
    header = "validFrom,observableType,observableValue,SHA256,MD5\n"
    code, out, err = imported(tmp_path, header + f"{VALID_FROM},file,evil.exe,abc\\; DROP,\n"
                              f"{VALID_FROM},file,x.exe,,{'d' * 34}\n"
                              f"{VALID_FROM},file,y.exe,{'e' * 64},{'f' * 32}\n"
                              f"{VALID_FROM},file,z.exe,{'g' * 64},\n")
    assert code == 1
    assert "total 4, created 1," in out and "rejected 3," in out
    assert "row 2: SHA-256: 'abc\\; DROP' is not a SHA-256 hash (64 hexadecimal digits)" in err  # one backslash
    assert f"row 3: MD5: '{'d' * 34}' is not an MD5 hash (32 hexadecimal digits)" in err
    assert "row 5: SHA-256:" in err
    # A cell with a control character still shows it.
    code, out, err = imported(tmp_path, header + f"{VALID_FROM},file,evil.exe,ab\tc,\n")
    assert "SHA-256: 'ab\\tc' is not a SHA-256 hash" in err


def test_an_integer_too_long_for_a_double_rejects_its_object_only(tmp_path: Path) -> None:
    # orjson refused the whole file ("number is infinity when parsed as double"): total 1, not 3.
    def indicator(number: int, confidence: str) -> str:
        return ('{"type": "indicator", "spec_version": "2.1", '
                f'"id": "indicator--00000000-0000-4000-8000-00000000000{number}", '
                '"created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", '
                f'"pattern": "[ipv4-addr:value = \'198.51.100.{number}\']", "pattern_type": "stix", '
                f'"valid_from": "2025-01-01T00:00:00Z", "confidence": {confidence}}}')
    bundle = tmp_path / "in.json"
    bundle.write_text('{"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": ['
                      + ", ".join([indicator(1, "50"), indicator(2, "9" * 400), indicator(3, "60")]) + "]}")
    root = tmp_path / "repo"
    root.mkdir()
    report = import_file(root, bundle, "stix", "Partner")
    assert (report.total, report.created, report.rejected) == (3, 2, 1)
    assert [r.stix_id for r in report.rejections] == ["indicator--00000000-0000-4000-8000-000000000002"]


def test_an_import_whose_record_would_pass_the_file_limit_writes_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tiops.errors import UsageError
    from tiops.importers import write

    # A feed whose _imported.json passed the 64 MiB limit exited 0 and left a repository that
    # validate refused (TI109) and compile would not build.
    monkeypatch.setattr(write, "MAX_FILE_BYTES", 2_000)
    rows = "\n".join(f"Botnet,c2,C2 {n},,80,,2025-01-01T00:00:00.000Z,,green,3,ipv4-addr,198.51.100.{n}"
                     for n in range(1, 40))
    csv_file = tmp_path / "feed.csv"
    csv_file.write_text("threatTypes,tags,name,description,confidence,revoked,validFrom,validUntil,tlpLevel,severity,"
                        "observableType,observableValue\n" + rows + "\n")
    root = tmp_path / "repo"
    root.mkdir()
    try:
        import_file(root, csv_file, "sentinel-csv", "Big Feed")
    except UsageError as error:
        assert "more than the file size limit" in str(error) and "nothing was written" in str(error)
        assert "several sources" in (error.hint or "")
    else:
        raise AssertionError("the import was not refused")
    assert not (root / "intel").exists() or not any((root / "intel").rglob("*.yaml"))


def test_a_source_name_that_gives_another_sources_folder_is_refused(tmp_path: Path) -> None:
    from tiops.errors import UsageError

    data = Path(__file__).resolve().parent.parent / "data" / "importers" / "partner_v1.json"
    root = tmp_path / "repo"
    root.mkdir()
    import_file(root, data, "stix", "Abuse Feed")
    before = {p: p.read_bytes() for p in (root / "intel").rglob("*") if p.is_file()}
    # "abuse-feed" names the same folder: the second import re-attributed the first one's objects.
    try:
        import_file(root, data, "stix", "abuse-feed")
    except UsageError as error:
        assert "holds source 'Abuse Feed'" in str(error) and "--source 'Abuse Feed'" in (error.hint or "")
    else:
        raise AssertionError("the import was not refused")
    assert {p: p.read_bytes() for p in (root / "intel").rglob("*") if p.is_file()} == before
    assert import_file(root, data, "stix", "Abuse Feed").unchanged == 2  # the same name goes on as ever


def test_partner_ids_with_upper_case_hex_give_no_warning_nobody_may_act_on(tmp_path: Path) -> None:
    from tiops import load_repo, validate_repo

    upper = "indicator--7E7E7E7E-7E7E-4E7E-8E7E-7E7E7E7E7E7E"
    bundle = tmp_path / "in.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": [
        {"type": "indicator", "spec_version": "2.1", "id": upper, "created": "2025-01-01T00:00:00.000Z",
         "modified": "2025-01-01T00:00:00.000Z", "pattern": "[ipv4-addr:value = '198.51.100.1']",
         "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z"}]}))
    root = tmp_path / "repo"
    root.mkdir()
    assert import_file(root, bundle, "stix", "Partner").created == 1
    # The partner's ids are theirs: TI252 failed --strict on read-only files.
    assert not [f for f in validate_repo(load_repo(root)) if f.code == "TI252"]
    result = CliRunner().invoke(main, ["validate", str(bundle)])  # the same bundle linted: ours to fix
    assert "TI252" in result.output


def _bundle_of(tmp_path: Path, count: int) -> Path:
    objects = [{"type": "indicator", "spec_version": "2.1", "id": f"indicator--{n:08d}-2222-4222-8222-222222222222",
                "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "pattern_type": "stix",
                "pattern": f"[ipv4-addr:value = '198.51.100.{n}']", "valid_from": "2025-01-01T00:00:00Z"}
               for n in range(1, count + 1)]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--22222222-2222-4222-8222-222222222222",
                                "objects": objects}), encoding="utf-8")
    return path


def test_a_first_import_stopped_part_way_leaves_partner_intel_that_validation_reports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its objects were written before the folder's _defaults.yaml: stopped part way, they read as the team's
    own intel, and validated and compiled as such."""
    from tiops.errors import TiopsError

    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    restore = disk_full_at(monkeypatch, 4)
    with pytest.raises(TiopsError, match="No space left on device"):
        import_file(root, _bundle_of(tmp_path, 6), "stix", "Partner")
    restore()
    folder = root / "intel" / "partner"
    assert (folder / "_defaults.yaml").exists() and not (folder / "_imported.json").exists()
    assert len([path for path in folder.rglob("*.yaml") if not path.name.startswith("_")]) == 2
    result = CliRunner().invoke(main, ["-C", str(root), "validate"])
    assert result.exit_code == 1 and "TI705" in result.output and "Re-run 'tiops import'" in result.output
    import_file(root, _bundle_of(tmp_path, 6), "stix", "Partner")  # the rerun finishes it
    assert CliRunner().invoke(main, ["-C", str(root), "validate"]).exit_code == 0


def test_an_import_into_a_folder_of_the_teams_own_intel_is_refused(tmp_path: Path) -> None:
    """--source identities took over intel/identities/ of 'tiops init': the repository then failed to validate."""
    root = tmp_path / "repo"
    assert CliRunner().invoke(main, ["init", str(root)]).exit_code == 0
    own = sorted(path.name for path in (root / "intel" / "identities").iterdir())
    result = CliRunner().invoke(main, ["-C", str(root), "import", str(_bundle_of(tmp_path, 2)), "--source", "Identities"])
    assert result.exit_code == 2 and "holds the repository's own intel" in result.output, result.output
    assert sorted(path.name for path in (root / "intel" / "identities").iterdir()) == own
    assert CliRunner().invoke(main, ["-C", str(root), "validate"]).exit_code == 0


@pytest.mark.parametrize(("source", "message"), [
    ("x" * 300, "gives a folder name of 300 characters; at most 100"),
    ("ÄÖ", "has no ASCII letters or digits"),
])
def test_a_source_name_that_cannot_name_a_folder_is_a_usage_error(tmp_path: Path, source: str, message: str) -> None:
    """300 characters failed as an internal error (the file system refused the name)."""
    (tmp_path / "repo" / "intel").mkdir(parents=True)
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(_bundle_of(tmp_path, 1)),
                                       "--source", source])
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.parametrize(("second", "why"), [
    ("", "it holds no object that could be read"),  # an empty file: nothing was read
    (HEADER + row("198.51.100.9", severity="high"), "1 row(s) or item(s) could not be read"),
])
def test_a_feed_that_could_not_be_read_is_no_reason_to_revoke(tmp_path: Path, second: str, why: str) -> None:
    """An unreadable feed said every object imported before was withdrawn, and advised revoking them all."""
    assert imported(tmp_path, HEADER + row("198.51.100.7") + row("198.51.100.8"))[0] == 0
    _, out, err = imported(tmp_path, second)
    text = out + err
    assert f"2 object(s) imported earlier from 'Feed' are not among what could be read of this input ({why})" in text
    assert "revoke" not in text
    _, out, err = imported(tmp_path, HEADER + row("198.51.100.7"))  # read whole: one is not sent any more
    assert "1 object(s) imported earlier from 'Feed' are not in this input" in out + err and "revoke" in out + err


@pytest.mark.parametrize("number", ["1e400", "-2.5E+999", "9" * 4301])
def test_a_number_beyond_a_double_rejects_its_object_only(tmp_path: Path, number: str) -> None:
    """The whole bundle was one rejection ("number is infinity when parsed as double") and its other objects lost."""
    good, bad = (json.dumps({"type": "indicator", "spec_version": "2.1", "id": f"indicator--{n:08d}-3333-4333-8333-333333333333",
                             "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z",
                             "pattern_type": "stix", "pattern": f"[ipv4-addr:value = '198.51.100.{n}']",
                             "valid_from": "2025-01-01T00:00:00Z", "x_n": 0}) for n in (1, 2))
    bad = bad.replace('"x_n": 0', f'"x_n": {number}')
    path = tmp_path / "bundle.json"
    path.write_text(f'{{"type": "bundle", "id": "bundle--33333333-3333-4333-8333-333333333333", '
                    f'"objects": [{good},\n{bad}]}}', encoding="utf-8")
    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    report = import_file(root, path, "stix", "Feed")
    assert (report.total, report.created, report.rejected) == (2, 1, 1)
    [rejection] = report.rejections
    assert rejection.position == "index 1" and "beyond the range of a double" in rejection.reasons[0]
    path.write_text(path.read_text(encoding="utf-8")[:-20], encoding="utf-8")  # cut short: still the whole file's problem
    assert import_file(root, path, "stix", "Feed").rejections[0].position.startswith("line ")

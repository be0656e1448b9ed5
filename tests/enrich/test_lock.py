"""The enrichment lock: canonical, sharded files; bad files are findings, not tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiops.enrich.lock import EnrichmentLock, read_lock, render_shard, shard_name, write_lock
from tiops.errors import UsageError


def _lock() -> EnrichmentLock:
    lock = EnrichmentLock()
    lock.meta["geo"] = {"backend": "geoip2fast", "database": "GeoLite2", "date": "2024-06-18"}
    lock.geo.update({"8.8.8.8": {"status": "found", "country_code": "US"}, "10.0.0.1": {"status": "private"},
                     "1.1.1.1": {"status": "found", "country_code": "AU"}})
    lock.whois["example.com"] = {"status": "not-found", "retrieved": "2026-01-01T00:00:00Z"}
    return lock


def test_round_trip_is_canonical_and_rewriting_changes_no_file(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    written = write_lock(intel, _lock())
    assert {p.relative_to(intel).as_posix() for p in written} >= {".enrichment/lock.json"}
    for value in ("8.8.8.8", "10.0.0.1", "1.1.1.1"):
        shard = intel / ".enrichment" / "geo" / f"{shard_name(value)}.json"
        assert f'"{value}":{{' in shard.read_text()
    lock, findings = read_lock(intel, tmp_path)
    assert findings == []
    assert (lock.meta, lock.geo, lock.whois) == (_lock().meta, _lock().geo, _lock().whois)
    assert write_lock(intel, lock) == []  # same content, same bytes: nothing rewritten


def test_shard_is_sorted_one_value_per_line() -> None:
    text = render_shard({"b": {"z": 1, "a": 2}, "a": {"status": "private"}}).decode()
    assert text == '{\n"a":{"status":"private"},\n"b":{"a":2,"z":1}\n}\n'


def test_values_that_leave_the_lock_leave_their_shard(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    write_lock(intel, _lock())
    lock = _lock()
    lock.geo.clear()
    removed = write_lock(intel, lock)
    assert not list((intel / ".enrichment" / "geo").glob("*.json"))
    assert len(removed) >= 1


def test_broken_files_are_findings_with_a_location(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    write_lock(intel, _lock())
    shard = intel / ".enrichment" / "geo" / f"{shard_name('8.8.8.8')}.json"
    shard.write_text('{\n"8.8.8.8":{"status":"found",\n', encoding="utf-8")
    (intel / ".enrichment" / "whois" / "0.json").write_text('{\n"x.example":{"status":"weird"}\n}\n', encoding="utf-8")
    lock, findings = read_lock(intel, tmp_path)
    codes = sorted((f.code, f.location.file, f.location.line) for f in findings)
    assert ("TI150", f"intel/.enrichment/geo/{shard.name}", 3) in codes
    assert ("TI150", "intel/.enrichment/whois/0.json", 2) in codes
    assert "8.8.8.8" not in lock.geo and "x.example" not in lock.whois
    assert all(f.hint for f in findings)


def test_geo_results_without_the_lock_json_that_names_their_database_are_a_finding(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    write_lock(intel, _lock())
    (intel / ".enrichment" / "lock.json").unlink()  # deleted, or left out of the commit
    lock, findings = read_lock(intel, tmp_path)
    first_shard = min(shard_name(value) for value in _lock().geo)
    assert [(f.code, f.location.file, f.location.line) for f in findings] == [
        ("TI152", f"intel/.enrichment/geo/{first_shard}.json", 1)]
    assert "lock.json" in findings[0].message and "missing" in findings[0].message
    assert lock.geo == _lock().geo  # the results still travel
    # Written again, lock.json names the database; RDAP results alone need no lock.json to review.
    write_lock(intel, _lock())
    assert read_lock(intel, tmp_path)[1] == []
    whois_only = EnrichmentLock()
    whois_only.whois.update(_lock().whois)
    write_lock(tmp_path / "other", whois_only)
    (tmp_path / "other" / ".enrichment" / "lock.json").unlink()
    assert read_lock(tmp_path / "other", tmp_path)[1] == []


def test_a_value_in_the_wrong_shard_and_a_hand_edited_shard(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    folder = intel / ".enrichment" / "geo"
    folder.mkdir(parents=True)
    write_lock(intel, EnrichmentLock())  # lock.json, without which the shards are TI152 besides
    wrong = next(n for n in "0123456789abcdef" if n != shard_name("8.8.8.8"))
    (folder / f"{wrong}.json").write_text('{"8.8.8.8": {"status": "private"}}', encoding="utf-8")
    right = shard_name("9.9.9.9")
    (folder / f"{right}.json").write_text('{"9.9.9.9": {"status": "private"}}', encoding="utf-8")
    lock, findings = read_lock(intel, tmp_path)
    assert [(f.code, f.location.file) for f in findings] == [
        ("TI150", f"intel/.enrichment/geo/{wrong}.json") if wrong < right else ("TI151", f"intel/.enrichment/geo/{right}.json"),
        ("TI151", f"intel/.enrichment/geo/{right}.json") if wrong < right else ("TI150", f"intel/.enrichment/geo/{wrong}.json"),
    ]
    assert lock.geo == {"9.9.9.9": {"status": "private"}}


def test_a_value_not_in_canonical_form_is_a_finding_and_is_not_used(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    lock = _lock()
    # Written by hand: tiops enrich writes 2001:db8::1 and example.org, which is what objects are matched by.
    lock.geo["2001:DB8::1"] = {"status": "found", "country_code": "US"}
    lock.whois["Example.ORG"] = {"status": "not-found", "retrieved": "2026-01-01T00:00:00Z"}
    write_lock(intel, lock)
    read, findings = read_lock(intel, tmp_path)
    messages = sorted(f.message for f in findings if f.code == "TI150")
    assert len(messages) == 2
    assert any("'2001:DB8::1' is not in canonical form: write it '2001:db8::1'" in m for m in messages)
    assert any("'Example.ORG' is not in canonical form: write it 'example.org'" in m for m in messages)
    assert "2001:DB8::1" not in read.geo and "Example.ORG" not in read.whois
    assert read.geo["8.8.8.8"] == {"status": "found", "country_code": "US"}  # the rest of the shard still counts
    line = next(f for f in findings if "2001:DB8" in f.message).location
    shard = intel / ".enrichment" / "geo" / f"{shard_name('2001:DB8::1')}.json"
    assert shard.read_text().splitlines()[line.line - 1].startswith('"2001:DB8::1":')


def test_keys_read_in_one_pass_are_judged_as_one_by_one() -> None:
    from tiops.enrich.lock import _not_canonical_values
    from tiops.enrich.values import is_canonical

    keys = ["8.8.8.8", "example.com", "2001:db8::1", "2001:DB8::1", "198.51.100.0/24", "198.51.100.9/24",
            "Example.COM", "example.com.", "", "a", "1.2.3.04", "xn--bcher-kva.example", "sub_domain.example",
            "-x.example", "x.example-", "10.0.0.0/32", "::ffff:1.2.3.4", "a.b\nc.d", "e.f\r", " e.f", "bücher.example"]
    expected = [key for key in keys if not is_canonical(key)]
    assert _not_canonical_values(keys) == expected
    assert "Example.COM" in expected and "8.8.8.8" not in expected and "2001:db8::1" not in expected
    assert "bücher.example" in expected and "xn--bcher-kva.example" not in expected  # names are locked as A-labels
    without_break = [key for key in keys if "\n" not in key]  # read in one pass, not one by one
    assert _not_canonical_values(without_break) == [key for key in without_break if not is_canonical(key)]
    assert _not_canonical_values([]) == []


def test_a_shard_laid_out_unlike_render_shard_is_a_finding_found_by_rendering_it_again(tmp_path: Path) -> None:
    """Layout (one value per line, sorted, the braces on lines of their own) is settled by comparing
    with render_shard alone: every layout a hand edit makes is TI151, where it first differs."""
    folder = tmp_path / "intel" / ".enrichment" / "geo"
    folder.mkdir(parents=True)
    write_lock(tmp_path / "intel", EnrichmentLock())  # lock.json, without which the shards are TI152 besides
    values = sorted((f"198.51.100.{n}" for n in range(40)), key=shard_name)
    first = [v for v in values if shard_name(v) == shard_name(values[0])][:2]
    assert len(first) == 2
    entries = {value: {"status": "found", "country_code": "NL", "asn": 64500} for value in sorted(first)}
    canonical = render_shard(entries)
    lines = canonical.split(b"\n")
    layouts = {
        "one line": (canonical.replace(b"\n", b"") + b"\n", (1, 2)),
        "values out of order": (b"\n".join([lines[0], lines[2].rstrip(b",") + b",", lines[1].rstrip(b","), *lines[3:]]),
                                (2, next(i for i, (a, b) in enumerate(zip(lines[2], lines[1], strict=False)) if a != b) + 1)),
        "no final line break": (canonical[:-1], (4, 2)),
        "a blank line": (canonical.replace(b"\n}", b"\n\n}"), (4, 1)),
    }
    shard = folder / f"{shard_name(first[0])}.json"
    shard.write_bytes(canonical)
    assert read_lock(tmp_path / "intel", tmp_path) == (EnrichmentLock(geo=entries), [])
    for name, (text, position) in layouts.items():
        assert text != canonical, name
        shard.write_bytes(text)
        lock, findings = read_lock(tmp_path / "intel", tmp_path)
        assert [f.code for f in findings] == ["TI151"], name
        assert (findings[0].location.line, findings[0].location.column) == position, name
        assert lock.geo == entries, name  # valid JSON: the results are used


def test_spacing_key_order_and_escapes_unlike_render_shard_are_findings_and_string_content_is_not(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    folder = intel / ".enrichment" / "whois"
    folder.mkdir(parents=True)
    value = "example.com"
    entry = {"status": "found", "retrieved": "2026-01-01T00:00:00Z", "registrar": "Example, Inc. {a: [b]}"}
    shard = folder / f"{shard_name(value)}.json"
    canonical = render_shard({value: entry})
    line = canonical.split(b"\n")[1]  # the value's line
    # each hand edit, and the (line, column) of the first byte unlike what tiops enrich writes
    loose = {
        "leading space": (canonical.replace(b'\n"', b'\n "', 1), (2, 1)),
        "trailing space": (canonical.replace(b"}\n}", b"} \n}", 1), (2, len(line) + 1)),
        "space after the colon": (canonical.replace(b'":{', b'": {', 1), (2, len(b'"example.com":') + 1)),
        "space before a comma": (canonical.replace(b'",', b'" ,', 1), (2, line.index(b'",') + 2)),
        "a tab": (canonical.replace(b'\n"', b'\n\t"', 1), (2, 1)),
        "a carriage return": (canonical.replace(b"{\n", b"{\r\n", 1), (1, 2)),
        "keys out of order": (canonical.replace(b'{"registrar":"Example, Inc. {a: [b]}","retrieved":"2026-01-01T00:00:00Z",',
                                                b'{"retrieved":"2026-01-01T00:00:00Z","registrar":"Example, Inc. {a: [b]}",', 1),
                              (2, line.index(b'"registrar"') + 4)),  # "re|g" against "re|t"
        "an escape orjson does not write": (canonical.replace(b'"found"', b'"\\u0066ound"', 1),
                                            (2, line.index(b'"found"') + 2)),
    }
    shard.write_bytes(canonical)
    lock, findings = read_lock(intel, tmp_path)
    assert findings == [] and lock.whois == {value: entry}  # ", " and "{a: [b]}" inside a string are content
    for name, (text, position) in loose.items():
        assert text != canonical, name
        shard.write_bytes(text)
        lock, findings = read_lock(intel, tmp_path)
        assert [f.code for f in findings] == ["TI151"], name
        assert (findings[0].location.line, findings[0].location.column) == position, name
        assert lock.whois == {value: entry}, name  # still valid JSON: the results are used


def test_a_result_with_a_field_of_another_shape_is_a_finding_and_is_not_used(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    lock = _lock()
    good = {"status": "found", "registrar": "Example Registrar", "registered": "2024-05-01T00:00:00Z",
            "rdap_status": ["active"], "retrieved": "2026-01-01T00:00:00Z"}
    # Hand edits tiops never writes: each would travel into the bundle and the rules as it is.
    lock.geo["9.9.9.9"] = {"status": "found", "country_code": "CH", "asn": "19281"}
    lock.geo["4.4.4.4"] = {"status": "found", "country": 5}
    lock.whois["good.example"] = good
    lock.whois["listed.example"] = {**good, "rdap_status": ["active", 7]}
    lock.whois["dated.example"] = {**good, "registered": "1 May 2024"}
    lock.whois["offset.example"] = {**good, "expires": "2027-05-01T00:00:00+02:00"}
    lock.whois["named.example"] = {**good, "registrar": ["Example"]}
    # The shape, but no moment: a rule's age_days would silently never match.
    impossible = {"feb30.example": "2025-02-30T00:00:00Z", "hour24.example": "2025-01-01T24:00:00Z",
                  "leap.example": "2016-12-31T23:59:60Z", "month13.example": "2025-13-01T00:00:00Z"}
    for value, moment in impossible.items():
        lock.whois[value] = {**good, "registered": moment}
    write_lock(intel, lock)
    read, findings = read_lock(intel, tmp_path)
    problems = {f.message.split("the result for ", 1)[1].split(" has ", 1)[0]: f.message
                for f in findings if f.code == "TI150"}
    assert set(problems) == {"'9.9.9.9'", "'4.4.4.4'", "'listed.example'", "'dated.example'", "'offset.example'",
                             "'named.example'", *(repr(value) for value in impossible)}
    assert "'asn' of the wrong shape ('19281'); tiops writes an integer from 0 to 4294967295" in problems["'9.9.9.9'"]
    assert "'country' of the wrong shape ('5'); tiops writes a string" in problems["'4.4.4.4'"]
    assert "tiops writes a list of strings" in problems["'listed.example'"]
    assert "tiops writes a UTC timestamp such as 2025-01-01T00:00:00Z" in problems["'dated.example'"]
    assert "'expires' of the wrong shape" in problems["'offset.example'"]
    assert "'registrar' of the wrong shape" in problems["'named.example'"]
    assert set(read.geo) == {"8.8.8.8", "10.0.0.1", "1.1.1.1"}
    assert set(read.whois) == {"example.com", "good.example"}
    for finding in findings:
        value = finding.message.split("the result for '", 1)[1].split("'", 1)[0]
        shard = Path(tmp_path, finding.location.file).read_text().splitlines()
        assert shard[finding.location.line - 1].startswith(f'"{value}":')


def test_an_asn_outside_32_bits_is_a_finding_and_is_not_used(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    (intel / ".enrichment" / "geo").mkdir(parents=True)
    # 2**100 is read as a float, precision lost; -5 and 2**40 are integers no AS has (RFC 6793).
    for value, asn in (("8.8.8.8", str(2**100)), ("1.1.1.1", "-5"), ("9.9.9.9", str(2**40)), ("4.4.4.4", "4294967295")):
        shard = intel / ".enrichment" / "geo" / f"{shard_name(value)}.json"
        lines = shard.read_text().splitlines()[1:-1] if shard.exists() else []
        lines = [line.rstrip(",") for line in lines] + [f'"{value}":{{"asn":{asn},"status":"found"}}']
        shard.write_text("{\n" + ",\n".join(sorted(lines)) + "\n}\n")
    read, findings = read_lock(intel, tmp_path)
    assert sorted(f.message.split("'")[1] for f in findings if f.code == "TI150") == ["1.1.1.1", "8.8.8.8", "9.9.9.9"]
    assert read.geo == {"4.4.4.4": {"asn": 4294967295, "status": "found"}}


def test_a_value_given_twice_in_a_shard_is_a_finding_and_neither_result_is_used(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    write_lock(intel, _lock())
    shard = intel / ".enrichment" / "geo" / f"{shard_name('8.8.8.8')}.json"
    # What a reviewer reads first, and what a JSON parser keeps: the last one.
    shard.write_text('{\n"8.8.8.8":{"as_organization":"GOOGLE","country_code":"US","status":"found"},\n'
                     '"8.8.8.8":{"as_organization":"EVIL","country_code":"RU","status":"found"}\n}\n')
    read, findings = read_lock(intel, tmp_path)
    duplicated = [f for f in findings if f.code == "TI150"]
    assert len(duplicated) == 1 and "'8.8.8.8' is given more than one result" in duplicated[0].message
    assert duplicated[0].location.line == 2
    assert "8.8.8.8" not in read.geo
    # The same value twice beside a result of another shape: both found.
    shard.write_text('{\n"8.8.8.8":{"status":"found"},\n"8.8.8.8":{"status":"found"},\n'
                     f'"{_same_shard_as("8.8.8.8")}":{{"status":"found","country":5}}\n}}\n')
    read, findings = read_lock(intel, tmp_path)
    assert len([f for f in findings if f.code == "TI150"]) == 2 and "8.8.8.8" not in read.geo


def _same_shard_as(value: str) -> str:
    shard = shard_name(value)
    return next(f"8.8.8.{n}" for n in range(9, 256) if shard_name(f"8.8.8.{n}") == shard)


def test_lock_json_format_must_be_the_number_1_not_true(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    write_lock(intel, _lock())
    (intel / ".enrichment" / "lock.json").write_text('{"format": true}\n', encoding="utf-8")  # True == 1 in Python
    findings = read_lock(intel, tmp_path)[1]
    assert [(f.code, f.location.file) for f in findings] == [("TI150", "intel/.enrichment/lock.json")]


def test_a_moment_with_a_fraction_of_a_second_is_read_as_tiops_writes_it(tmp_path: Path) -> None:
    # RFC 9083 section 4.5 event dates are RFC 3339, fractions of a second included: tiops locks the
    # instant exactly (tiops.enrich.rdap._timestamp), without trailing zeros. Such a lock is valid,
    # canonical, and written again from the same results it is the same bytes.
    intel = tmp_path / "intel"
    lock = _lock()
    moments = {"half.example": "2025-02-02T00:00:00.5Z", "nano.example": "2025-02-02T00:00:00.000000001Z",
               "whole.example": "2025-02-02T00:00:00Z"}
    for value, moment in moments.items():
        lock.whois[value] = {"status": "found", "registered": moment, "expires": moment, "updated": moment,
                             "retrieved": "2026-01-01T00:00:00Z"}
    write_lock(intel, lock)
    files = {p: p.read_bytes() for p in (intel / ".enrichment").rglob("*.json")}
    read, findings = read_lock(intel, tmp_path)
    assert findings == []
    assert {value: read.whois[value]["registered"] for value in moments} == moments
    assert write_lock(intel, read) == []  # nothing rewritten...
    write_lock(tmp_path / "again", read)  # ... and written afresh, the same bytes
    assert {p.relative_to(tmp_path / "again"): p.read_bytes() for p in (tmp_path / "again" / ".enrichment").rglob("*.json")} \
        == {p.relative_to(intel): text for p, text in files.items()}


def test_a_fraction_tiops_does_not_write_is_a_finding(tmp_path: Path) -> None:
    # One instant, one text: ".500" is ".5" as tiops writes it, and "." alone is no fraction.
    intel = tmp_path / "intel"
    lock = _lock()
    for value, moment in (("zeros.example", "2025-02-02T00:00:00.500Z"), ("dot.example", "2025-02-02T00:00:00.Z"),
                          ("zero.example", "2025-02-02T00:00:00.0Z")):
        lock.whois[value] = {"status": "found", "registered": moment, "retrieved": "2026-01-01T00:00:00Z"}
    write_lock(intel, lock)
    read, findings = read_lock(intel, tmp_path)
    assert sorted(f.message.split("'")[1] for f in findings) == ["dot.example", "zero.example", "zeros.example"]
    assert all("a fraction of a second without trailing zeros" in f.message for f in findings)
    assert set(read.whois) == {"example.com"}


def test_what_a_run_killed_while_writing_left_beside_the_lock_goes(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    write_lock(intel, _lock())
    directory = intel / ".enrichment"
    # What kill -9 between writing a file beside and renaming it leaves (_replace): lock.json's and a shard's.
    left = [directory / ".lock.json.4194305.tmp", directory / "geo" / ".0.json.4194305.tmp"]
    for path in left:
        path.write_bytes(b"{")
    lock = _lock()
    lock.geo["9.9.9.9"] = {"status": "found", "country_code": "CH"}
    write_lock(intel, lock)
    # Before, lock.json's stayed: the lock is committed after a run, and `git add -A` took it along.
    assert [path for path in left if path.exists()] == []


def test_a_lock_a_newer_tiops_wrote_is_named_so_and_never_rewritten(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from enrich.helpers import write_repo
    from tiops.cli import main

    root = write_repo(tmp_path / "repo", "http://127.0.0.1:9/", ["private"])
    intel = root / "intel"
    write_lock(intel, _lock())
    meta = intel / ".enrichment" / "lock.json"
    meta.write_text('{"format": 99, "geo": {"future": true}}\n', encoding="utf-8")
    before = {path: path.read_bytes() for path in (intel / ".enrichment").rglob("*") if path.is_file()}
    lock, findings = read_lock(intel, root)
    assert lock.newer_format == 99 and not lock.geo and not lock.whois  # a newer format's shards are not read
    assert [(f.code, f.location.file) for f in findings] == [("TI150", "intel/.enrichment/lock.json")]
    assert "written by a newer tiops" in findings[0].message and "upgrade tiops" in findings[0].message
    assert "must be an object with" not in findings[0].message
    with pytest.raises(UsageError):
        write_lock(intel, lock)
    for command in (["enrich", "--offline"], ["enrich", "--check", "--offline"]):
        result = CliRunner().invoke(main, ["-C", str(root), *command])
        assert result.exit_code not in (0, 3) and "written by a newer tiops" in result.output, result.output
    validate = CliRunner().invoke(main, ["-C", str(root), "validate"])
    assert validate.exit_code != 0 and "written by a newer tiops" in validate.output, validate.output
    assert {path: path.read_bytes() for path in (intel / ".enrichment").rglob("*") if path.is_file()} == before


def test_a_byte_that_is_not_utf8_in_a_shard_is_reported_where_it_is(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    lock = _lock()
    write_lock(intel, lock)
    shard = next((intel / ".enrichment" / "whois").glob("*.json"))
    lines = shard.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"status"', b'"st\xe9tus"', 1)
    shard.write_bytes(b"\n".join(lines))
    findings = [f for f in read_lock(intel, tmp_path)[1] if f.code == "TI150"]
    assert len(findings) == 1 and "byte 0xe9 is not UTF-8" in findings[0].message
    column = lines[1].index(b"\xe9") + 1
    assert (findings[0].location.line, findings[0].location.column) == (2, column)

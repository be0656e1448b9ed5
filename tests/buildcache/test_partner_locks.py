"""Partner folders' locks kept parsed in the build cache (tiops.buildcache.partnerlocks): read once while
their file holds, read again when it changes, and the findings always those of ``--no-cache``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from varied_repo import partner_folder

from tiops.buildcache import partnerlocks
from tiops.cli import main
from tiops.validate.partner import field_digests
from tiops.yamlio import parse_yaml


def _validate(root: Path, *flags: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-C", str(root), "validate", "--format", "json", *flags])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def _compile(root: Path) -> None:
    """A compile keeps what it read in the cache (a validate of a few changed files writes nothing)."""
    result = CliRunner().invoke(main, ["-C", str(root), "compile", "--as-of", "2025-06-01"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output


def _aged(path: Path, seconds: int = 10) -> None:
    """Dated ``seconds`` ago: a file modified just now is racily clean and never kept."""
    moment = time.time_ns() - seconds * 1_000_000_000
    os.utime(path, ns=(moment, moment))


@pytest.fixture
def partner_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    folder = partner_folder(root)
    lock = folder / "_imported.json"
    data = json.loads(lock.read_text())
    # As tiops import writes it: each object's property digests too, which name what an edit changed.
    data["fields"] = {parse_yaml(path.read_text())["id"]: field_digests(parse_yaml(path.read_text()))
                      for path in sorted(folder.glob("partner-*.yaml"))}
    lock.write_text(json.dumps(data))
    _aged(lock)
    return root


@pytest.fixture(autouse=True)
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock written before the run is kept however recently (the racy window is tested on its own)."""
    monkeypatch.setattr(partnerlocks, "_RACY_NS", 0)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The partner folders whose lock is parsed from now on."""
    parsed: list[str] = []
    original = partnerlocks.read_lock

    def counting(files, folder):  # type: ignore[no-untyped-def]
        parsed.append(folder)
        return original(files, folder)

    monkeypatch.setattr(partnerlocks, "read_lock", counting)
    return parsed


def test_a_lock_is_parsed_once_while_its_file_holds(partner_repo: Path, parses: list[str]) -> None:
    expected = _validate(partner_repo, "--no-cache")
    _compile(partner_repo)  # the first build: every file parsed, the cache written
    _compile(partner_repo)  # the lock parsed, and kept
    parses.clear()
    assert _validate(partner_repo) == expected
    _compile(partner_repo)
    assert parses == []


def test_a_changed_lock_is_read_again(partner_repo: Path, parses: list[str]) -> None:
    lock = partner_repo / "intel" / "partner" / "_imported.json"
    for _ in range(2):
        _compile(partner_repo)
    # Another digest of the same length, with the file's size and modification time put back: its
    # change time differs, and the edit check must see the new digest.
    info = lock.stat()
    data = json.loads(lock.read_text())
    first = sorted(data["objects"])[0]
    data["objects"][first] = "0" * 64
    lock.write_text(json.dumps(data))
    os.utime(lock, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert lock.stat().st_size == info.st_size
    parses.clear()
    expected = _validate(partner_repo, "--no-cache")
    assert '"code": "TI700"' in expected[1]
    assert _validate(partner_repo) == expected
    assert parses == ["intel/partner"]


def test_an_edited_object_is_named_with_its_changed_properties_as_without_the_cache(partner_repo: Path) -> None:
    for _ in range(2):
        _compile(partner_repo)  # the lock kept, without its property digests
    edited = partner_repo / "intel" / "partner" / "partner-5.yaml"
    edited.write_text(edited.read_text().replace("pattern_type: stix", "pattern_type: stix\nname: Edited by hand"))
    expected = _validate(partner_repo, "--no-cache")
    assert "'name'" in expected[1]
    assert _validate(partner_repo) == expected


def test_a_lock_modified_just_now_is_not_kept(partner_repo: Path, parses: list[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partnerlocks, "_RACY_NS", 3600 * 1_000_000_000)  # an hour: however slow the machine
    lock = partner_repo / "intel" / "partner" / "_imported.json"
    lock.write_text(lock.read_text())  # dated now: racily clean
    for _ in range(2):
        _compile(partner_repo)
    parses.clear()
    _compile(partner_repo)
    assert parses == ["intel/partner"]


def test_a_lock_copied_with_its_old_modification_time_is_not_kept_at_once(partner_repo: Path, parses: list[str],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """cp -p, rsync -a and tar x keep the modification time of what they write: the change time is new."""
    monkeypatch.setattr(partnerlocks, "_RACY_NS", 3600 * 1_000_000_000)
    lock = partner_repo / "intel" / "partner" / "_imported.json"
    _aged(lock, seconds=7200)  # an old modification time, a change time of now
    for _ in range(2):
        _compile(partner_repo)
    parses.clear()
    _compile(partner_repo)
    assert parses == ["intel/partner"]


def test_the_locks_of_folders_gone_are_let_go_of(partner_repo: Path) -> None:
    from tiops.buildcache import BuildCache, context_key

    for _ in range(2):
        _compile(partner_repo)
    cache = BuildCache.open(partner_repo, context_key(partner_repo))
    kept = cache.read_record(partnerlocks.RECORD)
    assert kept is not None and set(kept["locks"]) == {"intel/partner"}
    (partner_repo / "intel" / "partner").rename(partner_repo / "intel" / "renamed")
    for _ in range(2):
        _compile(partner_repo)
    kept = BuildCache.open(partner_repo, context_key(partner_repo)).read_record(partnerlocks.RECORD)
    assert kept is not None and set(kept["locks"]) == {"intel/renamed"}


def test_the_first_build_keeps_the_locks_for_the_first_warm_one(partner_repo: Path, parses: list[str]) -> None:
    _compile(partner_repo)  # the first build: the lock parsed there, and kept
    assert parses == ["intel/partner"]
    parses.clear()
    _compile(partner_repo)
    assert parses == []

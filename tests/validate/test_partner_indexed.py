"""The partner edit check from the digests the build cache keeps in each file's index.

Through the cache, a partner file's objects are read only when one of their digests is not
the one the import lock holds; the findings are those of the check over every object
(``--no-cache``), for hand edits, overlay edits, a lock that lacks an object and a removed lock.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from varied_repo import partner_folder

from tiops.buildcache import indexed
from tiops.cli import main


def _validate(root: Path, *flags: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-C", str(root), "validate", "--format", "json", *flags])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The repository paths of the files whose objects are read from the cache from now on."""
    read: list[str] = []
    original = indexed._IndexedEntry.objects

    def counting(self: indexed._IndexedEntry):  # type: ignore[no-untyped-def]
        read.append(self.relative)
        return original(self)

    monkeypatch.setattr(indexed._IndexedEntry, "objects", counting)
    return read


@pytest.fixture
def partner_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    partner_folder(root)
    return root


def test_unchanged_partner_files_are_checked_without_reading_them(partner_repo: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _validate(partner_repo, "--no-cache")
    assert _validate(partner_repo) == expected  # writes the cache
    read = _reads(monkeypatch)
    assert _validate(partner_repo) == expected
    assert read == []

    edited = partner_repo / "intel" / "partner" / "partner-5.yaml"
    edited.write_text(edited.read_text().replace("pattern_type: stix", "pattern_type: stix\nname: Edited by hand"))
    read.clear()
    after = _validate(partner_repo)
    assert '"code": "TI700"' in after[1] and 'partner-5.yaml' in after[1]
    assert set(read) == {"intel/partner/partner-5.yaml"}  # the one file whose digest differs
    monkeypatch.undo()
    assert _validate(partner_repo, "--no-cache") == after


@pytest.mark.parametrize("change", ["overlay-unknown-id", "lock-lacks-an-object", "lock-removed", "overlay-value",
                                    "lock-digest-changed"])
def test_partner_findings_through_the_cache_are_those_of_no_cache(partner_repo: Path, change: str) -> None:
    _validate(partner_repo)  # a warm cache, as after any build
    folder = partner_repo / "intel" / "partner"
    lock = json.loads((folder / "_imported.json").read_text())
    if change == "overlay-unknown-id":
        (folder / "_overlay.yaml").write_text("indicator--99999999-0d66-4b5e-9b4a-2f7f1e3a1a11:\n  confidence: 10\n")
    elif change == "overlay-value":
        (folder / "_overlay.yaml").write_text("indicator--00000004-0d66-4b5e-9b4a-2f7f1e3a1a11:\n  confidence: 300\n")
    elif change == "lock-lacks-an-object":
        del lock["objects"]["indicator--00000006-0d66-4b5e-9b4a-2f7f1e3a1a11"]
        (folder / "_imported.json").write_text(json.dumps(lock))
    elif change == "lock-digest-changed":  # a re-import of a newer version, with the file not rewritten
        lock["objects"]["indicator--00000007-0d66-4b5e-9b4a-2f7f1e3a1a11"] = "0" * 64
        (folder / "_imported.json").write_text(json.dumps(lock))
    else:
        (folder / "_imported.json").unlink()
    cached = _validate(partner_repo)
    assert cached == _validate(partner_repo, "--no-cache")
    codes = {finding["code"] for finding in json.loads(cached[1])["findings"]}
    assert codes & {"TI700", "TI702", "TI704", "TI705"}, codes

"""A warm load with a forked helper taking the files' lstats: what one process loads, with the lstats elsewhere."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from varied_repo import build_outcome, clean_repository

from tiops.buildcache import indexed, load_repo_cached, load_repo_indexed, stats
from tiops.buildcache.folders import bundle_files
from tiops.forkwork import can_fork

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork, two CPUs and no other thread")

OLD = 1_500_000_000  # well before the stat index is written: records are trusted, not racily clean


def _aged_repository(root: Path, files: int) -> list[Path]:
    clean_repository(root, files)
    paths = sorted(p for p in (root / "intel").rglob("*.yaml") if p.name != "_defaults.yaml")
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(OLD * 10**9, OLD * 10**9))
    return paths


def _edit(path: Path, note: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + f"x_note: {note}\n", encoding="utf-8")
    os.utime(path, ns=(OLD * 10**9, OLD * 10**9))  # only the size and change time tell


def _relative(file: Any) -> str:
    """A file's repository path, for a file of a folder taken whole too (its entry: blob NUL path NUL key)."""
    return file.relative if hasattr(file, "relative") else file.entry.split("\0")[1]


def _loaded(root: Path) -> tuple[list[tuple[str, Any, bool]], int, int]:
    """Each file of a load, in the order the files were walked, its index and whether it was parsed."""
    loaded = load_repo_indexed(root)
    return ([(_relative(file), file.index, file.parsed) for file in bundle_files(loaded.files)],
            loaded.reused_files, loaded.parsed_files)


def _alone_and_beside(root: Path, monkeypatch: pytest.MonkeyPatch, load: Callable[[Path], Any]
                      ) -> list[tuple[Any, list[str]]]:
    """``load(root)`` without the helper and with it, each with the intel paths this process took an lstat of."""
    parent, lstat = os.getpid(), os.lstat
    intel = os.fspath(root / "intel")
    here: list[str] = []

    def noted(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if os.getpid() == parent and os.fspath(path).startswith(intel):
            here.append(os.fspath(path))
        return lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", noted)
    runs = []
    for fork in ("0", "1"):
        monkeypatch.setenv("TIOPS_LOAD_FORK", fork)
        here.clear()
        runs.append((load(root), list(here)))
    return runs


def test_the_helper_takes_its_share_of_the_lstats_of_unchanged_files(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    paths = _aged_repository(root, 300)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "0")
    build_outcome(root)  # fills the cache
    before = _loaded(root)
    _edit(paths[7], "edited")
    paths[11].unlink()
    (alone, noted_alone), (beside, noted_beside) = _alone_and_beside(root, monkeypatch, _loaded)
    lstats_alone, lstats_beside = set(noted_alone), set(noted_beside)
    assert beside == alone
    # The edited file is parsed again, the deleted one is gone, the rest comes from the cache.
    assert (alone[1], alone[2]) == (before[1] - 2, before[2] + 1)
    walked = [os.path.join(root, relative) for relative, _, _ in alone[0]]
    reused = {os.path.join(root, relative) for relative, _, parsed in alone[0] if not parsed}
    assert len(reused) == alone[1] > 250
    assert reused <= lstats_alone
    # With the helper, this process looked at none of the files of the helper's share (the first
    # of them as walked, the warm build's share: indexed._HELPER_SHARE), and at each of its own; and at the edited file.
    split = int(len(walked) * indexed._HELPER_SHARE)
    theirs, ours = set(walked[:split]) & reused, set(walked[split:]) & reused
    assert len(theirs) > 100 and len(ours) > 50
    assert not theirs & lstats_beside
    assert ours <= lstats_beside
    assert os.fspath(paths[7]) in lstats_beside


class _Verdict:
    """Stands for a helper whose verdict is ``result``: one made for another stat index, or none at all."""

    def __init__(self, result: Any) -> None:
        self._result = result
        self.closed = False

    def result(self) -> Any:
        return self._result

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("altered", [
    lambda real: (b"\0" * 32, real[1], []),  # "nothing changed", for another stat index
    lambda real: (real[0], real[1] + 1, []),  # ... for the same index read with another racy bound
    lambda real: None,  # the helper failed or was killed
    lambda real: ("not", "a", "verdict"),
], ids=["other-index", "other-bound", "none", "garbage"])
def test_a_verdict_not_made_for_this_stat_index_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                altered: Any) -> None:
    root = tmp_path / "repo"
    paths = _aged_repository(root, 120)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    first = build_outcome(root)
    # A file in the helper's share, and one in this process's (a build taking folders whole splits them).
    plain = [path for path in paths if path.parent.name == "plain" and not path.is_symlink()]
    for path in (paths[3], plain[-1]):
        _edit(path, "edited")
    helpers: list[_Verdict] = []

    def fake(work: Any) -> _Verdict:
        real = work()  # the helper's work, done here: its verdict names the edited file
        assert real is not None and real[2]
        helpers.append(_Verdict(altered(real)))
        return helpers[-1]

    monkeypatch.setattr(stats, "run_beside", fake)
    edited = build_outcome(root)
    assert helpers and all(helper.closed for helper in helpers)
    assert edited == build_outcome(root, cache=False) != first
    assert edited[0] is not None and b"x_note" in edited[0]


def _whole(root: Path) -> tuple[list[Any], list[Any], list[Any], int, int]:
    """What a load with every object in memory gives, and how many files it reused and parsed."""
    loaded = load_repo_cached(root)
    return ([obj.data for obj in loaded.repo.objects], loaded.repo.findings, loaded.object_findings,
            loaded.reused_files, loaded.parsed_files)


def test_a_load_of_every_object_shares_the_lstats_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The load that holds every object (`tiops tag`, `explain`, the working tree of `tiops diff`) on a warm
    cache: the same objects and findings with the helper as without and as a load parsing every file,
    and this process takes no lstat of an unchanged file of the helper's share."""
    root = tmp_path / "repo"
    paths = _aged_repository(root, 300)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "0")
    build_outcome(root)  # fills the cache
    before = _whole(root)
    _edit(paths[7], "edited")
    files = _loaded(root)[0]
    walked = [os.path.join(root, relative) for relative, _, _ in files]
    reused = {os.path.join(root, relative) for relative, _, parsed in files if not parsed}
    (alone, lstats_alone), (beside, lstats_beside) = _alone_and_beside(root, monkeypatch, _whole)
    fresh = load_repo_cached(root, fresh=lambda _: True)
    assert beside == alone
    assert alone[:3] == ([obj.data for obj in fresh.repo.objects], fresh.repo.findings, fresh.object_findings)
    # The edited file is parsed again (as are those the cache never keeps), the rest comes from the cache.
    assert (alone[3], alone[4]) == (before[3] - 1, before[4] + 1) == (len(reused), before[4] + 1)
    # One lstat of each unchanged file, not one to judge it and another to load it.
    assert sorted(path for path in lstats_alone if path in reused) == sorted(reused)
    split = int(len(walked) * stats._HELPER_SHARE)
    theirs, ours = set(walked[:split]) & reused, set(walked[split:]) & reused
    assert len(theirs) > 100 and len(ours) > 50
    assert theirs | ours <= set(lstats_alone)
    assert not theirs & set(lstats_beside)
    assert ours <= set(lstats_beside)

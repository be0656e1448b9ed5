"""A folder of intel that is a mount point, swapped for another file system between two builds.

Each tmpfs numbers its files from 2, so the new file system can hold a file with the inode
number, size and times the stat index recorded for the old one, and another content. The
build cache, the last build's record and the plan must tell the two apart by their device
(tiops.inputs.file_identity), as a build without the cache does.

These tests mount file systems: they run as root where mount(8) is allowed, and skip elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

OBJECT = """type: malware
spec_version: "2.1"
id: malware--0b6b5a0e-7b8c-4a7e-9a54-0c1a7c5b3f11
created: "2024-01-01T00:00:00.000Z"
modified: "2024-01-01T00:00:00.000Z"
name: {name}
is_family: {family}
"""
OLD_TIMES = (10**18, 10**18)  # 2001: long before any stat index, so its records are trusted


def _mount(*arguments: str) -> bool:
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["mount", *arguments], capture_output=True).returncode == 0


def _unmount(path: Path) -> None:
    subprocess.run(["umount", os.fspath(path)], capture_output=True)


@pytest.fixture
def two_file_systems(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", os.fspath(first)):
        pytest.skip("needs mount(8) as root")
    try:
        if not _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", os.fspath(second)):
            pytest.skip("needs mount(8) as root")
        yield first, second
    finally:
        _unmount(second)
        _unmount(first)


def _twin_files(first: Path, second: Path, old: str, new: str) -> None:
    """``x.yaml`` on each file system with the same inode number, size, times and change time, ``old`` and ``new`` inside."""
    for _ in range(200):
        for folder in (first, second):
            (folder / "x.yaml").unlink(missing_ok=True)
        (first / "x.yaml").write_text(old, encoding="utf-8")
        (second / "x.yaml").write_text(new, encoding="utf-8")
        os.utime(first / "x.yaml", ns=OLD_TIMES)
        os.utime(second / "x.yaml", ns=OLD_TIMES)  # the change times now differ by the two calls' distance
        a, b = os.lstat(first / "x.yaml"), os.lstat(second / "x.yaml")
        if (a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns):
            assert a.st_dev != b.st_dev
            return
    pytest.skip("the two files' change times never fell in one clock tick")


def _tiops(root: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tiops", *arguments], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "TIOPS_LOAD_FORK": "0"})


@contextlib.contextmanager
def _repository_on(tmp_path: Path, first: Path, second: Path, new: str) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A repository whose folder ``intel/m`` is ``first`` mounted, holding an object named "Old"; ``new``
    the same object as ``second`` holds it. Yields the root and what swaps ``second`` in."""
    _twin_files(first, second, OBJECT.format(name="Old", family="false"), new)
    root = tmp_path / "repo"
    mount_point = root / "intel" / "m"
    mount_point.mkdir(parents=True)
    (root / "tiops.yaml").write_text("intel: intel\n", encoding="utf-8")
    assert _mount("--bind", os.fspath(first), os.fspath(mount_point))

    def swap() -> None:
        _unmount(mount_point)
        assert _mount("--bind", os.fspath(second), os.fspath(mount_point))

    try:
        yield root, swap
    finally:
        _unmount(mount_point)


def test_a_file_on_a_swapped_file_system_is_read_again(tmp_path: Path, two_file_systems: tuple[Path, Path]) -> None:
    with _repository_on(tmp_path, *two_file_systems, OBJECT.format(name="New", family="12345")) as (root, swap):
        for _ in range(2):  # a first build, then a warm one: every record and entry kept
            assert _tiops(root, "compile", "-o", os.fspath(tmp_path / "bundle.json")).returncode == 0
        swap()

        warm = _tiops(root, "validate")
        uncached = _tiops(root, "validate", "--no-cache")
        assert "TI200" in uncached.stdout and uncached.returncode == 1
        assert (warm.returncode, warm.stdout) == (uncached.returncode, uncached.stdout)
        assert _tiops(root, "compile", "-o", os.fspath(tmp_path / "after.json")).returncode == 1


def test_the_plan_sees_the_other_file_systems_file(tmp_path: Path, two_file_systems: tuple[Path, Path]) -> None:
    with _repository_on(tmp_path, *two_file_systems, OBJECT.format(name="Neu", family="false")) as (root, swap):
        applied = _tiops(root, "apply", "--auto-approve")
        assert applied.returncode == 0, applied.stderr
        assert _tiops(root, "plan", "--detailed-exitcode").returncode == 0  # the last build's record, unchanged
        swap()

        plan = _tiops(root, "plan", "--detailed-exitcode")
        assert plan.returncode == 2, plan.stdout + plan.stderr
        assert '"Old" -> "Neu"' in plan.stdout
        assert _tiops(root, "compile", "-o", os.fspath(tmp_path / "after.json")).returncode == 0
        assert '"name":"Neu"' in (tmp_path / "after.json").read_text(encoding="utf-8")

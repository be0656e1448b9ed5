"""The installed code's fingerprint (tiops.installed), which binds the build cache and the last build's record."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tiops

PACKAGE = Path(tiops.__file__).resolve().parent

FINGERPRINT_AND_CONTEXT = (
    "import sys; from pathlib import Path; import tiops; from tiops.installed import package_fingerprint; "
    "from tiops.buildcache import context_key; assert tiops.__file__.startswith(sys.argv[1]), tiops.__file__; "
    "print(package_fingerprint(), context_key(Path(sys.argv[2])))"
)


def installed_copy(folder: Path, dated: int) -> Path:
    """A copy of this tiops under ``folder``, as an install writes it: every file new, dated ``dated``."""
    target = folder / "tiops"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in target.rglob("*"):
        os.utime(path, ns=(dated, dated))
    return folder


def fingerprint_and_context(installed: Path, repo: Path) -> tuple[str, str]:
    """What the copy at ``installed`` computes, in a process of its own (its own import of tiops)."""
    result = subprocess.run([sys.executable, "-P", "-c", FINGERPRINT_AND_CONTEXT, str(installed), str(repo)],
                            env={**os.environ, "PYTHONPATH": str(installed)}, capture_output=True, text=True,
                            check=True, cwd=repo)
    fingerprint, context = result.stdout.split()
    return fingerprint, context


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository to compute a context key for (its tiops.yaml is part of it)."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "tiops.yaml").write_text("intel: intel\n")
    return root


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    return installed_copy(tmp_path / "copy", 1_700_000_000_000_000_000)


def test_the_same_code_installed_again_keeps_its_fingerprint_and_cache_context(tmp_path: Path, repo: Path) -> None:
    """A CI runner installs tiops anew on every run, each file dated at the install: the cache it restores
    (docs/ci.md) must still be its own. It was not while the fingerprint held modification times."""
    first = fingerprint_and_context(installed_copy(tmp_path / "first", 1_700_000_000_000_000_000), repo)
    again = fingerprint_and_context(installed_copy(tmp_path / "again", 1_800_000_000_000_000_000), repo)
    assert first == again
    # And this checkout's own, whose tiops/schemas is a link to the repository's schemas/ (a wheel holds files).
    assert fingerprint_and_context(PACKAGE.parent, repo) == first


def test_an_edit_changes_the_fingerprint_even_with_its_size_and_time_put_back(repo: Path, installed: Path) -> None:
    before = fingerprint_and_context(installed, repo)
    engine = installed / "tiops" / "rules" / "engine.py"
    text = engine.read_bytes()
    info = engine.stat()
    edited = text.replace(b"the", b"teh", 1)
    assert edited != text and len(edited) == len(text)
    engine.write_bytes(edited)
    os.utime(engine, ns=(info.st_atime_ns, info.st_mtime_ns))
    after = fingerprint_and_context(installed, repo)
    assert after[0] != before[0] and after[1] != before[1]


def test_a_file_added_to_the_package_changes_the_fingerprint(repo: Path, installed: Path) -> None:
    before = fingerprint_and_context(installed, repo)
    (installed / "tiops" / "data" / "extra.json").write_text("{}")
    assert fingerprint_and_context(installed, repo)[0] != before[0]


@pytest.mark.parametrize("suffix", [".dist-info", ".egg-info", ".egg"])
def test_a_library_upgraded_beside_tiops_changes_the_fingerprint(repo: Path, tmp_path: Path, suffix: str) -> None:
    """yaml-rs, jsonschema-rs or orjson upgraded without tiops can change what a build gives (a system's
    packages are often installed in setuptools' older forms)."""
    installed = installed_copy(tmp_path / "site-packages", 1_700_000_000_000_000_000)
    (installed / f"yaml_rs-0.1.6{suffix}").mkdir()
    before = fingerprint_and_context(installed, repo)
    assert fingerprint_and_context(installed, repo) == before  # listed, the same every time
    (installed / f"yaml_rs-0.1.6{suffix}").rename(installed / f"yaml_rs-0.1.7{suffix}")
    assert fingerprint_and_context(installed, repo)[0] != before[0]


def test_a_link_back_up_the_package_is_walked_once(repo: Path, installed: Path) -> None:
    """Links are followed (a checkout's schemas/ is one); two links up the tree walked it for ever."""
    before = fingerprint_and_context(installed, repo)
    (installed / "tiops" / "data" / "up").symlink_to("..")
    (installed / "tiops" / "rules" / "up").symlink_to("../..")
    assert fingerprint_and_context(installed, repo) == before

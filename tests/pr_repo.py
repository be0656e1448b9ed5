"""A git repository with a base commit and a pull-request commit, for the diff and versioning tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tiops.revision import CompiledRevision

DATA = Path(__file__).resolve().parent / "data" / "diff"

C2_ADDRESS = "indicator--1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
C2_DOMAIN = "indicator--2d3e4f5a-6b7c-4d8e-9fa0-1b2c3d4e5f6a"
ACTOR = "threat-actor--0b9e8d7c-6f5a-4e3d-8c2b-1a0f9e8d7c6b"
MALWARE = "malware--5d0c6f3a-2b1e-4c8d-9f7a-1e3b5c7d9a2f"
RULE = "Extend validity of confident indicators"

RELATIONSHIP = f"""type: relationship
spec_version: "2.1"
id: relationship--3e4f5a6b-7c8d-4e9f-a0b1-2c3d4e5f6a7b
created: 2025-03-01T00:00:00.000Z
modified: 2025-03-01T00:00:00.000Z
relationship_type: indicates
source_ref: {C2_ADDRESS}
target_ref: {MALWARE}
"""


def git(root: Path, *args: str, date: str = "2025-03-01T12:00:00+00:00") -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.org", "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "author@example.org", "GIT_COMMITTER_DATE": date,
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
    }  # fmt: skip
    done = subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True)
    return done.stdout


def lfs_like_filter(root: Path, store: Path) -> None:
    """A clean/smudge filter pair that does what git-lfs does (a pointer in the commit, the content in the
    checkout), for the files .gitattributes names; git-lfs itself need not be installed."""
    store.mkdir()
    clean, smudge = root.parent / "lfs-clean", root.parent / "lfs-smudge"
    clean.write_text(f"#!/bin/sh\nt=$(mktemp); cat > $t; s=$(sha256sum $t | cut -d' ' -f1); n=$(wc -c < $t)\n"
                     f"cp $t {store}/$s; rm $t\n"
                     "printf 'version https://git-lfs.github.com/spec/v1\\noid sha256:%s\\nsize %s\\n' $s $n\n")
    smudge.write_text(f"#!/bin/sh\ns=$(grep '^oid sha256:' | cut -d: -f2); cat {store}/$s\n")
    for script in (clean, smudge):
        script.chmod(0o755)
    git(root, "config", "filter.lfs.clean", str(clean))
    git(root, "config", "filter.lfs.smudge", str(smudge))
    git(root, "config", "filter.lfs.required", "true")


def encrypting_filter(root: Path) -> None:
    """A clean/smudge pair as git-crypt's: the commit holds text no YAML parser reads, the checkout the
    file. Named ``crypt``; .gitattributes says which files it is for."""
    clean, smudge = root.parent / "encrypt", root.parent / "decrypt"
    clean.write_text("#!/bin/sh\nbase64\n")
    smudge.write_text("#!/bin/sh\nbase64 -d\n")
    for script in (clean, smudge):
        script.chmod(0o755)
    git(root, "config", "filter.crypt.clean", str(clean))
    git(root, "config", "filter.crypt.smudge", str(smudge))
    git(root, "config", "filter.crypt.required", "true")


def base_repo(root: Path) -> Path:
    """The base commit (tagged ``base``): an identity, a malware, an actor, two indicators, one rule."""
    shutil.copytree(DATA / "base", root)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    git(root, "tag", "base")
    return root


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def make_pull_request(root: Path, *, bump: bool = True, commit: bool = True) -> None:
    """Edit an indicator, add a relationship, revoke the actor and change the rule."""
    edit(root, "intel/c2-address.yaml", "description: Command-and-control server.",
         "description: Command-and-control server, sinkholed since March.")
    if bump:
        edit(root, "intel/c2-address.yaml", "modified: 2025-02-01T00:00:00.000Z", "modified: 2025-03-01T00:00:00.000Z")
    (root / "intel" / "c2-indicates-lanternloader.yaml").write_text(RELATIONSHIP, encoding="utf-8")
    edit(root, "intel/copper-lantern.yaml", "modified: 2025-01-03T00:00:00.000Z",
         "modified: 2025-03-01T00:00:00.000Z\nrevoked: true")
    edit(root, "rules/ingestion/validity.yaml", "by: 30d", "by: 60d")
    if commit:
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "pull request", date="2025-03-02T12:00:00+00:00")


MALWARE_FILE = "intel/lanternloader.yaml"


def assert_same_revision(left: CompiledRevision, right: CompiledRevision) -> None:
    """Two compilations of one revision agree on everything a comparison reads."""
    assert left.objects == right.objects
    assert left.authored == right.authored
    assert left.provenance == right.provenance
    assert left.dropped_by_rules == right.dropped_by_rules
    assert left.error_count == right.error_count

"""Fuzz the last build's record (tiops.lastbuild): a plan through it must be the plan of a full build.

    python benchmarks/fuzz_last_build.py SEED COUNT [--work DIR] [--repos generated,example,attack]

Not a timing. Three small repositories are set up once under ``--work`` (kept between
runs): a generated one (``generate_repo.py``, 2,000 objects), the example repository of
this checkout (its intel, rules and tiops.yaml) and part of Enterprise ATT&CK imported
from ../shared/corpora (skipped when absent). Each is committed and applied to its
SQLite store (``tiops apply --auto-approve``), which leaves a record.

Each case copies one of them, makes one random change drawn with ``random.Random(SEED)``
and compares ``tiops plan --format json --detailed-exitcode`` (through the record, twice:
the first may write a new one) with the same plan made with ``--no-cache`` (a full build,
no record read or written): exit code and plan bytes must be equal. The changes:

* the record damaged: bytes flipped, truncated, emptied, another repository's record,
  the record of another as-of time, a folder, a FIFO, a symbolic link (to another
  record, to /dev/zero, dangling);
* an input changed: an intel file edited (also with the same size and modification
  time), added, removed, renamed, moved to a folder with other ``_defaults.yaml``;
  ``_defaults.yaml``, ``_overlay.yaml``, ingestion rules, tiops.yaml or the enrichment
  lock edited; files touched; the HEAD commit moved (a new as-of time, or the same);
* the store changed behind tiops' back: rows deleted or edited, a current row pointing
  to another version, flags flipped, an object added, the store replaced by another
  repository's, truncated or removed;
* an apply killed with SIGKILL part way: the plans must agree, and a second apply must
  leave a plan without changes.

Every child runs with a timeout and a memory limit (a record that never ends must not
hang the run or fill the machine). A failing case is kept under ``--work``/failures and
printed; the exit code is 1 when any case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
TIOPS = str(Path(sys.executable).parent / "tiops")
CORPUS = CHECKOUT.parent / "shared" / "corpora" / "stix20" / "enterprise-attack.json"
RECORD = Path(".tiops") / "last-build"
STORE = Path(".tiops") / "store.sqlite"
TIMEOUT = 180
MEMORY_LIMIT = 3 << 30
GIT_ENV = {"GIT_AUTHOR_NAME": "fuzz", "GIT_AUTHOR_EMAIL": "fuzz@example.org", "GIT_COMMITTER_NAME": "fuzz",
           "GIT_COMMITTER_EMAIL": "fuzz@example.org", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_CONFIG_SYSTEM": os.devnull}
BASE_DATE = "2025-06-01T00:00:00Z"
# ATT&CK types left out (before the import): the relationships and the analytics make the base too large for
# hundreds of cases.
ATTACK_DROPPED = ("relationship", "x-mitre-analytic", "x-mitre-detection-strategy", "x-mitre-data-component",
                  "x-mitre-data-source", "course-of-action", "malware")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@dataclass
class Run:
    code: int | None  # None: timed out
    out: bytes
    err: bytes


def tiops(root: Path, *args: str, timeout: float = TIMEOUT) -> Run:
    env = {**os.environ, "TIOPS_NO_CACHE": ""}
    env.pop("TIOPS_NO_CACHE")
    try:
        done = subprocess.run([TIOPS, *args], cwd=root, capture_output=True, timeout=timeout, env=env,
                              preexec_fn=_limit, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as expired:
        return Run(None, expired.stdout or b"", expired.stderr or b"")
    return Run(done.returncode, done.stdout, done.stderr)


def git(root: Path, *args: str, date: str = BASE_DATE) -> None:
    env = {**os.environ, **GIT_ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    subprocess.run(["git", "-C", str(root), *args], env=env, check=True, capture_output=True)


def plan(root: Path, *more: str) -> Run:
    return tiops(root, "plan", "--format", "json", "--detailed-exitcode", *more)


# --- Bases -----------------------------------------------------------------------------


def setup_bases(work: Path, names: list[str]) -> dict[str, Path]:
    bases: dict[str, Path] = {}
    for name in names:
        folder = work / "bases" / name
        repo = folder / "repo"
        if not (folder / "ready").exists():
            shutil.rmtree(folder, ignore_errors=True)
            repo.mkdir(parents=True)
            if not _fill(name, repo):
                shutil.rmtree(folder)
                print(f"base {name}: skipped (no data)", file=sys.stderr)
                continue
            (repo / ".gitignore").write_text("/.tiops/\n/dist/\n")
            git(repo, "init", "-q")
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", "base")
            applied = tiops(repo, "apply", "--auto-approve")
            if applied.code != 0:
                raise SystemExit(f"base {name}: apply failed: {applied.err.decode()[-2000:]}")
            (folder / "ready").write_text("")
        if not records_current(folder):
            _refresh(folder)
        bases[name] = folder
    return bases


def records_current(folder: Path) -> bool:
    """Whether the base's records were made by the tiops installed now (its code is part of a record)."""
    stamp = folder / "records-made-by"
    return stamp.exists() and stamp.read_text() == _code_key()


def _code_key() -> str:
    done = subprocess.run([sys.executable, "-c", "from tiops.lastbuild import code_key; print(code_key())"],
                          capture_output=True, check=True, cwd="/")
    return done.stdout.decode().strip()


def _refresh(folder: Path) -> None:
    """Make the base's records again with the tiops installed now: records of other code are ignored."""
    repo = folder / "repo"
    plan(repo)
    other = folder / "other-as-of"
    shutil.rmtree(other, ignore_errors=True)
    shutil.copytree(repo, other, symlinks=True)
    git(other, "commit", "-q", "--allow-empty", "-m", "later", date="2026-03-01T00:00:00Z")
    plan(other)
    shutil.copy(other / RECORD, folder / "record-other-as-of")
    shutil.rmtree(other)
    (folder / "records-made-by").write_text(_code_key())


def _fill(name: str, repo: Path) -> bool:
    if name == "generated":
        subprocess.run([sys.executable, str(HERE / "generate_repo.py"), "2000", str(repo)], check=True,
                       capture_output=True)
        french = repo / "intel" / "french"
        french.mkdir()
        (french / "_defaults.yaml").write_text("defaults:\n  lang: fr\n")
        return True
    if name == "example":
        for part in ("intel", "rules", "tiops.yaml"):
            source = CHECKOUT / part
            if source.is_dir():
                shutil.copytree(source, repo / part)
            elif source.exists():
                shutil.copy(source, repo / part)
        return True
    if name == "attack":
        if not CORPUS.exists():
            return False
        # A smaller ATT&CK, cut before the import: imported partner intel deleted afterwards is
        # an error of its own (TI706), which every plan of the base would then stop at.
        bundle = json.loads(CORPUS.read_bytes())
        bundle["objects"] = [obj for obj in bundle["objects"] if obj.get("type") not in ATTACK_DROPPED]
        subset = repo.parent / "attack-subset.json"
        subset.write_text(json.dumps(bundle))
        for args in (("init",), ("import", "--source", "mitre", str(subset))):
            done = tiops(repo, *args, timeout=600)
            if done.code != 0:
                raise SystemExit(f"base attack: {' '.join(args)} failed: {done.err.decode()[-2000:]}")
        patterns = sorted((repo / "intel" / "mitre" / "attack-pattern").iterdir())
        first = _object_id(patterns[0].read_text())
        (repo / "intel" / "mitre" / "_overlay.yaml").write_text(f"{first}:\n  confidence: 60\n")
        return True
    raise SystemExit(f"unknown repository {name!r}")


# --- Changes ---------------------------------------------------------------------------


@dataclass
class Case:
    rng: random.Random
    root: Path
    base: Path  # the base's folder
    others: list[Path]  # the other bases' folders


def intel_files(root: Path) -> list[Path]:
    return sorted(path for path in (root / "intel").rglob("*.yaml")
                  if not path.name.startswith("_") and ".enrichment" not in path.parts)


def _object_id(text: str) -> str:
    found = re.search(r"\bid: *['\"]?([a-z0-9-]+--" + UUID.pattern + ")", text)
    if found is None:
        raise ValueError("no id")
    return found.group(1)


def _write_keeping_times(path: Path, text: str) -> None:
    """Write ``text`` and put the modification time back (the change time still moves)."""
    info = path.stat()
    path.write_text(text)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def edit_same_size(case: Case) -> str:
    """One letter of a name or description replaced, with the size and modification time kept."""
    files = intel_files(case.root)
    for _ in range(20):
        path = case.rng.choice(files)
        text = path.read_text()
        spots = [m.start() + len(m.group(1)) + case.rng.randrange(max(1, len(m.group(2))))
                 for m in re.finditer(r"((?:name|description): *)([A-Za-z ]{3,})", text)]
        spots = [at for at in spots if text[at].isalpha()]
        if spots:
            at = case.rng.choice(spots)
            letter = case.rng.choice([c for c in "abcdefghijklmnopqrstuvwxyz" if c != text[at]])
            _write_keeping_times(path, text[:at] + letter + text[at + 1:])
            return f"edit-same-size {path.relative_to(case.root)}@{at}"
    return "edit-same-size (nothing found)"


def edit_value(case: Case) -> str:
    path = case.rng.choice(intel_files(case.root))
    text = path.read_text()
    found = list(re.finditer(r"confidence: *(\d+)", text))
    if found:
        m = case.rng.choice(found)
        text = text[:m.start(1)] + str(case.rng.randrange(101)) + text[m.end(1):]
    else:
        text = re.sub(r"(name: *)(.*)", lambda m: m.group(1) + m.group(2) + "x", text, count=1)
    path.write_text(text)
    return f"edit-value {path.relative_to(case.root)}"


def add_file(case: Case) -> str:
    files = [p for p in intel_files(case.root) if p.stat().st_size < 20000]
    source = case.rng.choice(files)
    text = source.read_text()
    try:
        own = _object_id(text)
    except ValueError:
        return "add-file (no id)"
    fresh = str(uuid.UUID(int=case.rng.getrandbits(128), version=4))
    folder = case.rng.choice(sorted({p.parent for p in files} | {case.root / "intel"}))
    target = folder / f"added-{fresh[:8]}.yaml"
    target.write_text(text.replace(own.split("--", 1)[1], fresh))
    return f"add-file {target.relative_to(case.root)} from {source.relative_to(case.root)}"


def remove_file(case: Case) -> str:
    path = case.rng.choice(intel_files(case.root))
    path.unlink()
    return f"remove-file {path.relative_to(case.root)}"


def rename_file(case: Case) -> str:
    path = case.rng.choice(intel_files(case.root))
    target = path.with_name("renamed-" + path.name)
    path.rename(target)
    return f"rename-file {path.relative_to(case.root)}"


def move_file(case: Case) -> str:
    """To a folder with another _defaults.yaml (the nearer folder's defaults win)."""
    files = intel_files(case.root)
    path = case.rng.choice(files)
    folders = sorted({d.parent for d in (case.root / "intel").rglob("_defaults.yaml")} - {path.parent})
    if not folders:
        return "move-file (no other folder)"
    folder = case.rng.choice(folders)
    target = folder / path.name
    if target.exists():
        target = folder / ("moved-" + path.name)
    info = path.stat()
    path.rename(target)
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    return f"move-file {path.relative_to(case.root)} -> {target.relative_to(case.root)}"


def edit_defaults(case: Case) -> str:
    found = sorted((case.root / "intel").rglob("_defaults.yaml"))
    if not found:
        return "edit-defaults (none)"
    path = case.rng.choice(found)
    text = path.read_text()
    if "lang:" in text:
        text = re.sub(r"lang: *\w+", "lang: " + case.rng.choice(["de", "es", "it"]), text)
    elif "defaults:" in text:
        text = text.replace("defaults:\n", "defaults:\n  lang: " + case.rng.choice(["de", "es"]) + "\n", 1)
    else:
        text += "\n# a comment only\n"
    path.write_text(text)
    return f"edit-defaults {path.relative_to(case.root)}"


def edit_overlay(case: Case) -> str:
    overlays = sorted((case.root / "intel").rglob("_overlay.yaml"))
    if not overlays:
        return "edit-overlay (none)"
    path = overlays[0]
    text = path.read_text()
    if case.rng.random() < 0.5:
        text = re.sub(r"confidence: *\d+", f"confidence: {case.rng.randrange(101)}", text)
    else:
        pattern = case.rng.choice(sorted((path.parent / "attack-pattern").iterdir()))
        text += f"{_object_id(pattern.read_text())}:\n  labels: [fuzzed]\n"
    path.write_text(text)
    return f"edit-overlay {path.relative_to(case.root)}"


def edit_rules(case: Case) -> str:
    folder = case.root / "rules" / "ingestion"
    folder.mkdir(parents=True, exist_ok=True)
    kind = case.rng.randrange(3)
    if kind == 0:
        path = folder / "fuzz.yaml"
        tag = f"fuzz-{case.rng.randrange(1000)}"
        path.write_text(f"- name: Fuzz tag\n  order: {case.rng.randrange(1, 99)}\n"
                        f"  object_types: [{case.rng.choice(['indicator', 'attack-pattern', 'identity'])}]\n"
                        f"  actions:\n    - {{add_tags: [{tag}]}}\n")
        return "edit-rules add"
    existing = sorted(folder.glob("*.yaml"))
    if not existing:
        return "edit-rules (none)"
    path = case.rng.choice(existing)
    if kind == 1:
        path.write_text(path.read_text() + "\n# only a comment\n")
        return f"edit-rules comment {path.relative_to(case.root)}"
    text = path.read_text()
    text = re.sub(r"value: (\d+)d", lambda m: f"value: {int(m.group(1)) + 1}d", text, count=1)
    path.write_text(text)
    return f"edit-rules value {path.relative_to(case.root)}"


def edit_config(case: Case) -> str:
    path = case.root / "tiops.yaml"
    text = path.read_text() if path.exists() else ""
    choice = case.rng.randrange(3)
    if choice == 0:
        text += "\n# a comment only\n"
    elif choice == 1:
        text = re.sub(r"(?m)^output: .*$", "output: dist2", text) if "output:" in text else text + "output: dist2\n"
    else:
        text = text + "relationship_tables: [attack]\n" if "relationship_tables" not in text else text
    path.write_text(text)
    return f"edit-config {choice}"


def edit_lock(case: Case) -> str:
    files = sorted(p for p in (case.root / "intel" / ".enrichment").rglob("*") if p.is_file())
    if not files:
        return "edit-lock (no lock)"
    path = case.rng.choice(files)
    text = path.read_text()
    letters = [m.start() for m in re.finditer(r'"[A-Z]{2}"', text)]
    if letters and case.rng.random() < 0.7:
        at = letters[case.rng.randrange(len(letters))] + 1
        new = "DE" if text[at:at + 2] != "DE" else "FR"
        _write_keeping_times(path, text[:at] + new + text[at + 2:])
        return f"edit-lock country {path.relative_to(case.root)}"
    path.write_text(text + " ")
    return f"edit-lock space {path.relative_to(case.root)}"


def touch_files(case: Case) -> str:
    files = case.rng.sample(intel_files(case.root), 3)
    for path in files:
        os.utime(path)
    return "touch 3 files"


def move_head(case: Case) -> str:
    kind = case.rng.randrange(3)
    if kind == 0:
        git(case.root, "commit", "-q", "--allow-empty", "-m", "same time")  # new HEAD, same as-of
        return "head same time"
    date = case.rng.choice(["2024-01-01T00:00:00Z", "2025-12-31T12:00:00Z", "2027-01-01T00:00:00Z"])
    if kind == 1:
        git(case.root, "commit", "-q", "--allow-empty", "-m", "later", date=date)
        return f"head new as-of {date}"
    git(case.root, "commit", "-q", "--amend", "--allow-empty", "--no-edit", date=date)
    return f"head amended as-of {date}"


def nothing(case: Case) -> str:
    return "nothing"


# Record damage


def damage_record(case: Case) -> str:
    record = case.root / RECORD
    raw = record.read_bytes()
    kind = case.rng.randrange(12) if raw else 3  # an empty record (an earlier change) can only be replaced
    if kind == 0:
        data = bytearray(raw)
        for _ in range(case.rng.randint(1, 4)):
            data[case.rng.randrange(len(data))] ^= 1 << case.rng.randrange(8)
        record.write_bytes(bytes(data))
        return "record bytes flipped"
    if kind == 1:
        record.write_bytes(raw[:case.rng.randrange(len(raw))])
        return "record truncated"
    if kind == 2:
        record.write_bytes(b"")
        return "record empty"
    if kind == 3:
        other = case.rng.choice(case.others) if case.others else case.base
        shutil.copy(other / "repo" / RECORD, record)
        return f"record of {other.name}"
    if kind == 4:
        shutil.copy(case.base / "record-other-as-of", record)
        return "record of another as-of time"
    if kind == 5:
        record.unlink()
        record.mkdir()
        (record / "x").write_bytes(raw)
        return "record a folder"
    if kind == 6:
        record.unlink()
        os.mkfifo(record)
        return "record a FIFO"
    if kind == 7:
        record.unlink()
        record.symlink_to("/dev/zero")
        return "record a link to /dev/zero"
    if kind == 8:
        record.unlink()
        record.symlink_to(case.root / "missing")
        return "record a dangling link"
    if kind == 9:
        kept = case.root / ".tiops" / "kept-record"
        record.rename(kept)
        record.symlink_to(kept)
        return "record a link to itself moved"
    if kind == 10:
        record.write_bytes(raw + raw[-case.rng.randint(1, 64):])
        return "record with bytes appended"
    shutil.copy(case.base / "record-other-as-of", record)
    move_head(case)
    return "record of another as-of time and HEAD moved"


# Store changes behind tiops' back


def change_store(case: Case) -> str:
    path = case.root / STORE
    kind = case.rng.randrange(12)
    if kind == 9:
        other = case.rng.choice(case.others) if case.others else case.base
        shutil.copy(other / "repo" / STORE, path)
        return f"store of {other.name}"
    if kind == 10:
        size = path.stat().st_size
        with open(path, "r+b") as handle:
            handle.truncate(case.rng.randrange(size))
        return "store truncated"
    if kind == 11:
        path.unlink()
        return "store removed"
    db = sqlite3.connect(path)
    try:
        ids = [row[0] for row in db.execute("SELECT id FROM stix_current ORDER BY id")]
        stix_id = case.rng.choice(ids)
        what = ""
        if kind == 0:
            db.execute("DELETE FROM stix_current WHERE id = ?", (stix_id,))
            what = "row deleted"
        elif kind == 1:
            db.execute("UPDATE stix_current SET object = replace(object, '\"name\":\"', '\"name\":\"x') WHERE id = ?",
                       (stix_id,))
            what = "object text edited"
        elif kind == 2:
            db.execute("UPDATE stix_current SET object = replace(object, '\"name\":\"', '\"name\":\"x'),"
                       " object_digest = object_digest WHERE id = ?", (stix_id,))
            what = "object text edited, digest kept"
        elif kind == 3:
            db.execute("UPDATE stix_current SET digest = ? WHERE id = ?", ("0" * 64, stix_id))
            what = "content digest edited"
        elif kind == 4:
            row = db.execute("SELECT version, version_sort, object FROM stix_current WHERE id = ?",
                             (stix_id,)).fetchone()
            older = "2001-01-01T00:00:00.000Z"
            text = row[2].replace(row[0], older)
            db.execute("INSERT OR REPLACE INTO stix_versions (id, version, version_sort, type, revoked, digest,"
                       " written_by, object, object_digest) SELECT id, ?, ?, type, revoked, digest, written_by, ?,"
                       " NULL FROM stix_current WHERE id = ?", (older, older, text, stix_id))
            db.execute("UPDATE stix_current SET version = ?, version_sort = ?, object = ?, object_digest = NULL"
                       " WHERE id = ?", (older, older, text, stix_id))
            what = "current row points to another version"
        elif kind == 5:
            db.execute("UPDATE stix_current SET managed = 1 - managed WHERE id = ?", (stix_id,))
            what = "managed flipped"
        elif kind == 6:
            db.execute("UPDATE stix_current SET written_by = 'external' WHERE id = ?", (stix_id,))
            what = "written_by external"
        elif kind == 7:
            db.execute("UPDATE stix_current SET revoked = 1 - revoked WHERE id = ?", (stix_id,))
            what = "revoked flipped"
        else:
            fresh = f"indicator--{uuid.UUID(int=case.rng.getrandbits(128), version=4)}"
            obj = {"type": "indicator", "spec_version": "2.1", "id": fresh, "created": "2025-01-01T00:00:00.000Z",
                   "modified": "2025-01-01T00:00:00.000Z", "pattern": "[ipv4-addr:value = '10.9.9.9']",
                   "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z"}
            managed = case.rng.randrange(2)
            db.execute("INSERT INTO stix_current (id, version, version_sort, type, revoked, digest, written_by,"
                       " managed, object, object_digest) VALUES (?, ?, ?, 'indicator', 0, NULL, 'external', ?, ?,"
                       " NULL)", (fresh, obj["modified"], obj["modified"], managed, json.dumps(obj)))
            what = f"object added (managed={managed})"
        db.commit()
        return f"store: {what} {stix_id}"
    finally:
        db.close()


MUTATIONS: list[tuple[str, Callable[[Case], str], int]] = [
    ("record", damage_record, 6),
    ("input", edit_same_size, 3),
    ("input", edit_value, 2),
    ("input", add_file, 1),
    ("input", remove_file, 1),
    ("input", rename_file, 1),
    ("input", move_file, 2),
    ("input", edit_defaults, 1),
    ("input", edit_overlay, 1),
    ("input", edit_rules, 2),
    ("input", edit_config, 1),
    ("input", edit_lock, 1),
    ("input", touch_files, 1),
    ("input", move_head, 2),
    ("input", nothing, 1),
    ("store", change_store, 6),
    ("apply", nothing, 3),  # the change is an interrupted apply (see run_case)
]


def run_case(case: Case, index: int) -> tuple[str, str | None]:
    """The change made and a failure, if any."""
    weights = [weight for _, _, weight in MUTATIONS]
    group, mutate, _ = case.rng.choices(MUTATIONS, weights)[0]
    if group == "apply":
        changes = [edit_overlay] if (case.root / "intel" / "mitre").exists() else [edit_value, edit_same_size, add_file]
        description = "interrupted apply after " + case.rng.choice(changes)(case)
        child = subprocess.Popen([TIOPS, "apply", "--auto-approve"], cwd=case.root, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, preexec_fn=_limit)
        delay = case.rng.uniform(0.05, 1.5)
        try:
            child.wait(timeout=delay)
            description += f" (finished before {delay:.1f}s)"
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()
            description += f" (killed at {delay:.1f}s)"
    else:
        description = mutate(case)
        if case.rng.random() < 0.15:  # now and then a second change of another kind
            second = case.rng.choices(MUTATIONS[:-1], weights[:-1])[0][1]
            if second is damage_record and not ((case.root / RECORD).is_file()
                                                and not (case.root / RECORD).is_symlink()):
                second = nothing
            description += " + " + second(case)
    failure, full_code = compare(case.root)
    if failure is None and group == "apply" and full_code != 1:  # 1: the change made the repository invalid
        failure = converge(case.root)
    return description, failure


def compare(root: Path) -> tuple[str | None, int | None]:
    """A difference between the plans through the record and the full build's, and the full plan's exit code."""
    through = plan(root)
    again = plan(root)
    full = plan(root, "--no-cache")
    if full.code is None:
        return "the full plan timed out", None
    for name, run in (("first", through), ("second", again)):
        if run.code is None:
            return f"the {name} plan through the record timed out", full.code
        if (run.code, run.out) != (full.code, full.out):
            return (f"the {name} plan through the record differs: exit {run.code} against {full.code}\n"
                    f"--- through the record\n{run.out.decode()[:3000]}{run.err.decode()[-1500:]}\n"
                    f"--- full build\n{full.out.decode()[:3000]}{full.err.decode()[-1500:]}"), full.code
    return None, full.code


def converge(root: Path) -> str | None:
    applied = tiops(root, "apply", "--auto-approve")
    if applied.code != 0 and b"lock" in applied.err.lower():
        tiops(root, "force-unlock", "--yes")
        applied = tiops(root, "apply", "--auto-approve")
    if applied.code != 0:
        return f"apply after the interrupted one failed: {applied.err.decode()[-2000:]}"
    after = plan(root)
    if after.code != 0:
        return f"a plan after the second apply still has changes (exit {after.code}): {after.out.decode()[:2000]}"
    return compare(root)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tiops-fuzz-last-build"))
    parser.add_argument("--repos", default="generated,example,attack")
    args = parser.parse_args()
    work = args.work.resolve()
    bases = setup_bases(work, args.repos.split(","))
    rng = random.Random(args.seed)
    failures = 0
    started = time.monotonic()
    for index in range(args.count):
        name = rng.choice(sorted(bases))
        case_root = work / "cases" / f"{args.seed}-{index}"
        shutil.rmtree(case_root, ignore_errors=True)
        shutil.copytree(bases[name] / "repo", case_root, symlinks=True)
        case = Case(random.Random(rng.getrandbits(64)), case_root, bases[name],
                    [bases[other] for other in sorted(bases) if other != name])
        description, failure = run_case(case, index)
        if failure is None:
            shutil.rmtree(case_root)
            print(f"case {index} {name}: {description}: ok", flush=True)
        else:
            failures += 1
            kept = work / "failures" / f"{args.seed}-{index}"
            shutil.rmtree(kept, ignore_errors=True)
            kept.parent.mkdir(parents=True, exist_ok=True)
            case_root.rename(kept)
            print(f"case {index} {name}: {description}: FAILED (kept in {kept})\n{failure}", flush=True)
    print(f"seed {args.seed}: {args.count} cases, {failures} failed, {time.monotonic() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

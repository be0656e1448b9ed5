"""Fuzz the build cache: damage a warm ``.tiops/build-cache/`` one random way per case, compare with ``--no-cache``.

    python benchmarks/fuzz_build_cache.py SEED COUNT [REPO] [--timeout 60] [--keep DIR]

REPO (default: a 300-object repository written by generate_repo.py) is copied into a
temporary git repository, built once to warm its cache, and the warm cache and bundle
are kept as a snapshot. Each case restores the snapshot, damages the cache (or the
bundle the bundle record points to, or the intel) one way, and runs the real commands
in a forked child with a timeout, through the cache: ``compile -o dist/bundle.json``
and one of ``validate --format json``, ``validate FILE``, ``diff HEAD`` and
``plan --format json``. Each runs twice (the second run reads what the
first one wrote) and must give the exit status, output and bundle bytes of the same
command with ``--no-cache`` on the same intel: no traceback, no hang, no other
finding, no other byte. A damaged cache may only cost a rebuild (docs/performance.md,
"What the build cache tolerates").

Damage kinds: byte flips, truncation and appended bytes in every kind of cache file
(entry and objects shards, folder groups, the stat index, the bundle record, the enrichment-lock
record); two files swapped, one copied or linked over another; a file replaced by an
empty file, a folder, a symlink to ``/dev/zero``, a FIFO, or made unreadable; the
cache folder read-only (a read-only bind mount when run as root, where modes are
ignored); the whole cache, or part of it, from another repository, from a build under
another ``tiops.yaml`` or from an earlier state of the intel; the output bundle
edited, truncated, replaced or removed after its record was written; intel edits
between runs, edits that keep a file's size and modification time, and edits made
while a build runs (a second process).

The exit status is the number of failed cases; each failure is printed with its
seed and case number, so ``SEED COUNT`` reproduces it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

CACHE = Path(".tiops") / "build-cache"
BUNDLE = "dist/bundle.json"
REFERENCE_BUNDLE = ".fuzz-reference.json"
HERE = Path(__file__).resolve().parent


def run_commands(root: Path, commands: list[list[str]], cached: bool, output: str) -> list[dict[str, Any]]:
    """In this (forked) process: each command through the CLI, its exit status, output and bundle bytes."""
    from click.testing import CliRunner

    from tiops.cli import main

    output = os.fspath(root / output)
    results = []
    for command in commands:
        args = ["-C", os.fspath(root), *command]
        if command[0] == "compile":
            args += ["-o", output]
        if not cached:
            args.append("--no-cache")
        result = CliRunner().invoke(main, args, catch_exceptions=True)
        crash = None
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            crash = "".join(traceback.format_exception(result.exception))
        text = (result.stdout + result.stderr).replace(output, "BUNDLE")
        # Shown relative to the repository, as the CLI shows paths; the build record sits beside the bundle.
        record = os.path.join(os.path.dirname(output), "build.json")
        for path, name in ((record, "RECORD"), (output, "BUNDLE")):
            text = text.replace(os.path.relpath(path, root), name).replace(path, name)
        bundle = None
        # Only a regular file's bytes: a bundle that is a link to /dev/zero would be read forever.
        if command[0] == "compile" and result.exit_code == 0 and os.path.isfile(output):
            with contextlib.suppress(OSError):
                bundle = hashlib.sha256(Path(output).read_bytes()).hexdigest()
        results.append({"command": command, "exit": result.exit_code, "text": text, "bundle": bundle,
                        "crash": crash})
    return results


def forked(work: Callable[[], Any], timeout: float) -> tuple[str, Any]:
    """``work()`` in a forked child: ("ok", its JSON result), ("timeout", None) or ("died", status)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(reader)
        code = 0
        try:
            payload = json.dumps(work()).encode()
        except BaseException:
            payload = json.dumps({"child-crash": traceback.format_exc()}).encode()
        try:
            with os.fdopen(writer, "wb") as out:
                out.write(payload)
        except BaseException:
            code = 3
        os._exit(code)
    os.close(writer)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    os.set_blocking(reader, False)
    import select

    with os.fdopen(reader, "rb", buffering=0) as source:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "timeout", None
            ready, _, _ = select.select([source], [], [], min(left, 1.0))
            if ready:
                chunk = source.read(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if status != 0 or not chunks:
        return "died", status
    return "ok", json.loads(b"".join(chunks))


class Fuzzer:
    def __init__(self, seed: int, base: Path, work: Path, timeout: float) -> None:
        self.random = random.Random(seed)
        self.seed = seed
        self.base = base  # the temporary directory everything lives in
        self.root = work
        self.timeout = timeout
        self.snapshots: dict[str, Path] = {}
        self.references: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
        self.intel_files = sorted(p.relative_to(work).as_posix() for p in (work / "intel").rglob("*.yaml")
                                  if p.name not in ("_defaults.yaml", "_overlay.yaml"))
        self.pristine = {name: (work / name).read_bytes() for name in self.intel_files}
        self.config = (work / "tiops.yaml").read_bytes()
        self.is_root = os.geteuid() == 0
        self.counts: dict[str, int] = {}
        self.failures: list[str] = []

    # --- states -----------------------------------------------------------------------------------
    def warm(self, name: str) -> None:
        """Build through the cache twice and keep the cache folder and bundle as snapshot ``name``."""
        shutil.rmtree(self.root / CACHE, ignore_errors=True)
        for _ in range(2):
            status, _ = forked(lambda: run_commands(self.root, [["validate", "--format", "json"], ["compile"],
                                                                ["diff", "HEAD"]], True, BUNDLE), 300)
            assert status == "ok", status
        time.sleep(1.1)  # past the racy window of the stat index: the next build trusts it
        folder = self.base / f"snapshot-{name}"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(self.root / CACHE, folder / "cache", symlinks=True)
        if (self.root / BUNDLE).is_file():  # none when the intel has errors
            shutil.copy2(self.root / BUNDLE, folder / "bundle.json")
        self.snapshots[name] = folder

    def restore(self, name: str) -> None:
        self.clear_cache()
        folder = self.snapshots[name]
        shutil.copytree(folder / "cache", self.root / CACHE, symlinks=True)
        bundle = self.root / BUNDLE
        self.remove(bundle)
        bundle.parent.mkdir(parents=True, exist_ok=True)
        if (folder / "bundle.json").is_file():
            shutil.copy2(folder / "bundle.json", bundle)

    def clear_cache(self) -> None:
        tiops_dir = self.root / ".tiops"
        if tiops_dir.is_symlink() or tiops_dir.is_file():
            tiops_dir.unlink()
        cache = self.root / CACHE
        if cache.is_symlink() or cache.is_file():
            cache.unlink()
        elif cache.exists():
            for path in [cache, *cache.rglob("*")]:
                with contextlib.suppress(OSError):
                    if not path.is_symlink():
                        path.chmod(0o755 if path.is_dir() else 0o644)
            shutil.rmtree(cache)

    @staticmethod
    def remove(path: Path) -> None:
        if path.is_symlink() or path.is_file() or (path.exists() and not path.is_dir()):
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)

    def set_intel(self, contents: dict[str, bytes | None]) -> None:
        """Write the intel files to ``contents`` (None: absent), touching only files that differ."""
        for name, content in contents.items():
            path = self.root / name
            current = path.read_bytes() if path.is_file() else None
            if current != content:
                if content is None:
                    path.unlink()
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content)

    def intel_state(self) -> dict[str, bytes | None]:
        state: dict[str, bytes | None] = {name: None for name in self.pristine}
        for path in (self.root / "intel").rglob("*.yaml"):
            if path.name not in ("_defaults.yaml", "_overlay.yaml"):
                state[path.relative_to(self.root).as_posix()] = path.read_bytes()
        return state

    def reset_intel(self) -> None:
        current = self.intel_state()
        target: dict[str, bytes | None] = {name: None for name in current}
        target.update(self.pristine)
        self.set_intel(target)
        (self.root / "tiops.yaml").write_bytes(self.config)

    def digest(self) -> str:
        state = self.intel_state()
        text = hashlib.sha256()
        for name in sorted(state):
            if state[name] is not None:
                text.update(name.encode() + b"\0" + hashlib.sha256(state[name] or b"").digest())
        text.update((self.root / "tiops.yaml").read_bytes())
        return text.hexdigest()

    # --- intel edits ------------------------------------------------------------------------------
    def edit_intel(self, count: int, kinds: tuple[str, ...] = ("name", "reference", "duplicate", "delete", "new",
                                                               "garbage", "restore")) -> str:
        done = []
        for _ in range(count):
            name = self.random.choice(self.intel_files)
            path = self.root / name
            text = path.read_bytes() if path.is_file() else self.pristine[name]
            kind = self.random.choice(kinds)
            if kind == "name":
                text = text.replace(b"name: ", b"name: edited ", 1) if b"name: " in text else text + b"\n"
            elif kind == "reference":
                text = text.replace(b"--", b"--0", 1)  # an id or reference no longer TYPE--UUID / unknown
            elif kind == "duplicate":
                other = self.pristine[self.random.choice(self.intel_files)]
                (path.parent / f"copy-{self.random.randrange(1000)}.yaml").write_bytes(other)
            elif kind == "delete":
                if path.exists():
                    path.unlink()
                done.append(f"delete {name}")
                continue
            elif kind == "new":
                (path.parent / f"new-{self.random.randrange(1000)}.yaml").write_bytes(
                    self.pristine[self.random.choice(self.intel_files)].replace(b"--", b"--1", 1))
            elif kind == "garbage":
                text = text[: self.random.randrange(len(text) + 1)] + b"\n: [unclosed\n"
            else:
                text = self.pristine[name]
            path.write_bytes(text)
            done.append(f"{kind} {name}")
        return ", ".join(done)

    def same_size_edit(self) -> str:
        """Change one byte of a file's text, keeping its size and modification time."""
        for _ in range(20):
            name = self.random.choice(self.intel_files)
            path = self.root / name
            if not path.is_file():
                continue
            text = bytearray(path.read_bytes())
            at = text.find(b"name: ")
            if at < 0:
                continue
            at += 6
            while at < len(text) and not chr(text[at]).isalpha():
                at += 1
            if at >= len(text):
                continue
            text[at] = ord("Q") if text[at] != ord("Q") else ord("R")
            before = path.stat()
            path.write_bytes(bytes(text))
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
            return f"same size and mtime {name}"
        return "no file to edit"

    # --- damage -----------------------------------------------------------------------------------
    def cache_files(self) -> list[Path]:
        folder = self.root / CACHE
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.is_symlink() and p.name != ".gitignore")

    def pick_file(self) -> Path:
        files = self.cache_files()
        # Every kind alike, not every shard: the index and records are few among 512 shards of
        # entries and 64 of folder groups.
        kinds: dict[str, list[Path]] = {}
        for path in files:
            kinds.setdefault(path.name.split("-")[0] if path.name.startswith(("entries", "objects", "folders"))
                             else path.name, []).append(path)
        return self.random.choice(kinds[self.random.choice(sorted(kinds))])

    def damage(self) -> tuple[str, Callable[[], None] | None]:
        """Damage the restored cache one random way; a description and what undoes it after the case."""
        kind = self.random.choice([
            "flip", "flip", "flip", "truncate", "truncate", "append", "swap", "swap-pair", "copy", "link",
            "empty", "folder", "dev-zero", "fifo", "unreadable", "read-only", "not-a-folder", "foreign",
            "other-config", "older", "newer", "mixed", "bundle-edit", "bundle-truncate", "bundle-replace",
            "bundle-remove", "bundle-fifo", "intel", "intel", "same-size", "racy", "concurrent", "none"])
        folder = self.root / CACHE
        if kind == "flip":
            path = self.pick_file()
            data = bytearray(path.read_bytes())
            spots = []
            for _ in range(self.random.randint(1, 8)):
                if data:
                    at = self.random.randrange(len(data))
                    data[at] ^= 1 << self.random.randrange(8)
                    spots.append(at)
            path.write_bytes(bytes(data))
            return f"flip {path.name} at {spots}", None
        if kind == "truncate":
            path = self.pick_file()
            size = path.stat().st_size
            at = self.random.randrange(size + 1)
            os.truncate(path, at)
            return f"truncate {path.name} to {at} of {size}", None
        if kind == "append":
            path = self.pick_file()
            with path.open("ab") as out:
                out.write(self.random.randbytes(self.random.randint(1, 64)))
            return f"append to {path.name}", None
        if kind in ("swap", "swap-pair"):
            first = self.pick_file()
            if kind == "swap-pair" and first.name.startswith(("entries-", "objects-")):
                number = first.name.split("-")[1]
                second = folder / (f"objects-{number}" if first.name.startswith("entries") else f"entries-{number}")
            else:
                second = self.pick_file()
            if not second.exists() or first == second:
                return f"swap {first.name} with itself", None
            swap = folder / ".swap"
            first.rename(swap)
            second.rename(first)
            swap.rename(second)
            return f"swap {first.name} {second.name}", None
        if kind in ("copy", "link"):
            source, target = self.pick_file(), self.pick_file()
            if source == target:
                return "copy onto itself", None
            target.unlink()
            if kind == "copy":
                shutil.copy2(source, target)
            else:
                target.symlink_to(source.name)
            return f"{kind} {source.name} over {target.name}", None
        if kind in ("empty", "folder", "dev-zero", "fifo", "unreadable"):
            path = self.pick_file()
            if kind == "unreadable":
                path.chmod(0)
                return f"unreadable {path.name}", None
            path.unlink()
            if kind == "empty":
                path.write_bytes(b"")
            elif kind == "folder":
                path.mkdir()
                (path / "inside").write_bytes(b"x")
            elif kind == "dev-zero":
                path.symlink_to("/dev/zero")
            else:
                os.mkfifo(path)
            return f"{kind} for {path.name}", None
        if kind == "read-only":
            return self.read_only(folder)
        if kind == "not-a-folder":
            if self.random.random() < 0.5:
                self.clear_cache()
                folder.write_bytes(b"not a folder")
                return "cache folder is a file", None
            self.clear_cache()
            shutil.rmtree(self.root / ".tiops", ignore_errors=True)
            (self.root / ".tiops").write_bytes(b"")
            return ".tiops is a file", None
        if kind in ("foreign", "other-config", "older", "newer"):
            self.restore({"foreign": "foreign", "other-config": "config", "older": "base", "newer": "edited"}[kind])
            if kind == "newer":
                return "cache of a later state of the intel", None
            if kind == "older":
                return f"cache of the base intel, then intel edits: {self.edit_intel(self.random.randint(1, 3))}", None
            return f"cache {kind}", None
        if kind == "mixed":
            other = self.snapshots[self.random.choice(["foreign", "config", "edited"])] / "cache"
            taken = []
            for path in sorted(other.iterdir()):
                if self.random.random() < 0.3:
                    shutil.copy2(path, folder / path.name)
                    taken.append(path.name)
            return f"mixed cache: {len(taken)} files from {other.parent.name}: {taken[:6]}", None
        if kind.startswith("bundle-"):
            bundle = self.root / BUNDLE
            if not bundle.is_file():
                return "no bundle to damage", None
            if kind == "bundle-edit":
                data = bytearray(bundle.read_bytes())
                at = self.random.randrange(len(data))
                data[at] = ord(self.random.choice("abcdef0123456789 ,:{}\"\n"))
                before = bundle.stat()
                bundle.write_bytes(bytes(data))
                if self.random.random() < 0.5:
                    os.utime(bundle, ns=(before.st_atime_ns, before.st_mtime_ns))
                return f"bundle byte {at} edited", None
            if kind == "bundle-truncate":
                size = bundle.stat().st_size
                at = self.random.randrange(size)
                os.truncate(bundle, at)
                return f"bundle truncated to {at}", None
            bundle.unlink()
            if kind == "bundle-replace":
                other = self.snapshots[self.random.choice(["foreign", "edited"])] / "bundle.json"
                shutil.copy2(other if other.is_file() else self.root / "tiops.yaml", bundle)
                return "bundle replaced by another", None
            if kind == "bundle-fifo":
                # (A folder there is refused by the command line before any build: not the cache's matter.)
                choice = self.random.choice(["fifo", "dev-zero"])
                if choice == "fifo":
                    os.mkfifo(bundle)
                else:
                    bundle.symlink_to("/dev/zero")
                return f"bundle is a {choice}", None
            return "bundle removed", None
        if kind == "intel":
            return f"intel edits: {self.edit_intel(self.random.randint(1, 3))}", None
        if kind == "same-size":
            return self.same_size_edit(), None
        if kind == "racy":
            # A build, then at once an edit that keeps size and mtime: within the index's racy window.
            status, _ = forked(lambda: run_commands(self.root, [["validate", "--format", "json"]], True, BUNDLE),
                               self.timeout)
            return f"racy: {status}, then {self.same_size_edit()}", None
        if kind == "concurrent":
            return self.concurrent(), None
        return "no damage", None

    def read_only(self, folder: Path) -> tuple[str, Callable[[], None] | None]:
        if self.is_root:
            mounted = subprocess.run(["mount", "--bind", os.fspath(folder), os.fspath(folder)],
                                     capture_output=True).returncode == 0
            if mounted:
                ok = subprocess.run(["mount", "-o", "remount,ro,bind", os.fspath(folder)],
                                    capture_output=True).returncode == 0

                def undo() -> None:
                    subprocess.run(["umount", os.fspath(folder)], check=True)

                if ok:
                    return "read-only cache folder (bind mount)", undo
                undo()
        for path in [folder, *folder.iterdir()]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        return "read-only cache folder (modes)", None

    def concurrent(self) -> str:
        """A cached compile in a second process while this one edits intel files under it."""
        delay = self.random.uniform(0.0, 0.4)
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(reader)
            try:
                with contextlib.redirect_stdout(open(os.devnull, "w")):
                    run_commands(self.root, [["compile"]], True, BUNDLE)
            finally:
                os._exit(0)
        os.close(writer)
        os.close(reader)
        time.sleep(delay)
        edits = []
        for _ in range(self.random.randint(1, 4)):
            edits.append(self.edit_intel(1) if self.random.random() < 0.7 else self.same_size_edit())
            time.sleep(self.random.uniform(0, 0.05))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.02)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "concurrent: the compile hung"
        return f"concurrent compile, after {delay:.2f}s: {'; '.join(edits)}"

    # --- one case ---------------------------------------------------------------------------------
    def reference(self, commands: list[list[str]]) -> list[dict[str, Any]]:
        state = self.digest()
        missing = [c for c in commands if (state, tuple(c)) not in self.references]
        if missing:
            status, results = forked(lambda: run_commands(self.root, missing, False, REFERENCE_BUNDLE),
                                     self.timeout * 2)
            if status != "ok" or isinstance(results, dict):
                raise RuntimeError(f"the --no-cache reference failed: {status} {results}")
            for command, result in zip(missing, results, strict=True):
                self.references[(state, tuple(command))] = result
        return [self.references[(state, tuple(c))] for c in commands]

    def case(self, number: int) -> None:
        self.reset_intel()
        self.restore("base")
        description, undo = self.damage()
        kind = description.split(":")[0].split(" ")[0]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        named = self.random.choice([n for n in self.intel_files if (self.root / n).is_file()] or self.intel_files)
        # compile (findings and bundle bytes) every time, and one of the other readers of the cache.
        others = [["validate", "--format", "json"], ["validate", "--format", "json", named], ["diff", "HEAD"]]
        if not description.startswith(".tiops is a file"):  # the plan's own store is in .tiops/ (not the cache)
            others.append(["plan", "--format", "json"])
        commands = [["compile"], self.random.choice(others)]
        problems: list[str] = []
        try:
            for round_number in (1, 2):
                status, results = forked(lambda: run_commands(self.root, commands, True, BUNDLE), self.timeout)
                if status != "ok":
                    problems.append(f"round {round_number}: {status} {results}")
                    break
                if isinstance(results, dict):
                    problems.append(f"round {round_number}: {results['child-crash']}")
                    break
                if undo is not None and round_number == 1:
                    undo()
                    undo = None
                if description in ("bundle is a fifo", "bundle is a dev-zero"):
                    # Written to a named pipe nobody reads, a build is refused whatever it reads; into a
                    # device, it is streamed and no record is kept. The same command without the cache,
                    # to the same path, is what to compare with (the reference writes a regular file).
                    status, expected = forked(lambda: run_commands(self.root, commands, False, BUNDLE), self.timeout)
                    if status != "ok" or isinstance(expected, dict):
                        raise RuntimeError(f"the --no-cache run to the pipe failed: {status} {expected}")
                else:
                    expected = self.reference(commands)
                for got, want in zip(results, expected, strict=True):
                    if got["crash"]:
                        problems.append(f"round {round_number} {got['command']}: traceback\n{got['crash']}")
                    elif (got["exit"], got["text"], got["bundle"]) != (want["exit"], want["text"], want["bundle"]):
                        problems.append(f"round {round_number} {got['command']}: differs from --no-cache:\n"
                                        f"  cached   exit {got['exit']} bundle {got['bundle']}\n{got['text'][:1500]}\n"
                                        f"  no-cache exit {want['exit']} bundle {want['bundle']}\n{want['text'][:1500]}")
        finally:
            if undo is not None:
                undo()
        if problems:
            report = f"FAIL seed {self.seed} case {number}: {description}\n" + "\n".join(problems)
            self.failures.append(report)
            print(report, flush=True)


def prepare(source: Path | None, base: Path) -> Path:
    """A git repository to fuzz in ``base``: a copy of ``source`` or a generated 300-object one."""
    work = base / "repo"
    if source is None:
        subprocess.run([sys.executable, os.fspath(HERE / "generate_repo.py"), "300", os.fspath(work)], check=True,
                       capture_output=True)
    else:
        shutil.copytree(source, work, symlinks=True,
                        ignore=shutil.ignore_patterns(".git", ".tiops", "dist", ".venv", "*.egg-info"))
    (work / ".gitignore").write_text(".tiops/\ndist/\n.fuzz-reference.json\n", encoding="utf-8")
    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.name=fuzz", "-c", "user.email=fuzz@example.org",
                                                    "commit", "-qm", "base"]):
        subprocess.run(["git", "-C", os.fspath(work), *command], check=True)
    return work


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("seed", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("repo", nargs="?", type=Path)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a case's commands may take")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    options = parser.parse_args()
    # Every tiops module imported once here, not again in every forked child (most of a case's time otherwise).
    import importlib
    import pkgutil

    import tiops

    for module in pkgutil.walk_packages(tiops.__path__, "tiops."):
        if not module.name.endswith("__main__"):
            with contextlib.suppress(Exception):
                importlib.import_module(module.name)
    base = options.keep or Path(tempfile.mkdtemp(prefix="fuzz-build-cache-"))
    base.mkdir(parents=True, exist_ok=True)
    fuzzer = None
    try:
        work = prepare(options.repo, base)
        foreign = prepare(options.repo, base / "other")
        fuzzer = Fuzzer(options.seed, base, work, options.timeout)
        # A foreign cache: the same layout and tiops.yaml, other content, warmed in another repository.
        other = Fuzzer(options.seed + 1, base / "other", foreign, options.timeout)
        other.edit_intel(8, ("name", "new"))
        other.warm("foreign")
        fuzzer.snapshots["foreign"] = other.snapshots["foreign"]
        (work / "tiops.yaml").write_bytes(fuzzer.config + b"\n# another configuration\n")
        fuzzer.warm("config")
        fuzzer.reset_intel()
        fuzzer.edit_intel(4, ("name", "new", "delete"))
        fuzzer.warm("edited")
        fuzzer.reset_intel()
        fuzzer.warm("base")
        started = time.monotonic()
        for number in range(options.count):
            fuzzer.case(number)
            if (number + 1) % 100 == 0:
                print(f"{number + 1} cases, {len(fuzzer.failures)} failed, {time.monotonic() - started:.0f} s",
                      flush=True)
        print(f"seed {options.seed}: {options.count} cases, {len(fuzzer.failures)} failed; by kind: "
              + ", ".join(f"{kind} {count}" for kind, count in sorted(fuzzer.counts.items())))
        return min(len(fuzzer.failures), 125)
    finally:
        if options.keep is None:
            with contextlib.suppress(OSError, AttributeError):
                fuzzer.clear_cache()  # type: ignore[union-attr]  # modes of a read-only case
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

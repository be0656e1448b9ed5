"""Fuzz tiops with generated and mutated input: repository YAML, bundle JSON, file-system layouts, CSV.

    python benchmarks/fuzz.py [--cases 5000] [--kinds yaml,bundle,layout,csv] [--seed 1] [--timeout 20]

Every case runs the real commands in-process (``tiops validate --format json``,
``compile``, ``import``) on a fresh temporary repository and must end with exit 0, 1
or 2, no traceback, no internal error, within the timeout, and with every finding
(or import rejection) naming where it is. The first failure of each kind is printed
with its input; the exit status is the number of kinds that failed.

Hypothesis generates the cases (from ``--seed``, so a run is repeatable); tests/test_fuzz.py runs the same kinds with a few dozen cases each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from tiops.cli import main
from tiops.importers.sentinel_csv import parse as parse_csv
from tiops.yamlio import parse_yaml

INDICATOR = """\
type: indicator
spec_version: "2.1"
id: indicator--0f6f9b5e-4c1e-4d8e-9a3b-6a1d2c3b4e5f
created: 2025-03-04T10:00:00.000Z
modified: 2025-03-04T10:00:00.000Z
name: Copper Lantern C2
pattern: "[ipv4-addr:value = '203.0.113.45']"
pattern_type: stix
valid_from: 2025-03-04T10:00:00Z
confidence: 85
labels: [c2]
relationships:
  - indicates: malware--2f1c7a9e-8b0d-4d6e-9a3a-5b4e1f0a7d21
    description: beacons
"""
MALWARE = """\
- type: malware
  spec_version: "2.1"
  id: malware--2f1c7a9e-8b0d-4d6e-9a3a-5b4e1f0a7d21
  created: 2025-03-04T10:00:00.000Z
  modified: 2025-03-04T10:00:00.000Z
  name: Copper Lantern
  is_family: true
  x_detail: {a: [1, 2.5, "three"], b: null}
"""
DEFAULTS = "source: Contoso TI\ndefaults:\n  confidence: 50\n  labels: [feed]\n"
RELATIONSHIPS = "relationships:\n  - {source: indicator, type: indicates, target: malware}\n"
CONFIG = "intel: intel\noutput: dist\nvalidation: {strict: false}\n"
RULES = "- name: drop low\n  order: 1\n  object_types: [indicator]\n  when: {field: confidence, op: '<', value: 10}\n  actions: [drop]\n"
SEED_FILES = {
    "intel/indicator.yaml": INDICATOR, "intel/malware.yaml": MALWARE, "intel/_defaults.yaml": DEFAULTS,
    "rules/relationships.yaml": RELATIONSHIPS, "tiops.yaml": CONFIG, "rules/ingestion/rules.yaml": RULES,
}
# Read with tiops' own YAML reader: timestamps stay the text written.
BUNDLE = json.dumps({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": [
    parse_yaml(INDICATOR.replace("relationships:\n  - indicates: malware--2f1c7a9e-8b0d-4d6e-9a3a-5b4e1f0a7d21\n    description: beacons\n", "")),
    parse_yaml(MALWARE)[0],
]})
CSV_COLUMNS = ["threatTypes", "tags", "name", "description", "confidence", "revoked", "validFrom", "validUntil",
               "tlpLevel", "severity", "observableType", "observableValue", "MD5", "SHA256"]
CSV_ROW = ["malicious-activity", "c2,feed", "C2", "beacon", "80", "false", "2025-01-01T00:00:00.000Z",
           "2026-01-01T00:00:00.000Z", "amber", "3", "ipv4-addr", "198.51.100.7", "", ""]


class Hang(BaseException):
    """A case ran past its timeout (BaseException: tiops' own error handler must not swallow it)."""


class Defect(AssertionError):
    """What a case did wrong."""


# --- strategies ------------------------------------------------------------------------------

_odd_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from(list("'\"\\#:-[]{}!&*|>%@`,\n\t\r²٣")),
    max_size=40,
)
_scalars = (
    st.none() | st.booleans() | _odd_text
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
)
_keys = _odd_text | st.integers(-5, 5) | st.none() | st.booleans()


def _trees(keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                        max_leaves=20)


def _deep(depth: int, kind: str) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


@st.composite
def mutated_text(draw: st.DrawFn, seed: str) -> str:
    """The seed text with a few byte-level edits: replace, insert, delete, duplicate a line, indent."""
    text = seed
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["replace", "insert", "delete", "line", "indent", "nest"]))
        at = draw(st.integers(0, len(text)))
        if operation == "replace" and text:
            text = text[:at] + draw(st.sampled_from(list(":-[]{}'\"#&*!|>%@\t\n ~?,0x1\\"))) + text[at + 1:]
        elif operation == "insert":
            text = text[:at] + draw(_odd_text) + text[at:]
        elif operation == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif operation == "line":
            lines = text.splitlines(keepends=True) or [""]
            index = draw(st.integers(0, len(lines) - 1))
            lines.insert(index, lines[index])
            text = "".join(lines)
        elif operation == "indent":
            text = text[:at] + " " * draw(st.integers(1, 300)) + text[at:]
        else:
            depth = draw(st.sampled_from([3, 99, 100, 101, 255, 300, 2000]))
            style = draw(st.sampled_from(["[", "- ", "{a: "]))
            closing = {"[": "]", "- ": "", "{a: ": "}"}[style]
            text += f"\nx_nest: {style * depth}1{closing * depth}\n" if style != "- " else "\nx_nest:\n" + "- " * depth + "1\n"
    return text


@dataclass
class Case:
    """Files to write (relative path -> text, bytes or a special marker) and the commands to run."""

    files: dict[str, Any] = field(default_factory=dict)
    commands: list[list[str]] = field(default_factory=list)
    csv: bytes | None = None


@st.composite
def yaml_cases(draw: st.DrawFn) -> Case:
    files: dict[str, Any] = dict(SEED_FILES)
    target = draw(st.sampled_from(sorted(SEED_FILES)))
    how = draw(st.sampled_from(["mutate", "tree", "deep", "property"]))
    if how == "mutate":
        files[target] = draw(mutated_text(SEED_FILES[target]))
    elif how == "property":
        # One property of an object (its id perhaps gone, so one is derived) holds anything.
        obj = parse_yaml(INDICATOR if draw(st.booleans()) else MALWARE[2:].replace("\n  ", "\n"))
        if draw(st.booleans()):
            obj.pop("id")
        obj[draw(st.sampled_from(["name", "value", "pattern", "type", "created", "relationships", "labels",
                                  "x_any", "confidence", "external_references"]))] = draw(_trees(_keys))
        files["intel/indicator.yaml"] = yaml.dump(obj, allow_unicode=True)
    elif how == "tree":
        files[target] = yaml.dump(draw(_trees(_keys)), allow_unicode=True)
    else:
        value = _deep(draw(st.sampled_from([99, 100, 101, 260, 1000])), draw(st.sampled_from(["list", "map"])))
        files[target] = SEED_FILES[target] if target.endswith(("relationships.yaml", "rules.yaml")) else \
            INDICATOR + "x_deep: " + json.dumps(value) + "\n"
    return Case(files, [["validate", "--format", "json"], ["compile"]])


@st.composite
def bundle_cases(draw: st.DrawFn) -> Case:
    how = draw(st.sampled_from(["mutate", "tree", "property"]))
    if how == "mutate":
        text: Any = draw(mutated_text(BUNDLE)).encode("utf-8")
    elif how == "tree":
        text = json.dumps(draw(_trees(_odd_text)), default=str)
    else:
        bundle = json.loads(BUNDLE)
        obj = bundle["objects"][draw(st.integers(0, 1))]
        obj[draw(st.sampled_from(["type", "id", "spec_version", "created", "modified", "pattern", "x_any", "name"]))] = \
            draw(_trees(_odd_text))
        text = json.dumps(bundle, default=str)
    return Case({"b.json": text}, [["validate", "b.json", "--format", "json"],
                                   ["import", "b.json", "--format", "stix", "--source", "Fuzz"]])


LAYOUT_KINDS = ["valid", "empty", "garbage", "fifo", "zero", "outside", "inside", "dangling", "dir-link", "loop",
                "dir-named-yaml", "bad-name", "bad-dir"]


@st.composite
def layout_cases(draw: st.DrawFn) -> Case:
    files: dict[str, Any] = {"intel/indicator.yaml": INDICATOR, "intel/malware.yaml": MALWARE}
    for number, kind in enumerate(draw(st.lists(st.sampled_from(LAYOUT_KINDS), min_size=1, max_size=5))):
        folder = draw(st.sampled_from(["intel", "intel/sub", "rules/ingestion", "intel/_defaults.yaml.d"]))
        name = draw(st.sampled_from([f"f{number}.yaml", "_defaults.yaml", "_overlay.yaml", f"f{number}.yml"]))
        files[f"{folder}/{name}"] = ("special", kind)
    return Case(files, [["validate", "--format", "json"], ["compile"]])


@st.composite
def csv_cases(draw: st.DrawFn) -> Case:
    columns = list(CSV_COLUMNS)
    if draw(st.booleans()):
        columns = draw(st.lists(st.sampled_from([*CSV_COLUMNS, "name", "", "#x", "validFrom "]), min_size=1, max_size=16))
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        row = list(CSV_ROW[: len(columns)])
        for _ in range(draw(st.integers(0, 4))):
            if row:
                row[draw(st.integers(0, len(row) - 1))] = draw(
                    _odd_text | st.sampled_from(["²", "٣", "#", "=cmd", "1" * 30, "x" * 131_073]))
        rows.append(row)
    quote = draw(st.sampled_from(["minimal", "all", "broken"]))
    lines = []
    for cells in [columns, *rows]:
        if quote == "all":
            lines.append(",".join('"' + c.replace('"', '""') + '"' for c in cells))
        elif quote == "broken":
            lines.append(",".join(cells))  # quotes and newlines in cells left as they are
        else:
            lines.append(",".join('"' + c.replace('"', '""') + '"' if any(ch in c for ch in ',"\n\r') else c for c in cells))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if draw(st.booleans()):
        data = draw(st.sampled_from([b"\xff\xfe", b"\x00", b"\r", b"\xef\xbb\xbf"])) + data
    return Case({"feed.csv": data}, [["import", "feed.csv", "--format", "sentinel-csv", "--source", "Fuzz",
                                      "--errors", "errors.csv"]], csv=data)


KINDS: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "yaml": yaml_cases, "bundle": bundle_cases, "layout": layout_cases, "csv": csv_cases,
}


# --- running a case ------------------------------------------------------------------------


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _write(root: Path, relative: str, content: Any, outside: Path) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
        return
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
        return
    kind = content[1]
    if path.exists() or path.is_symlink():
        return
    if kind == "valid":
        path.write_text(INDICATOR.replace("6a1d2c3b4e5f", f"{abs(hash(relative)) % 10**12:012d}"), encoding="utf-8")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(bytes(range(256)))
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    elif kind == "outside":
        path.symlink_to(outside)
    elif kind == "inside":
        path.symlink_to(root / "intel" / "indicator.yaml")
    elif kind == "dangling":
        path.symlink_to(root / "nowhere.yaml")
    elif kind == "dir-link":
        path.symlink_to(root / "intel")
    elif kind == "loop":
        path.symlink_to(path)
    elif kind == "dir-named-yaml":
        path.mkdir()
    elif kind == "bad-name":
        with open(os.path.join(os.fsencode(path.parent), b"bad\xff.yaml"), "wb") as handle:
            handle.write(INDICATOR.encode())
    elif kind == "bad-dir":
        os.makedirs(os.path.join(os.fsencode(path.parent), b"dir\xfe"), exist_ok=True)


# The results of the last case's commands, for tests of the harness itself.
last_results: list[Any] = []


def run_case(case: Case, *, timeout: int = 20) -> None:
    """Run every command of the case on a fresh repository; raise :class:`Defect` or :class:`Hang`."""
    last_results.clear()
    workdir = Path(tempfile.mkdtemp(prefix="tiops-fuzz-"))
    try:
        root = workdir / "repo"
        (root / "intel").mkdir(parents=True)  # a repository: import refuses to run outside one
        outside = workdir / "outside.yaml"
        outside.write_text(INDICATOR, encoding="utf-8")
        for relative, content in case.files.items():
            _write(root, relative, content, outside)
        runner = CliRunner()
        for command in case.commands:
            # File arguments are the case's files, inside the repository (not the current folder).
            arguments = [str(root / part) if part in case.files or part == "errors.csv" else part for part in command]
            with time_limit(timeout):
                result = runner.invoke(main, ["-C", str(root), *arguments], catch_exceptions=True)
            _check(command, result)
            last_results.append(result)
        if case.csv is not None:
            parsed = parse_csv(case.csv, "Fuzz")
            whole_file = [r for r in parsed.rejections if r.position in ("file", "row 1")]
            if not whole_file and parsed.total != len(parsed.candidates) + len(parsed.rejections):
                raise Defect(f"rows unaccounted for: total {parsed.total}, {len(parsed.candidates)} read, "
                             f"{len(parsed.rejections)} rejected")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _check(command: list[str], result: Any) -> None:
    output = result.stdout + (result.stderr if result.stderr_bytes is not None else "")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise Defect(f"{command[0]}: exception {type(result.exception).__name__}: {result.exception}")
    if result.exit_code not in (0, 1, 2):
        raise Defect(f"{command[0]}: exit {result.exit_code}: {output[-500:]}")
    if "Traceback" in output or "internal error" in output:
        raise Defect(f"{command[0]}: {output[-500:]}")
    if command[0] == "validate" and result.exit_code == 1:
        findings = json.loads(result.stdout)["findings"]
        if not findings:
            raise Defect("validate failed without a finding")
        unplaced = [f for f in findings if not f["file"] or f["line"] < 1 or f["column"] < 1]
        if unplaced:
            raise Defect(f"findings without a location: {unplaced[:3]}")
    if command[0] == "import" and result.exit_code == 1:
        lines = [line for line in result.stderr.splitlines() if line and not line.startswith(("tiops:", "  hint"))]
        if "tiops: error:" not in result.stderr and not lines:
            raise Defect("import failed without naming a row or object")


# --- the night run ---------------------------------------------------------------------------


def fuzz(kind: str, cases: int, seed: int, timeout: int) -> tuple[int, str | None]:
    """Run ``cases`` cases of one kind; (cases run, the first failure or None)."""
    ran = [0]
    failure: list[str] = []

    @hypothesis_seed(seed)
    @settings(max_examples=cases, database=None, deadline=None, print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(KINDS[kind]())
    def one(case: Case) -> None:
        ran[0] += 1
        run_case(case, timeout=timeout)

    try:
        one()
    except (Defect, Hang, Exception) as error:  # Hypothesis re-raises the shrunk failure
        failure.append(f"{type(error).__name__}: {error}")
    return ran[0], failure[0] if failure else None


def main_script(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000, help="cases per kind")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: " + ", ".join(KINDS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=20, help="seconds a command may take before it counts as a hang")
    options = parser.parse_args(argv)
    failed = 0
    for kind in options.kinds.split(","):
        started = time.perf_counter()
        ran, failure = fuzz(kind, options.cases, options.seed, options.timeout)
        elapsed = time.perf_counter() - started
        print(f"{kind:7} {ran:6} cases in {elapsed:7.1f} s ({ran / elapsed:5.1f}/s): "
              + ("no defect" if failure is None else f"DEFECT {failure}"), flush=True)
        failed += failure is not None
    return failed


if __name__ == "__main__":
    sys.exit(main_script())

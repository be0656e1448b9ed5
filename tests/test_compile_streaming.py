"""The bundle streamed to a file is the canonical bundle, byte for byte."""

from __future__ import annotations

import array
import hashlib
import importlib.util
import json
import os
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from tiops import build, load_repo
from tiops import compile as compile_module
from tiops.compile import (
    BUNDLE_TAIL,
    LineRun,
    WrittenBundle,
    bundle_id_of,
    bundle_objects,
    compiled_objects,
    line_group,
    run_lines_digest,
    serialize_bundle,
    write_bundle,
    write_line_runs,
)
from tiops.errors import TiopsError
from tiops.memory import WRITE_PIECE
from tiops.stix import TIOPS_NAMESPACE

GENERATOR_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "generate_repo.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_repo", GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class bodies run
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    _generator().write_repository(root, 3000, seed=7)
    return root


def canonical_bundle(objects: list[dict[str, Any]]) -> bytes:
    """The documented bundle layout (docs/format.md), written independently of tiops.compile:
    sorted-key compact JSON, one object per line; the lines grouped by type and the first two
    characters of the UUID, each group's lines joined by ",\n" digested, and the id a UUIDv5
    of the SHA-256 of those digests in order."""
    lines = [orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) for obj in objects]
    groups: dict[tuple[str, str], list[bytes]] = {}
    for obj, line in zip(objects, lines, strict=True):
        groups.setdefault((obj["type"], obj["id"][:len(obj["type"]) + 4]), []).append(line)
    assert list(groups) == sorted(groups)  # bundle order: each group's lines in one run
    digest = hashlib.sha256(b"".join(hashlib.sha256(b",\n".join(group)).digest() for group in groups.values()))
    head = f'{{"id":"bundle--{uuid.uuid5(TIOPS_NAMESPACE, digest.hexdigest())}","objects":[\n'.encode()
    return head + b",\n".join(lines) + b'\n],"type":"bundle"}\n'


@pytest.mark.parametrize("which", ["example", "generated"])
def test_streamed_bundle_equals_the_in_memory_serialisation(
    which: str, example_repo: Path, generated_repo: Path, tmp_path: Path
) -> None:
    root = example_repo if which == "example" else generated_repo
    repo = load_repo(root)
    expected = canonical_bundle(compiled_objects(repo))
    assert serialize_bundle(bundle_objects(repo)) == expected
    target = tmp_path / "out" / "bundle.json"
    written = write_bundle(bundle_objects(repo), target)
    assert target.read_bytes() == expected
    assert written.sha256 == hashlib.sha256(expected).hexdigest()
    assert written.size == len(expected)
    assert written.bundle_id == json.loads(expected)["id"]
    assert [p.name for p in target.parent.iterdir()] == ["bundle.json"]  # no partial file left behind


@pytest.mark.parametrize("which", ["example", "generated"])
def test_the_line_starts_noted_while_writing_are_where_each_line_starts(
    which: str, example_repo: Path, generated_repo: Path, tmp_path: Path
) -> None:
    from tiops.bundlereuse import _file_line_offsets

    repo = load_repo(example_repo if which == "example" else generated_repo)
    target = tmp_path / "bundle.json"
    starts = array.array("q")
    write_bundle(bundle_objects(repo), target, line_starts=starts)
    content = target.read_bytes()
    # Found from the bytes alone: the head's line break, then each ",\n" between two lines.
    head_end = content.index(b"\n") + 1
    expected = [head_end]
    at = head_end
    while (separator := content.find(b",\n", at, len(content) - len(b'\n],"type":"bundle"}\n'))) >= 0:
        expected.append(separator + 2)
        at = separator + 2
    assert starts.tolist() == expected
    assert len(expected) == len(json.loads(content)["objects"])
    assert _file_line_offsets(target) == expected  # what the record read back before the writer noted them


def test_build_to_a_file_gives_the_bytes_and_metadata_of_an_in_memory_build(generated_repo: Path, tmp_path: Path) -> None:
    in_memory = build(generated_repo, as_of="2025-06-01T00:00:00Z")
    streamed = build(generated_repo, as_of="2025-06-01T00:00:00Z", output=tmp_path / "bundle.json")
    assert streamed.bundle_file == tmp_path / "bundle.json"
    assert streamed.bundle_file.read_bytes() == in_memory.bundle
    assert streamed.metadata == in_memory.metadata
    assert streamed.object_count == in_memory.object_count == in_memory.metadata["objects"]


def test_an_interrupted_write_keeps_the_previous_bundle(example_repo: Path, tmp_path: Path) -> None:
    target = tmp_path / "dist" / "bundle.json"
    target.parent.mkdir()
    target.write_bytes(b"previous bundle\n")
    objects = list(bundle_objects(load_repo(example_repo)))

    def failing() -> Iterator[dict[str, Any]]:
        yield objects[0]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_bundle(failing(), target)
    assert target.read_bytes() == b"previous bundle\n"
    assert [p.name for p in target.parent.iterdir()] == ["bundle.json"]


def test_compile_command_writes_nothing_when_validation_fails(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/bad.yaml": "type: identity\nspec_version: '2.1'\nname: No dates\n"})
    done = subprocess.run([sys.executable, "-m", "tiops", "-C", str(root), "compile"], capture_output=True, text=True,
                          check=False, cwd=root)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert not (root / "dist").exists()


def test_an_unwritable_target_is_a_clear_error(example_repo: Path) -> None:
    (example_repo / "out").write_text("a file where the bundle's folder should be\n")
    done = subprocess.run([sys.executable, "-m", "tiops", "-C", str(example_repo), "compile", "-o", "out/bundle.json"],
                          capture_output=True, text=True, check=False, cwd=example_repo)
    assert done.returncode == 1
    assert "cannot write the bundle to" in done.stderr and "internal error" not in done.stderr
    assert (example_repo / "out").read_text() == "a file where the bundle's folder should be\n"


def test_a_folder_in_the_bundles_place_is_a_clear_error_and_leaves_no_partial_file(example_repo: Path, tmp_path: Path) -> None:
    target = tmp_path / "dist" / "bundle.json"
    target.mkdir(parents=True)
    with pytest.raises(TiopsError, match="cannot write the bundle to"):
        write_bundle(bundle_objects(load_repo(example_repo)), target)
    assert [p.name for p in target.parent.iterdir()] == ["bundle.json"] and target.is_dir()


@pytest.mark.parametrize("cuts", [(), (1,), (2, 3), (1, 2, 3, 4)])
def test_runs_with_their_line_starts_give_the_bytes_of_write_bundle(example_repo: Path, tmp_path: Path,
                                                                   cuts: tuple[int, ...]) -> None:
    objects = compiled_objects(load_repo(example_repo))
    expected = write_bundle(objects, tmp_path / "bundle.json")
    content = (tmp_path / "bundle.json").read_bytes()
    lines = [orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) for obj in objects]
    # Kept runs as tiops.bundlereuse gives them: the previous file, the run's bounds and each line's start.
    padding = b"HEAD\n"
    previous = padding + b",\n".join(lines) + b"\nTAIL"
    starts = [len(padding) + sum(len(line) + 2 for line in lines[:number]) for number in range(len(lines))]
    bounds = [0, *cuts, len(lines)]
    pieces: list[bytes | LineRun] = []
    for number, (start, stop) in enumerate(pairwise(bounds)):
        if number % 2:
            pieces.extend(lines[start:stop])
        elif start < stop:
            end = starts[stop] - 2 if stop < len(lines) else len(previous) - len(b"\nTAIL")
            pieces.append(LineRun(memoryview(previous), starts[start], end, starts[start:stop]))
    written = write_line_runs(pieces, tmp_path / "runs.json", expected.group_digests)
    assert (tmp_path / "runs.json").read_bytes() == content
    assert written == WrittenBundle(tmp_path / "runs.json", expected.bundle_id, expected.sha256, expected.size,
                                    expected.group_digests)


@pytest.mark.parametrize("cuts", [(), (1,), (2, 3), (1, 2, 3, 4), (0, 5)])
def test_a_groups_digest_is_of_its_lines_joined_as_the_file_joins_them(cuts: tuple[int, ...]) -> None:
    lines = [b'{"a":"x,y"}', b'{"b":[1,2]}', b"{}", b'{"c":",,"}', b'{"d":"\\n"}', b'{"e":0}']
    # Runs of kept lines (even pieces) and new lines (odd ones), as tiops.bundlereuse hands them over.
    previous = b"HEAD\n" + b",\n".join(lines) + b"\nTAIL"
    starts = [5 + sum(len(line) + 2 for line in lines[:number]) for number in range(len(lines))]
    pieces: list[bytes | LineRun] = []
    piece_lines: list[int] = []
    for number, (start, stop) in enumerate(pairwise([0, *cuts, len(lines)])):
        if number % 2:
            for at in range(start, stop):
                piece_lines.append(at)
                pieces.append(lines[at])
        elif start < stop:
            end = starts[stop] - 2 if stop < len(lines) else len(previous) - len(b"\nTAIL")
            piece_lines.append(start)
            pieces.append(LineRun(memoryview(previous), starts[start], end, starts[start:stop]))
    for first in range(len(lines)):
        for stop in range(first + 1, len(lines) + 1):
            assert run_lines_digest(pieces, piece_lines, first, stop) == hashlib.sha256(
                b",\n".join(lines[first:stop])).digest(), (first, stop)


@pytest.mark.parametrize(("keys", "expected"), [
    (["identity\0identity--0a1b", "identity\0identity--0a2c", "identity\0identity--ff00"],
     ([0, 2], ["identity\0identity--0a", "identity\0identity--ff"])),
    # a type that begins another's, and ids too short for two characters past the "--"
    (["a\0a--0", "a\0a--00", "a\0a--001", "a\0a--01", "a-b\0a-b--9", "ab\0ab--12x", "ab\0ab--12y"],
     ([0, 1, 3, 4, 5], ["a\0a--0", "a\0a--00", "a\0a--01", "a-b\0a-b--9", "ab\0ab--12"])),
    ([], ([], [])),
])
def test_line_groups_by_bisection_are_the_runs_of_each_lines_group(keys: list[str],
                                                                    expected: tuple[list[int], list[str]]) -> None:
    from tiops.compile import line_groups

    assert tuple(line_groups(keys, in_key_order=True)) == tuple(line_groups(keys, in_key_order=False)) == expected


def test_line_groups_ascend_with_their_keys_whatever_the_keys_hold() -> None:
    """Bisection finds each group's run only if ascending keys give ascending groups: random keys over
    NUL, hyphens and letters (types that begin others, several NULs or none, ids too short)."""
    import random

    from tiops.compile import line_groups

    rng = random.Random(11)
    for _ in range(300):
        keys = sorted({"".join(rng.choice("\0-ab") for _ in range(rng.randrange(0, 9))) for _ in range(rng.randrange(1, 40))})
        groups = [line_group(key) for key in keys]
        assert groups == sorted(groups), keys
        assert line_groups(keys, in_key_order=True) == line_groups(keys, in_key_order=False), keys


def test_groups_that_do_not_fit_the_lines_are_refused(tmp_path: Path) -> None:
    from tiops.compile import LineGroups

    lines = [{"type": "identity", "id": f"identity--{n}a", "name": str(n)} for n in range(3)]
    for starts in ([1], [0, 0], [0, 3], [0, 2, 1]):  # not from the first line, twice, past the last, descending
        with pytest.raises(ValueError, match="group"):
            write_bundle(lines, tmp_path / "bundle.json", groups=LineGroups(starts, ["g"] * len(starts)))
        assert not list(tmp_path.iterdir())  # no bundle, no partial file


@pytest.mark.usefixtures("hand_made_bundles")
def test_a_type_holding_nul_gives_the_bundle_its_objects_alone_give(tmp_path: Path) -> None:
    # Ordered by (type, id) pairs, not by their joined keys (tiops.compile._bundle_order): a group can come
    # back after another, and each of its runs is digested apart, from BundleObjects' groups as from the objects'.
    from tiops.compile import BundleObjects, _bundle_order, line_groups

    keyed = [("a\0x", "b00"), ("a", "y"), ("a", "x\0b00")]
    order, keys, in_key_order = _bundle_order(keyed)
    assert not in_key_order and keys == ["a\0x\0b00", "a\0y", "a\0x\0b00"]
    objects = BundleObjects([{"type": keyed[at][0], "id": keyed[at][1]} for at in order], None,
                            line_groups(keys, in_key_order=False))
    written = write_bundle(objects, tmp_path / "bundle.json")
    alone = write_bundle(list(objects), tmp_path / "alone.json")  # groups found from the objects themselves
    assert (tmp_path / "bundle.json").read_bytes() == (tmp_path / "alone.json").read_bytes()
    assert written.group_digests == alone.group_digests and len(written.group_digests) == 3 * 32


def test_line_groups_out_of_key_order_are_runs_and_a_group_may_come_back() -> None:
    from tiops.compile import line_groups

    keys = ["b\0b--00", "a\0a--00", "b\0b--00x"]  # as a type holding NUL can order them (tiops.compile._bundle_order)
    assert tuple(line_groups(keys, in_key_order=False)) == ([0, 1, 2], ["b\0b--00", "a\0a--00", "b\0b--00"])


def test_the_bundle_id_of_no_lines_is_of_no_digest(tmp_path: Path) -> None:
    written = write_bundle([], tmp_path / "empty.json")
    assert written.bundle_id == bundle_id_of(b"") == f"bundle--{uuid.uuid5(TIOPS_NAMESPACE, hashlib.sha256().hexdigest())}"
    assert written.group_digests == b""


def _one_run(tmp_path: Path) -> tuple[list[bytes | LineRun], bytes, bytes]:
    """The pieces of a bundle of three lines, the first two kept from a previous file; its bytes and group digests."""
    lines = [orjson.dumps({"created": "2024-01-01T00:00:00.000Z", "id": f"identity--{uuid.uuid5(TIOPS_NAMESPACE, name)}",
                           "modified": "2024-01-01T00:00:00.000Z", "name": name, "spec_version": "2.1",
                           "type": "identity"}) for name in ("a", "b", "c")]
    previous = b"HEAD\n" + b",\n".join(lines[:2]) + b"\nTAIL"
    starts = [5, 5 + len(lines[0]) + 2]
    pieces: list[bytes | LineRun] = [LineRun(memoryview(previous), 5, starts[1] + len(lines[1]), starts), lines[2]]
    written = write_bundle(lines, tmp_path / "expected.json")
    return pieces, (tmp_path / "expected.json").read_bytes(), written.group_digests


def test_a_digest_that_fails_on_its_thread_fails_the_write_with_the_new_bundle_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failing = "_digest_parts"
    pieces, expected, groups = _one_run(tmp_path)
    target = tmp_path / "out" / "bundle.json"
    target.parent.mkdir()
    target.write_bytes(b"the previous bundle")

    def broken(*_args: object) -> None:
        raise RuntimeError(f"{failing} broke")

    monkeypatch.setattr(compile_module, failing, broken)
    with pytest.raises(RuntimeError, match=f"{failing} broke"):
        write_line_runs(pieces, target, groups)
    assert threading.active_count() == 1  # the digest's thread was waited for
    assert [p.name for p in target.parent.iterdir()] == ["bundle.json"]  # no partial file beside it
    assert target.read_bytes() == expected  # written whole; only its digest is missing
    monkeypatch.undo()
    write_line_runs(pieces, target, groups)
    assert target.read_bytes() == expected


def test_a_write_that_fails_waits_for_the_digest_thread_and_reports_the_write(tmp_path: Path) -> None:
    pieces, _, groups = _one_run(tmp_path)
    target = tmp_path / "bundle.json"
    target.mkdir()  # a folder in the bundle's place: the rename fails after the digest started
    with pytest.raises(TiopsError, match="cannot write the bundle to"):
        write_line_runs(pieces, target, groups)
    assert threading.active_count() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.json", "expected.json"] and target.is_dir()


def test_meanwhile_runs_with_the_bundle_in_place_and_its_id_and_size(tmp_path: Path) -> None:
    pieces, expected, groups = _one_run(tmp_path)
    target = tmp_path / "bundle.json"
    seen: list[tuple[str, int, bytes]] = []
    written = write_line_runs(pieces, target, groups, meanwhile=lambda bundle_id, size: seen.append(
        (bundle_id, size, target.read_bytes())))
    assert seen == [(written.bundle_id, written.size, expected)]
    assert written.sha256 == hashlib.sha256(expected).hexdigest()


def test_a_meanwhile_that_fails_fails_the_write_once_the_digest_thread_is_waited_for(tmp_path: Path) -> None:
    pieces, expected, groups = _one_run(tmp_path)
    target = tmp_path / "bundle.json"

    def broken(bundle_id: str, size: int) -> None:
        raise RuntimeError("meanwhile broke")

    with pytest.raises(RuntimeError, match="meanwhile broke"):
        write_line_runs(pieces, target, groups, meanwhile=broken)
    assert threading.active_count() == 1
    assert target.read_bytes() == expected  # it runs once the bundle is in place


class _NotingDigest:
    def __init__(self) -> None:
        self.real = hashlib.sha256()
        self.sizes: list[int] = []

    def update(self, data: bytes | memoryview) -> None:
        self.sizes.append(len(data))
        self.real.update(data)


def test_a_run_of_kept_lines_is_digested_in_one_call_not_in_write_pieces() -> None:
    # SHA-256 lets go of the GIL for one call's bytes: a run digested whole needs the GIL back once,
    # not once per written piece, while the command works on the bundle record meanwhile.
    line = b'{"id":"x","pad":"' + b"p" * 1000 + b'"}'
    count = 3 * WRITE_PIECE // len(line)
    body = b",\n".join([line] * count)
    previous = b"HEAD\n" + body + b"\nTAIL"
    run = LineRun(memoryview(previous), 5, 5 + len(body), list(range(5, 5 + len(body), len(line) + 2)))
    digest = _NotingDigest()
    compile_module._digest_parts(digest, b"HEAD\n", [run, b'{"new":1}'])
    assert max(digest.sizes) == len(body) > 2 * WRITE_PIECE
    assert digest.real.hexdigest() == hashlib.sha256(
        b"HEAD\n" + body + b',\n{"new":1}' + compile_module.BUNDLE_TAIL).hexdigest()


def test_a_build_json_that_is_not_a_record_is_not_overwritten(example_repo: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tiops.cli import main

    mine = tmp_path / "build.json"
    mine.write_text('{"my": "own file"}', encoding="utf-8")
    refused = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "-o", str(tmp_path / "stix.json")])
    assert refused.exit_code == 2 and "is not a tiops build record" in refused.output
    assert mine.read_text(encoding="utf-8") == '{"my": "own file"}' and not (tmp_path / "stix.json").exists()
    mine.unlink()
    written = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "-o", str(tmp_path / "stix.json")])
    assert written.exit_code == 0 and "and its record" in written.output and "build.json" in written.output
    again = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "-o", str(tmp_path / "stix.json")])
    assert again.exit_code == 0  # its own record is replaced


def test_the_build_record_is_replaced_by_a_new_one(example_repo: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tiops.cli import main

    bundle, record = tmp_path / "out" / "bundle.json", tmp_path / "out" / "build.json"
    first = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "--as-of", "2025-01-01", "-o", str(bundle)])
    assert first.exit_code == 0 and record.is_file(), first.output
    os.chmod(record, 0o640)
    before = record.stat().st_ino
    again = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "--as-of", "2025-02-01", "-o", str(bundle)])
    assert again.exit_code == 0, again.output
    # Written beside and renamed over: a compile interrupted while writing it leaves the previous record.
    assert record.stat().st_ino != before and stat.S_IMODE(record.stat().st_mode) == 0o640
    assert json.loads(record.read_bytes())["bundle_sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert sorted(p.name for p in record.parent.iterdir()) == ["build.json", "bundle.json"]


def test_a_build_record_cut_short_by_a_full_disk_leaves_the_previous_one(example_repo: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner
    from full_disk import fill_up_writing

    from tiops.cli import main

    bundle, record = tmp_path / "out" / "bundle.json", tmp_path / "out" / "build.json"
    command = ["-C", str(example_repo), "compile", "--as-of", "2025-01-01", "-o", str(bundle)]
    assert CliRunner().invoke(main, command).exit_code == 0
    previous = record.read_bytes()
    with monkeypatch.context() as patched:
        fill_up_writing(patched, "build.json")
        cut = CliRunner().invoke(main, command)
    assert cut.exit_code == 1, cut.output
    assert f"cannot write the build record {record}: No space left on device" in cut.output
    assert "internal error" not in cut.output
    assert record.read_bytes() == previous
    assert sorted(p.name for p in record.parent.iterdir()) == ["build.json", "bundle.json"]
    # A record cut short would be "not a tiops build record": the next compile would refuse to write.
    assert CliRunner().invoke(main, command).exit_code == 0


def test_a_long_run_is_handed_to_the_file_in_pieces_no_larger_than_the_write_limit() -> None:
    # One write of tens of megabytes costs far more than the same bytes in pieces (tiops.memory.WRITE_PIECE).
    lines = [b'{"n":%d,"pad":"%s"}' % (number, b"x" * 500) for number in range(9_000)]
    previous = b"HEAD\n" + b",\n".join(lines) + b"\nTAIL"
    starts = [5 + sum(len(line) + 2 for line in lines[:number]) for number in range(len(lines))]
    run = LineRun(memoryview(previous), 5, len(previous) - len(b"\nTAIL"), starts)
    parts = [bytes(part) for part in compile_module._body([b'{"first":1}', run, b'{"last":1}'])]
    assert b"".join(parts) == b'{"first":1},\n' + b",\n".join(lines) + b',\n{"last":1}' + BUNDLE_TAIL
    assert len(previous) > 4 * WRITE_PIECE and max(len(part) for part in parts) == WRITE_PIECE
    assert compile_module._WRITE_BUFFER <= WRITE_PIECE  # the stream's own writes are no larger

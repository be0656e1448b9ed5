"""The last build's record: a no-change plan skips the build, and any changed input (or store) falls back to it.

Every test compares the plan made through the record with the plan made by
``--no-cache`` (a full build, no record read or written), byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import tiops
from tiops import lastbuild
from tiops.apply import apply_plan, open_session
from tiops.cli import main
from tiops.config import load_config
from tiops.enrich.lock import EnrichmentLock, write_lock
from tiops.plan import Plan

IDENTITY = "identity--11111111-1111-4111-8111-111111111111"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_SYSTEM": os.devnull}
RULES = """\
- name: Tag high confidence
  order: 10
  object_types: [indicator]
  when: {all: [{field: confidence, op: ">=", value: 80}]}
  actions:
    - {add_tags: [high]}
"""


def indicator(number: int, *, confidence: int = 70, ip: str | None = None,
              description: str = "C2 address") -> dict[str, Any]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--00000000-0000-4000-8000-{number:012d}",
        "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "name": f"C2 {number}",
        "description": description, "pattern": f"[ipv4-addr:value = '{ip or f'10.0.0.{number}'}']",
        "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z", "created_by_ref": IDENTITY,
        "confidence": confidence, "labels": ["c2"],
    }


def git(root: Path, *args: str, date: str = "2025-01-01T00:00:00Z") -> None:
    env = {**os.environ, **GIT_ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    subprocess.run(["git", "-C", str(root), *args], env=env, check=True, capture_output=True)


@pytest.fixture(autouse=True, params=["beside", "here"])
def verdict_where(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test twice: whether the record still holds worked out by a forked helper while the
    target is read (tiops.apply.RecordVerdict, as on an idle second core), and in this process."""
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1" if request.param == "beside" else "0")
    return str(request.param)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with two intel files, defaults, an ingestion rule and an enrichment lock, applied once."""
    root = tmp_path / "repo"
    identity = {"type": "identity", "spec_version": "2.1", "id": IDENTITY, "name": "Contoso TI",
                "identity_class": "organization", "created": "2025-01-01T00:00:00.000Z",
                "modified": "2025-01-01T00:00:00.000Z"}
    (root / "intel" / "more").mkdir(parents=True)
    (root / "intel" / "objects.yaml").write_text(json.dumps([identity, indicator(1), indicator(2, confidence=90)]))
    (root / "intel" / "more" / "more.yaml").write_text(json.dumps([indicator(3, ip="8.8.8.8")]))
    (root / "intel" / "more" / "_defaults.yaml").write_text("defaults:\n  lang: en\n")
    (root / "rules" / "ingestion").mkdir(parents=True)
    (root / "rules" / "ingestion" / "tags.yaml").write_text(RULES)
    write_lock(root / "intel", geo_lock("US"))
    (root / "tiops.yaml").write_text("intel: intel\n")
    (root / ".gitignore").write_text("/.tiops/\n/dist/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "intel")
    session = open_session(root)
    try:
        apply_plan(session.plan(), session.store, bundle_digest=session.bundle_digest)
    finally:
        session.close()
    return root


def geo_lock(country: str) -> EnrichmentLock:
    lock = EnrichmentLock()
    lock.meta["geo"] = {"backend": "geoip2fast", "database": "GeoLite2", "date": "2024-06-18"}
    lock.geo["8.8.8.8"] = {"status": "found", "country_code": country}
    return lock


def plans(root: Path) -> tuple[Plan, Plan, bool]:
    """The plan through the record, the plan of a full build without it, and whether the first one built."""
    session = open_session(root)
    try:
        recorded = session.plan()
        built = session.built
    finally:
        session.close()
    full = open_session(root, cache=False)
    try:
        return recorded, full.plan(), built
    finally:
        full.close()


def test_a_plan_after_apply_skips_the_build_and_equals_a_full_one(repo: Path) -> None:
    assert (repo / lastbuild.RECORD_PATH).is_file()
    recorded, full, built = plans(repo)
    assert not built, "nothing changed: the record alone should have made the plan"
    assert not recorded.has_changes and recorded.unchanged == full.unchanged > 4
    assert recorded.to_json() == full.to_json()
    runner = CliRunner()
    with_record = runner.invoke(main, ["-C", str(repo), "plan", "--format", "json"])
    without = runner.invoke(main, ["-C", str(repo), "plan", "--format", "json", "--no-cache"])
    assert with_record.exit_code == without.exit_code == 0, with_record.output + without.output
    assert with_record.output == without.output
    applied = runner.invoke(main, ["-C", str(repo), "apply", "--auto-approve"])
    assert applied.exit_code == 0 and f"no changes, {full.unchanged} unchanged" in applied.output


@pytest.mark.parametrize("racy", ["racy", "aged"])
def test_the_files_are_walked_beside_the_reading_of_the_target(repo: Path, verdict_where: str, racy: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With a helper, this process never walks the files for a plan the record makes: the helper
    does, while this process reads the store; without one, this process does, once. Whether the
    record's files are racy (written in the second before it) or not, which decides whether the
    walk alone tells the verdict (lastbuild.listed_against), the walks are the same."""
    walked_here: list[int] = []
    real = lastbuild._listed

    def counted(*args: Any, **kwargs: Any) -> Any:
        walked_here.append(os.getpid())  # a forked helper appends to its own copy
        return real(*args, **kwargs)

    if racy == "aged":
        aged(repo)
    else:  # every file dated now, after the record: none can be told by its lstat (a slow fixture cannot change that)
        now = time.time_ns()
        for path in (repo / "intel" / "objects.yaml", repo / "intel" / "more" / "more.yaml"):
            os.utime(path, ns=(now, now))
    monkeypatch.setattr(lastbuild, "_listed", counted)
    recorded, full, built = plans(repo)
    assert not built and not recorded.has_changes and recorded.to_json() == full.to_json()
    assert walked_here == ([] if verdict_where == "beside" else [os.getpid()])
    edit_file(repo)  # the record no longer holds
    walked_here.clear()
    session = open_session(repo)
    try:
        assert session.plan().has_changes and session.built
    finally:
        session.close()
    # Here: once before the build (its inputs) and once after it (lastbuild.unchanged_during); and,
    # without a helper, once for the verdict.
    assert walked_here == ([os.getpid()] * 2 if verdict_where == "beside" else [os.getpid()] * 3)


def edit_file(root: Path) -> None:
    path = root / "intel" / "objects.yaml"
    objects = json.loads(path.read_text())
    objects[1] = {**indicator(1, description="sinkholed"), "modified": "2025-02-01T00:00:00.000Z"}
    path.write_text(json.dumps(objects))


def add_file(root: Path) -> None:
    (root / "intel" / "more" / "new.yaml").write_text(json.dumps([indicator(4)]))


def delete_file(root: Path) -> None:
    (root / "intel" / "more" / "more.yaml").unlink()


def change_defaults(root: Path) -> None:
    (root / "intel" / "more" / "_defaults.yaml").write_text("defaults:\n  lang: fr\n")


def change_rules(root: Path) -> None:
    (root / "rules" / "ingestion" / "tags.yaml").write_text(RULES.replace("[high]", "[very-high]"))


def change_lock(root: Path) -> None:
    write_lock(root / "intel", geo_lock("AU"))


def change_config(root: Path) -> None:
    (root / "tiops.yaml").write_text("intel: intel\nrelationship_tables: [attack]\n")


def new_commit(root: Path) -> None:
    # The as-of time of ingestion rules is the HEAD commit's time.
    git(root, "commit", "-q", "--allow-empty", "-m", "later", date="2025-03-01T00:00:00Z")


def new_code(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiops, "__version__", tiops.__version__ + ".other")


@pytest.mark.parametrize("change", [edit_file, add_file, delete_file, change_defaults, change_rules, change_lock,
                                    change_config, new_commit, new_code])
def test_any_changed_input_makes_the_plan_build_again(repo: Path, change: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if change is new_code:
        change(repo, monkeypatch)
    else:
        change(repo)
    recorded, full, built = plans(repo)
    assert built, f"{change.__name__}: the record of an older build was trusted"
    assert recorded.to_json() == full.to_json()
    if change in (edit_file, add_file, delete_file, change_defaults, change_rules, change_lock):
        assert recorded.has_changes, f"{change.__name__} should change what is compiled"
    # The plan that built recorded the new inputs: once applied, the next plan skips the build again.
    session = open_session(repo)
    try:
        assert session.record is not None, "the build above should have recorded its inputs"
        apply_plan(session.plan(), session.store, bundle_digest=session.bundle_digest, force=True)
    finally:
        session.close()
    again, full_again, built_again = plans(repo)
    assert not built_again and not again.has_changes
    assert again.to_json() == full_again.to_json()


def test_a_file_rewritten_with_the_same_size_and_time_is_still_seen(repo: Path) -> None:
    path = repo / "intel" / "objects.yaml"
    before = path.stat()
    text = path.read_text()
    path.write_text(text.replace("C2 address", "C2 ADDRESS", 1))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # the change time still moves
    assert path.stat().st_size == before.st_size
    recorded, full, built = plans(repo)
    assert built and recorded.has_changes
    assert recorded.to_json() == full.to_json()


def test_a_touched_file_keeps_the_record(repo: Path) -> None:
    path = repo / "intel" / "objects.yaml"
    path.write_bytes(path.read_bytes())  # new times, same content (a git checkout does this)
    recorded, full, built = plans(repo)
    assert not built and recorded.to_json() == full.to_json()


def aged(root: Path) -> None:
    """Every file of ``root`` dated a day back and the record taken again by a plan that builds: the
    record's lstats are then all older than its racy bound, as in a repository not written just now."""
    old = 1_700_000_000 * 10**9
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts and ".tiops" not in path.parts:
            os.utime(path, ns=(old, old))
    (root / lastbuild.RECORD_PATH).unlink()  # new times, same contents: the record would hold, by blob ids
    session = open_session(root)
    try:
        session.plan()
    finally:
        session.close()
    record = lastbuild.read_record(root)
    assert record is not None and all(state[1] == old for state in record.inputs.files.values())


def test_a_record_that_holds_is_told_by_the_lstats_of_one_walk(repo: Path, verdict_where: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With every file as recorded (and none written in the second before the record), the record
    holds without a blob id worked out or the build's inputs made: current_inputs is never called."""
    aged(repo)
    record = lastbuild.read_record(repo)
    assert record is not None
    listing = lastbuild.listed_against(repo, load_config(repo)[0], record.inputs)
    assert listing.as_recorded and listing.files == lastbuild.list_files(repo, load_config(repo)[0])
    called: list[int] = []
    real = lastbuild.current_inputs

    def counted(*args: Any, **kwargs: Any) -> Any:
        called.append(os.getpid())
        return real(*args, **kwargs)

    monkeypatch.setattr(lastbuild, "current_inputs", counted)
    recorded, full, built = plans(repo)
    assert not built and not recorded.has_changes and recorded.to_json() == full.to_json()
    # plans() also makes a full plan without the cache, which never asks for the inputs.
    assert called == []


@pytest.mark.parametrize("change", [edit_file, add_file, delete_file, change_defaults, change_rules, change_lock,
                                    "touch", "same size and time", "chmod", "racy", "link"])
def test_a_file_not_as_recorded_is_seen_by_the_one_walk(repo: Path, change: Any) -> None:
    """Any file added, removed or with another lstat than recorded (or one the record's racy bound
    cannot vouch for) makes the one walk say no; the inputs are then compared as before, and a
    plan is the plan of a full build."""
    aged(repo)
    record = lastbuild.read_record(repo)
    assert record is not None
    path = repo / "intel" / "objects.yaml"
    if change == "touch":
        os.utime(path, ns=(1_700_000_100 * 10**9,) * 2)
    elif change == "same size and time":
        before = path.stat()
        path.write_text(path.read_text().replace("C2 address", "C2 ADDRESS", 1))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # only the change time moves
    elif change == "chmod":
        path.chmod(0o600)
    elif change == "racy":
        # The very lstat recorded, but dated after the record's racy bound: a write in the same
        # moment as the record would leave the same lstat, so only the content can tell.
        now = record.inputs.taken_ns
        os.utime(path, ns=(now, now))
        files = {**record.inputs.files, "intel/objects.yaml": (*_state(path), record.inputs.files["intel/objects.yaml"][4])}
        record = dataclasses.replace(record, inputs=dataclasses.replace(record.inputs, files=files))
    elif change == "link":
        (repo / "intel" / "linked.yaml").symlink_to(path)
    else:
        change(repo)
    listing = lastbuild.listed_against(repo, load_config(repo)[0], record.inputs)
    assert not listing.as_recorded
    if change == "link":
        assert listing.files is None
        return
    if change in ("touch", "chmod", "racy"):  # the same content: the record holds, by its blob ids
        inputs = lastbuild.current_inputs(repo, load_config(repo)[0], record.inputs.as_of,
                                          [(record.inputs.files, record.inputs.taken_ns - lastbuild.RACY_NS)],
                                          against=record.inputs, listing=listing)
        assert inputs is not None and inputs.same_as(record.inputs)
    if change != "racy":
        recorded, full, _ = plans(repo)
        assert recorded.to_json() == full.to_json()


@pytest.mark.parametrize("change", [new_commit, new_code])
def test_a_new_commit_or_code_is_seen_with_every_file_as_recorded(repo: Path, change: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    aged(repo)
    if change is new_code:
        change(repo, monkeypatch)
    else:
        change(repo)
    record = lastbuild.read_record(repo)
    assert record is not None and lastbuild.listed_against(repo, load_config(repo)[0], record.inputs).as_recorded
    recorded, full, built = plans(repo)
    assert built, f"{change.__name__}: the files alone were taken for the whole record"
    assert recorded.to_json() == full.to_json()


@pytest.mark.parametrize("field", [0, 1, 2, 3])  # size, modification time, change time, inode
def test_each_part_of_a_files_lstat_is_compared(repo: Path, field: int) -> None:
    aged(repo)
    record = lastbuild.read_record(repo)
    assert record is not None
    config = load_config(repo)[0]
    assert lastbuild.listed_against(repo, config, record.inputs).as_recorded
    state = list(record.inputs.files["intel/objects.yaml"])
    state[field] -= 1  # still older than the record's racy bound
    files = {**record.inputs.files, "intel/objects.yaml": tuple(state)}
    other = dataclasses.replace(record.inputs, files=files)
    assert not lastbuild.listed_against(repo, config, other).as_recorded  # type: ignore[arg-type]


def _state(path: Path) -> tuple[int, int, int, int]:
    info = os.lstat(path)
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino


def stored(root: Path, statement: str, *params: Any) -> None:
    db = sqlite3.connect(root / ".tiops" / "store.sqlite")
    with db:
        db.execute(statement, params)
    db.close()


@pytest.mark.parametrize(("statement", "changes"), [
    # Another tool rewrites an object and neither digest (the trigger clears both): its content is what
    # the text says, which the repository's object no longer is.
    ("UPDATE stix_current SET object = replace(object, 'C2 address', 'changed') WHERE id LIKE 'indicator--%1'", True),
    # ... rewrites only its layout, the same content: no change.
    ("UPDATE stix_current SET object = replace(object, '{\"', '{ \"') WHERE id LIKE 'indicator--%1'", False),
    # ... or rewrites it as another tool would, content digest and all: drift.
    ("UPDATE stix_current SET object = replace(object, 'C2 address', 'changed'), digest = 'other',"
     " written_by = 'external' WHERE id LIKE 'indicator--%1'", True),
    ("DELETE FROM stix_current WHERE id LIKE 'indicator--%2'", True),
    # A stored version whose object digest another tool set to something else.
    ("UPDATE stix_current SET object_digest = 'x' WHERE id LIKE 'indicator--%3'", False),
    ("INSERT INTO stix_current (id, version, version_sort, type, revoked, digest, written_by, managed, object)"
     " SELECT 'indicator--99999999-0000-4000-8000-000000000000', version, version_sort, type, revoked, digest,"
     " written_by, 1, object FROM stix_current WHERE id LIKE 'indicator--%1'", True),
])
def test_a_store_changed_behind_tiops_back_is_planned_from_a_build(repo: Path, statement: str, changes: bool) -> None:
    stored(repo, statement)
    recorded, full, built = plans(repo)
    # Without a change, the recorded content digests still match the stored ones (as _differs finds).
    assert built == changes, "a plan with changes needs the compiled objects"
    assert recorded.has_changes == changes
    assert recorded.to_json() == full.to_json()


def test_on_remove_delete_with_an_unmanaged_extra_object_still_skips_the_build(repo: Path) -> None:
    stored(repo, "INSERT INTO stix_current (id, version, version_sort, type, revoked, digest, written_by, managed,"
                 " object) VALUES ('indicator--99999999-0000-4000-8000-000000000000', '', '', 'indicator', 0, 'd',"
                 " 'external', 0, '{}')")
    recorded, full, built = plans(repo)
    assert not built and not recorded.has_changes
    assert recorded.to_json() == full.to_json()


def damage_checksum(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(lastbuild.RECORD_PATH.name) + 20])


def foreign_format(path: Path) -> None:
    payload = lastbuild.marshal.dumps((lastbuild.FORMAT + 1, "code", None, {}, 0, "b", "", ""))
    path.write_bytes(lastbuild._MAGIC + lastbuild.hashlib.sha256(payload).digest() + payload)


@pytest.mark.parametrize("damage", [damage_checksum, truncate, foreign_format])
def test_a_damaged_or_foreign_record_is_ignored_and_rewritten(repo: Path, damage: Any) -> None:
    path = repo / lastbuild.RECORD_PATH
    damage(path)
    assert lastbuild.read_record(repo) is None
    recorded, full, built = plans(repo)
    assert built and recorded.to_json() == full.to_json()
    assert lastbuild.read_record(repo) is not None
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".last-build")] == []  # no temporary left


def a_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)  # a plain read would wait for a writer for ever


def a_link_to_dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")  # a plain read would never end


def a_link_to_a_record(path: Path) -> None:
    kept = path.with_name("kept")
    path.rename(kept)
    path.symlink_to(kept)


def a_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize("replace", [a_fifo, a_link_to_dev_zero, a_link_to_a_record, a_folder])
def test_a_record_that_is_not_a_regular_file_is_ignored_without_reading_it(repo: Path, replace: Any) -> None:
    path = repo / lastbuild.RECORD_PATH
    replace(path)
    # In a child with a timeout and a memory limit: before, a FIFO hung here and /dev/zero ran out of memory.
    done = subprocess.run(
        [sys.executable, "-c", "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 29, 1 << 29));"
         " from pathlib import Path; from tiops import lastbuild;"
         " sys.exit(0 if lastbuild.read_record(Path(sys.argv[1])) is None else 5)", str(repo)],
        capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    recorded, full, built = plans(repo)
    assert built and recorded.to_json() == full.to_json()
    if replace is not a_folder:  # the plan put a regular record in the link's or the FIFO's place
        assert path.is_file() and not path.is_symlink() and lastbuild.read_record(repo) is not None


def test_no_cache_neither_reads_nor_writes_the_record(repo: Path) -> None:
    # A record that lies: it names the current inputs but the digests the store holds, after an edit.
    edit_file(repo)
    config = load_config(repo)[0]
    old = lastbuild.read_record(repo)
    assert old is not None
    pending = lastbuild.current_inputs(repo, config, old.inputs.as_of)
    assert pending is not None and any(not state[4] for state in pending.files.values())  # no record to match
    inputs = lastbuild.complete_inputs(repo, pending)
    assert inputs is not None
    lastbuild.write_record(repo, lastbuild.BuildRecord(inputs, old.bundle_digest, old.objects))
    runner = CliRunner()
    trusted = runner.invoke(main, ["-C", str(repo), "plan", "--format", "json"])
    assert json.loads(trusted.output)["counts"]["update"] == 0  # the record is trusted as designed
    without = runner.invoke(main, ["-C", str(repo), "plan", "--format", "json", "--no-cache"])
    assert json.loads(without.output)["counts"]["update"] == 1
    (repo / lastbuild.RECORD_PATH).unlink()
    assert runner.invoke(main, ["-C", str(repo), "plan", "--no-cache"]).exit_code == 0
    assert not (repo / lastbuild.RECORD_PATH).exists()


def test_a_repository_with_a_symbolic_link_is_not_recorded(repo: Path) -> None:
    (repo / lastbuild.RECORD_PATH).unlink()
    (repo / "notes.txt").symlink_to(repo / "tiops.yaml")  # not read by the build, but a link is never trusted
    assert lastbuild.list_files(repo, load_config(repo)[0]) is None
    recorded, full, built = plans(repo)
    assert built and recorded.to_json() == full.to_json()
    assert not (repo / lastbuild.RECORD_PATH).exists()


def test_a_file_changed_during_the_build_is_noticed(repo: Path) -> None:
    config = load_config(repo)[0]
    inputs = lastbuild.current_inputs(repo, config, None)
    assert inputs is not None and lastbuild.unchanged_during(repo, config, inputs)
    add_file(repo)
    assert not lastbuild.unchanged_during(repo, config, inputs)


def test_what_a_build_never_reads_is_left_out(repo: Path) -> None:
    (repo / "dist").mkdir()
    (repo / "dist" / "bundle.json").write_text("{}")
    files = lastbuild.list_files(repo, load_config(repo)[0])
    assert files is not None
    assert "intel/objects.yaml" in files and "intel/.enrichment/lock.json" in files and "tiops.yaml" in files
    assert "rules/ingestion/tags.yaml" in files
    assert not any(p.startswith((".git/", ".tiops/", "dist/")) for p in files)
    recorded, full, built = plans(repo)
    assert not built and recorded.to_json() == full.to_json()


def test_a_copy_with_new_file_times_is_matched_by_content(repo: Path, tmp_path: Path) -> None:
    # A fresh checkout (CI restoring .tiops/): every lstat differs, every blob id is the same.
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(repo, copy, symlinks=True)
    recorded, full, built = plans(copy)
    assert not built and not recorded.has_changes
    assert recorded.to_json() == full.to_json()


def test_pending_blob_ids_are_completed_before_a_record_is_written(repo: Path, tmp_path: Path) -> None:
    config = load_config(repo)[0]
    pending = lastbuild.current_inputs(repo, config, None)  # nothing to match: blob ids left for after the build
    assert pending is not None and pending.files and all(state[4] == "" for state in pending.files.values())
    old = lastbuild.read_record(repo)
    assert old is not None
    target = tmp_path / "elsewhere"
    lastbuild.write_record(target, lastbuild.BuildRecord(pending, old.bundle_digest, old.objects))
    assert lastbuild.read_record(target) is None  # refused: it would not describe the build
    complete = lastbuild.complete_inputs(repo, pending)
    assert complete is not None
    assert {path: state[4] for path, state in complete.files.items()} == {
        path: state[4] for path, state in old.inputs.files.items()}
    lastbuild.write_record(target, lastbuild.BuildRecord(complete, old.bundle_digest, old.objects))
    assert lastbuild.read_record(target) == lastbuild.BuildRecord(complete, old.bundle_digest, old.objects)


def test_an_output_folder_holding_intel_is_walked(repo: Path) -> None:
    (repo / "tiops.yaml").write_text("intel: dist/intel\noutput: dist\n")
    (repo / "dist" / "intel").mkdir(parents=True)
    (repo / "dist" / "intel" / "x.yaml").write_text("{}")
    files = lastbuild.list_files(repo, load_config(repo)[0])
    assert files is not None and "dist/intel/x.yaml" in files
    (repo / "tiops.yaml").write_text("intel: .\noutput: dist\n")  # the root itself holds the intel
    files = lastbuild.list_files(repo, load_config(repo)[0])
    assert files is not None and "dist/intel/x.yaml" in files


def _killed_before_rename(*_: Any) -> None:
    """Renaming the written record into place (tiops.outputs.rename_over) ends the process at once,
    as kill -9 there would: no ``except``/``finally`` runs, the file beside stays."""
    os._exit(9)


def test_a_record_killed_while_written_leaves_nothing_behind(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = repo / lastbuild.RECORD_PATH
    path.unlink()
    pid = os.fork()
    if pid == 0:  # the plan killed as it writes the record
        try:
            monkeypatch.setattr("tiops.lastbuild.rename_over", _killed_before_rename)
            plans(repo)
        finally:
            os._exit(1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 9
    left = [p.name for p in path.parent.iterdir() if p.name.startswith(".last-build")]
    assert len(left) == 1 and not path.exists()  # before, a random name no later plan removed
    recorded, full, built = plans(repo)
    assert built and recorded.to_json() == full.to_json()
    assert lastbuild.read_record(repo) is not None
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".last-build")] == []


def test_a_folder_named_like_a_stores_file_is_walked(repo: Path) -> None:
    """A SQLite target's files are left out of the walk, but only files: a target whose path named a folder
    left that whole folder out, and an edit there went unseen by the plan."""
    (repo / "tiops.yaml").write_text("intel: intel\ntargets:\n  archive:\n    type: sqlite\n    path: notes\n")
    (repo / "notes").mkdir()
    (repo / "notes" / "x.yaml").write_text("{}")
    files = lastbuild.list_files(repo, load_config(repo)[0])
    assert files is not None and "notes/x.yaml" in files
    (repo / "notes" / "x.yaml").unlink()
    (repo / "notes").rmdir()
    (repo / "notes").write_text("a store")  # now the store's file itself, and its log beside it
    (repo / "notes-wal").write_text("its log")
    files = lastbuild.list_files(repo, load_config(repo)[0])
    assert files is not None and "notes" not in files and "notes-wal" not in files and "intel/objects.yaml" in files

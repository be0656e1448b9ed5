"""Builds through the cache's file indexes and the previous bundle's lines give what an uncached build gives."""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_buildcache import EDITS, _age, _edit, _intel_files, _object_id

from tiops import bundlereuse
from tiops.buildcache import (
    CACHE_DIR,
    BuildCache,
    blob_id,
    context_key,
    load_repo_indexed,
    store,
    whole,
)
from tiops.buildcache.folders import bundle_files
from tiops.bundlereuse import RECORD, PreviousBundle, record_key, spliced
from tiops.findings import Finding
from tiops.inputs import file_identity
from tiops.pipeline import ValidationFailed, _lines_digest, build
from tiops.rules import per_object_rules, resolve_as_of
from tiops.rules.engine import rule_results
from tiops.rules.model import load_rules
from tiops.validate import validate_indexed, validate_paths
from tiops.validate.indexed import involved_ids

AS_OF = "2025-01-01"
DATA = Path(__file__).parents[1] / "data"
PARTNER = "intel/partner-writer"
LOCK = Path(__file__).resolve().parents[2] / "intel" / ".enrichment"
RULES = """\
- name: Tag indicators
  order: 5
  object_types: [indicator]
  when: {all: [{field: type, op: equals, value: indicator}]}
  actions:
    - {add_tags: [reviewed]}
- name: Drop one malware
  order: 6
  when: {all: [{field: name, op: equals, value: Mimikatz}]}
  actions: [{drop: true}]
"""

# Rules that change objects one at a time (tiops.rules.per_object_rules): a compile keeps reusing lines.
PER_OBJECT_RULES = """\
- name: Tag confident indicators
  order: 5
  object_types: [indicator]
  when: {all: [{field: confidence, op: ">=", value: 70}]}
  actions:
    - {add_tags: [confident]}
    - {extend: valid_until, by: 30d}
- name: Lower old intel
  order: 6
  when: {all: [{field: modified, op: older-than, value: 365d}]}
  actions: [{set_confidence: 10}]
"""

Outcome = tuple[bytes | None, list[Finding], dict[str, Any] | None]


@pytest.fixture
def plain_repo(example_repo: Path) -> Path:
    """The example repository without ingestion rules or an enrichment lock, with a partner source folder."""
    shutil.rmtree(example_repo / "rules" / "ingestion")
    shutil.rmtree(example_repo / "intel" / ".enrichment")
    shutil.copytree(DATA / "importers" / "writer.expected", example_repo / PARTNER)
    _age(*(p for p in example_repo.rglob("*") if p.is_file()))
    return example_repo


def _compiled(root: Path, output: Path, *, cache: bool) -> Outcome:
    try:
        result = build(root, as_of=AS_OF, cache=cache, output=output)
    except ValidationFailed as failed:
        return None, failed.findings, None
    return output.read_bytes(), result.findings, result.metadata


def _compiled_with_record(root: Path, output: Path) -> Outcome:
    """A first cached compile to ``output``: it fills the cache the plain way and still keeps a bundle record."""
    assert not (root / CACHE_DIR).exists()
    first = _compiled(root, output, cache=True)
    assert (root / CACHE_DIR / RECORD).is_file()
    return first


def _will_reuse(root: Path, output: Path) -> bool:
    """Whether the next cached compile to ``output`` takes unchanged files' lines from the bundle there."""
    loaded = load_repo_indexed(root)  # as the compile loads it (tiops.pipeline)
    record = loaded.cache.read_record(RECORD)
    rule_set = load_rules(loaded.repo.config)[0]
    if not per_object_rules(rule_set):
        return False
    types = validate_indexed(loaded.repo, loaded.files).types
    as_of = resolve_as_of(root, AS_OF)
    ruled = ((lambda objects: rule_results(objects, rule_set, as_of.moment))
             if any(rule.enabled for rule in rule_set.rules) else None)
    # The key the compile makes: the rule set and the enrichment lock's digest (a lock edit changes it).
    return spliced(record, record_key(loaded.cache.context, _lines_digest(loaded.repo, rule_set), as_of.text), output,
                   bundle_files(loaded.files), types, ruled=ruled) is not None


def _record(root: Path) -> dict[str, Any] | None:
    return BuildCache.open(root, context_key(root)).read_record(RECORD)


def _snapshot(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*")
            if path.is_file() and CACHE_DIR.parts[0] not in path.relative_to(root).parts}


def _restore(root: Path, snapshot: dict[Path, bytes]) -> None:
    """The repository as it was at ``snapshot``: files added since removed, the others' content back."""
    for path in _snapshot(root).keys() - snapshot.keys():
        path.unlink()
    for path, content in snapshot.items():
        if not path.exists() or path.read_bytes() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            _age(path)


EXTRA_EDITS = ("rules", "per-object-rules", "lock", "overlay", "partner-edit", "remove-referenced-id",
               "duplicate-in-edited", "nothing")


def _toggled(target: Path, text: str) -> list[Path]:
    """``target`` removed if it exists, else written with ``text``; the files written."""
    if target.exists():
        target.unlink()
        return []
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return [target]


def _extra_edit(root: Path, rng: random.Random, step: int, kind: str) -> list[Path]:
    if kind == "rules":  # ingestion rules that change and drop objects come, or go
        return _toggled(root / "rules" / "ingestion" / "test.yaml", RULES)
    if kind == "per-object-rules":  # rules that tag, extend and lower objects one at a time come, or go
        return _toggled(root / "rules" / "ingestion" / "per-object.yaml", PER_OBJECT_RULES)
    if kind == "lock":  # an enrichment lock comes, or goes
        target = root / "intel" / ".enrichment"
        if target.exists():
            shutil.rmtree(target)
            return []
        shutil.copytree(LOCK, target)
        return list(target.rglob("*.json"))
    if kind == "overlay":  # partner intel: an overlay value, then another
        overlay = root / PARTNER / "_overlay.yaml"
        identifier = _object_id(next((root / PARTNER / "indicator").glob("*.yaml")))
        overlay.write_text(f"{identifier}:\n  confidence: {rng.choice([10, 50, 90])}\n", encoding="utf-8")
        return [overlay]
    if kind == "partner-edit":  # an imported file edited by hand (TI700/TI701)
        path = next((root / PARTNER / "indicator").glob("*.yaml"))
        path.write_text(path.read_text(encoding="utf-8") + f"x_note: hand edit {step}\n", encoding="utf-8")
        return [path]
    if kind == "remove-referenced-id":  # a referenced object takes another id: references to the old one dangle
        path = root / "intel" / "malware" / "mimikatz.yaml"
        if not path.exists():
            return []
        text = path.read_text(encoding="utf-8")
        old = _object_id(path)
        assert old
        path.write_text(text.replace(old, f"malware--00000000-0000-4000-8000-{step:012d}"), encoding="utf-8")
        return [path]
    if kind == "duplicate-in-edited":  # the edited file takes the id of another file's object
        files = [p for p in _intel_files(root) if _object_id(p) and "relationship" not in p.parts[-2]]
        edited, other = rng.sample(files, 2)
        edited_id, other_id = _object_id(edited), _object_id(other)
        assert edited_id and other_id
        edited.write_text(edited.read_text(encoding="utf-8").replace(edited_id, other_id, 1), encoding="utf-8")
        return [edited]
    return []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cached_compiles_to_a_file_give_the_uncached_bytes_over_random_edits(plain_repo: Path, tmp_path: Path,
                                                                             seed: int) -> None:
    _random_edits(plain_repo, tmp_path, seed)


# Rules that drop a malware and an intrusion set many relationships point at, enabled throughout.
ALWAYS_DROPPING = PER_OBJECT_RULES + RULES.replace("Tag indicators", "Tag again") + """\
- name: Drop one intrusion set
  order: 7
  when: {all: [{field: name, op: equals, value: Copper Lantern}]}
  actions: [{drop: true}]
- name: Drop the identity every object is created by
  order: 8
  when: {all: [{field: name, op: equals, value: Fabrikam CTI}]}
  actions: [{drop: true}]
"""


@pytest.mark.parametrize("seed", [4, 6, 7])
def test_random_edits_under_rules_that_drop_give_the_uncached_bytes(plain_repo: Path, tmp_path: Path,
                                                                     seed: int) -> None:
    """Lines reused while objects are dropped and what points at them goes too, edit after edit."""
    rules = plain_repo / "rules" / "ingestion" / "always.yaml"
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(ALWAYS_DROPPING, encoding="utf-8")
    _age(rules)
    _random_edits(plain_repo, tmp_path, seed)


def _validate_first(root: Path, written: list[Path]) -> None:
    named = [path for path in written if path.suffix == ".yaml" and "intel" in path.parts and path.exists()][:1]
    assert validate_paths(root, named, cache=True) == validate_paths(root, named, cache=False)


def _random_edits(plain_repo: Path, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    checks_first = random.Random(seed + 1000)  # apart from rng: the edits stay those of the seed
    cached_out, uncached_out = tmp_path / "cached" / "bundle.json", tmp_path / "uncached" / "bundle.json"
    first = _compiled(plain_repo, cached_out, cache=True)
    assert first[0] is not None and first == _compiled(plain_repo, uncached_out, cache=False)
    kinds = list(EDITS) + list(EXTRA_EDITS)
    plan = rng.sample(kinds, len(kinds)) + [rng.choice(kinds) for _ in range(4)]
    reused = records = 0
    for step, kind in enumerate(plan):
        before = _snapshot(plain_repo)
        if kind in EXTRA_EDITS:
            written = _extra_edit(plain_repo, rng, step, kind)
        else:
            kind, written = _edit(plain_repo, rng, step, kind)
        _age(*written)
        if checks_first.random() < 0.5:  # the pre-commit hook before the compile: it may leave the cache as it was
            _validate_first(plain_repo, written)
        reused += _will_reuse(plain_repo, cached_out)
        cached = _compiled(plain_repo, cached_out, cache=True)
        assert cached == _compiled(plain_repo, uncached_out, cache=False), f"step {step}: {kind}"
        assert _compiled(plain_repo, cached_out, cache=True) == cached, f"step {step}: {kind}, second run"
        if cached[0] is not None:
            # The record the reused lines gave is the one the full way keeps, field for field.
            spliced_record = _record(plain_repo)
            cached_out.unlink()  # no previous bundle: the full way
            assert _compiled(plain_repo, cached_out, cache=True) == cached, f"step {step}: {kind}, full way"
            assert _record(plain_repo) == spliced_record, f"step {step}: {kind}, record"
            records += bool(spliced_record)
        assert (validate_paths(plain_repo, [], cache=True)
                == validate_paths(plain_repo, [], cache=False)), f"step {step}: {kind}, validate"
        for named in written[:1]:
            if named.suffix == ".yaml" and "intel" in named.parts and not named.name.startswith("_"):
                assert (validate_paths(plain_repo, [named], cache=True)
                        == validate_paths(plain_repo, [named], cache=False)), f"step {step}: {kind}, validate FILE"
        if cached[0] is None or kind in ("rules", "per-object-rules", "lock") or rng.random() < 0.5:
            _restore(plain_repo, before)  # back to a repository that compiles, the bundle's own objects unchanged
    assert reused >= 3  # the previous bundle's lines were taken, not only the full way
    assert records >= 3  # and the records compared were kept ones


@pytest.mark.parametrize("seed", [1, 5])
def test_files_told_kept_by_count_are_those_told_by_name(plain_repo: Path, tmp_path: Path, seed: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Whenever a splice tells the files a record keeps by count (BundleFiles.kept_by_count), the
    look-up of every file's entry name gives the same: the count, the files read afresh, and the
    entries dropped. Over the random edits, with the pre-commit check between some of them."""
    real = bundlereuse._kept_by_count
    told: list[int] = []

    def checked(previous: dict[str, Any], entries: bundlereuse.RecordedEntries, files: Any,
                since: bundlereuse.SinceLoad | None) -> tuple[int, list[int], set[int]] | None:
        made = real(previous, entries, files, since)
        if made is not None:
            kept_at, others = bundlereuse._kept_places(files, entries.position)
            count, counted_others, dropped = made
            assert (count, counted_others) == (len(kept_at), others)
            assert dropped == set(range(len(entries))) - kept_at.keys()
            told.append(len(dropped))
        return made

    monkeypatch.setattr(bundlereuse, "_kept_by_count", checked)
    _random_edits(plain_repo, tmp_path, seed)
    assert len(told) >= 3 and any(told)  # told by count, entries dropped among them


def test_a_record_listed_against_another_stat_index_is_told_by_name(plain_repo: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A check between two compiles saves the cache (a stat index the record was not listed against):
    the next compile looks each file's entry up by name."""
    output = tmp_path / "bundle.json"
    _compiled(plain_repo, output, cache=True)
    outcomes: list[bool] = []
    real = bundlereuse._kept_by_count

    def noted(*args: Any) -> Any:
        made = real(*args)
        outcomes.append(made is not None)
        return made

    monkeypatch.setattr(bundlereuse, "_kept_by_count", noted)
    files = _intel_files(plain_repo)
    _edit_by_hand(files[0])
    _compiled(plain_repo, output, cache=True)
    assert outcomes == [True]  # the record of the compile before, against the index it saved
    # More stat records changed than a check leaves the cache alone for (BuildCache.small_change): the
    # files touched, their content the same, so the check saves a stat index of its own.
    monkeypatch.setattr(store, "_SMALL_RECORDS", 4)
    assert len(files) > store._SMALL_RECORDS + 1
    for path in files[1:]:
        os.utime(path, ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    identities = BuildCache.open(plain_repo, context_key(plain_repo)).index_identities()
    assert validate_paths(plain_repo, [], cache=True) == validate_paths(plain_repo, [], cache=False)
    assert BuildCache.open(plain_repo, context_key(plain_repo)).index_identities() != identities
    _edit_by_hand(files[1])
    expected = _compiled(plain_repo, tmp_path / "uncached.json", cache=False)
    assert expected[0] is not None and _compiled(plain_repo, output, cache=True)[0] == expected[0]
    assert outcomes == [True, False]


def test_an_overlay_gone_after_a_save_that_stopped_before_the_stat_index_is_not_counted_kept(
        plain_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An overlay line names a partner object when a compile lists its entry; the line goes, and a build
    to no file stores the entry again (no overlay lines in its name) but stops, the disk full, before
    its stat index: the index is as the compile saved it. The next compile must not take the record's
    entry as the file's: the overlays noted with the record differ (bundlereuse.since_state)."""
    output = tmp_path / "bundle.json"
    _compiled(plain_repo, output, cache=True)
    indicator = next((plain_repo / PARTNER / "indicator").glob("*.yaml"))
    overlay = plain_repo / PARTNER / "_overlay.yaml"
    overlay.write_text(f"{_object_id(indicator)}:\n  labels: [tagged-by-overlay]\n", encoding="utf-8")
    assert b"tagged-by-overlay" in _compiled(plain_repo, output, cache=True)[0]  # type: ignore[operator]
    overlay.unlink()
    real_write = store.BuildCache._write

    def full_disk(cache: BuildCache, name: str, *args: Any, **kwargs: Any) -> None:
        if name in (store._INDEX_FILE, store._INDEX_DELTA_FILE):
            raise OSError(28, "No space left on device")
        real_write(cache, name, *args, **kwargs)

    identities = BuildCache.open(plain_repo, context_key(plain_repo)).index_identities()
    with monkeypatch.context() as patched:
        patched.setattr(store.BuildCache, "_write", full_disk)
        build(plain_repo, as_of=AS_OF, cache=True, output=None)
    build(plain_repo, as_of=AS_OF, cache=True, output=None)
    assert BuildCache.open(plain_repo, context_key(plain_repo)).index_identities() == identities
    expected = _compiled(plain_repo, tmp_path / "uncached.json", cache=False)
    cached = _compiled(plain_repo, output, cache=True)
    assert expected[0] is not None and b"tagged-by-overlay" not in expected[0]
    assert cached[0] == expected[0]


OLD_NS = 1_500_000_000 * 10**9  # as test_buildcache._age dates files


def _edit_by_hand(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "x_note: edited by hand\n", encoding="utf-8")
    _age(path)


def test_a_changed_or_missing_previous_bundle_is_not_reused(plain_repo: Path, tmp_path: Path) -> None:
    output = tmp_path / "bundle.json"
    assert _compiled_with_record(plain_repo, output)[0] is not None
    edited = _intel_files(plain_repo)[0]
    edited.write_text(edited.read_text(encoding="utf-8") + "x_note: edited\n", encoding="utf-8")
    _age(edited)
    assert _will_reuse(plain_repo, output)
    output.write_bytes(output.read_bytes().replace(b'"type":"malware"', b'"type":"malwarf"', 1))  # edited by hand
    assert not _will_reuse(plain_repo, output)
    expected = _compiled(plain_repo, tmp_path / "uncached.json", cache=False)
    assert _compiled(plain_repo, output, cache=True) == expected
    output.unlink()
    assert not _will_reuse(plain_repo, output)
    assert _compiled(plain_repo, output, cache=True) == expected
    # another output file has no record: compiled the full way, the same bytes
    assert _compiled(plain_repo, tmp_path / "other.json", cache=True)[0] == expected[0]


def test_a_damaged_record_is_ignored(plain_repo: Path, tmp_path: Path) -> None:
    output = tmp_path / "bundle.json"
    expected = _compiled_with_record(plain_repo, output)
    record = plain_repo / CACHE_DIR / RECORD
    raw = bytearray(record.read_bytes())
    raw[-5] ^= 0xFF
    record.write_bytes(bytes(raw))
    assert not _will_reuse(plain_repo, output)
    assert _compiled(plain_repo, output, cache=True) == expected
    assert _will_reuse(plain_repo, output)  # rewritten


def test_an_entry_whose_objects_cannot_be_read_is_loaded_again(plain_repo: Path, tmp_path: Path) -> None:
    output = tmp_path / "bundle.json"
    expected = _compiled(plain_repo, output, cache=True)
    cache = BuildCache.open(plain_repo, context_key(plain_repo))
    for number in cache._shards:
        for by_key in cache._objects_of(number).values():
            for key in by_key:
                by_key[key] = b"not marshal data"  # the index readable, the objects not
        cache._dirty.update(cache._shards)
    cache._used = {(blob, key) for shard in cache._shards.values() for blob, by_key in shard.items() for key in by_key}
    cache._new_index = cache._index
    cache.save()
    uncached = _compiled(plain_repo, tmp_path / "uncached.json", cache=False)
    assert uncached[0] == expected[0]
    assert _compiled(plain_repo, output, cache=True)[1:] == uncached[1:]
    named = _intel_files(plain_repo)[0]
    assert validate_paths(plain_repo, [named], cache=True) == validate_paths(plain_repo, [named], cache=False)


def test_validate_file_reads_only_the_files_involved(plain_repo: Path) -> None:
    assert _compiled(plain_repo, plain_repo / "dist" / "bundle.json", cache=True)[0] is not None
    named = plain_repo / "intel" / "malware" / "mimikatz.yaml"
    relative = "intel/malware/mimikatz.yaml"
    loaded = load_repo_indexed(plain_repo, fresh={relative}.__contains__)
    involved = involved_ids(loaded.files, {relative})
    mimikatz = _object_id(named)
    assert mimikatz in involved and len(involved) > 1  # relationships to it are involved too
    validate_indexed(loaded.repo, loaded.files, named={relative})
    read = {file.relative for file in loaded.files if file._loaded is not None}
    assert relative in read
    assert len(read) < len(loaded.files) // 2
    # every file read holds an involved id, or needs its objects for the extension and partner checks
    for file in loaded.files:
        if file.relative in read and not file.index.needs_objects:
            assert not involved.isdisjoint(file.index.ids), file.relative


@pytest.mark.usefixtures("hand_made_bundles")
@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 1 << 20])
def test_line_offsets_are_read_from_the_file_in_chunks(chunk: int, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The record's line starts, read a chunk at a time, are where splitting the whole file puts them."""
    from tiops import bundlereuse
    from tiops.compile import BUNDLE_TAIL, write_bundle

    objects = [{"type": "indicator", "id": f"indicator--{n:08d}-0000-4000-8000-000000000000",
                "name": "a,\\nb" * n, "spec_version": "2.1"} for n in range(5)]
    output = tmp_path / "bundle.json"
    write_bundle(objects, output)
    content = output.read_bytes()
    start = content.index(b"\n") + 1
    expected = [start]
    for line in content[start:len(content) - len(BUNDLE_TAIL)].split(b",\n")[:-1]:
        start += len(line) + 2
        expected.append(start)
    monkeypatch.setattr(bundlereuse, "_READ_CHUNK", chunk)
    assert bundlereuse._file_line_offsets(output) == expected
    assert len(expected) == len(objects)
    # A raw line break inside the body is not a line of this layout: no offsets, so no record.
    output.write_bytes(content.replace(b'"2.1"', b'"2\n.1"', 1))
    assert bundlereuse._file_line_offsets(output) is None


def _tree_change(root: Path, kind: str) -> list[Path]:
    """One change of the intel tree's shape (files and folders moved, linked, replaced), not of a file's content.

    Returns what to remove again once compared: a change the repository does not compile with.
    """
    intel = root / "intel"
    if kind == "rename-file":
        (intel / "malware" / "mimikatz.yaml").rename(intel / "malware" / "mimikatz-renamed.yaml")
    elif kind == "rename-folder":
        (intel / "malware").rename(intel / "malware-renamed")
    elif kind == "link-to-file":  # read_input refuses links (TI108): never cached, reported every time
        link = intel / "actors" / "linked.yaml"
        link.symlink_to(intel / "malware-renamed" / "lanternloader.yaml")
        os.utime(link, ns=(1, 1), follow_symlinks=False)
        return [link]
    elif kind == "link-to-folder":  # not followed (TI108)
        link = intel / "linked-folder"
        link.symlink_to(intel / "malware-renamed", target_is_directory=True)
        return [link]
    elif kind == "file-becomes-folder":  # a folder takes a file's name; a file inside it is an object file
        path = intel / "malware-renamed" / "wickstealer.yaml"
        content = path.read_bytes()
        path.unlink()
        path.mkdir()
        (path / "inside.yaml").write_bytes(content)
        _age(path / "inside.yaml")
    elif kind == "odd-names":  # .yml is read, a dotfile is not, a name that is not UTF-8 is reported (TI114)
        source = next((intel / "actors").glob("*.yaml"))
        source.rename(source.with_suffix(".yml"))
        hidden, bad = intel / "actors" / ".hidden.yaml", intel / "actors" / os.fsdecode(b"bad-\xff.yaml")
        hidden.write_text("not: [read\n", encoding="utf-8")
        bad.write_text("type: malware\n", encoding="utf-8")
        _age(hidden, bad)
        return [bad]
    elif kind == "same-size-same-mtime":  # an edit in place that keeps size and modification time: ctime tells
        path = intel / "malware-renamed" / "lanternloader.yaml"
        before = path.stat()
        text = path.read_text(encoding="utf-8")
        changed = text.replace("name: ", "name: X", 1)[:-1]
        assert text.endswith("\n") and len(changed.encode()) == before.st_size and changed != text
        path.write_text(changed, encoding="utf-8")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_ino == before.st_ino
    elif kind == "folder-removed":
        shutil.rmtree(intel / "malware-renamed")
    elif kind == "dot-folders":  # not entered, as dotfiles are not read: drafts kept out of the build
        drafts = intel / ".drafts" / "deeper"
        drafts.mkdir(parents=True)
        (intel / ".drafts" / "wip.yaml").write_text("not: [read\n", encoding="utf-8")
        shutil.copy(next((intel / "actors").glob("*.y*ml")), drafts / "copy.yaml")  # a duplicate id, if read
        _age(intel / ".drafts" / "wip.yaml", drafts / "copy.yaml")
    return []


TREE_CHANGES = ("rename-file", "rename-folder", "link-to-file", "link-to-folder", "file-becomes-folder",
                "odd-names", "same-size-same-mtime", "dot-folders", "folder-removed")
# The changes the repository still compiles with (the others are compared as failing builds, then undone).
COMPILES = {"rename-file", "rename-folder", "file-becomes-folder", "same-size-same-mtime", "dot-folders"}


def test_tree_changes_give_the_uncached_build(plain_repo: Path, tmp_path: Path) -> None:
    """Files and folders renamed, linked, replaced by folders, oddly named or removed: the warm build walks the
    tree afresh and gives, step after step, the bytes and findings of an uncached build, reusing the rest."""
    cached_out, uncached_out = tmp_path / "cached" / "bundle.json", tmp_path / "uncached" / "bundle.json"
    assert _compiled_with_record(plain_repo, cached_out) == _compiled(plain_repo, uncached_out, cache=False)
    for kind in TREE_CHANGES:
        undo = _tree_change(plain_repo, kind)
        cached = _compiled(plain_repo, cached_out, cache=True)
        assert cached == _compiled(plain_repo, uncached_out, cache=False), kind
        assert (cached[0] is not None) == (kind in COMPILES), kind
        assert _compiled(plain_repo, cached_out, cache=True) == cached, f"{kind}, second run"
        assert (validate_paths(plain_repo, [], cache=True)
                == validate_paths(plain_repo, [], cache=False)), f"{kind}, validate"
        named = _intel_files(plain_repo)[0]
        assert (validate_paths(plain_repo, [named], cache=True)
                == validate_paths(plain_repo, [named], cache=False)), f"{kind}, validate FILE"
        loaded = load_repo_indexed(plain_repo)
        # Every file but a link (never cached) comes from the cache by now.
        links = [p for p in (plain_repo / "intel").rglob("*.yaml") if p.is_symlink() and not p.is_dir()]
        assert loaded.parsed_files == len(links), kind
        assert loaded.reused_files == len(bundle_files(loaded.files)) - len(links), kind
        for path in undo:
            path.unlink()


def test_rules_that_change_objects_one_at_a_time_keep_the_previous_lines(plain_repo: Path, tmp_path: Path) -> None:
    """A repository from `tiops init` has such a rule enabled: its one-file recompiles splice as well."""
    rules = plain_repo / "rules" / "ingestion" / "per-object.yaml"
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(PER_OBJECT_RULES, encoding="utf-8")
    # A file the cache keeps no entry for (a link), whose indicator the rules change on every compile.
    elsewhere = plain_repo / "shared" / "linked.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(
        "type: indicator\nspec_version: '2.1'\nid: indicator--6c1e0c0e-0d66-4b5e-9b4a-2f7f1e3a1a11\n"
        "created: '2025-01-01T00:00:00.000Z'\nmodified: '2025-01-01T00:00:00.000Z'\nname: Linked\n"
        "pattern: \"[ipv4-addr:value = '203.0.113.200']\"\npattern_type: stix\nvalid_from: '2025-01-01T00:00:00Z'\n"
        "confidence: 80\n", encoding="utf-8")
    (plain_repo / "intel" / "linked.yaml").symlink_to(elsewhere)
    _age(rules, elsewhere)
    cached_out, uncached_out = tmp_path / "cached" / "bundle.json", tmp_path / "uncached" / "bundle.json"
    first = _compiled_with_record(plain_repo, cached_out)
    assert first == _compiled(plain_repo, uncached_out, cache=False)
    assert first[2] is not None and first[2]["changed_by_rules"] > 0
    indicators = plain_repo / "intel" / "indicators" / "phishing-domain-woodgrove-securelogin-net.yaml"
    text = indicators.read_text(encoding="utf-8")
    assert "confidence: 90\n" in text
    for step, (old, new) in enumerate([("confidence: 90\n", "confidence: 40\n"), ("confidence: 40\n", "confidence: 90\n")]):
        # Under 70 the tagging rule leaves the indicator alone; back at 90 it changes it again.
        text = text.replace(old, new, 1)
        indicators.write_text(text, encoding="utf-8")
        _age(indicators)
        assert _will_reuse(plain_repo, cached_out), step
        cached = _compiled(plain_repo, cached_out, cache=True)
        assert cached[0] is not None
        assert cached == _compiled(plain_repo, uncached_out, cache=False), step  # bytes, findings, build.json
        assert cached[2] is not None and cached[2]["changed_by_rules"] == first[2]["changed_by_rules"] - 1 + step
        cached_out.unlink()
        assert _compiled(plain_repo, cached_out, cache=True) == cached, step  # the full way keeps the same record
    # A rule that drops and moves what points at objects takes the full way: drops go along pointers.
    rules.write_text(PER_OBJECT_RULES + RULES + MOVING_RULE, encoding="utf-8")
    _age(rules)
    assert _compiled(plain_repo, cached_out, cache=True)[0] is not None
    assert not _will_reuse(plain_repo, cached_out)


# Moves what a relationship points at: with a drop among the rules, lines are not reused.
MOVING_RULE = """\
- name: Point elsewhere
  order: 7
  object_types: [relationship]
  when: {all: [{field: relationship_type, op: equals, value: uses}]}
  actions:
    - {set: {target_ref: malware--00000000-0000-4000-8000-000000000001}}
"""


def test_rules_that_drop_keep_the_previous_lines_and_what_points_at_the_dropped_follows(
        plain_repo: Path, tmp_path: Path) -> None:
    """A dropped object takes the relationships pointing at it along (tiops.rules.engine._cascade); a
    one-file change that drops an object, or stops dropping it, changes lines of files left alone."""
    rules = plain_repo / "rules" / "ingestion" / "drops.yaml"
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(PER_OBJECT_RULES + RULES, encoding="utf-8")
    _age(rules)
    cached_out, uncached_out = tmp_path / "cached" / "bundle.json", tmp_path / "uncached" / "bundle.json"
    first = _compiled_with_record(plain_repo, cached_out)
    assert first == _compiled(plain_repo, uncached_out, cache=False)
    assert first[2] is not None and first[2]["dropped"]["by_rules"] == 1 and first[2]["dropped"]["relationships"] >= 1
    mimikatz = plain_repo / "intel" / "malware" / "mimikatz.yaml"
    unrelated = plain_repo / "intel" / "indicators" / "phishing-domain-woodgrove-securelogin-net.yaml"
    steps = [(unrelated, "confidence: 90\n", "confidence: 40\n"),  # nothing dropped changes
             (mimikatz, "name: Mimikatz\n", "name: Mimikatz 2\n"),  # no longer dropped: its relationships come back
             (unrelated, "confidence: 40\n", "confidence: 90\n"),
             (mimikatz, "name: Mimikatz 2\n", "name: Mimikatz\n")]  # dropped again: they go again
    seen = set()
    for step, (path, old, new) in enumerate(steps):
        text = path.read_text(encoding="utf-8")
        assert old in text, step
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        _age(path)
        assert _will_reuse(plain_repo, cached_out), step
        cached = _compiled(plain_repo, cached_out, cache=True)
        assert cached[0] is not None
        assert cached == _compiled(plain_repo, uncached_out, cache=False), step  # bytes, findings, build.json
        assert cached[2] is not None
        seen.add((cached[2]["dropped"]["by_rules"], cached[2]["dropped"]["relationships"]))
        spliced_record = _record(plain_repo)
        cached_out.unlink()
        assert _compiled(plain_repo, cached_out, cache=True) == cached, step  # the full way...
        assert _record(plain_repo) == spliced_record, step  # ...keeps the very record the splice kept
    assert (0, 0) in seen and (1, first[2]["dropped"]["relationships"]) in seen


def test_the_previous_bundle_read_on_a_thread_is_taken_only_as_recorded(plain_repo: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "bundle.json"
    _compiled_with_record(plain_repo, output)
    record = _record(plain_repo)
    assert record is not None
    at, sha256, size = os.fspath(output.resolve()), record["sha256"], record["size"]
    prefetched = PreviousBundle(record, output)
    assert prefetched.content(at, sha256, size) == output.read_bytes()
    assert prefetched.content(at, sha256, size) is None  # handed over once: the splice holds it
    # Asked for with another record's digest or size, or for another file: not taken.
    for asked in ((at, "0" * 64, size), (at, sha256, size + 1), (os.fspath(tmp_path / "other.json"), sha256, size)):
        assert PreviousBundle(record, output).content(*asked) is None
    # Edited by hand, the same size: the digest refuses it.
    output.write_bytes(output.read_bytes().replace(b'"type":"malware"', b'"type":"malwarf"', 1))
    assert PreviousBundle(record, output).content(at, sha256, size) is None
    # A record for another file starts no thread.
    assert PreviousBundle({**record, "output": os.fspath(tmp_path / "other.json")}, output).content(at, sha256,
                                                                                                   size) is None

    def broken(*_args: object) -> None:
        raise MemoryError

    hooked: list[object] = []
    monkeypatch.setattr(threading, "excepthook", hooked.append)
    monkeypatch.setattr(bundlereuse, "_previous_content", broken)
    assert PreviousBundle(record, output).content(at, sha256, size) is None
    assert not hooked  # nothing printed from the thread


@pytest.mark.parametrize("outcome", ["spliced", "full", "invalid"])
def test_a_cached_compile_leaves_no_thread_behind(plain_repo: Path, tmp_path: Path, outcome: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "bundle.json"
    expected = _compiled_with_record(plain_repo, output)
    read = bundlereuse._previous_content

    def slow(*args: Any) -> bytes | None:  # still reading when the checks are done
        time.sleep(0.3)
        return read(*args)

    monkeypatch.setattr(bundlereuse, "_previous_content", slow)
    edited = _intel_files(plain_repo)[0]
    addition = {"spliced": "x_note: edited\n", "full": "x_note: edited\n", "invalid": "created: not a date\n"}[outcome]
    edited.write_text(edited.read_text(encoding="utf-8") + addition, encoding="utf-8")
    _age(edited)
    if outcome == "full":  # the previous bundle edited by hand: read on the thread, refused, written in full
        output.write_bytes(output.read_bytes().replace(b'"type":"malware"', b'"type":"malwarf"', 1))
    compiled = _compiled(plain_repo, output, cache=True)
    assert threading.active_count() == 1
    assert compiled == _compiled(plain_repo, tmp_path / "uncached.json", cache=False)
    assert (compiled[0] is None) == (outcome == "invalid") and compiled != expected


def _tag(root: Path, identifier: str, label: str) -> Path:
    """Tag one object of the partner folder, as `tiops tag` does for partner intel: a line of its overlay."""
    overlay = root / PARTNER / "_overlay.yaml"
    overlay.write_text(f"{identifier}:\n  labels: [{label}]\n", encoding="utf-8")
    return overlay


def test_tagging_partner_intel_reads_again_only_the_files_of_the_tagged_objects(plain_repo: Path,
                                                                                   tmp_path: Path) -> None:
    output = plain_repo / "dist" / "bundle.json"
    _compiled_with_record(plain_repo, output)
    tagged_file = next((plain_repo / PARTNER / "indicator").glob("*.yaml"))
    tagged = _object_id(tagged_file)
    partner_files = [p for p in (plain_repo / PARTNER).rglob("*.yaml") if not p.name.startswith("_")]
    assert len(partner_files) > 1
    for label in ("reviewed", "triaged", "reviewed"):  # the third is an overlay the cache saw before
        _tag(plain_repo, tagged, label)
        loaded = load_repo_indexed(plain_repo)
        parsed = sorted(file.relative for file in loaded.files if file.parsed)
        # The other partner files' entries hold: no line of the overlay names their objects.
        assert parsed == [tagged_file.relative_to(plain_repo).as_posix()]
        assert _will_reuse(plain_repo, output)
        cached = _compiled(plain_repo, output, cache=True)
        uncached = _compiled(plain_repo, tmp_path / "uncached.json", cache=False)
        assert cached == uncached and f'"labels":["{label}"]'.encode() in (cached[0] or b"")
    (plain_repo / PARTNER / "_overlay.yaml").unlink()
    assert _compiled(plain_repo, output, cache=True) == _compiled(plain_repo, tmp_path / "uncached.json", cache=False)


def test_a_record_never_takes_lines_made_under_other_overlay_lines(plain_repo: Path, tmp_path: Path) -> None:
    """A plan keeps a bundle and a record of its own: after a plan under a new overlay, the cache's
    entry is the new one, while the compile's record still holds lines made under the old overlay."""
    output = plain_repo / "dist" / "bundle.json"
    _compiled_with_record(plain_repo, output)
    tagged = _object_id(next((plain_repo / PARTNER / "indicator").glob("*.yaml")))
    _tag(plain_repo, tagged, "first")
    assert _compiled(plain_repo, output, cache=True) == _compiled(plain_repo, tmp_path / "u1.json", cache=False)
    _tag(plain_repo, tagged, "second")
    build(plain_repo, as_of=AS_OF, cache=True, output=tmp_path / "plan-bundle.json", record="another-record")
    cached = _compiled(plain_repo, output, cache=True)
    assert cached == _compiled(plain_repo, tmp_path / "u2.json", cache=False)
    assert b'"labels":["second"]' in (cached[0] or b"") and b'"labels":["first"]' not in (cached[0] or b"")


def test_validate_an_overlay_gives_the_findings_of_the_whole_way(plain_repo: Path) -> None:
    """`tiops validate _overlay.yaml` (a pre-commit hook after `tiops tag` on partner intel) checks
    the repository from the cache's indexes: the findings are those of the uncached whole way."""
    assert _compiled(plain_repo, plain_repo / "dist" / "bundle.json", cache=True)[0] is not None
    indicator = next((plain_repo / PARTNER / "indicator").glob("*.yaml"))
    tagged = _object_id(indicator)
    overlay = plain_repo / PARTNER / "_overlay.yaml"
    mimikatz = plain_repo / "intel" / "malware" / "mimikatz.yaml"
    overlay.write_text(f"{tagged}:\n  labels: [reviewed]\n  confidence: 500\n  name: renamed\n"
                       "indicator--00000000-0000-4000-8000-000000000000:\n  labels: [nobody]\n", encoding="utf-8")
    for named in ([overlay], [overlay, mimikatz], [overlay, indicator]):
        cached = validate_paths(plain_repo, named, cache=True)
        assert cached == validate_paths(plain_repo, named, cache=False)
        codes = {finding.code for finding in cached}
        assert {"TI702", "TI703", "TI704"} <= codes, codes  # not imported, not overlaid, not a confidence
        assert all(finding.location.file in {p.relative_to(plain_repo).as_posix() for p in named}
                   or finding.stix_id is not None for finding in cached)


def _cache_files(root: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((root / CACHE_DIR).iterdir()) if path.is_file()}


def test_validate_file_after_a_small_edit_leaves_the_cache_as_it_was(plain_repo: Path, tmp_path: Path) -> None:
    """`tiops validate FILE` (the pre-commit hook) writes nothing for a handful of changed files: the
    findings are still those of the whole way, and the compile after it is still the uncached one."""
    output = tmp_path / "bundle.json"
    assert _compiled(plain_repo, output, cache=True)[0] is not None
    before = _cache_files(plain_repo)
    named = plain_repo / "intel" / "malware" / "mimikatz.yaml"
    named.write_text(named.read_text(encoding="utf-8") + "x_note: edited\n", encoding="utf-8")
    unnamed = _intel_files(plain_repo)[0]  # edited too, not named: it is read again and kept out of the cache alike
    unnamed.write_text(unnamed.read_text(encoding="utf-8") + "x_note: edited\n", encoding="utf-8")
    for _ in range(2):  # the second run finds both files changed again, as the first did
        assert validate_paths(plain_repo, [named], cache=True) == validate_paths(plain_repo, [named], cache=False)
        assert _cache_files(plain_repo) == before
    assert validate_paths(plain_repo, [], cache=True) == validate_paths(plain_repo, [], cache=False)
    assert _cache_files(plain_repo) == before
    assert _compiled(plain_repo, output, cache=True) == _compiled(plain_repo, tmp_path / "uncached.json", cache=False)
    assert _cache_files(plain_repo) != before  # a compile keeps what it read
    loaded = load_repo_indexed(plain_repo)
    assert loaded.parsed_files == 0


def test_validate_file_after_many_edits_keeps_them(plain_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More changed files than a handful (a branch switched) are written, so that the next run reads none again."""
    assert _compiled(plain_repo, plain_repo / "dist" / "bundle.json", cache=True)[0] is not None
    monkeypatch.setattr(store, "_SMALL_RECORDS", 2)
    files = _intel_files(plain_repo)[:3]
    for path in files:
        path.write_text(path.read_text(encoding="utf-8") + "x_note: edited\n", encoding="utf-8")
    _age(*files)
    before = _cache_files(plain_repo)
    assert validate_paths(plain_repo, files[:1], cache=True) == validate_paths(plain_repo, files[:1], cache=False)
    assert _cache_files(plain_repo) != before
    loaded = load_repo_indexed(plain_repo)
    assert loaded.parsed_files == 0 and loaded.reused_files == len(bundle_files(loaded.files))


def test_validate_file_rewrites_a_damaged_shard_however_small_the_change(plain_repo: Path) -> None:
    assert _compiled(plain_repo, plain_repo / "dist" / "bundle.json", cache=True)[0] is not None
    named = _intel_files(plain_repo)[0]
    # The shard of the named file's entry: a build reads the shards it needs (BuildCache.open(lazy=True)),
    # and the named file is looked up by its content.
    shard = plain_repo / CACHE_DIR / f"entries-{blob_id(named.read_bytes())[:2]}"
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")
    assert validate_paths(plain_repo, [named], cache=True) == validate_paths(plain_repo, [named], cache=False)
    cache = BuildCache.open(plain_repo, context_key(plain_repo))
    assert cache.rejected == []


def test_a_warm_build_keeps_the_stat_record_of_every_file(plain_repo: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The files a warm load takes unchanged keep their records in the stat index it saves (noted
    only at the save), and the edited file gets its new one: the next build hashes no file."""
    output = tmp_path / "bundle.json"
    assert _compiled(plain_repo, output, cache=True)[0] is not None
    edited = plain_repo / "intel" / "malware" / "mimikatz.yaml"
    edited.write_text(edited.read_text(encoding="utf-8") + "x_note: edited\n", encoding="utf-8")
    _age(edited)
    assert _compiled(plain_repo, output, cache=True)[0] is not None
    cache = BuildCache.open(plain_repo, context_key(plain_repo))
    files = [path for path in _intel_files(plain_repo) if path.suffix == ".yaml"]
    assert {str(path.relative_to(plain_repo)) for path in files} <= set(cache._index)
    for path in files:
        info = os.lstat(path)
        record = cache._index[str(path.relative_to(plain_repo))]
        assert record[:4] == (info.st_size, info.st_mtime_ns, info.st_ctime_ns, file_identity(info)), path
    hashed: list[bytes] = []
    real_blob_id = whole.blob_id

    def noting_blob_id(content: bytes) -> str:
        hashed.append(content)
        return real_blob_id(content)

    monkeypatch.setattr(whole, "blob_id", noting_blob_id)
    loaded = load_repo_indexed(plain_repo)
    assert loaded.parsed_files == 0 and hashed == []


class _Interrupted(BaseException):
    """A build stopped (Ctrl-C, kill -9) between writing a shard's objects part and its index part."""


def test_a_save_stopped_between_a_shards_two_parts_never_pairs_objects_with_another_overlays_index(
        plain_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = plain_repo / "dist" / "bundle.json"
    _compiled_with_record(plain_repo, output)
    tagged_file = next((plain_repo / PARTNER / "indicator").glob("*.yaml"))
    tagged = _object_id(tagged_file)
    _tag(plain_repo, tagged, "first")
    _compiled(plain_repo, output, cache=True)  # the entry made under the line "first"
    _tag(plain_repo, tagged, "second")
    write = BuildCache._write

    def stopped_after_objects(self: BuildCache, name: str, body: dict[str, Any]) -> None:
        write(self, name, body)
        if name.startswith("objects-"):
            raise _Interrupted  # the objects part is under "second", the index part still under "first"

    monkeypatch.setattr(BuildCache, "_write", stopped_after_objects)
    with pytest.raises(_Interrupted):
        _compiled(plain_repo, output, cache=True)
    monkeypatch.setattr(BuildCache, "_write", write)
    _tag(plain_repo, tagged, "first")  # back to the overlay the index part was made under
    # To another file, so the objects are read from the cache, not taken from the previous bundle's lines.
    cached = _compiled(plain_repo, tmp_path / "other.json", cache=True)
    uncached = _compiled(plain_repo, tmp_path / "uncached.json", cache=False)
    assert b'"labels":["first"]' in (cached[0] or b"") and b'"labels":["second"]' not in (cached[0] or b"")
    assert cached == uncached

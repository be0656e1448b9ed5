"""The build cache changes how fast a build is, never what it gives."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from tiops.buildcache import (
    CACHE_DIR,
    BuildCache,
    FileEntry,
    blob_id,
    context_key,
    entry_name,
    load_repo_cached,
    load_repo_indexed,
    overlay_signature,
    store,
)
from tiops.buildcache.entries import _entry_parts, _stat_record
from tiops.findings import Finding
from tiops.inputs import file_identity
from tiops.pipeline import ValidationFailed, build
from tiops.validate import validate_paths
from tiops.validate.reference_index import object_references

OLD = 1_500_000_000  # a modification time well before any index written by these tests


def _outcome(root: Path, *, cache: bool) -> tuple[bytes | None, list[Finding]]:
    try:
        result = build(root, as_of="2025-01-01", cache=cache)
    except ValidationFailed as failed:
        return None, failed.findings
    return result.bundle, result.findings


def _age(*paths: Path) -> None:
    """Old modification times, so the stat index is trusted (files are not racily clean)."""
    for path in paths:
        os.utime(path, ns=(OLD * 10**9, OLD * 10**9))


def _intel_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "intel").rglob("*.yaml") if p.name != "_defaults.yaml")


def _relationship_file(root: Path, name: str, source: str, target: str, number: int) -> Path:
    path = root / "intel" / "relationships" / f"{name}.yaml"
    path.write_text(
        "type: relationship\n"
        f"id: relationship--00000000-0000-4000-8000-{number:012d}\n"
        "relationship_type: uses\n"
        f"source_ref: {source}\n"
        f"target_ref: {target}\n"
        "created: 2024-01-02T00:00:00Z\n"
        "modified: 2024-01-02T00:00:00Z\n",
        encoding="utf-8",
    )
    return path


def _object_id(path: Path) -> str | None:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("id: "):
            return line[4:].strip()
    return None


def _modified(path: Path) -> str | None:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("modified: "):
            return line[10:].strip().strip("'\"")
    return None


EDITS = ("add", "modify", "delete", "break-reference", "duplicate-id", "defaults", "config", "same-size", "malformed-id",
         "translate")


def _edit(root: Path, rng: random.Random, step: int, kind: str) -> tuple[str, list[Path]]:
    """One random edit of the kinds a pull request makes; returns its name and the files it wrote."""
    files = _intel_files(root)
    if kind == "add":
        ids = [i for i in map(_object_id, files) if i and not i.startswith("relationship--")]
        source, target = rng.sample(ids, 2)
        return kind, [_relationship_file(root, f"added-{step}", source, target, step)]
    if kind == "modify":
        path = rng.choice(files)
        path.write_text(path.read_text(encoding="utf-8") + f"x_note_{step}: edited in step {step}\n", encoding="utf-8")
        return kind, [path]
    if kind == "delete" and len(files) > 10:
        path = rng.choice(files)
        path.unlink()
        return kind, []
    if kind == "break-reference":
        ids = [i for i in map(_object_id, files) if i and not i.startswith("relationship--")]
        return kind, [_relationship_file(root, f"dangling-{step}", rng.choice(ids),
                                         "malware--00000000-0000-4000-8000-00000000dead", 10_000 + step)]
    if kind == "duplicate-id":
        path = rng.choice([p for p in files if _object_id(p)])
        copy = path.with_name(f"copy-{step}-{path.name}")
        shutil.copy(path, copy)
        return kind, [copy]
    if kind == "defaults":
        defaults = root / "intel" / "indicators" / "_defaults.yaml"
        text = defaults.read_text(encoding="utf-8")
        confidence = rng.choice([40, 60, 85])
        lines = [line for line in text.splitlines() if "confidence:" not in line]
        block = lines.index("defaults:") if "defaults:" in lines else None
        if block is None:
            lines += ["defaults:", f"  confidence: {confidence}"]
        else:
            lines.insert(block + 1, f"  confidence: {confidence}")
        defaults.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return kind, [defaults]
    if kind == "config":
        config = root / "tiops.yaml"
        text = config.read_text(encoding="utf-8") if config.exists() else ""
        strict = "validation:\n  strict: true\n"
        config.write_text(text.replace(strict, "") if strict in text else text + strict, encoding="utf-8")
        return kind, [config]
    if kind == "malformed-id":  # an id that is not TYPE--UUID, and a reference to it
        ids = [i for i in map(_object_id, files) if i and not i.startswith("relationship--")]
        bad = root / "intel" / "malware" / f"malformed-{step}.yaml"
        bad.write_text(f"type: malware\nid: malware--not-a-uuid-{step}\nname: Malformed {step}\nis_family: true\n"
                       "created: 2024-01-02T00:00:00Z\nmodified: 2024-01-02T00:00:00Z\n", encoding="utf-8")
        return kind, [bad, _relationship_file(root, f"to-malformed-{step}", rng.choice(ids), f"malware--not-a-uuid-{step}",
                                              20_000 + step)]
    if kind == "translate":  # a language-content of an object's version or of an older one (TI303)
        path = rng.choice([p for p in files if (_object_id(p) or "relationship--").split("--")[0]
                           not in ("relationship", "language-content")])
        version = rng.choice([_modified(path) or "2024-01-02T00:00:00Z", "2020-01-01T00:00:00.000Z"])
        translation = root / "intel" / "translations" / f"translation-{step}.yaml"
        translation.parent.mkdir(exist_ok=True)
        translation.write_text(f"type: language-content\nid: language-content--00000000-0000-4000-8000-{30_000 + step:012d}\n"
                               f"object_ref: {_object_id(path)}\nobject_modified: '{version}'\n"
                               "contents:\n  de:\n    name: Übersetzt\n"
                               "created: 2024-01-02T00:00:00Z\nmodified: 2024-01-02T00:00:00Z\n", encoding="utf-8")
        return kind, [translation]
    # same-size: the same number of bytes, under the old modification time (only the change time tells).
    path = rng.choice(files)
    text = path.read_text(encoding="utf-8")
    swapped = text.replace("2024", "2023", 1) if "2024" in text else text.replace("2023", "2024", 1)
    path.write_text(swapped, encoding="utf-8")
    return kind, [path]


@pytest.mark.parametrize(("seed", "fork"), [(1, "0"), (2, "0"), (3, "1")])
def test_cached_and_uncached_builds_agree_over_random_edits(example_repo: Path, seed: int, fork: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # fork "1": a warm load has a forked helper take the files' lstats (tiops.buildcache.indexed._changed_beside_read).
    monkeypatch.setenv("TIOPS_LOAD_FORK", fork)
    rng = random.Random(seed)
    _age(*(p for p in example_repo.rglob("*") if p.is_file()))
    assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)
    # Every kind of edit once, in a random order, then random ones.
    plan = rng.sample(EDITS, len(EDITS)) + [rng.choice(EDITS) for _ in range(3)]
    kinds = set()
    for step, planned in enumerate(plan):
        kind, written = _edit(example_repo, rng, step, planned)
        kinds.add(kind)
        _age(*written)
        cached, uncached = _outcome(example_repo, cache=True), _outcome(example_repo, cache=False)
        assert cached == uncached, f"step {step}: {kind}"
        # the cache is read back as well as written: a second cached build agrees too
        assert _outcome(example_repo, cache=True) == uncached, f"step {step}: {kind}, second run"
        named = [written[0]] if written and written[0].suffix == ".yaml" and "intel" in written[0].parts else []
        assert (validate_paths(example_repo, named, cache=True)
                == validate_paths(example_repo, named, cache=False)), f"step {step}: {kind}, validate FILE"
    assert kinds == set(EDITS)


def test_dangling_reference_and_duplicate_id_are_found_through_the_cache(example_repo: Path) -> None:
    _age(*(p for p in example_repo.rglob("*") if p.is_file()))
    assert _outcome(example_repo, cache=True)[0] is not None
    source = _object_id(example_repo / "intel" / "malware" / "mimikatz.yaml")
    assert source
    dangling = _relationship_file(example_repo, "dangling", source, "malware--00000000-0000-4000-8000-00000000dead", 1)
    findings = validate_paths(example_repo, [dangling], cache=True)
    assert any(f.location.file == "intel/relationships/dangling.yaml" and f.severity.name == "ERROR" for f in findings)
    dangling.unlink()
    copy = example_repo / "intel" / "malware" / "mimikatz-again.yaml"
    shutil.copy(example_repo / "intel" / "malware" / "mimikatz.yaml", copy)
    bundle, findings = _outcome(example_repo, cache=True)
    assert bundle is None and any(f.code == "TI302" and f.stix_id == source for f in findings)


def test_one_changed_file_is_the_only_one_parsed_again(example_repo: Path) -> None:
    _age(*(p for p in example_repo.rglob("*") if p.is_file()))
    first = load_repo_cached(example_repo)
    first.cache.save()
    assert first.reused_files == 0 and first.parsed_files == len(_intel_files(example_repo))
    changed = example_repo / "intel" / "malware" / "mimikatz.yaml"
    changed.write_text(changed.read_text(encoding="utf-8") + "x_reviewed: true\n", encoding="utf-8")
    again = load_repo_cached(example_repo)
    assert again.parsed_files == 1 and again.reused_files == len(_intel_files(example_repo)) - 1
    assert any(obj.data.get("x_reviewed") is True for obj in again.repo.objects)


def test_a_changed_defaults_file_reparses_its_folder_only(example_repo: Path) -> None:
    _age(*(p for p in example_repo.rglob("*") if p.is_file()))
    load_repo_cached(example_repo).cache.save()
    defaults = example_repo / "intel" / "feeds" / "contoso" / "_defaults.yaml"
    defaults.write_text(defaults.read_text(encoding="utf-8") + "# reviewed\n", encoding="utf-8")
    unchanged = load_repo_cached(example_repo)  # a comment changes no property: nothing to parse again
    assert unchanged.parsed_files == 0
    defaults.write_text(defaults.read_text(encoding="utf-8").replace("source: ", "source: x-"), encoding="utf-8")
    again = load_repo_cached(example_repo)
    assert again.parsed_files == len(list(defaults.parent.glob("*.yaml"))) - 1


def test_a_stat_record_holds_one_int_for_equal_times_and_the_index_reads_them_back_equal(tmp_path: Path) -> None:
    """A file whose modification and change times are equal gets one int object for both in its stat
    record, so marshal writes the second as a reference (a smaller stat index, read faster); the
    index reads back the very values, and different times stay different."""
    import marshal

    written = tmp_path / "written.yaml"
    written.write_text("type: x\n")  # written once: both times the write's, on the file systems tests run on
    info = os.lstat(written)
    record = _stat_record(info)
    assert record == (info.st_size, info.st_mtime_ns, info.st_ctime_ns, file_identity(info))
    if info.st_mtime_ns == info.st_ctime_ns:
        assert record[1] is record[2]
    os.utime(written, ns=(OLD * 10**9, OLD * 10**9))  # the change time stays the utime's own: now
    aged = os.lstat(written)
    assert aged.st_mtime_ns != aged.st_ctime_ns
    assert _stat_record(aged) == (aged.st_size, aged.st_mtime_ns, aged.st_ctime_ns, file_identity(aged))
    shared = (5, 1796428052546532401, 1796428052546532401, 7, "b" * 40)
    apart = (5, 1796428052546532401, int("1796428052546532401"), 7, "b" * 40)
    assert apart[1] is not apart[2]
    assert len(marshal.dumps({"a": shared})) < len(marshal.dumps({"a": apart}))
    assert marshal.loads(marshal.dumps({"a": shared})) == {"a": apart}


def test_blob_id_is_what_git_prints(tmp_path: Path) -> None:
    import subprocess

    content = b"type: malware\nname: x\n"
    (tmp_path / "f.yaml").write_bytes(content)
    printed = subprocess.run(["git", "hash-object", str(tmp_path / "f.yaml")], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert blob_id(content) == printed


def _warm(root: Path, parts: str = "entries") -> list[Path]:
    """Fill the cache; its files of one kind: ``entries`` (the indexes) or ``objects``."""
    _age(*(p for p in root.rglob("*") if p.is_file()))
    loaded = load_repo_cached(root)
    loaded.cache.save()
    return sorted((root / CACHE_DIR).glob(f"{parts}-*"))


def _damage_truncate(path: Path, root: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _damage_flip_byte(path: Path, root: Path) -> None:  # tampered: content changed, checksum not
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x01
    path.write_bytes(bytes(raw))


def _damage_garbage(path: Path, root: Path) -> None:
    path.write_bytes(os.urandom(200))


def _damage_foreign(path: Path, root: Path) -> None:  # a well-formed file of another tiops version or config
    foreign = BuildCache(root / CACHE_DIR, "another tiops version")
    body = BuildCache.open(root, context_key(root))._read(path.name)
    foreign._write(path.name, body)


def _damage_earlier_format(path: Path, root: Path) -> None:  # the same body as an earlier tiops wrote it
    raw = path.read_bytes()
    payload = raw[len(store._MAGIC) + store._CHECKSUM_SIZE:]
    path.write_bytes(b"TIOPS-BUILD-CACHE\x00" + hashlib.sha256(payload).digest() + payload)


def _damage_bad_entry(path: Path, root: Path) -> None:  # checksum right, content not an entry
    cache = BuildCache.open(root, context_key(root))
    body = cache._read(path.name)
    for by_key in body.values():
        for key in by_key:
            by_key[key] = b"not marshal data"
    cache._write(path.name, body)


@pytest.mark.parametrize("parts", ["entries", "objects"])
@pytest.mark.parametrize("damage", [_damage_truncate, _damage_flip_byte, _damage_garbage, _damage_foreign,
                                    _damage_bad_entry, _damage_earlier_format])
def test_a_damaged_or_foreign_cache_is_ignored_and_rebuilt(example_repo: Path, damage, parts: str) -> None:  # type: ignore[no-untyped-def]
    expected = _outcome(example_repo, cache=False)
    shards = _warm(example_repo, parts)
    assert shards
    # A changed file on top, so that a wrongly trusted cache could not hide behind equal content.
    for shard in shards:
        damage(shard, example_repo)
    loaded = load_repo_cached(example_repo)
    if damage is not _damage_bad_entry:
        assert {path.name for path in shards} <= set(loaded.cache.rejected)
    assert loaded.reused_files == 0 and loaded.parsed_files == len(_intel_files(example_repo))
    loaded.cache.save()
    assert _outcome(example_repo, cache=True) == expected
    rebuilt = load_repo_cached(example_repo)
    assert rebuilt.cache.rejected == [] and rebuilt.parsed_files == 0


def test_a_damaged_index_only_costs_hashing(example_repo: Path) -> None:
    _warm(example_repo)
    index = example_repo / CACHE_DIR / "index"
    index.write_bytes(index.read_bytes()[:-3])
    loaded = load_repo_cached(example_repo)
    assert "index" in loaded.cache.rejected and loaded.parsed_files == 0


def test_a_left_over_temporary_file_is_not_read(example_repo: Path) -> None:
    shards = _warm(example_repo)
    # What an interrupted write leaves: a half-written temporary beside the real file.
    (shards[0].parent / f".{shards[0].name}.abc123").write_bytes(shards[0].read_bytes()[:10])
    assert load_repo_cached(example_repo).parsed_files == 0


def test_the_bundle_does_not_depend_on_the_cache(example_repo: Path) -> None:
    uncached = _outcome(example_repo, cache=False)
    cold = _outcome(example_repo, cache=True)
    assert (example_repo / CACHE_DIR).is_dir()
    warm = _outcome(example_repo, cache=True)
    assert uncached == cold == warm and uncached[0] is not None


def test_entries_round_trip_objects_and_findings(example_repo: Path) -> None:
    loaded = load_repo_cached(example_repo)
    # A first build keeps no reference lists of the files it parsed: the check walks those objects.
    assert loaded.parsed_files and loaded.references == [None] * len(loaded.repo.objects)
    references = [object_references(obj) for obj in loaded.repo.objects]
    entry = FileEntry.build(loaded.repo.objects, loaded.repo.findings, loaded.object_findings, references)
    unpacked = entry.unpack()
    assert unpacked.objects == loaded.repo.objects and any(unpacked.references)
    assert (unpacked.load_findings, unpacked.object_findings, unpacked.references) == (
        loaded.repo.findings, loaded.object_findings, references)


def test_a_read_only_cache_folder_still_builds(example_repo: Path) -> None:
    (example_repo / ".tiops").mkdir()
    (example_repo / CACHE_DIR).write_text("a file where the folder should be", encoding="utf-8")
    assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)


def test_the_cache_stays_out_of_git_without_a_gitignore(example_repo: Path) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", str(example_repo)], check=True)
    _outcome(example_repo, cache=True)
    assert (example_repo / CACHE_DIR / "index").is_file()
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=example_repo,
                            capture_output=True, text=True, check=True).stdout
    assert ".tiops" not in status and "intel/" in status


def test_a_file_saved_while_it_is_read_is_kept_under_the_bytes_parsed(example_repo: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An editor saving a file in place between the stat a first build takes and its read:
    the entry holds what was parsed, under its blob, and the next build hashes the file again."""
    _age(*(p for p in example_repo.rglob("*") if p.is_file()))
    changed = example_repo / "intel" / "malware" / "mimikatz.yaml"
    before = changed.read_bytes()
    after = before.replace(b"2024", b"2023", 1) if b"2024" in before else before.replace(b"2023", b"2024", 1)
    assert after != before and len(after) == len(before)
    taking_stat = os.fstat

    def saved_right_after_the_stat(descriptor: int) -> os.stat_result:
        info = taking_stat(descriptor)
        if os.path.samestat(info, os.stat(changed)) and changed.read_bytes() == before:
            changed.write_bytes(after)  # a real save, in place: the stat just taken is the old one
        return info

    monkeypatch.setattr(os, "fstat", saved_right_after_the_stat)
    first = load_repo_cached(example_repo)
    first.cache.save()
    monkeypatch.undo()
    assert changed.read_bytes() == after
    cache = BuildCache.open(example_repo, context_key(example_repo))
    entries = {blob for shard in cache._shards.values() for blob in shard}
    assert blob_id(after) in entries and blob_id(before) not in entries
    again = load_repo_cached(example_repo)
    assert again.parsed_files == 0 and again.reused_files == first.parsed_files
    assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)


def test_a_file_saved_after_a_remembered_lstat_is_not_kept(example_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A blob id taken from the stat index, not from the bytes parsed: a save meanwhile leaves the entry out."""
    import tiops.buildcache.whole
    import tiops.load

    _age(*(p for p in example_repo.rglob("*") if p.is_file()))
    load_repo_cached(example_repo).cache.save()
    for shard in (example_repo / CACHE_DIR).glob("entries-*"):
        shard.unlink()  # the stat index stays: every blob id is remembered, no entry is found
    changed = example_repo / "intel" / "malware" / "mimikatz.yaml"
    before = changed.read_bytes()
    loading = tiops.load._load_object_file

    def saved_just_before_parsing(path: str, *args: Any) -> None:
        if path == os.fspath(changed) and changed.read_bytes() == before:
            changed.write_bytes(before + b"x_reviewed: true\n")
        loading(path, *args)

    monkeypatch.setattr(tiops.buildcache.whole, "_load_object_file", saved_just_before_parsing)
    loaded = load_repo_cached(example_repo)
    loaded.cache.save()
    monkeypatch.undo()
    cache = BuildCache.open(example_repo, context_key(example_repo))
    assert blob_id(before) not in {blob for shard in cache._shards.values() for blob in shard}
    assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)


def test_an_index_saved_by_another_build_while_one_reads_it_does_not_lend_its_time(
        example_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The racy bound comes from the stat index read, not from one saved after it. A build reads an
    index holding a racily clean record (a file saved again in the clock tick of its lstat: same
    size and times, another content), and another build saves its own index just then. Taking the
    newer index's time for the older one's records trusted that record and built the old content."""
    import tiops.buildcache.store

    _age(*(p for p in example_repo.rglob("*") if p.is_file()))
    load_repo_cached(example_repo).cache.save()
    changed = example_repo / "intel" / "malware" / "mimikatz.yaml"
    relative = "intel/malware/mimikatz.yaml"
    before = changed.read_bytes()
    after = before.replace(b"2024", b"2023", 1) if b"2024" in before else before.replace(b"2023", b"2024", 1)
    assert after != before and len(after) == len(before)
    changed.write_bytes(after)
    saved_at = (OLD + 100) * 10**9
    os.utime(changed, ns=(saved_at, saved_at))
    cache = BuildCache.open(example_repo, context_key(example_repo))
    index_path = cache.folder / "index"
    record = _stat_record(os.lstat(changed))
    # The other build's index, with the content hashed again, saved ten seconds after the file.
    cache._write("index", {**cache._index, relative: (*record, blob_id(after))})
    newer = example_repo / "newer-index"
    os.replace(index_path, newer)
    os.utime(newer, ns=(saved_at + 10 * 10**9, saved_at + 10 * 10**9))
    # The older index: the file's record as a racy lstat left it (its stat of now, the content before),
    # written half a second after that save, so the record is racy under it.
    cache._write("index", {**cache._index, relative: (*record, blob_id(before))})
    os.utime(index_path, ns=(saved_at + 500_000_000, saved_at + 500_000_000))
    reading = tiops.buildcache.store.read_regular_file_dated

    def saved_by_another_build_right_after_the_read(path: Any) -> tuple[bytes, int] | None:
        content = reading(path)
        if os.fspath(path) == os.fspath(index_path) and newer.exists():
            os.replace(newer, index_path)
        return content

    monkeypatch.setattr(tiops.buildcache.store, "read_regular_file_dated", saved_by_another_build_right_after_the_read)
    cached = _outcome(example_repo, cache=True)
    monkeypatch.undo()
    assert not newer.exists()  # the other save did land between the read and the rest
    assert cached == _outcome(example_repo, cache=False)


def test_links_and_unreadable_files_build_as_without_the_cache(example_repo: Path, tmp_path: Path) -> None:
    """Files a first build reads without an lstat: a link inside the repository, one leaving it, a named pipe."""
    malware = example_repo / "intel" / "malware"
    inside = malware / "linked.yaml"
    inside.symlink_to(malware / "mimikatz.yaml")
    outside = tmp_path / "outside.yaml"
    outside.write_text("type: malware\nname: Outside\nis_family: true\n", encoding="utf-8")
    (malware / "leaving.yaml").symlink_to(outside)
    os.mkfifo(malware / "pipe.yaml")
    uncached = _outcome(example_repo, cache=False)
    assert {"TI108", "TI302"} <= {f.code for f in uncached[1]}  # the link leaving, the linked copy's duplicate id
    assert _outcome(example_repo, cache=True) == uncached
    assert _outcome(example_repo, cache=True) == uncached  # and again, from the cache
    index = BuildCache.open(example_repo, context_key(example_repo))._index
    assert "intel/malware/mimikatz.yaml" in index and not {"intel/malware/linked.yaml", "intel/malware/leaving.yaml",
                                                            "intel/malware/pipe.yaml"} & set(index)


def test_an_overlay_signature_covers_the_lines_that_name_a_files_objects() -> None:
    ids = ["indicator--1", "indicator--2"]
    assert overlay_signature(None, ids) == overlay_signature({}, ids) == ""
    assert overlay_signature({"indicator--9": {"labels": ["x"]}}, ids) == ""  # no line names these objects
    first = overlay_signature({"indicator--2": {"labels": ["x"]}, "indicator--9": {"confidence": 5}}, ids)
    assert first and first == overlay_signature({"indicator--2": {"labels": ["x"]}}, ids)
    assert first != overlay_signature({"indicator--2": {"labels": ["y"]}}, ids)
    # The same lines give the same signature in any process, whatever else holds their values.
    held = ["x"]
    assert overlay_signature({"indicator--2": {"labels": held}}, ids) == first
    assert overlay_signature({"indicator--2": {"labels": [object()]}}, ids) == "?"  # never a digest
    # An object written without an id is looked up as "None" (tiops.load._apply_overlay): every file may hold one.
    assert overlay_signature({"None": {"confidence": 5}}, ids) != ""
    # What stands for the entry carries the signature; the entry's storage keys do not.
    name = entry_name("ab" * 20, "intel/x.yaml\0key", first)
    assert name != entry_name("ab" * 20, "intel/x.yaml\0key", "") and _entry_parts(name) == ("ab" * 20, "intel/x.yaml\0key")


def _killed_before_rename(*_: Any) -> None:
    """Renaming a written cache file into place (tiops.outputs.rename_over) ends the process at once,
    as kill -9 there would: no ``except``/``finally`` runs, the file beside stays."""
    os._exit(9)


def test_a_save_killed_while_writing_leaves_nothing_the_next_save_keeps(example_repo: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _outcome(example_repo, cache=False)
    folder = example_repo / CACHE_DIR
    pid = os.fork()
    if pid == 0:  # the build that is killed part way through its save
        try:
            monkeypatch.setattr("tiops.buildcache.store.rename_over", _killed_before_rename)
            _outcome(example_repo, cache=True)
        finally:
            os._exit(1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 9
    left = [name for name in os.listdir(folder) if name.startswith(".") and name != ".gitignore"]
    assert len(left) == 1  # the file it was writing: before, a random name no later build removed
    assert _outcome(example_repo, cache=True) == expected
    assert [name for name in os.listdir(folder) if name.startswith(".")] == [".gitignore"]


def test_a_cache_let_go_of_after_its_save_still_reads_and_writes_records_and_saves_nothing_more(
        example_repo: Path) -> None:
    """A first build drops the stat index once saved (BuildCache.release_saved): the entries' objects
    are still read and the bundle record still written, and a save after it changes no file."""
    _age(*(p for p in example_repo.rglob("*") if p.is_file()))
    load_repo_cached(example_repo, make_groups=True).cache.save()
    edited = example_repo / "intel" / "malware" / "mimikatz.yaml"
    edited.write_text(edited.read_text(encoding="utf-8") + "x_note: edited\n", encoding="utf-8")
    _age(edited)
    loaded = load_repo_cached(example_repo, make_groups=True)  # a stat index read, and one made
    assert loaded.cache._index and loaded.cache._new_index
    loaded.cache.save()
    folder = example_repo / CACHE_DIR
    saved = {path.name: path.read_bytes() for path in folder.iterdir()}
    loaded.cache.release_saved()
    loaded.cache.save()
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == saved
    loaded.cache.write_record("a-record", {"kept": True})
    assert BuildCache.open(example_repo, context_key(example_repo)).read_record("a-record") == {"kept": True}
    fresh = BuildCache.open(example_repo, context_key(example_repo))
    pairs = [(blob, key) for shard in fresh._shards.values() for blob, by_key in shard.items() for key in by_key]
    assert pairs and all(loaded.cache.stored_objects(blob, key) is not None for blob, key in pairs)
    warm = load_repo_indexed(example_repo)
    assert warm.parsed_files == 0 and warm.reused_files > 0

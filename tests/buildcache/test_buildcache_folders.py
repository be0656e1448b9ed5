"""Folders taken whole from the build cache (tiops.buildcache.folders): when they are, when they are not,
and that a build taking them gives what a build without the cache gives."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from test_buildcache import _age, _intel_files, _outcome

from tiops.buildcache import CACHE_DIR, BuildCache, blob_id, context_key, load_repo_indexed
from tiops.buildcache.folders import (
    FolderEntry,
    bundle_files,
    folder_group,
    member_indexes,
    merged_index,
    valid_group,
)
from tiops.inputs import file_identity
from tiops.validate import validate_indexed, validate_paths
from tiops.validate.indexed import index_file
from tiops.validate.reference_index import malformed_ids, object_references


def _warm(root: Path) -> None:
    """Two cached builds: the first fills the cache file by file, the second makes the folders' groups."""
    _age(*(p for p in root.rglob("*") if p.is_file()))
    for _ in range(2):
        _outcome(root, cache=True)


def _taken_whole(root: Path) -> dict[str, FolderEntry]:
    loaded = load_repo_indexed(root)
    return {file.relative: file for file in loaded.files if isinstance(file, FolderEntry)}


def _entries(root: Path) -> set[str]:
    cache = BuildCache.open(root, context_key(root))
    return {blob for shard in cache._shards.values() for blob in shard}


def test_unchanged_folders_are_taken_whole_and_give_the_same_findings(example_repo: Path) -> None:
    _warm(example_repo)
    whole = _taken_whole(example_repo)
    assert "intel/malware/" in whole and "intel/actors/" in whole
    # The feed folder's indicators name partner-style sources? No: every plain folder is taken whole.
    loaded = load_repo_indexed(example_repo)
    by_file = load_repo_indexed(example_repo, fresh=lambda _: True)  # every file parsed afresh, one by one
    assert validate_indexed(loaded.repo, loaded.files).findings == validate_indexed(by_file.repo, by_file.files).findings
    # The folder's files, one by one, are the files a load file by file gives, in order.
    assert ([file.entry for file in bundle_files(loaded.files)] == [file.entry for file in by_file.files])
    for part, file in zip(bundle_files(loaded.files), by_file.files, strict=True):
        assert part.index.ids == file.index.ids
        assert part.index.relationships == file.index.relationships
        assert part.objects()[0] == file.objects()[0]
    assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)


def test_a_changed_file_loads_its_folder_file_by_file_until_the_group_is_made_again(example_repo: Path) -> None:
    _warm(example_repo)
    changed = example_repo / "intel" / "malware" / "mimikatz.yaml"
    before = changed.read_bytes()
    changed.write_bytes(before.replace(b"name: ", b"name: Renamed ", 1))
    _age(changed)
    assert "intel/malware/" not in _taken_whole(example_repo)
    assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)
    # That build made the folder's group with the new content, and left the old entry out.
    assert "intel/malware/" in _taken_whole(example_repo)
    entries = _entries(example_repo)
    assert blob_id(changed.read_bytes()) in entries and blob_id(before) not in entries


def test_a_file_added_or_removed_is_seen(example_repo: Path) -> None:
    _warm(example_repo)
    folder = example_repo / "intel" / "malware"
    removed = folder / "mimikatz.yaml"
    content = removed.read_bytes()
    removed.unlink()
    assert "intel/malware/" not in _taken_whole(example_repo)
    assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)
    assert blob_id(content) not in _entries(example_repo)  # a removed file's entry goes
    (folder / "copy.yaml").write_bytes(content)
    _age(folder / "copy.yaml")
    assert "intel/malware/" not in _taken_whole(example_repo)
    assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)


def test_a_content_change_with_the_same_lstat_record_is_not_taken_whole(example_repo: Path) -> None:
    """A file replaced under the same name with another size: its lstat tells, even in a grouped folder."""
    _warm(example_repo)
    changed = example_repo / "intel" / "malware" / "mimikatz.yaml"
    changed.write_bytes(changed.read_bytes() + b"x_reviewed: true\n")
    _age(changed)
    assert "intel/malware/" not in _taken_whole(example_repo)
    assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)


def test_a_removed_folder_loses_its_group(example_repo: Path) -> None:
    _warm(example_repo)
    folders = example_repo / CACHE_DIR
    assert any(folders.glob("folders-*"))
    shutil.rmtree(example_repo / "intel" / "malware")
    _outcome(example_repo, cache=True)
    cache = BuildCache.open(example_repo, context_key(example_repo))
    assert cache.folder_group("intel/malware/") is None
    assert cache.folder_group("intel/actors/") is not None


def test_a_damaged_group_is_ignored_and_made_again(example_repo: Path) -> None:
    _warm(example_repo)
    for path in (example_repo / CACHE_DIR).glob("folders-*"):
        raw = bytearray(path.read_bytes())
        raw[-3] ^= 0xFF
        path.write_bytes(bytes(raw))
    assert _taken_whole(example_repo) == {}
    assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)
    assert "intel/malware/" in _taken_whole(example_repo)


def test_a_group_that_lies_about_its_files_is_not_trusted(example_repo: Path) -> None:
    """A group whose blob ids are not those the stat index holds (restored from another checkout) is not taken."""
    _warm(example_repo)
    cache = BuildCache.open(example_repo, context_key(example_repo))
    group = cache.folder_group("intel/malware/")
    folder_key, names, blobs, counts, index, parts = group
    cache.keep_folder("intel/malware/", (folder_key, names, ["0" * 40] * len(blobs), counts, index, parts))
    cache._save_folders()
    assert "intel/malware/" not in _taken_whole(example_repo)
    assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)


def test_folders_with_objects_read_by_object_are_not_grouped(make_repo) -> None:  # type: ignore[no-untyped-def]
    extension = "extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e"
    root = make_repo({
        "intel/plain/a.yaml": "type: identity\nid: identity--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061\n"
                              "name: A\nidentity_class: organization\n"
                              "created: 2024-01-01T00:00:00.000Z\nmodified: 2024-01-01T00:00:00.000Z\n",
        "intel/extended/b.yaml": "type: identity\nid: identity--1c7b5b88-8ff7-4a4d-aa9d-feb398cd0061\n"
                                 "name: B\nidentity_class: organization\n"
                                 "created: 2024-01-01T00:00:00.000Z\nmodified: 2024-01-01T00:00:00.000Z\n"
                                 f"extensions:\n  {extension}:\n    extension_type: property-extension\n",
    })
    _warm(root)
    whole = _taken_whole(root)
    assert "intel/plain/" in whole and "intel/extended/" not in whole
    assert _outcome(root, cache=True) == _outcome(root, cache=False)


def test_a_merged_index_is_the_index_of_the_files_as_one() -> None:
    from tiops.buildcache import FileEntry
    from tiops.buildcache.entries import _load_index
    from tiops.load import IntelObject

    def objects(*data: dict[str, object]) -> list[IntelObject]:
        return [IntelObject(d, "f.yaml") for d in data]

    first = objects({"type": "identity", "id": "identity--1", "name": "x"},
                    {"type": "relationship", "id": "relationship--1", "source_ref": "identity--1",
                     "target_ref": "malware--1", "relationship_type": "uses"})
    second = objects({"type": "sighting", "id": "sighting--1", "sighting_of_ref": "indicator--1",
                      "created_by_ref": "identity--1"},
                     {"type": "relationship", "id": "relationship--2", "source_ref": "identity--2",
                      "target_ref": "identity--1", "relationship_type": "related-to"})
    def entry(part: list[IntelObject]) -> tuple[object, ...]:
        return FileEntry.build(part, [], [], [object_references(obj) for obj in part]).stored_index

    stored = [entry(first), entry(second)]
    merged = merged_index(stored)
    assert merged is not None
    both = first + second
    expected = index_file(both, [], [], [object_references(obj) for obj in both], malformed_ids(both))
    assert _load_index(merged) == expected
    # A file holding what the checks read by object keeps its folder file by file.
    assert merged_index([*stored, entry(objects({"type": "identity", "id": "identity--3", "extensions": {}}))]) is None
    # Each file's index, out of the group again.
    group = folder_group("key", ["a.yaml", "b.yaml"], [("a" * 40, stored[0]), ("b" * 40, stored[1])])
    assert group is not None and valid_group(group)
    assert member_indexes(group) == stored
    # A group of another shape is refused: a blob not text, a count negative or a bool, a part too short or not text.
    key, names, blobs, counts, index, parts = group
    for damaged in ((key, names, ["a" * 40, 7], counts, index, parts),
                    (key, names, blobs, [counts[0], -1], index, parts),
                    (key, names, blobs, [True, counts[1]], index, parts),
                    (key, names, blobs, counts, index, (*parts[:2], [0], *parts[3:])),
                    (key, names, blobs, counts, index, (*parts[:3], [parts[3][0], 1], parts[4])),
                    (key, names, blobs, counts, index, (*parts[:4], [0, -3]))):
        assert not valid_group(damaged), damaged
    empty = folder_group("key", [], [])
    assert empty is None or valid_group(empty)
    lying = (*group[:5], ([1, 0], [0, 0], [0, 0], group[5][3], [0, 0]))  # a load finding the merged index does not hold
    with pytest.raises(ValueError):
        member_indexes(lying)


@pytest.mark.parametrize("helper", ["0", "1"])
def test_taken_whole_with_and_without_the_stat_helper(example_repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                      helper: str) -> None:
    monkeypatch.setenv("TIOPS_LOAD_FORK", helper)
    _warm(example_repo)
    changed = example_repo / "intel" / "actors" / os.listdir(example_repo / "intel" / "actors")[0]
    changed.write_bytes(changed.read_bytes() + b"\n# touched\n")
    _age(changed)
    whole = _taken_whole(example_repo)
    assert "intel/actors/" not in whole and "intel/malware/" in whole
    assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)


@pytest.mark.parametrize("helper", ["0", "1"])
def test_the_first_build_makes_the_groups(example_repo: Path, monkeypatch: pytest.MonkeyPatch, helper: str) -> None:
    """The build that fills the cache makes the groups too: the very next build takes folders whole."""
    monkeypatch.setenv("TIOPS_LOAD_FORK", helper)
    _age(*(p for p in example_repo.rglob("*") if p.is_file()))
    first = _outcome(example_repo, cache=True)
    whole = _taken_whole(example_repo)
    assert "intel/malware/" in whole and "intel/actors/" in whole
    assert _outcome(example_repo, cache=True) == first == _outcome(example_repo, cache=False)


def test_partner_folders_are_taken_whole_and_an_edit_is_still_found(example_repo: Path) -> None:
    """An imported source folder is one group; a partner object edited outside tags, expiry, confidence and
    revoked is still TI70x, its folder read whole because a digest differs from the import lock."""
    partner = example_repo / "intel" / "partner-writer"
    shutil.copytree(Path(__file__).parents[1] / "data" / "importers" / "writer.expected", partner)
    _warm(example_repo)
    assert "intel/partner-writer/indicator/" in _taken_whole(example_repo)
    clean = _outcome(example_repo, cache=True)
    edited = sorted((partner / "indicator").glob("*.yaml"))[0]
    edited.write_text(edited.read_text(encoding="utf-8").replace("name: ", "name: Edited ", 1), encoding="utf-8")
    _age(edited)
    assert "intel/partner-writer/indicator/" not in _taken_whole(example_repo)
    cached = _outcome(example_repo, cache=True)
    assert cached == _outcome(example_repo, cache=False) != clean
    assert any(f.code.startswith("TI70") for f in cached[1])
    # Taken whole again on the next build, the edit is still reported.
    assert "intel/partner-writer/indicator/" in _taken_whole(example_repo)
    assert _outcome(example_repo, cache=True) == cached


def test_a_named_file_reads_only_the_files_of_a_whole_folder_that_involve_it(example_repo: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`tiops validate FILE` on a warm cache: a folder taken whole is read a file at a time, only its files
    holding an id involved with the named file (here those still pointing at the id the file gave up),
    and the findings are those of the same check without the cache."""
    from pr_repo import git

    git(example_repo, "init", "-q")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "base")  # the named file's ids at HEAD: what points at them is involved
    _warm(example_repo)
    assert "intel/relationships/" in _taken_whole(example_repo)
    named = example_repo / "intel" / "attack-patterns" / "spearphishing-attachment.yaml"
    old = "attack-pattern--6f03f477-1ee6-474f-b937-fa1369e49ee9"
    # The files that point at it: inline relationships of two of the four actors, and a relationship.
    pointing = sorted(str(path.relative_to(example_repo)) for path in (example_repo / "intel").rglob("*.yaml")
                      if path != named and old in path.read_text(encoding="utf-8"))
    assert len(pointing) == 3
    named.write_text(named.read_text(encoding="utf-8").replace(old, "attack-pattern--0b4d0b1e-53c1-4f6b-9d6e-3d1f2a6c7e80"),
                     encoding="utf-8")
    _age(named)
    read: list[str] = []
    member_objects = FolderEntry._member_objects

    def noting(self: FolderEntry, blob: str, key: str, count: int) -> Any:
        read.append(key.split("\0")[0])
        return member_objects(self, blob, key, count)

    monkeypatch.setattr(FolderEntry, "_member_objects", noting)
    cached = validate_paths(example_repo, [named], cache=True)
    assert sorted(read) == pointing  # not the other files of their folders
    assert cached == validate_paths(example_repo, [named], cache=False)
    # What still points at the old id is reported with the named file.
    assert sorted({f.location.file for f in cached if f.code == "TI300"}) == pointing


def test_a_folder_read_by_ids_gives_whole_the_files_that_hold_them(example_repo: Path) -> None:
    _warm(example_repo)
    part = _taken_whole(example_repo)["intel/actors/"]
    files = part.files()
    assert len(files) > 2
    last = files[-1]
    # An id of the last file (an inline relationship's, say): that file, whole, and no other.
    objects, references = part.objects_holding({last.index.ids[-1]})
    assert [obj.id for obj in objects] == last.index.ids
    assert len(references) == len(objects)
    assert part.objects_holding({"indicator--00000000-0000-4000-8000-000000000000"}) == ([], [])
    # A folder already read whole gives all of it.
    whole = _taken_whole(example_repo)["intel/actors/"]
    everything = whole.objects()
    assert [obj.id for obj in everything[0]] == whole.index.ids
    assert whole.objects_holding({last.index.ids[-1]}) is everything


def test_files_written_just_before_the_first_build_come_from_their_groups_not_the_shards(example_repo: Path) -> None:
    """A build that began within a second of a checkout cannot trust its files' stat records (racily
    clean): the next build reads each file again. One whose content is still the blob its folder's group
    holds is taken from the group, with a fresh record, and no shard of entries is read for it."""
    # As a checkout just made leaves them; a little ahead of now, so that they are within the racy
    # second of the first build however slowly a loaded machine starts it.
    soon = time.time_ns() + 2 * 10**9
    for path in (p for p in example_repo.rglob("*") if p.is_file()):
        os.utime(path, ns=(soon, soon))
    first = _outcome(example_repo, cache=True)
    edited = example_repo / "intel" / "malware" / "mimikatz.yaml"
    edited.write_bytes(edited.read_bytes().replace(b"name: ", b"name: Renamed ", 1))
    _age(edited)
    loaded = load_repo_indexed(example_repo, settle=False)
    cache = loaded.cache
    present = {n for n in range(256) if (cache.folder / f"entries-{n:02x}").exists()}
    read = present - cache._unread
    assert len(present) > 10
    assert read <= {int(blob_id(edited.read_bytes())[:2], 16)}  # the edited file's look-up alone
    assert loaded.parsed_files == 1 and loaded.reused_files == len(_intel_files(example_repo)) - 1
    assert validate_indexed(loaded.repo, loaded.files).findings == first[1]  # the example has no finding to move
    built = _outcome(example_repo, cache=True)
    assert built == _outcome(example_repo, cache=False)
    # That build kept a record of each file as it is now (trusted once the racy second has passed).
    records = BuildCache.open(example_repo, context_key(example_repo))._index
    for path in _intel_files(example_repo):
        info = os.lstat(path)
        record = records[path.relative_to(example_repo).as_posix()]
        assert record == (info.st_size, info.st_mtime_ns, info.st_ctime_ns, file_identity(info), blob_id(path.read_bytes()))


def test_bundle_files_are_the_folders_files_one_by_one_made_once(example_repo: Path) -> None:
    _warm(example_repo)
    loaded = load_repo_indexed(example_repo)
    assert any(isinstance(file, FolderEntry) for file in loaded.files)
    files = bundle_files(loaded.files)
    expanded = [part for file in loaded.files
                for part in (file.files() if isinstance(file, FolderEntry) else (file,))]
    assert len(files) == len(expanded) > len(loaded.files)
    assert [file.entry for file in files] == [file.entry for file in expanded]
    assert [files[place].entry for place in range(len(files))] == [file.entry for file in expanded]
    assert files[-1].entry == expanded[-1].entry and files[-len(files)].entry == expanded[0].entry
    assert [file.entry for file in files[3:9:2]] == [file.entry for file in expanded[3:9:2]]
    assert [file.entry for file in files[::-3]] == [file.entry for file in expanded[::-3]]
    assert files[5] is files[5] and next(iter(files)) is files[0]  # one object per file, made once
    for place in (len(files), -len(files) - 1):
        with pytest.raises(IndexError):
            files[place]


@pytest.mark.parametrize("missing", ["none", "one of a folder", "a whole folder", "a file of its own"])
def test_kept_places_tells_what_a_lookup_file_by_file_tells(example_repo: Path, missing: str) -> None:
    from tiops.bundlereuse import _kept_places

    _warm(example_repo)
    changed = example_repo / "intel" / "malware" / "mimikatz.yaml"
    changed.write_bytes(changed.read_bytes().replace(b"name: ", b"name: Renamed ", 1))  # its folder file by file
    loaded = load_repo_indexed(example_repo)
    files = bundle_files(loaded.files)
    folder = next(file for file in loaded.files if isinstance(file, FolderEntry) and file.file_count > 2)
    names = sorted(file.entry for file in files if file.entry is not None and not file.parsed)
    dropped: set[str] = set()
    if missing == "one of a folder":
        dropped = {folder.entry_names()[1]}
    elif missing == "a whole folder":
        dropped = set(folder.entry_names())
    elif missing == "a file of its own":
        dropped = {next(file.entry for file in loaded.files if not isinstance(file, FolderEntry) and file.entry)}
    position = {name: place for place, name in enumerate(name for name in names if name not in dropped)}
    by_folder = files.kept_places(position)
    by_file = _kept_places(list(files), position)
    assert by_folder == by_file
    assert len(by_folder[0]) == len(position) and len(by_folder[1]) == len(files) - len(position)

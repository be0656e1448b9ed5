"""The bundle record's entries as columns (tiops.bundlereuse.RecordedEntries): what a splice
makes of them is what the full way makes of the same marks, and damaged columns are refused."""

from __future__ import annotations

import array
import marshal
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from tiops.bundlereuse import (
    EntryMark,
    RecordedEntries,
    _loaded_texts,
    _stored_texts,
    record,
    recorded_keys,
)

MARKINGS = [[], ["marking-definition--tlp-green"], ["marking-definition--tlp-amber", "marking-definition--tlp-red"]]


def _mark(rng: random.Random, number: int) -> EntryMark:
    keys = [f"indicator\0indicator--{number:08d}-{k}" for k in range(rng.choice([0, 1, 1, 3]))]
    ruled = rng.choice([0, 0, 0, 2])
    dropped: tuple[str, ...] | list[str] = rng.choice([(), (), [f"indicator--dropped-{number}"]])
    gone: tuple[str, ...] | list[str] = rng.choice([(), (), [f"relationship--gone-{number}"]])
    return EntryMark(keys, rng.random() < 0.2, rng.random() < 0.1, rng.choice(MARKINGS), ruled, dropped, gone)


def _columns(marks: dict[str, EntryMark]) -> RecordedEntries:
    entries = RecordedEntries.of(marks)
    assert entries is not None
    return entries


def _through_marshal(entries: RecordedEntries) -> RecordedEntries:
    loaded = RecordedEntries.load(marshal.loads(marshal.dumps(entries.stored())))
    assert loaded is not None
    return loaded


@pytest.mark.parametrize("seed", range(20))
def test_a_splice_gives_the_columns_the_full_way_gives(seed: int) -> None:
    rng = random.Random(seed)
    marks = {f"{rng.getrandbits(64):016x}\0intel/file-{n}.yaml": _mark(rng, n) for n in range(rng.randint(0, 60))}
    entries = _columns(marks)
    assert _through_marshal(entries).marks() == marks
    for step in range(5):
        names = sorted(marks)
        dropped = set(rng.sample(range(len(names)), rng.randint(0, min(5, len(names)))))
        # Fresh marks: new files, and some of the dropped ones' files read again under their own names.
        fresh = {f"{rng.getrandbits(64):016x}\0intel/new-{seed}-{step}-{n}.yaml": _mark(rng, 1000 * step + n)
                 for n in range(rng.randint(0, 4))}
        for place in dropped:
            if rng.random() < 0.5:
                fresh[names[place]] = _mark(rng, 5000 + place)
        after = entries.without_and_with(dropped, fresh)
        assert after is not None
        marks = {name: marks[name] for place, name in enumerate(names) if place not in dropped} | fresh
        expected = RecordedEntries.of(marks)
        assert expected is not None
        assert after.stored() == expected.stored(), f"seed {seed}, step {step}"
        assert after.marks() == marks
        entries = _through_marshal(after)
        assert entries.summary(range(len(entries))) == (
            any(m.sourced for m in marks.values()), any(m.enriched for m in marks.values()),
            {marking for m in marks.values() for marking in m.markings})


@pytest.mark.parametrize("seed", range(5))
def test_the_columns_hold_each_entrys_keys_in_its_share_of_the_text(seed: int) -> None:
    rng = random.Random(seed)
    marks = {f"{n:04d}\0intel/file-{n}.yaml": _mark(rng, n) for n in range(rng.randint(1, 80))}
    entries = _columns(marks)
    names = sorted(marks)
    assert entries.names == names
    assert entries.keys_text == "".join(key + "\n" for name in names for key in marks[name].keys)
    assert entries.lengths.tolist() == [sum(len(key) + 1 for key in marks[name].keys) for name in names]
    assert [entries.keys_at(place) for place in range(len(names))] == [marks[name].keys for name in names]


def test_a_record_from_the_writers_offsets_and_extras_equals_one_read_back(tmp_path: Path) -> None:
    from tiops.compile import WrittenBundle, bundle_head, line_groups, write_bundle

    stamp = "2025-01-01T00:00:00.000Z"
    ids = [f"indicator--{uuid.uuid5(uuid.NAMESPACE_URL, str(n))}" for n in range(5)]
    objects: list[dict[str, Any]] = [
        {"type": "indicator", "spec_version": "2.1", "id": stix_id, "created": stamp, "modified": stamp,
         "name": "x" * (n + 1), "pattern": f"[ipv4-addr:value = '198.51.100.{n}']", "pattern_type": "stix",
         "valid_from": stamp} for n, stix_id in enumerate(ids)]
    builtin = f"identity--{uuid.uuid5(uuid.NAMESPACE_URL, 'built in')}"  # owned by no entry: an extra, as the built-in objects are
    objects.append({"type": "identity", "spec_version": "2.1", "id": builtin, "created": stamp, "modified": stamp,
                    "name": "built in"})
    objects.sort(key=lambda obj: (obj["type"], obj["id"]))
    marks = {"e1": EntryMark([f"indicator\0{stix_id}" for stix_id in ids[:3]], True, False, []),
             "e2": EntryMark([f"indicator\0{stix_id}" for stix_id in ids[3:]], False, False, [])}
    output = tmp_path / "bundle.json"
    keys: list[str] = []
    extras: list[str] = []
    starts = array.array("q")
    written = write_bundle(recorded_keys(objects, keys, marks, extras), output, line_starts=starts)
    assert isinstance(written, WrittenBundle)
    assert extras == [f"identity\0{builtin}"]
    assert starts[0] == len(bundle_head(written.bundle_id))
    groups = line_groups(keys, in_key_order=True)
    assert groups.names == ["identity\0identity--" + builtin[10:12], *sorted({f"indicator\0{i[:13]}" for i in ids})]
    noted = record("k", output, written, keys, marks, groups, starts, extras)
    found = record("k", output, written, list(keys), marks, groups)
    assert noted is not None and noted == found


def test_a_fresh_entry_named_as_a_kept_one_is_refused() -> None:
    mark = EntryMark(["indicator\0indicator--1"], False, False, [])
    entries = RecordedEntries.of({"a": mark, "b": mark})
    assert entries is not None
    assert entries.without_and_with(set(), {"b": mark}) is None
    assert entries.without_and_with({1}, {"b": mark}) is not None  # read again in its place


def test_texts_with_line_breaks_are_kept_as_a_list() -> None:
    assert _stored_texts(["a", "b"]) == "a\nb\n"
    assert _stored_texts([]) == ""
    assert _loaded_texts("") == []
    odd = ["indicator\0indicator--a\nb", "x"]
    assert _stored_texts(odd) == odd
    assert _loaded_texts(_stored_texts(odd)) == odd
    # An entry whose key holds a line break cannot be one column's share: no columns, no record.
    assert RecordedEntries.of({"a": EntryMark(["indicator\0id\nx"], False, False, [])}) is None


@pytest.mark.parametrize("damage", [
    lambda s: s[:6],
    lambda s: (s[0], s[1][:-8], *s[2:]),  # one length short
    lambda s: (s[0], s[1], s[2] + "x\n", *s[3:]),  # more text than the lengths say
    lambda s: (s[0], s[1], s[2], s[3][:-1], *s[4:]),  # a flag short
    lambda s: (s[0], s[1], s[2], bytes([4]) + s[3][1:], *s[4:]),  # a flag no entry has
    lambda s: (*s[:4], (99).to_bytes(8, "little") * (len(s[4]) // 8), *s[5:]),  # no such marking list
    lambda s: ("b\na\n", *s[1:]),  # names out of order
    lambda s: (*s[:6], {"nobody": (1, (), ())}),  # counts for an entry it does not list
    lambda s: (*s[:6], {"a": (1, "x", ())}),
])
def test_damaged_columns_are_not_read(damage: object) -> None:
    mark = EntryMark(["indicator\0indicator--1"], True, False, ["marking-definition--tlp-green"])
    entries = RecordedEntries.of({"a": mark, "b": mark._replace(keys=["indicator\0indicator--2"])})
    assert entries is not None
    stored = entries.stored()
    assert RecordedEntries.load(stored) is not None
    assert RecordedEntries.load(damage(stored)) is None  # type: ignore[operator]


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("marking_lists", [3, 40])  # a count per list, or one count of all
def test_a_summary_without_some_entries_is_the_summary_of_the_others(seed: int, marking_lists: int) -> None:
    rng = random.Random(seed)
    lists = [[f"marking-definition--{number:04d}"] for number in range(marking_lists)]
    marks = {f"{rng.getrandbits(64):016x}\0intel/file-{n}.yaml": _mark(rng, n)._replace(markings=rng.choice(lists))
             for n in range(rng.randint(1, 120))}
    entries = _through_marshal(_columns(marks))
    dropped = set(rng.sample(range(len(entries)), rng.randint(0, len(entries))))
    assert entries.summary_without(dropped) == entries.summary(set(range(len(entries))) - dropped)

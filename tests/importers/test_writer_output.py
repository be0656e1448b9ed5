"""The files import writes are pinned byte for byte: a faster writer must not change one of them."""

from __future__ import annotations

from pathlib import Path

from tiops.importers.write import import_file

DATA = Path(__file__).resolve().parent.parent / "data" / "importers"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_written_files_are_the_pinned_bytes(tmp_path: Path) -> None:
    # writer.expected/ was written by the PyYAML-only writer: plain, single-quoted (with
    # folded line breaks) and double-quoted strings, YAML 1.1 look-alikes, indicators,
    # escapes, nested lists and mappings, a "? key", a float (PyYAML's own path) and a
    # document that only JSON reads back as written (separators, 1e5).
    report = import_file(tmp_path, DATA / "writer.json", "stix", "Writer")
    assert (report.total, report.created, report.failed) == (4, 4, 0)
    written = _files(tmp_path / "intel" / "writer")
    expected = _files(DATA / "writer.expected")
    assert sorted(written) == sorted(expected)
    for name, content in expected.items():
        assert written[name] == content, name


def test_reimport_and_a_changed_object_keep_the_pinned_bytes(tmp_path: Path) -> None:
    import_file(tmp_path, DATA / "writer.json", "stix", "Writer")
    folder = tmp_path / "intel" / "writer"
    identity = folder / "identity" / "0b5a2cc4-5e4d-4b8e-9d0a-4f6b3a1c2d3e.yaml"
    identity.write_text(identity.read_text().replace("name: Writer Test Org", "name: Edited by hand"))
    report = import_file(tmp_path, DATA / "writer.json", "stix", "Writer")
    assert (report.created, report.updated, report.unchanged) == (0, 1, 3)  # the hand edit is put back
    assert _files(folder) == _files(DATA / "writer.expected")

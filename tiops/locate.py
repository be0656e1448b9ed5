"""Turn the property paths of findings into line and column numbers.

Only files that have findings are parsed for positions, once each. While a build runs
through the build cache (:func:`kept_positions`), the positions worked out are kept there
by the file's content digest, so the next build places the same findings in unchanged
files without parsing them again: a repository holding a partner feed with thousands of
warnings spent a sixth of each `tiops validate` composing those files again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, Protocol

from tiops.filesource import FileSource, WorkingTree
from tiops.findings import Finding
from tiops.inputs import InputProblem
from tiops.yamlio import PositionIndex


def resolve_locations(findings: list[Finding], root: Path, source: FileSource | None = None) -> list[Finding]:
    """``findings`` with line and column from their path, read from ``source`` (default the working tree)."""
    files = source if source is not None else WorkingTree(root)
    memo = (_Memo(_KEPT[-1][0]) if _KEPT and _KEPT[-1][1] == os.getpid() and any(not f.location.line for f in findings)
            else None)
    indexes: dict[str, _Positions | None] = {}
    resolved: list[Finding] = []
    for finding in findings:
        location = finding.location
        if location.line:
            resolved.append(finding)
            continue
        if location.file not in indexes:
            indexes[location.file] = _positions(files, location.file, memo)
        index = indexes[location.file]
        line, column = index.position(location.path) if index else (1, 1)
        resolved.append(replace(finding, location=replace(location, line=line, column=column)))
    if memo is not None:
        memo.keep()
    return resolved


# --- Positions kept by the build cache -----------------------------------------------------

POSITIONS_RECORD: Final = "finding-positions"
# At most this many files' positions are kept, those placed by the latest build first.
KEPT_FILES: Final = 50_000


class PositionRecords(Protocol):
    """Where positions of earlier builds are kept: tiops.buildcache.BuildCache's records."""

    def read_record(self, name: str) -> dict[str, Any] | None: ...

    def write_record(self, name: str, body: dict[str, Any]) -> None: ...


# The records kept in while a build runs, with the process that entered them: a helper forked
# meanwhile (tiops.forkwork) places its findings the plain way and writes no record.
_KEPT: list[tuple[PositionRecords, int]] = []


@contextlib.contextmanager
def kept_positions(records: PositionRecords) -> Iterator[None]:
    """While the block runs, findings in files whose bytes an earlier build placed findings in
    are placed from what it kept in ``records``, and what is worked out now is kept there.

    The record is checked by the cache (a damaged or foreign one is not read) and keyed by the
    SHA-256 of the bytes read now, so an edited file is always parsed again.
    """
    kept = (records, os.getpid())
    _KEPT.append(kept)
    try:
        yield
    finally:
        _KEPT.remove(kept)


_Path = tuple[str | int, ...]


class _Memo:
    """The kept positions by content digest; those used or worked out now, kept again on :meth:`keep`."""

    def __init__(self, records: PositionRecords) -> None:
        self._records = records
        body = records.read_record(POSITIONS_RECORD)
        kept = body.get("files") if body is not None else None
        self.earlier: dict[str, dict[_Path, tuple[int, int]]] = kept if isinstance(kept, dict) else {}
        self.now: dict[str, dict[_Path, tuple[int, int]]] = {}
        self.changed = False

    def of(self, digest: str) -> dict[_Path, tuple[int, int]]:
        known = self.now.get(digest)
        if known is None:
            earlier = self.earlier.get(digest)
            known = self.now[digest] = dict(earlier) if earlier is not None and _well_formed(earlier) else {}
            self.changed = self.changed or earlier is None
        return known

    def keep(self) -> None:
        if not self.changed:
            return
        files = dict(self.now)
        for digest, positions in self.earlier.items():
            if len(files) >= KEPT_FILES:
                break
            files.setdefault(digest, positions)
        self._records.write_record(POSITIONS_RECORD, {"files": files})


def _well_formed(positions: Any) -> bool:
    return isinstance(positions, dict) and all(
        type(path) is tuple and type(place) is tuple and len(place) == 2 and all(type(n) is int for n in place)
        for path, place in positions.items())


class _Positions:
    """One file's positions: those kept for its bytes, else parsed once, when first needed."""

    def __init__(self, text: str, known: dict[_Path, tuple[int, int]] | None, memo: _Memo | None) -> None:
        self._text = text
        self._known = known
        self._memo = memo
        self._index: PositionIndex | None = None

    def position(self, path: Sequence[str | int]) -> tuple[int, int]:
        key = tuple(path)
        if self._known is not None:
            place = self._known.get(key)
            if place is not None:
                return place
        if self._index is None:
            self._index = PositionIndex(self._text)
        place = self._index.position(key)
        if self._known is not None and self._memo is not None:
            self._known[key] = place
            self._memo.changed = True
        return place


def _positions(files: FileSource, file: str, memo: _Memo | None) -> _Positions | None:
    path = Path(file) if Path(file).is_absolute() else files.root / file
    try:
        content = files.read(os.fspath(path))
        text = content.decode("utf-8")
    except (InputProblem, UnicodeDecodeError):
        return None
    known = memo.of(hashlib.sha256(content).hexdigest()) if memo is not None else None
    # Line endings normalised as text mode would (and as the load stage does).
    return _Positions(text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text, known, memo)

"""What one cache entry holds, and how it is keyed (tiops.buildcache).

Keys
----
* An entry is keyed by the file's **git blob id** (:func:`blob_id`: SHA-1 of
  ``b"blob <length>\\0" + content``, what ``git hash-object`` and ``git ls-tree`` print)
  and by an **entry key** (:func:`entry_key`): the file's path in the repository (objects
  and findings name their file) and the defaults key of its folder (:func:`defaults_key`:
  the effective ``_defaults.yaml`` properties, source and imported folder), since the
  same bytes mean other objects under other defaults.
* A file of partner intel also depends on the lines of its folder's ``_overlay.yaml``
  that name its objects (what ``tiops tag`` writes). Those lines are not in the key, so
  that tagging one object is a one-file change: an entry keeps their digest (its
  **overlay signature**, :func:`overlay_signature`; empty when no line names its
  objects), and a lookup takes the entry only if the folder's overlay of now gives the
  same. What an entry stands for in a bundle record (:func:`entry_name`) carries the
  signature, so a record never takes lines made under another overlay. Both parts of an
  entry (:class:`FileEntry`) carry it: a save stopped between writing them must not pair
  an index with objects loaded under other overlay lines.
* The whole cache is bound to a **context key** (:func:`context_key`): the cache format,
  the tiops version, the Python version (the ``marshal`` format), the installed tiops
  package files (their names, sizes and modification times), the in-memory object model
  and the repository's ``tiops.yaml``. Another context makes every stored file foreign:
  it is ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import marshal
import operator
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NamedTuple

import tiops
from tiops.config import CONFIG_FILE
from tiops.filesource import FileSource
from tiops.findings import Finding, Location, Severity
from tiops.inputs import InputProblem, file_identity, read_input
from tiops.installed import package_fingerprint
from tiops.load import Defaults, IntelObject
from tiops.validate.indexed import FileIndex, index_file
from tiops.validate.reference_index import ListedReference, malformed_ids

# Bumped whenever the layout or the meaning of what is stored changes (12: an index's needs_objects
# also holds for a finding at a property from _defaults.yaml, tiops.validate.indexed).
FORMAT = 12
_OBJECT_FIELDS = tuple(f.name for f in fields(IntelObject))
_OBJECT_VALUES = operator.attrgetter(*_OBJECT_FIELDS)  # every field of an object, as one tuple

# A file's index as an entry keeps it (:func:`_store_index`): a tuple of lists and strings, unmarshalled
# with the whole of its ``entries-XX`` file, in one call for the entries of a shard.
_StoredIndex = tuple[Any, ...]
# A stored finding: code, severity, message, file, line, column, path, hint, stix_id.
_StoredFinding = tuple[str, int, str, str, int, int, tuple[Any, ...], str, "str | None"]


def blob_id(content: bytes) -> str:
    """The git blob id of ``content`` (what ``git hash-object`` prints), without git."""
    digest = hashlib.sha1(b"blob %d\0" % len(content), usedforsecurity=False)
    digest.update(content)
    return digest.hexdigest()


def defaults_key(defaults: Defaults) -> str | None:
    """What the folder's defaults contribute to the meaning of a file; None if unkeyable.

    The folder's overlay is not part of it: an entry keeps the digest of the overlay lines
    that name its objects (:func:`overlay_signature`). It is only marshalled here, so that a
    folder whose overlay marshal cannot write is not cached, as before.
    """
    try:
        text = marshal.dumps((defaults.properties, defaults.source, defaults.files, defaults.imported_folder))
        if defaults.overlay:
            marshal.dumps(defaults.overlay)
    except ValueError:  # a value marshal cannot write: that folder is simply not cached
        return None
    return hashlib.sha256(text).hexdigest()


# The overlay line that applies to objects written without an id (tiops.load._apply_overlay looks
# each object up by str() of its own id, and an id derived at load time was None then).
_UNNAMED_OBJECT = "None"


def overlay_digest(overlay: dict[str, Any]) -> str:
    """The digest of a partner folder's whole ``_overlay.yaml`` (as :func:`overlay_signature` writes
    lines), "?" when marshal cannot write it (such a folder is not cached: :func:`defaults_key`).

    A folder's key leaves its overlay out; what a bundle record notes of each folder holds this
    too (tiops.bundlereuse.since_state), since the overlay lines are part of an entry's name."""
    try:
        return hashlib.sha256(marshal.dumps(list(overlay.items()), 0)).hexdigest()
    except ValueError:
        return "?"


def overlay_signature(overlay: dict[str, Any] | None, ids: Sequence[str]) -> str:
    """The digest of the lines of a partner folder's ``_overlay.yaml`` that can change the objects
    with ``ids`` (a file's, FileIndex.ids): "" when none does (and for any file outside partner
    intel, whose folder has no overlay).

    tiops.load._apply_overlay takes the line of an object by its id as written, and the
    inline relationships of an object inherit from it what the overlay changed, so a file's
    objects are what its entry holds whenever these lines are the same.
    """
    if not overlay:
        return ""
    lines = [(identifier, overlay[identifier]) for identifier in ids if identifier in overlay]
    if _UNNAMED_OBJECT in overlay:
        lines.append((_UNNAMED_OBJECT, overlay[_UNNAMED_OBJECT]))
    if not lines:
        return ""
    try:
        # Version 0: each value written as what it is. Later versions also write whether a string
        # is interned and whether an object is held twice, which differ from process to process.
        written = marshal.dumps(lines, 0)
    except ValueError:
        return "?"  # never a digest; such a folder is not cached anyway (defaults_key is None)
    return hashlib.sha256(written).hexdigest()


def entry_name(blob: str, key: str, signature: str) -> str:
    """What stands for an entry in a bundle record and wherever an entry is told from another
    (tiops.bundlereuse): its blob id, its key and its overlay signature when it has one, NUL-joined."""
    return f"{blob}\0{key}\0{signature}" if signature else f"{blob}\0{key}"


def _entry_parts(name: str) -> tuple[str, str]:
    """The blob id and key of the entry :func:`entry_name` named (a key is "path NUL defaults key")."""
    blob, relative, folder, *_ = name.split("\0")
    return blob, f"{relative}\0{folder}"


def _entry_signature(name: str | None) -> str:
    """The overlay signature of the entry :func:`entry_name` named ("" when it has none)."""
    parts = name.split("\0") if name is not None else ()
    return parts[3] if len(parts) > 3 else ""


def entry_key(relative: str, defaults: str) -> str:
    """The key of a file's entry besides its blob id: its repository path and its folder's defaults key."""
    return f"{relative}\0{defaults}"


def context_key(root: Path, source: FileSource | None = None) -> str:
    """Everything besides a file and its defaults that changes what loading and checking it gives.

    ``source``: where ``tiops.yaml`` is read from (default the working tree; a git revision).
    """
    parts: list[Any] = [FORMAT, tiops.__version__, sys.version, _OBJECT_FIELDS, package_fingerprint()]
    try:
        config_path = os.fspath(root / CONFIG_FILE)
        parts.append(read_input(config_path) if source is None else source.read(config_path))
    except InputProblem as problem:
        parts.append(problem.code)
    return hashlib.sha256(marshal.dumps(tuple(parts))).hexdigest()


class FileEntry(NamedTuple):
    """What one object file gave: its objects, load findings and per-object findings, as stored.

    Two parts, kept in files of their own (``entries-XX`` and ``objects-XX``), so that a
    build can read the small one alone: the file's index (tiops.validate.indexed.FileIndex:
    its findings, ids, types, relationship ends and reference targets), and the objects
    with their references, unmarshalled only when asked for (:meth:`unpack`,
    :meth:`objects`); :meth:`read_index` reads the first.
    """

    stored_index: _StoredIndex  # the index as stored (_store_index); marshal carries whatever the objects part does
    stored_objects: bytes  # marshal of (objects, references)

    @staticmethod
    def build(objects: list[IntelObject], load_findings: list[Finding], object_findings: list[Finding],
              references: list[list[ListedReference]], malformed: list[str] | None = None,
              overlay: dict[str, Any] | None = None) -> FileEntry:
        """Raises ValueError when something in the objects cannot be stored.

        ``malformed``: :func:`malformed_ids` of ``objects`` when the caller has it already.
        ``overlay``: the overlay of the file's folder (Defaults.overlay), applied to ``objects``.
        """
        return FileEntry.of(objects, references, index_file(objects, load_findings, object_findings, references,
                                                           malformed_ids(objects) if malformed is None else malformed),
                            overlay)

    @staticmethod
    def of(objects: list[IntelObject], references: list[list[ListedReference]], index: FileIndex,
           overlay: dict[str, Any] | None) -> FileEntry:
        """The entry of a file whose index (:func:`tiops.validate.indexed.index_file`) is made already,
        loaded under its folder's ``overlay`` (Defaults.overlay)."""
        stored_objects = [_OBJECT_VALUES(obj) for obj in objects]
        signature = overlay_signature(overlay, index.ids)
        # The objects part carries the overlay signature too: the two parts live in two files,
        # written one after the other, and an index must never be paired with objects loaded
        # under other overlay lines (an interrupted save, then the overlay edited back).
        return FileEntry(_store_index(index, signature), marshal.dumps((stored_objects, references, signature)))

    @property
    def signature(self) -> str:
        """The entry's overlay signature (:func:`overlay_signature`)."""
        signature = self.stored_index[_SIGNATURE_AT] if len(self.stored_index) > _SIGNATURE_AT else ""
        return signature if type(signature) is str else ""

    def read_index(self) -> FileIndex:
        """The file's index.

        Raises ValueError, TypeError, EOFError or IndexError on data that is not an entry.
        """
        return _load_index(self.stored_index)

    @staticmethod
    def objects(stored: bytes, count: int, signature: str) -> tuple[list[IntelObject], list[list[ListedReference]]]:
        """The objects and references of the second part of an entry whose index lists ``count`` objects
        and has overlay signature ``signature``.

        Raises ValueError, TypeError, EOFError or IndexError on data that is not an entry, or not
        this index's (made under other overlay lines).
        """
        stored_objects, references, made_under = marshal.loads(stored)
        if made_under != signature:
            raise ValueError("objects part made under other overlay lines than its index")
        objects = [IntelObject(*values) for values in stored_objects]
        for obj in objects:
            if type(obj.data) is not dict:
                raise ValueError("not a stored object")
        if type(references) is not list or len(references) != len(objects) or len(objects) != count:
            raise ValueError("not a stored entry")
        return objects, references

    def unpack(self) -> Unpacked:
        """Raises ValueError, TypeError, EOFError or IndexError on data that is not an entry."""
        index = self.read_index()
        objects, references = FileEntry.objects(self.stored_objects, len(index.ids), self.signature)
        return Unpacked(objects, index.load_findings, index.object_findings, references, index.malformed_ids,
                        self.signature)


def _store_index(index: FileIndex, signature: str) -> _StoredIndex:
    """The index as an entry keeps it, its overlay signature (:func:`overlay_signature`) last."""
    return (*(None if not findings else [_store_finding(f) for f in findings]
              for findings in (index.load_findings, index.object_findings)), *index[2:], signature)


# Where a stored index keeps its overlay signature, and its ids.
_SIGNATURE_AT = len(FileIndex._fields)
_IDS_AT = FileIndex._fields.index("ids")


def _load_index(stored: Any) -> FileIndex:
    if type(stored) is not tuple or len(stored) != _SIGNATURE_AT + 1:
        raise ValueError("not a stored index")
    (load_findings, object_findings, malformed, ids, types, relationships, sightings, language_contents, targets,
     needs_objects, partner, signature) = stored
    if not (type(signature) is str and type(malformed) is list and type(ids) is list and type(types) is list
            and type(relationships) is list
            and type(sightings) is list and type(language_contents) is list
            and (targets is None or type(targets) is str)
            and type(partner) is list and (not partner or all(type(p) is tuple and len(p) == 3 for p in partner))
            ) or len(ids) != len(types):
        raise ValueError("not a stored index")
    return FileIndex([_load_finding(f) for f in load_findings] if load_findings else [],
                     [_load_finding(f) for f in object_findings] if object_findings else [],
                     malformed, ids, types, relationships, sightings, language_contents, targets, needs_objects,
                     partner)


class Unpacked(NamedTuple):
    """One entry read back: what loading and checking the file gave."""

    objects: list[IntelObject]
    load_findings: list[Finding]
    object_findings: list[Finding]
    references: list[list[ListedReference]]  # object_references of each object
    malformed_ids: list[str]  # ids of these objects that are not TYPE--UUID
    overlay_signature: str  # of the overlay lines the objects were loaded under (overlay_signature)


def _store_finding(finding: Finding) -> _StoredFinding:
    location = finding.location
    return (finding.code, int(finding.severity), finding.message, location.file, location.line, location.column,
            location.path, finding.hint, finding.stix_id)


def _load_finding(values: Any) -> Finding:
    code, severity, message, file, line, column, path, hint, stix_id = values
    if not all(type(v) is str for v in (code, message, file, hint)) or type(path) is not tuple:
        raise ValueError("not a stored finding")
    return Finding(code, Severity(severity), message, Location(file, int(line), int(column), path), hint, stix_id)


# What the stat index keeps of a file's lstat to tell it unchanged: size, mtime, ctime, and its inode
# on its device (tiops.inputs.file_identity).
StatRecord = tuple[int, int, int, int]


def _stat_record(info: os.stat_result) -> StatRecord:
    modified = info.st_mtime_ns
    changed = info.st_ctime_ns
    # The one int for both times when they are equal (a file written and never chmod'ed or renamed
    # since, as a checkout leaves every file): marshal writes an object held twice once and the
    # second time as a reference, so the stat index reads one big int fewer per such record
    # (measured: 37 -> 32 ms of reading the index of 88k files). The values are the same.
    return info.st_size, modified, modified if changed == modified else changed, file_identity(info)



class StaleEntry(Exception):
    """A cache entry whose index was read but whose objects cannot be: the build starts again without indexes."""


"""Repository-wide checks from compact per-file indexes, reading only the objects a check can report on.

A file's index (:class:`FileIndex`, kept by the build cache, tiops.buildcache) holds
what the repository-wide checks need to know about a file without its objects: the
ids and types of its objects (duplicate ids, the id -> type map references resolve
against, the ids that are not TYPE--UUID), the ends of its relationships and sightings,
the object each language-content names,
the distinct (object type, property, id) of its references, and whether any object
uses or defines an extension, and the digest of each partner object as imported. The repository-wide picture is
built from every file's index; the objects of a file are read (:meth:`IndexedFile.objects`)
only where a check may report something:

* a file with an object that uses or defines an extension (the extension checks read
  whole objects);
* a file with a finding at a property its folder's ``_defaults.yaml`` gave (the finding
  is moved to that line and made one for every object taking the default, from the objects);
* a file of partner intel with an object whose digest, kept in the index, is not the
  one its source folder's import lock holds (the edit check names what changed);
* a file holding an id that is defined more than once (every copy is read, so the
  duplicate-id check sees them in their order);
* a file whose references or relationships do not all resolve cleanly against the
  whole repository's ids (with every file's ids known, whether a reference gives a
  finding depends only on the object type, the property and the id it names);
* a file with a language-content, and every file holding an object that a language-content
  read names (the version check compares its ``object_modified`` with the object's
  ``modified``, which no index keeps);
* with named files (``tiops validate FILE``): those files, and every file holding an id
  whose findings are reported with theirs (the ids they define and the relationships
  and sightings from or to them, as :func:`tiops.validate.validate_paths` reports).

The checks then run, unchanged, over the objects read, in repository order, against
maps built from every file; the findings of the other files are their load and
per-object findings, which the index keeps. The result is the findings of
:func:`tiops.validate.validate_repo` over the whole repository (tests/buildcache/test_buildcache.py
compares them over random edits).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any, NamedTuple, Protocol

from tiops.findings import Finding
from tiops.load import IntelObject
from tiops.stix import BUILTIN_OBJECTS, BUILTIN_REFERENCE_TYPES, ID_RE
from tiops.validate.language import LANGUAGE_CONTENT
from tiops.validate.partner import PartnerFolder, is_partner_object, object_digest
from tiops.validate.reference_index import ListedReference, object_references
from tiops.validate.references import _ReferenceChecker
from tiops.validate.relationships import RelationshipTable

EXTENSION_DEFINITION = "extension-definition"


class FileIndex(NamedTuple):
    """What the repository-wide checks need of one file's objects, and the findings already made for them."""

    load_findings: list[Finding]
    object_findings: list[Finding]  # check_object of each object, in object order
    malformed_ids: list[str]  # ids of these objects that are not TYPE--UUID
    ids: list[str]  # IntelObject.id of each object, in order
    types: list[str | None]  # each object's type, None where its id is not a string (object_types skips it)
    relationships: list[tuple[int, Any, Any, Any]]  # (position, source_ref, target_ref, relationship_type)
    sightings: list[tuple[int, Any]]  # (position, sighting_of_ref)
    language_contents: list[tuple[int, Any]]  # (position, object_ref) of each language-content
    # The distinct (object type, property, id) of its references, each NUL-joined, sorted and
    # joined by newlines: files of one folder mostly share the very same text, judged once.
    # None when a part holds NUL or a newline itself (the file is then always read).
    reference_targets: str | None
    # An extension is used or defined (the extension checks read the objects), or a finding lies at a
    # property the folder's defaults gave (it is moved to the _defaults.yaml line, from the object).
    needs_objects: bool
    # (folder, id, digest of the content as imported) of each partner object (tiops.validate.partner):
    # the edit check compares these with the import lock and reads only the objects that differ.
    partner: list[tuple[str, str, str]]


def index_file(objects: Sequence[IntelObject], load_findings: list[Finding], object_findings: list[Finding],
               references: Sequence[list[ListedReference]], malformed: list[str]) -> FileIndex:
    """The index of one file, from what loading and the per-object checks gave for it."""
    if len(references) != len(objects):
        raise ValueError("a reference list per object is needed")
    listed = iter(references)
    return _index(objects, load_findings, object_findings, lambda _obj: next(listed), list(malformed))[1]


def index_objects(objects: Sequence[IntelObject], load_findings: list[Finding],
                  object_findings: list[Finding]) -> tuple[list[list[ListedReference]], FileIndex]:
    """Each object's references (tiops.validate.reference_index.object_references) and the file's index
    (:func:`index_file`, with its malformed ids), in one pass over the objects of a file just loaded.

    The same as listing the references, taking the malformed ids and calling
    :func:`index_file` (tests/validate/test_indexed.py compares them); a first build makes
    this for every file of the repository, so each object is visited once.
    """
    return _index(objects, load_findings, object_findings, object_references, None)


def _index(objects: Sequence[IntelObject], load_findings: list[Finding], object_findings: list[Finding],
           references_of: Callable[[IntelObject], list[ListedReference]],
           malformed_given: list[str] | None) -> tuple[list[list[ListedReference]], FileIndex]:
    """What both index functions make; the malformed ids are found here unless given."""
    references: list[list[ListedReference]] = []
    malformed: list[str] = [] if malformed_given is None else malformed_given
    ids: list[str] = []
    types: list[str | None] = []
    relationships: list[tuple[int, Any, Any, Any]] = []
    sightings: list[tuple[int, Any]] = []
    language_contents: list[tuple[int, Any]] = []
    targets: set[tuple[str, str, str]] = set()
    needs_objects = False
    partner: list[tuple[str, str, str]] = []
    match = ID_RE.match if malformed_given is None else None
    for position, obj in enumerate(objects):
        data = obj.data
        listed = references_of(obj)
        references.append(listed)
        stix_type = data["type"]
        identifier = data.get("id")
        if type(identifier) is str:
            ids.append(identifier)
            types.append(stix_type)
            if match is not None and match(identifier) is None:
                malformed.append(identifier)
        else:
            ids.append(obj.id)
            types.append(None)
        if stix_type == "relationship":
            relationships.append((position, data.get("source_ref"), data.get("target_ref"),
                                  data.get("relationship_type")))
        elif stix_type == "sighting":
            sightings.append((position, data.get("sighting_of_ref")))
        elif stix_type == LANGUAGE_CONTENT:
            language_contents.append((position, data.get("object_ref")))
        if "extensions" in data or stix_type == EXTENSION_DEFINITION:
            needs_objects = True
        if is_partner_object(obj):
            partner.append((obj.imported_folder or "", obj.id, object_digest(obj.imported_data or {})))
        for prop, value, _path in listed:
            if type(value) is str:
                targets.add((stix_type, prop, value))
    if not needs_objects and (load_findings or object_findings):
        needs_objects = _at_a_default(objects, load_findings, object_findings)
    return references, FileIndex(load_findings, object_findings, malformed, ids, types, relationships, sightings,
                                 language_contents, _joined_targets(targets), needs_objects, partner)


def _at_a_default(objects: Sequence[IntelObject], *found: list[Finding]) -> bool:
    """Whether a finding lies at a property one of ``objects`` took from its folder's ``_defaults.yaml``.

    Such a finding is moved to that ``_defaults.yaml`` line and made one for all the objects
    taking the default (tiops.validate.at_defaults.at_default_places), which needs the objects
    themselves: an index keeps the finding where the check made it, so a file whose objects
    are not read would leave it at each object's file. Matched as at_default_places matches it.
    """
    defaulted = {obj.id: obj for obj in objects if obj.defaulted_properties}
    if not defaulted:
        return False
    for finding in chain(*found):
        obj = defaulted.get(finding.stix_id) if finding.stix_id is not None else None
        if obj is None:
            continue
        path, depth = finding.location.path, len(obj.path)
        if len(path) > depth and path[:depth] == obj.path and path[depth] in obj.defaulted_properties:
            return True
    return False


def _joined_targets(targets: set[tuple[str, str, str]]) -> str | None:
    """FileIndex.reference_targets of a file's distinct references; None when a part holds NUL or a newline."""
    joined = "\n".join(sorted("\0".join(target) for target in targets))
    if joined and (joined.count("\0") != 2 * len(targets) or joined.count("\n") != len(targets) - 1):
        return None
    return joined


class IndexedFile(Protocol):
    """One object file of a repository: its index always, its objects when asked for.

    One that stands for several files (a folder taken whole, tiops.buildcache.folders.FolderEntry)
    may also offer ``objects_holding(ids)``: the objects and references of those of its files that
    hold any of ``ids``, each file whole (tiops.validate.validate_indexed reads a named file's
    neighbours so)."""

    relative: str
    index: FileIndex

    def objects(self) -> tuple[list[IntelObject], Sequence[list[ListedReference] | None]]:
        """The file's objects and each one's references (read once, then kept)."""
        ...


def involved_ids(files: Sequence[IndexedFile], named: set[str], gone: Iterable[str] = ()) -> set[str]:
    """The ids whose findings are reported with the named files' (tiops.validate._involved_ids, from indexes).

    ``gone``: ids the named files defined at HEAD that no file defines now: what still points at them
    is reported with the named files too."""
    own = {identifier for file in files if file.relative in named for identifier in file.index.ids}
    own.update(gone)
    involved = set(own)
    for file in files:
        ids = file.index.ids
        for position, source, target, _ in file.index.relationships:
            if _is_in(source, own) or _is_in(target, own):
                involved.add(ids[position])
        for position, seen in file.index.sightings:
            if _is_in(seen, own):
                involved.add(ids[position])
        for position, translated in file.index.language_contents:
            if _is_in(translated, own):
                involved.add(ids[position])
    return involved


def with_translated(files: Sequence[IndexedFile], needed: list[bool]) -> list[bool]:
    """``needed`` (whether each file's objects are read) with the files holding an object that a
    language-content of a needed file names: the version check (tiops.validate.language) compares
    the two, and an index keeps no object's ``modified``."""
    translated = translated_ids(files, needed)
    if not translated:
        return needed
    return [need or not translated.isdisjoint(file.index.ids) for need, file in zip(needed, files, strict=True)]


def translated_ids(files: Sequence[IndexedFile], needed: list[bool]) -> set[str]:
    """The ids the language-contents of the ``needed`` files name (:func:`with_translated`)."""
    return {reference for need, file in zip(needed, files, strict=True) if need
            for _, reference in file.index.language_contents if type(reference) is str}


def _is_in(value: Any, ids: set[str]) -> bool:
    return type(value) is str and value in ids


def repository_maps(files: Sequence[IndexedFile]) -> tuple[dict[str, str], set[str], set[str]]:
    """Over every file: id -> type (tiops.validate.references.object_types), the ids that are not
    TYPE--UUID, and the ids defined more than once."""
    # Every file's ids and types as one sequence each, in repository order: a later definition's
    # type wins as in object_types, and an id without a type (None) names no type.
    ids = list(chain.from_iterable(file.index.ids for file in files))
    kinds = list(chain.from_iterable(file.index.types for file in files))
    if len(ids) != len(kinds):
        raise ValueError("an index with ids and types of different lengths")
    if None in kinds:
        types = {identifier: kind for identifier, kind in zip(ids, kinds, strict=True) if kind is not None}
        distinct = len(set(ids))
    else:
        types = dict(zip(ids, kinds, strict=True))  # type: ignore[arg-type]
        distinct = len(types)  # every id is a key: no second set of 100k ids to build
    duplicated: set[str] = set()
    if distinct != len(ids):
        duplicated = {identifier for identifier, count in Counter(ids).items() if count > 1}
    malformed: set[str] = set()
    for file in files:
        if file.index.malformed_ids:
            malformed.update(file.index.malformed_ids)
    return types, malformed, duplicated


def unclean_files(files: Sequence[IndexedFile], types: dict[str, str], malformed: set[str],
                  table: RelationshipTable) -> list[bool]:
    """For each file, whether the reference or relationship check may report on one of its objects.

    With every id of the repository known, a reference's findings depend only on the
    referring object's type, the property and the id (tiops.validate.references), and a
    relationship's on its two ends' types and its relationship type
    (tiops.validate.relationships): each such combination is judged once, by the checks'
    own code, and a file is clean when all of its are.
    """
    references = _ReferenceVerdicts(types, malformed)
    by_text: dict[str, bool] = {"": True}
    relationships: dict[tuple[str, str, str], bool] = {}
    unclean: list[bool] = []
    for file in files:
        index = file.index
        targets = index.reference_targets
        if targets is None:
            unclean.append(True)
            continue
        clean = by_text.get(targets)
        if clean is None:
            clean = by_text[targets] = all(references.clean(tuple(target.split("\0")))  # type: ignore[arg-type]
                                           for target in targets.split("\n"))
        dirty = not clean
        if not dirty:
            for _, source, target, relationship_type in index.relationships:
                source_type = types.get(str(source))
                target_type = types.get(str(target))
                if source_type is None or target_type is None or not isinstance(relationship_type, str):
                    continue  # check_relationships leaves these to other checks
                triple = (source_type, relationship_type, target_type)
                allowed = relationships.get(triple)
                if allowed is None:
                    allowed = relationships[triple] = table.allows(*triple)
                if not allowed:
                    dirty = True
                    break
        unclean.append(dirty)
    return unclean


class _ReferenceVerdicts:
    """Whether a reference (object type, property, id) resolves without a finding, judged by check_references' code."""

    def __init__(self, types: dict[str, str], malformed: set[str]) -> None:
        resolvable = dict(BUILTIN_REFERENCE_TYPES)
        resolvable.update(types)
        # As check_listed_references: the built-in objects' malformed ids with the repository's.
        every_malformed = malformed | {identifier for identifier in BUILTIN_OBJECTS if ID_RE.match(identifier) is None}
        self._checker = _ReferenceChecker(resolvable, every_malformed, False)
        self._resolvable = resolvable
        self._malformed = every_malformed
        self._verdicts: dict[tuple[str, str, str], bool] = {}
        self._by_type: dict[tuple[str, str, str, str], bool] = {}

    def clean(self, target: tuple[str, str, str]) -> bool:
        stix_type, prop, value = target
        target_type = self._resolvable.get(value)
        if target_type is not None and value not in self._malformed:
            # An id that resolves and is well formed: check_references' verdict depends on the referring
            # type, the property, the type the id resolves to and the type its prefix names, not on the id
            # itself. Keyed by those, each is judged once, not once per id (real intel references
            # thousands of distinct ids: 12k files of ATT&CK took 0.09 s a build).
            key = (stix_type, prop, target_type, value.partition("--")[0])
            verdict = self._by_type.get(key)
            if verdict is None:
                verdict = self._by_type[key] = self._judged(stix_type, prop, value)
            return verdict
        verdict = self._verdicts.get(target)
        if verdict is None:
            verdict = self._verdicts[target] = self._judged(stix_type, prop, value)
        return verdict

    def _judged(self, stix_type: str, prop: str, value: str) -> bool:
        """Whether check_references' own code finds nothing to report on this reference."""
        findings = self._checker.findings
        before = len(findings)
        self._checker._resolve(_PROBE, stix_type, prop, value, (prop,))
        verdict = len(findings) == before
        del findings[before:]
        return verdict


# Stands for the referring object while a verdict is made; the finding it would carry is dropped.
_PROBE = IntelObject({"type": "", "id": ""}, "")


def partner_folders(files: Sequence[IndexedFile]) -> dict[str, PartnerFolder]:
    """Each imported source folder's partner objects, by the digests the files' indexes keep
    (tiops.validate.partner.check_partner_objects reads only the files where one differs)."""
    by_folder: dict[str, list[tuple[IndexedFile, str, str]]] = {}
    for file in files:
        for folder, object_id, digest in file.index.partner:
            by_folder.setdefault(folder, []).append((file, object_id, digest))

    def reader(held: list[tuple[IndexedFile, str, str]]) -> Callable[[dict[str, Any]], list[IntelObject]]:
        def objects_not_in(lock: dict[str, Any]) -> list[IntelObject]:
            differing: dict[int, IndexedFile] = {}
            for file, object_id, digest in held:
                if lock.get(object_id) != digest:
                    differing.setdefault(id(file), file)
            return [obj for file in differing.values() for obj in file.objects()[0] if is_partner_object(obj)]
        return objects_not_in

    return {folder: PartnerFolder([object_id for _, object_id, _ in held], reader(held))
            for folder, held in by_folder.items()}

"""Shared by every importer: check candidates, decide create/update/unchanged, write files.

Layout (documented in docs/import.md): ``intel/<source-slug>/<type>/<uuid>.yaml``, one
object per file, so a file name never changes when an object gets a new version and
review diffs show one object at a time. The folder's ``_defaults.yaml`` carries the
source and ``imported: true``; ``_imported.json`` records a digest of each object as
imported, which is how validation tells a partner object that was edited by hand.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from tiops.config import load_config, usable_config
from tiops.enrich.fields import ENRICHMENT_EXTENSION_ID
from tiops.errors import TiopsError, UsageError
from tiops.forkwork import remove_abandoned
from tiops.importers import Candidate, ParsedInput, Rejection, Repair, importer_for
from tiops.importers.dependents import imported_ids, read_lock, reference_reasons, reject_dependents
from tiops.importers.repairs import official_marking, repair, shift_timestamp
from tiops.inputs import InputProblem, read_input
from tiops.limits import MAX_FILE_BYTES
from tiops.load import DEFAULTS_FILE, YAML_SUFFIXES, IntelObject, load_repo
from tiops.lookup import object_name
from tiops.outputs import replace_whole, write_whole
from tiops.progress import Progress, no_progress
from tiops.render.csvcells import csv_text
from tiops.stix import SOURCE_EXTENSION_ID, canonical_json, timestamp_key
from tiops.validate.objects import check_object
from tiops.validate.partner import field_digests
from tiops.yamlio import YamlProblem, dump_yaml, parse_yaml

IMPORT_MODES = ("valid-only", "all-or-nothing")
LOCK_FILE = "_imported.json"
_LEADING_KEYS = ("type", "spec_version", "id", "created", "modified")


@dataclass
class ImportReport:
    """What an import did (or would have done): the figures of Sentinel's "Manage file imports"."""

    source: str
    folder: str
    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    older_ignored: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)
    written: bool = True
    #: Objects that would have been created or updated, not written because something was rejected (all-or-nothing).
    not_written: int = 0

    @property
    def failed(self) -> int:
        return len(self.rejections)

    @property
    def rejected(self) -> int:
        """Rows and objects rejected for a defect of their own."""
        return sum(rejection.rows for rejection in self.rejections if rejection.depends_on is None)

    @property
    def rejected_as_dependent(self) -> int:
        """Objects rejected only because they refer to a rejected or missing object."""
        return sum(1 for rejection in self.rejections if rejection.depends_on is not None)

    @property
    def repaired(self) -> int:
        """Objects written after at least one repair."""
        return len({(repair.position, repair.stix_id) for repair in self.repairs})

    def counts(self) -> list[tuple[str, int]]:
        """The summary figures in display order; every row or object of the input is in one of them."""
        return [("total", self.total), ("created", self.created), ("updated", self.updated),
                ("unchanged", self.unchanged), ("repaired", self.repaired), ("older ignored", self.older_ignored),
                ("rejected", self.rejected), ("rejected as dependent", self.rejected_as_dependent),
                *([("not written (all-or-nothing)", self.not_written)] if self.not_written else [])]


def import_file(root: Path, path: Path, fmt: str, source: str, *, mode: str = "valid-only",
                strict: bool = False, progress: Progress = no_progress) -> ImportReport:
    """Import ``path`` (format ``fmt``) into the repository at ``root`` under ``source``.

    ``strict``: apply no repair (tiops.importers.repairs); objects that need one are rejected.
    """
    parse = importer_for(fmt)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    return import_parsed(root, parse(raw, source), source, mode=mode, strict=strict, progress=progress, whole=True)


def source_folder(root: Path, source: str) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")
    if not slug:
        raise UsageError(f"the source name {source!r} has no ASCII letters or digits (a-z, 0-9) to name its folder")
    if len(slug) > MAX_SOURCE_FOLDER:  # a file system refuses names of more than 255 bytes
        raise UsageError(f"the source name {source!r} gives a folder name of {len(slug)} characters; at most "
                         f"{MAX_SOURCE_FOLDER}", hint="Choose a shorter --source name.")
    folder = usable_config(root, "imported").intel_path / slug
    held = _lock_source(folder)
    if held is None and _holds_own_intel(folder):
        # intel/identities/ of 'tiops init', or any folder of the team's own: imported into, its objects
        # became partner objects "not imported" (TI705) and the repository stopped validating.
        raise UsageError(f"the source name {source!r} names the folder {_relative(folder, root)}, which holds the "
                         "repository's own intel, not an imported source's",
                         hint="Choose a --source name that gives a folder of its own.")
    if held is not None and held != source:
        # Two names, one folder ("Abuse Feed" and "abuse-feed"): the second import took the first's
        # objects over as its own, source system and all, without a word.
        raise UsageError(f"the source name {source!r} names the folder {_relative(folder, root)}, which holds "
                         f"source {held!r}",
                         hint=f"Import with --source {held!r} to update that source, or choose a name that gives "
                              "another folder.")
    return folder


#: The longest folder name a source gets (its slug): file systems allow 255 bytes.
MAX_SOURCE_FOLDER = 100


def _holds_own_intel(folder: Path) -> bool:
    """Whether ``folder`` holds intel files but is no imported source's (its _defaults.yaml does not say
    ``imported: true``, which an interrupted first import leaves: importing again finishes it)."""
    if not folder.is_dir():
        return False
    try:
        defaults = parse_yaml(read_input(os.fspath(folder / DEFAULTS_FILE)).decode("utf-8"))
    except (InputProblem, FileNotFoundError, UnicodeDecodeError, YamlProblem, OSError):
        defaults = None
    if isinstance(defaults, dict) and defaults.get("imported") is True:
        return False
    # What the load reads as intel: YAML files, none under a dot name (intel/.drafts/ holds no intel).
    return any(path.name.endswith(YAML_SUFFIXES) and path.name != DEFAULTS_FILE
               and not any(part.startswith(".") for part in path.relative_to(folder).parts)
               for path in folder.rglob("*"))


def import_parsed(root: Path, parsed: ParsedInput, source: str, *, mode: str = "valid-only",
                  strict: bool = False, progress: Progress = no_progress, whole: bool = False) -> ImportReport:
    """Import what ``parsed`` holds. ``whole``: the input is the source's whole feed (a file, not a
    TAXII pull of what was added since the last one), so what it imported before and no longer
    sends is said: kept, as nothing is deleted without a word, but a withdrawal to review."""
    if mode not in IMPORT_MODES:
        raise UsageError(f"unknown import mode {mode!r}", hint=f"Use one of: {', '.join(IMPORT_MODES)}.")
    folder = source_folder(root, source)
    report = ImportReport(source=source, folder=_relative(folder, root), total=parsed.total,
                          rejections=list(parsed.rejections), notes=list(parsed.notes))
    repairs: dict[tuple[str, str], list[str]] = {}
    candidates = _without_compiles_own(_repaired(parsed.candidates, report, repairs, strict), report)
    defective: dict[int, dict[str, Any]] = {}
    accepted = _check(candidates, report, progress, repairs, strict, defective)
    config = load_config(root)[0]
    repository = _RepositoryIds(root, config.intel_path)
    _keep_the_teams_own(accepted, repository, folder, report)
    rejected_ids = {r.stix_id: r.reasons[0] for r in report.rejections if r.stix_id and r.stix_id not in accepted}
    report.rejections.extend(reject_dependents(accepted, rejected_ids, repository.known))
    _add_reference_reasons(report, defective, set(accepted), repository)
    if "attack" not in config.relationship_tables and any(_is_attack(c.data) for c in accepted.values()):
        report.notes.append("this is MITRE ATT&CK data: add 'relationship_tables: [attack]' to tiops.yaml to allow its "
                            "relationship types (subtechnique-of, detects, revoked-by, ...); until then "
                            "'tiops validate' warns about them (docs/format.md)")
    report.repairs = [Repair(c.position, identifier, description, object_name(c.data))
                      for identifier, c in accepted.items() for description in repairs.get((c.position, identifier), ())]
    writes: dict[Path, str] = {}
    imported_digests = _locked_digests(folder)
    if whole:
        sent = {str(c.data.get("id")) for c in parsed.candidates} | {r.stix_id for r in parsed.rejections if r.stix_id}
        unread = sum(r.rows for r in parsed.rejections if not r.stix_id)  # rows or items whose id is unknown
        withdrawn = len(set(imported_digests) - sent)
        if withdrawn and (unread or not sent):
            # Some of the input could not be read (an empty or unreadable file, rows without an id): the
            # objects may be among those, so nothing here says the source withdrew them.
            why = f"{unread} row(s) or item(s) could not be read" if unread else "it holds no object that could be read"
            report.notes.append(f"{withdrawn} object(s) imported earlier from {source!r} are not among what could be "
                                f"read of this input ({why}): kept as they are")
        elif withdrawn:
            report.notes.append(
                f"{withdrawn} object(s) imported earlier from {source!r} are not in this input: kept as they are; if "
                f"the source withdrew them, revoke them in {_relative(folder, root)}/_overlay.yaml (revoked: true)")
    restored = 0
    # Objects another source brought first stay one object, in that source's folder (its owner).
    shared: dict[str, Path] = {}
    if repository.imported:
        for identifier in accepted:
            owner = repository.imported.get(identifier)
            if owner is not None and Path(owner) != folder:
                shared[identifier] = Path(owner)
    updated_elsewhere: dict[Path, dict[str, Candidate]] = {}
    files = _Files(root)
    refused_before = len(report.rejections)  # what planning rejects against the files follows
    for done, (identifier, candidate) in enumerate(list(accepted.items()), 1):
        owner_folder = shared.get(identifier)
        if not candidate.versioned:
            candidate = _versioned_row(candidate, owner_folder or folder, files,
                                       None if owner_folder is not None else imported_digests.get(identifier))
        # In the order written, once: planning, the hand-edit check and the lock file all compare it.
        candidate = accepted[identifier] = Candidate(candidate.position, ordered(candidate.data), candidate.versioned,
                                                     candidate.repairs)
        if owner_folder is not None:
            before, older = report.updated, report.older_ignored
            _plan_one(candidate, owner_folder, files, report, writes)
            if report.updated > before:
                updated_elsewhere.setdefault(owner_folder, {})[identifier] = candidate
            if report.older_ignored > older:  # the owner holds a later version: nothing to do for this source
                report.older_ignored, report.unchanged = older, report.unchanged + 1
        elif _restore_hand_edit(candidate, folder, files, report, writes, imported_digests):
            restored += 1
        else:
            _plan_one(candidate, folder, files, report, writes)
        if done % 1000 == 0 or done == len(accepted):
            progress("import", done, len(accepted))
    if restored:
        report.notes.append(f"restored {restored} hand-edited partner file(s) to the version imported "
                            "(local changes belong in _overlay.yaml)")
    # An object this source sent that was rejected against its owner's file is not one it shares:
    # 'tiops explain' would say it was "also sent" by this source.
    refused = {r.stix_id for r in report.rejections[refused_before:] if r.stix_id}
    sent_elsewhere = set(shared)
    shared = {identifier: owner for identifier, owner in shared.items() if identifier not in refused}
    if mode == "all-or-nothing" and report.rejections:
        report.written = False
        report.not_written = report.created + report.updated
        report.created = report.updated = 0
        report.changed_files = []
        return report
    if shared:
        report.notes.append(f"{len(shared)} object(s) already imported from another source stay where they are "
                            "(their owner's folder): an identical or older version is unchanged, a newer one updates it")
    # Bookkeeping only with something imported: a failed import leaves no folder behind.
    if writes or (accepted and not (folder / DEFAULTS_FILE).exists()) or shared:
        own = {identifier: c for identifier, c in accepted.items()
               if identifier not in sent_elsewhere and identifier not in refused}
        writes.update(_bookkeeping(folder, source, own, files, {i: _relative(f, root) for i, f in shared.items()}))
    for owner_folder, owned in updated_elsewhere.items():
        owner_source = _lock_source(owner_folder) or source
        writes.update(_bookkeeping(owner_folder, owner_source, owned, files))
    for path, text in writes.items():
        _refuse_special(path, files)
        if path.name == LOCK_FILE and len(text) > MAX_FILE_BYTES:  # ASCII JSON: characters are bytes
            # Every command reads it with the file size limit: written, the repository would stop validating.
            raise UsageError(f"this import would make {_relative(path, root)} {len(text):,} bytes, more than the "
                             f"file size limit of {MAX_FILE_BYTES:,} bytes: nothing was written",
                             hint="Split the input over several sources (--source), a part each.")
    made: set[Path] = set()
    # The objects first, the folder's record of them (_imported.json, _defaults.yaml) last: an import
    # killed part way leaves a record that lists only what it had written before. But a new folder's
    # _defaults.yaml (imported: true) first: without it, the objects a first import killed part way
    # had written read as the team's own intel, and validated and compiled as such; with it, they
    # are partner intel without a lock, which validation reports (TI705) until the import is run again.
    def order(item: tuple[Path, str]) -> tuple[int, Path]:
        path = item[0]
        if path.name == DEFAULTS_FILE and not path.exists():
            return 0, path
        return 1 + path.name.startswith("_"), path

    for path, text in sorted(writes.items(), key=order):
        try:
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                remove_abandoned(path.parent, ".", ".importing")  # what an import killed while writing left
                made.add(path.parent)
            _write_file(path, text)
        except OSError as error:
            # Each file is whole or absent, and _imported.json goes last: a rerun converges.
            raise TiopsError(f"cannot write {_relative(path, root)}: {error.strerror or error}",
                             hint="Check that the intel folder is writable and the disk has room, then run the "
                                  "import again.") from None
    report.rejections.sort(key=_position_key)
    return report


def _without_compiles_own(candidates: list[Candidate], report: ImportReport) -> list[Candidate]:
    """Candidates without the source-system and enrichment extensions a tiops compile adds.

    A bundle another tiops repository compiled carries them; this repository's compile sets
    them again from its own source and lock, so they are not kept in the partner's files,
    where they would be replaced without a word. The run says how many objects had them.
    """
    result: list[Candidate] = []
    stripped = 0
    for candidate in candidates:
        data = _as_authored(candidate.data)
        if data is not candidate.data:
            stripped += 1
            candidate = Candidate(candidate.position, data, candidate.versioned, candidate.repairs)
        result.append(candidate)
    if stripped:
        report.notes.append(f"{stripped} object(s) carried the source-system or enrichment extension another tiops "
                            "compile adds; they are not imported: this repository's compile sets them from its "
                            "own source and enrichment lock")
    return result


def _repaired(candidates: list[Candidate], report: ImportReport, repairs: dict[tuple[str, str], list[str]],
              strict: bool) -> list[Candidate]:
    """Candidates with the repairs that apply to valid objects too (reserved TLP ids, the parser's own).

    Under --strict an object that needs one is rejected instead.
    """
    result: list[Candidate] = []
    for candidate in candidates:
        done = list(candidate.repairs)
        data = candidate.data
        official = official_marking(data)
        if official is not None:
            data = official[0]
            done.append(official[1])
        if not done:
            result.append(candidate)
        elif strict:
            report.rejections.append(Rejection(
                candidate.position, tuple(f"needs a repair (--strict applies none): {what}" for what in done),
                str(candidate.data.get("id")), object_name(candidate.data)))
        else:
            repairs[(candidate.position, str(data.get("id")))] = done
            result.append(Candidate(candidate.position, data, candidate.versioned))
    return result


def _keep_the_teams_own(accepted: dict[str, Candidate], repository: _RepositoryIds, folder: Path,
                        report: ImportReport) -> None:
    """An id the team's own intel defines stays the team's: written again it would be a duplicate (TI302).

    The same content is counted unchanged (a bundle the team published, imported back); other
    content is rejected, naming the file that defines it.
    """
    # A CSV row's id is a UUIDv5 of this source and the observable: never one the team wrote, and
    # finding the team's ids costs a read of the repository's file indexes.
    wanted = {identifier for identifier, candidate in accepted.items() if candidate.versioned}
    if not wanted:
        return
    own = repository.authored_outside(folder, wanted)
    for identifier in [i for i in accepted if i in own]:
        candidate = accepted.pop(identifier)
        data, file = own[identifier]
        if candidate.data == data:  # compile's own extensions are gone already (_without_compiles_own)
            report.unchanged += 1
            continue
        report.rejections.append(Rejection(candidate.position, (
            f"the repository's own intel defines {identifier} in {file}: an import does not replace the team's "
            "objects (give one of the two another id, or edit the team's file)",), identifier, object_name(candidate.data)))


def _as_authored(data: dict[str, Any]) -> dict[str, Any]:
    """An object of a bundle tiops compiled without what compile adds: its source and enrichment extensions."""
    extensions = data.get("extensions")
    if not isinstance(extensions, dict) or (SOURCE_EXTENSION_ID not in extensions
                                            and ENRICHMENT_EXTENSION_ID not in extensions):
        return data
    kept = {k: v for k, v in extensions.items() if k not in (SOURCE_EXTENSION_ID, ENRICHMENT_EXTENSION_ID)}
    stripped = {k: v for k, v in data.items() if k != "extensions"}
    return {**stripped, "extensions": kept} if kept else stripped


class _RepositoryIds:
    """Which ids the repository already holds: imported folders from their lock files, the rest read on demand."""

    def __init__(self, root: Path, intel: Path) -> None:
        self.root = root
        self.intel = intel
        self._imported: dict[str, str] | None = None
        # Every id the repository's files define -> its file: a loaded object, or a file of the
        # build cache whose index lists the id (its objects are read only when asked for).
        self._holders: dict[str, Any] | None = None

    @property
    def imported(self) -> dict[str, str]:
        if self._imported is None:
            self._imported = imported_ids(str(self.intel)) if self.intel.is_dir() else {}
        return self._imported

    def _where_defined(self) -> dict[str, Any]:
        """Id -> an object or a cached file, read once. With a build cache (every command that reads
        the intel keeps one) only the files' indexes are read: ids without their objects."""
        if self._holders is None:
            from tiops.buildcache import has_entries, load_repo_indexed

            holders: dict[str, Any] = {}
            if has_entries(self.root):
                for file in load_repo_indexed(self.root).files:  # a folder whole holds its ids
                    for identifier in file.index.ids:
                        holders.setdefault(identifier, file)
            else:
                for obj in load_repo(self.root).objects:
                    holders.setdefault(obj.id, obj)
            self._holders = holders
        return self._holders

    def authored_outside(self, folder: Path, wanted: Iterable[str]) -> dict[str, tuple[dict[str, Any], str]]:
        """Of the ``wanted`` ids, those the team's own files define (no imported folder's): data and file."""
        if not self.intel.is_dir():
            return {}
        inside = os.path.relpath(folder, self.root).replace(os.sep, "/") + "/"
        found: dict[str, tuple[dict[str, Any], str]] = {}
        defined = self._where_defined()
        for identifier in wanted:
            holder = defined.get(identifier)
            if holder is None or identifier in self.imported:
                continue
            objects = [holder] if isinstance(holder, IntelObject) else holder.objects()[0]
            for obj in objects:
                if obj.id == identifier and not obj.file.startswith(inside):
                    found[identifier] = (obj.data, obj.file)
                    break
        return found

    def known(self, ids: set[str]) -> set[str]:
        found = {identifier for identifier in ids if identifier in self.imported}
        if len(found) < len(ids) and self.intel.is_dir():
            defined = self._where_defined()  # only when something is still missing
            found.update(identifier for identifier in ids if identifier in defined)
        return found


class _Files:
    """The files in the folders an import writes to, each folder listed once, each file read once.

    An import reads everything before it writes anything, so a listing stays true for
    the whole import; one ``scandir`` per folder replaces several ``stat`` calls per object.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._listings: dict[str, dict[str, os.DirEntry[str]]] = {}
        self._read: dict[Path, dict[str, Any] | None] = {}
        self._relative: dict[Path, str] = {}

    def entry(self, path: Path) -> os.DirEntry[str] | None:
        parent, name = os.path.split(path)
        listing = self._listings.get(parent)
        if listing is None:
            try:
                with os.scandir(parent) as entries:
                    listing = {entry.name: entry for entry in entries}
            except OSError:  # no such folder (yet), or not a folder: nothing in it
                listing = {}
            self._listings[parent] = listing
        return listing.get(name)

    def is_file(self, path: Path) -> bool:
        entry = self.entry(path)
        return entry is not None and entry.is_file()  # follows a symlink, as Path.is_file does

    def existing(self, path: Path) -> dict[str, Any] | None:
        """The object already in ``path`` (``{}`` when unreadable), or None when there is no file."""
        if path not in self._read:
            self._read[path] = _read_existing(path) if self.is_file(path) else None
        return self._read[path]

    def relative(self, folder: Path, *parts: str) -> str:
        """``folder / parts`` relative to the repository, as reports show it."""
        base = self._relative.get(folder)
        if base is None:
            base = self._relative[folder] = _relative(folder, self.root)
        return "/".join((base, *parts))


def _write_file(path: Path, text: str) -> None:
    """``text`` as UTF-8 into ``path``, whole or not at all (tiops.outputs.replace_whole).

    An import killed while writing left a file of 0 bytes, which the next import took for a hand
    edit to restore. The name beside starts with a dot, which loading skips; one left by a killed
    import is removed by the next (tiops.forkwork.remove_abandoned, by its ``.importing`` ending).
    """
    replace_whole(path, text.encode("utf-8"), tag="importing")


def _refuse_special(path: Path, files: _Files) -> None:
    """Import writes regular files only: never through a symlink (it could lead out of the
    repository) nor into a pipe (the write would wait for a reader for ever)."""
    entry = files.entry(path)
    if entry is not None and (entry.is_symlink() or not entry.is_file()):
        raise UsageError(f"{_relative(path, files.root)} is a symlink or not a regular file; tiops import does not write through it",
                         hint="Remove it (tiops import writes the file itself) and import again.")


def _add_reference_reasons(report: ImportReport, defective: dict[int, dict[str, Any]], present: set[str],
                           repository: _RepositoryIds) -> None:
    """The reference problems of objects rejected for their own defects, added to their reasons."""
    if not defective:
        return
    rejected = {r.stix_id: r.reasons[0] for r in report.rejections if r.stix_id and r.stix_id not in present}
    positions = sorted(defective)
    extra = reference_reasons([defective[at] for at in positions], present, rejected, repository.known)
    for at, reasons in zip(positions, extra, strict=True):
        if reasons:
            rejection = report.rejections[at]
            report.rejections[at] = replace(rejection, reasons=(*rejection.reasons, *reasons))


def _check(candidates: list[Candidate], report: ImportReport, progress: Progress, repairs: dict[tuple[str, str], list[str]],
           strict: bool, defective: dict[int, dict[str, Any]]) -> dict[str, Candidate]:
    """Candidates that are valid STIX 2.1 (after the documented repairs), one per id (the latest version wins).

    ``defective`` gets, by its place in ``report.rejections``, the data of each object rejected for
    defects of its own, whose references are checked once every object has been judged.
    """
    accepted: dict[str, Candidate] = {}
    for done, candidate in enumerate(candidates, 1):
        obj = IntelObject(data=candidate.data, file=candidate.position)
        errors = _errors(obj)
        if errors:
            repaired, what = repair(candidate.data)
            if what and strict:
                errors += [f"needs a repair (--strict applies none): {description}" for description in what]
            elif what:
                fixed = IntelObject(data=repaired, file=candidate.position)
                if not _errors(fixed):
                    errors = []
                    candidate = Candidate(candidate.position, repaired, candidate.versioned)
                    repairs.setdefault((candidate.position, fixed.id), []).extend(what)
                    obj = fixed
        if errors:
            if isinstance(obj.data, dict):
                defective[len(report.rejections)] = obj.data
            report.rejections.append(Rejection(candidate.position, tuple(errors), obj.id, object_name(obj.data)))
        else:
            earlier = accepted.get(obj.id)
            conflict = None if earlier is None else _conflict(candidate, earlier)
            if conflict is not None:
                report.rejections.append(Rejection(candidate.position, (conflict,), obj.id))
            elif earlier is None or _is_newer(candidate.data, earlier.data):
                if earlier is not None:
                    report.older_ignored += 1
                accepted[obj.id] = candidate
            else:
                report.older_ignored += 1
        if done % 1000 == 0 or done == len(candidates):
            progress("check", done, len(candidates))
    return accepted


def _versioned_row(candidate: Candidate, folder: Path, files: _Files, imported_digest: str | None = None) -> Candidate:
    """A row without versions of its own (CSV) as a new STIX version when its content changed.

    Its ``modified`` is ``validFrom``; a changed row whose ``modified`` would not be later
    than the imported one gets the imported ``modified`` plus 1 ms (derived from the
    repository, never the clock), so the change reaches stores as a new version
    (STIX 2.1 section 3.6) and `tiops validate --base` accepts it without a bump. An
    unchanged row keeps the imported ``modified``, also when the file was edited by hand
    since (``imported_digest``: the digest _imported.json keeps of the version imported):
    the file is then put back, not versioned again. ``created`` is the object's own from
    its first import whatever a later row's ``validFrom`` says: a version never changes it.
    """
    existing = files.existing(_object_path(folder, candidate.data))
    modified = existing.get("modified") if existing else None
    if existing is None or not isinstance(modified, str) or timestamp_key(modified) is None:
        return candidate
    data = candidate.data
    created = existing.get("created")
    if isinstance(created, str) and timestamp_key(created) is not None:
        data = {**data, "created": created}
    if {k: v for k, v in data.items() if k != "modified"} == {k: v for k, v in existing.items() if k != "modified"}:
        later = modified  # the same row: the version already imported
    elif imported_digest is not None and digest(ordered({**data, "modified": modified})) == imported_digest:
        # The row imported before, though the file was edited since: restored below. Digested only
        # when the file differs, not for every row of an unchanged re-import.
        later = modified
    elif _is_newer(data, existing):
        return Candidate(candidate.position, data, candidate.versioned, candidate.repairs)
    else:
        later = shift_timestamp(modified, 1)
    return Candidate(candidate.position, {**data, "modified": later}, candidate.versioned, candidate.repairs)


def _is_attack(data: dict[str, Any]) -> bool:
    """ATT&CK marks its objects with x_mitre_ properties and x-mitre- types."""
    return str(data.get("type")).startswith("x-mitre-") or "x_mitre_version" in data


def _errors(obj: IntelObject) -> list[str]:
    return [f.message for f in check_object(obj) if f.severity.name == "ERROR"]


def _conflict(candidate: Candidate, earlier: Candidate) -> str | None:
    """Why a second candidate with the id of an earlier one is rejected, or None when it is just a version.

    One version of an object has one content (STIX 2.1 section 3.6), so the same id and
    'modified' with other content is a conflict, never an "older" version. Rows of a CSV
    have no versions at all: two rows for one observable that differ are a conflict too.
    """
    if candidate.data == earlier.data:
        return None
    if not candidate.versioned:
        return (f"the same observable as {earlier.position} with different values; "
                "keep one row per observable")
    if _same_version(candidate.data, earlier.data):
        return (f"same id and 'modified' as {earlier.position} but different content; "
                "a changed object needs a later 'modified' (STIX 2.1 section 3.6)")
    if "modified" not in candidate.data and "modified" not in earlier.data:
        # An object with no versions (an SCO, a marking definition: STIX 2.1 sections 6 and 7.2)
        # has one content per id: neither copy is older, so neither is dropped silently.
        return (f"same id as {earlier.position} but different content, and neither has a 'modified' "
                "to tell which is later; keep one (an SCO's id comes from its id-contributing properties)")
    return None


def _object_path(folder: Path, data: dict[str, Any]) -> Path:
    stix_type, _, uuid_part = str(data["id"]).partition("--")
    return folder / stix_type / f"{uuid_part}.yaml"


def _locked_digests(folder: Path) -> dict[str, str]:
    try:
        objects = orjson.loads(read_input(os.fspath(folder / LOCK_FILE))).get("objects", {})
    except (InputProblem, orjson.JSONDecodeError, AttributeError):
        return {}
    return dict(objects) if isinstance(objects, dict) else {}


def _restore_hand_edit(candidate: Candidate, folder: Path, files: _Files, report: ImportReport,
                       writes: dict[Path, str], imported_digests: dict[str, str]) -> bool:
    """A partner file edited by hand is put back when the input holds exactly the version imported.

    ``candidate.data`` is :func:`ordered` already.
    """
    data = candidate.data
    locked = imported_digests.get(str(data["id"]))
    if locked is None or digest(data) != locked:
        return False
    path = _object_path(folder, data)
    existing = files.existing(path)
    if existing is None or existing == data:
        return False
    writes[path] = dump_yaml(data)
    report.updated += 1
    report.changed_files.append(_relative(path, files.root))
    return True


def _plan_one(candidate: Candidate, folder: Path, files: _Files, report: ImportReport, writes: dict[Path, str]) -> None:
    """Count ``candidate`` (its data :func:`ordered` already) and plan its file when it is new or newer."""
    data = candidate.data
    stix_type, _, uuid_part = str(data["id"]).partition("--")
    name = f"{uuid_part}.yaml"
    path = folder / stix_type / name
    existing = files.existing(path)
    if existing is None:
        report.created += 1
    elif existing == data:
        report.unchanged += 1
        return
    elif _as_authored(existing) == data:
        # Written by an import from before compile's own extensions were left out: put right.
        report.updated += 1
    elif "modified" not in data:
        # An object with no versions (an SCO, a marking definition: STIX 2.1 sections 6 and 7.2) has
        # one content per id: neither copy is later, so the file is kept and the item rejected, as
        # between two items of one input (_conflict). Written over, the folder's _imported.json
        # would name the other content, and every build after it fail (TI700).
        report.rejections.append(Rejection(
            candidate.position,
            (f"same id as {files.relative(folder, stix_type, name)} but different content, and "
             + ("neither has" if "modified" not in existing else "this one has no")
             + " a 'modified' to tell which is later; an SCO's id comes from its id-contributing properties "
             "(STIX 2.1 section 2.9), so an observable with other values takes another id",),
            str(data["id"]),
        ))
        return
    elif _is_newer(data, existing) or (not candidate.versioned and _same_version(data, existing)):
        report.updated += 1
    elif _same_version(data, existing):
        report.rejections.append(Rejection(
            candidate.position,
            (f"same id and 'modified' as {files.relative(folder, stix_type, name)} but different content; "
             "a changed object needs a later 'modified' (STIX 2.1 section 3.6)",),
            str(data["id"]),
        ))
        return
    else:
        report.older_ignored += 1
        return
    writes[path] = dump_yaml(data)
    report.changed_files.append(files.relative(folder, stix_type, name))


def ordered(data: dict[str, Any]) -> dict[str, Any]:
    """A stable key order: identity first, then the rest alphabetically."""
    head = {key: data[key] for key in _LEADING_KEYS if key in data}
    return {**head, **{key: data[key] for key in sorted(data) if key not in head}}


def digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(data)).hexdigest()


def _lock_source(folder: Path) -> str | None:
    data = read_lock(str(folder / LOCK_FILE))
    source = data.get("source") if isinstance(data, dict) else None
    return source if isinstance(source, str) else None


def _bookkeeping(folder: Path, source: str, accepted: dict[str, Candidate], files: _Files,
                 shared: dict[str, str] | None = None) -> dict[Path, str]:
    """_defaults.yaml and _imported.json of ``folder``; ``shared``: ids this source also sends -> owner folder.

    The candidates' data is :func:`ordered` already.
    """
    lock_path = folder / LOCK_FILE
    digests: dict[str, str] = {}
    fields: dict[str, dict[str, str]] = {}
    also: dict[str, str] = {}
    if lock_path.is_file():
        try:
            lock_data = orjson.loads(lock_path.read_bytes())
            digests = dict(lock_data.get("objects", {}))
            fields = dict(lock_data.get("fields", {}))
            also = dict(lock_data.get("shared", {}))
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            digests, fields, also = {}, {}, {}
    also.update(shared or {})
    for identifier, candidate in accepted.items():
        stix_type, _, uuid_part = identifier.partition("--")
        current = files.existing(folder / stix_type / f"{uuid_part}.yaml")
        data = candidate.data
        if (current is None or current == data or _is_newer(data, current) or not candidate.versioned
                or _as_authored(current) == data):  # the earlier import's copy with compile's extensions, put right
            digests[identifier] = digest(data)
            fields[identifier] = field_digests(data)
    lock: dict[str, Any] = {"source": source, "objects": dict(sorted(digests.items()))}
    if also:
        # Objects this source sends too, owned by another source's folder (docs/import.md).
        lock["shared"] = {key: also[key] for key in sorted(also) if key not in digests}
    lock["fields"] = {key: fields[key] for key in sorted(fields) if key in digests}
    defaults = dump_yaml({"source": source, "imported": True})
    return {
        folder / DEFAULTS_FILE: "# Written by 'tiops import': intel from this source is read-only\n"
                                "# except labels, valid_until, confidence and revoked (edit those in _overlay.yaml).\n"
                                + defaults,
        lock_path: _lock_text(lock),
    }


def _lock_text(lock: dict[str, Any]) -> str:
    """Indented JSON, except that each object's property digests stay on one line (a third of the size)."""
    fields = lock.pop("fields")
    head = orjson.dumps(lock, option=orjson.OPT_INDENT_2).decode()
    if not fields:
        return head[:-2] + ',\n  "fields": {}\n}\n'
    lines = [f"    {orjson.dumps(key).decode()}: {orjson.dumps(value).decode()}" for key, value in fields.items()]
    return head[:-2] + ',\n  "fields": {\n' + ",\n".join(lines) + "\n  }\n}\n"


def _read_existing(path: Path) -> dict[str, Any]:
    """The object in the file at ``path``, ``{}`` when it cannot be read as one."""
    try:
        data = parse_yaml(read_input(os.fspath(path)).decode("utf-8"))
    except (YamlProblem, UnicodeDecodeError, InputProblem):
        return {}
    return data if isinstance(data, dict) else {}


def _is_newer(data: dict[str, Any], other: dict[str, Any]) -> bool:
    new, old = timestamp_key(str(data.get("modified", ""))), timestamp_key(str(other.get("modified", "")))
    return new is not None and (old is None or new > old)


def _same_version(data: dict[str, Any], other: dict[str, Any]) -> bool:
    return data.get("modified") is not None and data.get("modified") == other.get("modified")


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _position_key(rejection: Rejection) -> tuple[str, int]:
    kind, _, rest = rejection.position.partition(" ")
    number = rest.split(" ", 1)[0]  # "row 7 (lines 7-9)"
    return (kind, int(number) if number.isdigit() else -1)


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection,
# OWASP); reasons quote the input's own cells, so the error file must not.
def outcome(rejection: Rejection) -> str:
    return "rejected" if rejection.depends_on is None else "rejected-as-dependent"


def write_rejections(path: Path, rejections: list[Rejection], repairs: Sequence[Repair] = ()) -> None:
    """The error file: CSV (one line per reason) or JSON (one entry per row or item), by suffix.

    Rejected rows and objects come first, then the repaired ones (outcome "repaired"). Written
    whole or not at all (tiops.outputs): a previous error file stays as it was when this one cannot
    be written, never cut short; ``/dev/stderr`` or a pipe is written to as it is.
    """
    grouped: dict[tuple[str, str], list[str]] = {}
    for repaired in repairs:
        grouped.setdefault((repaired.position, repaired.stix_id), []).append(repaired.description)
    if path.suffix.lower() == ".json":
        entries = [{"position": r.position, "id": r.stix_id, "outcome": outcome(r), "reasons": list(r.reasons)}
                   for r in rejections]
        entries += [{"position": position, "id": stix_id, "outcome": "repaired", "reasons": reasons}
                    for (position, stix_id), reasons in grouped.items()]
        write_whole(path, orjson.dumps(entries, option=orjson.OPT_INDENT_2) + b"\n")
        return
    rows = [["position", "id", "reason", "outcome"]]
    rows += [[rejection.position, rejection.stix_id or "", reason, outcome(rejection)]
             for rejection in rejections for reason in rejection.reasons]
    rows += [[position, stix_id, reason, "repaired"] for (position, stix_id), reasons in grouped.items()
             for reason in reasons]
    write_whole(path, csv_text(rows).encode("utf-8"))

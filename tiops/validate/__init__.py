"""Validate stage: every check over a loaded repository, findings as data."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from tiops.codes import make_finding
from tiops.config import CONFIG_FILE, load_config
from tiops.discover import is_repo_root
from tiops.enrich.lock import LOCK_DIR, lock_findings
from tiops.errors import UsageError
from tiops.findings import Finding, Location, Severity, sort_findings
from tiops.inputs import display_name
from tiops.load import IntelObject, Repo, load_bundle, load_repo
from tiops.locate import kept_positions, resolve_locations
from tiops.memory import hold_until_exit, paused_gc
from tiops.progress import Progress, no_progress
from tiops.rules import rule_findings
from tiops.validate.at_defaults import at_default_places
from tiops.validate.at_defaults import one_per_default as _one_per_default
from tiops.validate.extensions import check_extensions, toplevel_extension_properties
from tiops.validate.indexed import (
    IndexedFile,
    involved_ids,
    partner_folders,
    repository_maps,
    translated_ids,
    unclean_files,
    with_translated,
)
from tiops.validate.language import check_language_contents
from tiops.validate.objects import check_object
from tiops.validate.partner import LOCK_FILE as IMPORT_RECORD
from tiops.validate.partner import LockReader, PartnerFolder, check_partner_objects
from tiops.validate.reference_index import ListedReference, check_listed_references
from tiops.validate.references import check_duplicate_ids, check_references, object_types
from tiops.validate.relationships import check_relationships, load_relationship_table
from tiops.validate.stix20 import at_stix20_places, check_stix20_objects
from tiops.yamlio import YamlProblem, parse_yaml

__all__ = ["Prechecked", "validate_indexed", "validate_paths", "validate_repo"]


@dataclass(frozen=True)
class Prechecked:
    """What the per-object checks gave for every object of a repository, kept by tiops.buildcache.

    ``object_findings``: what :func:`check_object` gives for each object, in object order;
    ``references``: :func:`object_references` of each object (``references[i]`` for object i),
    or None for an object the reference check is to walk itself;
    ``malformed_ids``: the ids among them that are not TYPE--UUID.
    """

    object_findings: list[Finding]
    references: list[list[ListedReference] | None]
    malformed_ids: set[str]


def validate_repo(repo: Repo, *, progress: Progress = no_progress, prechecked: Prechecked | None = None,
                  checked: dict[int, tuple[IntelObject, list[Finding]]] | None = None,
                  one_per_default: bool = True, read_lock: LockReader | None = None) -> list[Finding]:
    """All findings for ``repo`` (load findings included), located and sorted.

    With ``prechecked`` (the build cache) the per-object checks are not run again; the
    repository-wide checks (duplicate ids, references, relationships, extensions, rules)
    always run. ``checked``: per-object findings by object identity, filled and reused (two
    revisions compared share the objects of unchanged files: tiops.filesource.SharedParses).
    ``one_per_default``: a defect of a folder default is one finding at its line, not one per
    object taking it (tiops.validate.at_defaults); a check of named files, which keeps the
    findings of their objects, makes them one itself. ``read_lock``: as :func:`validate_indexed`'s.
    """
    with paused_gc():
        return _validate_repo(repo, progress, prechecked, checked, one_per_default, read_lock)


def _validate_repo(repo: Repo, progress: Progress, prechecked: Prechecked | None = None,
                   checked: dict[int, tuple[IntelObject, list[Finding]]] | None = None,
                   one_per_default: bool = True, read_lock: LockReader | None = None) -> list[Finding]:
    findings = list(repo.findings)
    total = len(repo.objects)
    if prechecked is not None:
        findings.extend(prechecked.object_findings)
        progress("validate", total, total)
    elif checked is None and repo.object_findings is not None:  # checked while loading (load_repo's check)
        findings.extend(repo.object_findings)
        progress("validate", total, total)
    else:
        for done, obj in enumerate(repo.objects, 1):
            if checked is None:
                findings.extend(check_object(obj))
            else:
                earlier = checked.get(id(obj))
                if earlier is None or earlier[0] is not obj:
                    earlier = checked[id(obj)] = (obj, check_object(obj))
                findings.extend(earlier[1])
            if done % 5000 == 0 or done == total:
                progress("validate", done, total)
    types = object_types(repo.objects)
    # An entry per object: every object has a string id and no two are alike, so no duplicate to look for.
    unique_ids = len(types) == len(repo.objects)
    if prechecked is not None and not repo.is_bundle:
        return _repo_wide(repo, repo.objects, findings, types, prechecked.references, prechecked.malformed_ids,
                          unique_ids=unique_ids, one_per_default=one_per_default, read_lock=read_lock)
    return _repo_wide(repo, repo.objects, findings, types, unique_ids=unique_ids, one_per_default=one_per_default,
                      read_lock=read_lock)


def _repo_wide(repo: Repo, objects: list[IntelObject], findings: list[Finding], types: dict[str, str],
               references: Sequence[list[ListedReference] | None] | None = None,
               malformed: set[str] | None = None, *, unique_ids: bool = False,
               partner: dict[str, PartnerFolder] | None = None, one_per_default: bool = True,
               read_lock: LockReader | None = None) -> list[Finding]:
    """``findings`` (load and per-object ones) with the repository-wide checks' over ``objects``, located and sorted.

    ``objects`` is ``repo.objects``, or those of them a check may report on
    (tiops.validate.indexed) with ``types`` and ``malformed`` made from all of them.
    ``references``: each object's listed references (tiops.validate.reference_index).
    ``unique_ids``: every one of ``objects`` has a string id of its own (check_duplicate_ids finds nothing).
    ``partner``: the partner objects by source folder (tiops.validate.indexed.partner_folders),
    when ``objects`` need not hold them.
    """
    if not unique_ids:
        findings.extend(check_duplicate_ids(objects, in_bundle=repo.is_bundle))
    if references is not None:
        findings.extend(check_listed_references(objects, references, types=types, malformed=malformed))
    else:
        findings.extend(check_references(objects, in_bundle=repo.is_bundle, types=types))
    findings.extend(check_extensions(objects, in_bundle=repo.is_bundle))
    extension_properties = toplevel_extension_properties(objects)
    if extension_properties:
        findings = [f for f in findings if f.code != "TI208" or not f.location.path
                    or (f.stix_id, f.location.path[-1]) not in extension_properties]
    table, table_findings = load_relationship_table(repo.repository_config if repo.is_bundle else repo.config)
    findings.extend(table_findings)
    findings.extend(check_relationships(objects, table, in_bundle=repo.is_bundle, types=types))
    findings.extend(check_language_contents(objects))
    findings.extend(rule_findings(repo))
    if partner is not None:
        findings.extend(check_partner_objects(repo, partner, read_lock))
    else:
        findings.extend(check_partner_objects(repo if objects is repo.objects else replace(repo, objects=objects),
                                              read=read_lock))
    if repo.upgraded_from_20:
        upgraded = {obj.path: obj.data for obj in objects if obj.path in repo.upgraded_from_20}
        findings.extend(check_stix20_objects(objects[0].file, upgraded) if upgraded else ())
        findings = at_stix20_places(findings, repo.upgraded_from_20, upgraded)
    if not repo.is_bundle:
        # the enrichment lock (TI150, TI151)
        findings.extend(lock_findings(repo.config.intel_path, repo.root, repo.config.source))
    findings = sort_findings(resolve_locations(at_default_places(findings, objects, repo.default_origins),
                                               repo.root, repo.config.source))
    return _one_per_default(findings) if one_per_default else findings


def validate_indexed(repo: Repo, files: Sequence[IndexedFile], *, named: set[str] | None = None,
                     previous: set[str] | frozenset[str] = frozenset(),
                     progress: Progress = no_progress, one_per_default: bool = True,
                     read_lock: LockReader | None = None) -> IndexedFindings:
    """:func:`validate_repo` of a repository loaded as file indexes (tiops.validate.indexed), reading few objects.

    ``repo``: the configuration, overlays and findings made before any file was read;
    its objects are those of ``files``. The findings are those ``validate_repo`` gives
    for the whole repository. With ``named`` (repository paths of object files, as
    ``tiops validate FILE`` is given them) only what is needed to report on those files
    is checked: the findings then hold every one that concerns them (their own and
    those of the ids ``involved``, :func:`_involved_ids`), and others that do not.
    ``previous``: the ids the named files defined at HEAD (:func:`_previous_ids`).
    ``one_per_default``: as :func:`validate_repo`'s. ``read_lock``: how partner folders' locks are
    read (tiops.validate.partner.check_partner_objects).
    """
    with paused_gc():
        findings = list(repo.findings)
        for file in files:
            findings.extend(file.index.load_findings)
        for file in files:
            findings.extend(file.index.object_findings)
        total = sum(len(file.index.ids) for file in files)
        progress("validate", total, total)
        types, malformed, duplicated = repository_maps(files)
        needed = [file.index.needs_objects or (bool(duplicated) and not duplicated.isdisjoint(file.index.ids))
                  for file in files]
        involved = None
        # With named files, a folder taken whole that is needed only for some of its ids (those
        # involved, or named by a language-content) is read a file at a time: the files holding
        # them, as a load file by file would read (a folder of a thousand files for one relationship).
        by_ids: list[bool] = [False] * len(files)
        wanted: set[str] = set()
        if named is not None:
            involved = involved_ids(files, named, previous - types.keys())
            whole = [need or file.relative in named for need, file in zip(needed, files, strict=True)]
            # What with_translated adds, worked out here: the ids the language-contents name are wanted too.
            wanted = involved | translated_ids(files, [read or not involved.isdisjoint(file.index.ids)
                                                       for read, file in zip(whole, files, strict=True)])
            by_ids = [not read and not wanted.isdisjoint(file.index.ids) for read, file in zip(whole, files, strict=True)]
            needed = [read or partly for read, partly in zip(whole, by_ids, strict=True)]
        else:
            table = load_relationship_table(repo.config)[0]
            unclean = unclean_files(files, types, malformed, table)
            needed = with_translated(files, [need or dirty or bool(file.index.language_contents)
                                             for need, dirty, file in zip(needed, unclean, files, strict=True)])
        objects: list[IntelObject] = []
        references: list[list[ListedReference] | None] = []
        for need, partly, file in zip(needed, by_ids, files, strict=True):
            if need:
                holding = getattr(file, "objects_holding", None) if partly else None
                file_objects, file_references = file.objects() if holding is None else holding(wanted)
                objects.extend(file_objects)
                references.extend(file_references)
        return IndexedFindings(_repo_wide(repo, objects, findings, types, references, malformed,
                                          partner=partner_folders(files), one_per_default=one_per_default,
                                          read_lock=read_lock),
                               involved, types)


class IndexedFindings(NamedTuple):
    """What :func:`validate_indexed` gives."""

    findings: list[Finding]
    involved: set[str] | None  # with named files: the ids whose findings are reported with theirs
    types: dict[str, str]  # id -> type of every object (tiops.validate.references.object_types)


def validate_paths(root: Path, targets: list[Path], *, progress: Progress = no_progress,
                   cache: bool = False) -> list[Finding]:
    """Validate what the user named: the repository, JSON bundles, or files inside the repository.

    JSON files are linted as plain STIX bundles. Anything else is validated as part of
    the whole repository (references need every object), and only the findings under the
    named paths are returned, so pre-commit can pass just the changed files.
    With ``cache``, the rest of the repository comes from the build cache in
    ``.tiops/build-cache/`` (tiops.buildcache) and only changed files are read again.
    """
    with paused_gc():  # one pipeline: the collector would rescan every loaded object (tiops.memory)
        return _validate_paths(root.resolve(), targets, progress, cache)


def _validate_paths(root: Path, targets: list[Path], progress: Progress, cache: bool = False) -> list[Finding]:
    findings: list[Finding] = []
    # Not is_file(): a pipe or device named *.json is a bundle that load_bundle refuses with a finding.
    # tiops import's record of a partner folder (_imported.json) is the repository's, not a bundle to lint.
    bundles = [t for t in targets if is_bundle_path(t, root)]
    intel = _intel_folder(root)
    in_repo = [_named_path(t, root, intel) for t in targets if t not in bundles]
    for outside in (t for t in in_repo if not t.is_relative_to(root)):
        # Its findings would be filtered to a path no finding can have: "no findings", wrongly.
        raise UsageError(f"{outside} is not inside the repository {root}",
                         hint="Name files or folders of this repository, or a .json bundle to lint it on its own.")
    repository_config = None
    if bundles and is_repo_root(root):  # linted in a repository: its relationship table applies
        repository_config, config_findings = load_config(root)
        if in_repo or not targets:
            config_findings = []  # the repository's own validation below reports them
        findings.extend(config_findings)
    for bundle in bundles:
        repo = load_bundle(bundle.resolve(), _display(bundle.resolve(), root), repository_config=repository_config)
        findings.extend(validate_repo(repo, progress=progress))
    if in_repo or not targets:
        repo_findings = _validate_named(root, in_repo, progress) if cache and in_repo and root not in in_repo else None
        if repo_findings is None:
            named = bool(in_repo) and root not in in_repo
            repo, repo_findings = _validate_whole(root, in_repo, progress, cache, one_per_default=not named)
            hold_until_exit(repo)
            if named:
                wanted = [_display(t, root) for t in in_repo]
                gone = _previous_ids(root, [t for t in in_repo if not t.is_dir()]) - {obj.id for obj in repo.objects}
                involved = _involved_ids(repo, wanted, gone)
                repo_findings = _one_per_default(_concerning(repo_findings, wanted, involved))
        findings.extend(repo_findings)
        report_file = root / PANELS_FILE
        if not targets or root in in_repo or report_file in in_repo:
            findings.extend(report_panel_findings(root, cache))
    return sort_findings(findings)


PANELS_FILE = "report.yaml"


def report_panel_findings(root: Path, cache: bool = False) -> list[Finding]:
    """TI140 and TI141 of the repository's ``report.yaml``, as ``tiops report`` gives them, so a
    pull request's validate catches a panel the release job's report would refuse.

    A panel's field is checked against the STIX properties and tiops' own fields; the intel's
    own property names and types are read only when a panel names one that is neither.
    """
    path = root / PANELS_FILE
    if not path.is_file():
        return []
    from tiops.report.panels import parse_panels

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return [make_finding("TI140", f"report.yaml cannot be read: {error}", Location(PANELS_FILE, 1, 1))]
    findings = parse_panels(text, PANELS_FILE, set())[1]
    if any("unknown field" in f.message or "not a STIX object type" in f.message for f in findings):
        from tiops.buildcache import load_intel

        objects = load_intel(root, cache=cache).objects
        seen = {key for obj in objects for key in obj.data}
        findings = parse_panels(text, PANELS_FILE, seen, frozenset(obj.type for obj in objects))[1]
    return resolve_locations(findings, root)


def is_bundle_path(path: Path, root: Path | None = None) -> bool:
    """Whether a named path is a STIX bundle to lint on its own: a .json file (not is_file(): a pipe or
    device so named is a bundle that load_bundle refuses with a finding) but the repository's own JSON,
    tiops import's record of a partner folder (_imported.json) and the enrichment lock's files
    (intel/.enrichment/), whose findings (TI150, TI151) come from checking the repository. Without
    ``root`` (the command line, before it knows the repository), a lock folder anywhere above counts."""
    if path.is_dir() or path.suffix.lower() != ".json" or path.name == IMPORT_RECORD:
        return False
    resolved = path.resolve()
    if root is None:
        return LOCK_DIR not in resolved.parts[:-1]
    return not (resolved.is_relative_to(root) and LOCK_DIR in resolved.relative_to(root).parts[:-1])


def findings_under(findings: list[Finding], root: Path, targets: list[Path]) -> list[Finding]:
    """Of repository-wide findings (``validate --base``'s TI8xx), those under the named files and
    folders: all of them when nothing inside the repository, or the repository itself, is named.

    A deleted object's finding is at the file it was deleted from, so naming that file keeps it.
    """
    root = root.resolve()
    intel = _intel_folder(root)
    in_repo = [_named_path(t, root, intel) for t in targets if not is_bundle_path(t, root)]
    if not in_repo or root in in_repo:
        return findings
    wanted = [_display(t, root) for t in in_repo if t.is_relative_to(root)]
    # A finding on a folder holding a named path (TI108: a folder link leading out of the repository,
    # whose files were not read) concerns that path too.
    return [f for f in findings if any(_is_under(f.location.file, w) or _is_under(w, f.location.file) for w in wanted)]


#: What the repository-wide checks report about an object because of another (a reference, a duplicate id,
#: a relationship's ends, a translation's version, a reference to what a rule dropped): reported with a named
#: file's findings when the object is involved with it. Its own findings (its schema, its values) stay its file's.
_BETWEEN_OBJECTS = frozenset({"TI300", "TI301", "TI302", "TI303", "TI400", "TI514"})


def _concerning(findings: list[Finding], wanted: list[str], involved: set[str]) -> list[Finding]:
    """The findings under the named paths, and those between objects about the ids involved with them: a
    relationship elsewhere to a named file's object that breaks is reported, its unrelated schema error not.
    An error of tiops.yaml is kept too: it stops every build, so the named files cannot be checked
    (an intel folder leading out of the repository is not read at all)."""
    # A finding on a folder holding a named path (TI108: a folder link leading out of the repository,
    # whose files were not read) concerns that path too.
    return [f for f in findings if any(_is_under(f.location.file, w) or _is_under(w, f.location.file) for w in wanted)
            or (f.stix_id in involved and f.code in _BETWEEN_OBJECTS)
            or (f.location.file == CONFIG_FILE and f.severity is Severity.ERROR)]


def _validate_whole(root: Path, named: list[Path], progress: Progress, cache: bool,
                    one_per_default: bool = True) -> tuple[Repo, list[Finding]]:
    if not cache:
        repo = load_repo(root, progress=progress, check=check_object)
        return repo, validate_repo(repo, progress=progress, one_per_default=one_per_default)
    from tiops.buildcache import (  # they import this package's checks
        StaleEntry,
        has_entries,
        load_repo_cached,
        load_repo_indexed,
    )
    from tiops.buildcache.partnerlocks import PartnerLocks

    wanted = {_display(t, root) for t in named if t != root}
    folders = tuple(w.rstrip("/") + "/" for w in wanted)
    # The whole repository, checked from the cache's file indexes, reading few objects; but without a
    # cache of this context every file is parsed, and an index per file beside every object is what
    # a first build leaves out (tiops.buildcache.has_entries).
    usable = has_entries(root)
    if not wanted and usable:
        indexed = load_repo_indexed(root, progress=progress, settle=False)
        try:
            with kept_positions(indexed.cache):
                locks = PartnerLocks(indexed.cache)
                findings = validate_indexed(indexed.repo, indexed.files, progress=progress,
                                            one_per_default=one_per_default, read_lock=locks)[0]
                if not indexed.cache.small_change():  # as save_unless_small: a check of a few files writes nothing
                    locks.save()
        except StaleEntry:
            pass  # an entry that cannot be read back: loaded the whole way below, which parses its file again
        else:
            indexed.cache.save_unless_small()  # a check: a handful of changed files are not written
            return indexed.repo, findings
    # Nothing to read again in a cache of no use: every file is parsed, on two processes when a
    # helper is worth forking (load_repo_cached forks one only when no file is to be read afresh).
    loaded = load_repo_cached(root, progress=progress,
                              fresh=(lambda relative: relative in wanted or relative.startswith(folders))
                              if usable else None)
    with kept_positions(loaded.cache):
        findings = validate_repo(loaded.repo, progress=progress, prechecked=loaded.prechecked(),
                                 one_per_default=one_per_default)
    loaded.cache.save_unless_small()
    return loaded.repo, findings


def _validate_named(root: Path, named: list[Path], progress: Progress) -> list[Finding] | None:
    """The findings concerning the named object files, from the build cache's indexes of the rest.

    Only the named files and those holding an id involved with them are read whole
    (tiops.validate.indexed); a named file that is not an object file of the repository's
    intel has the whole repository checked from the indexes. None when that does not apply
    (a folder, no cache yet): the whole repository is then loaded and checked.
    """
    from tiops.buildcache import (  # imported here: it imports this package's checks
        StaleEntry,
        has_entries,
        load_repo_indexed,
    )
    from tiops.buildcache.partnerlocks import PartnerLocks
    from tiops.validate.indexed import involved_ids

    wanted = {_display(t, root) for t in named}
    if any(t.is_dir() for t in named) or not has_entries(root):
        return None  # without a cache of this context, every file is parsed: the whole way holds less
    # Folders taken whole but those of the named files, each of which is a file of its own.
    loaded = load_repo_indexed(root, progress=progress, fresh=wanted.__contains__, settle=False)
    try:
        with kept_positions(loaded.cache):
            previous = _previous_ids(root, named)
            locks = PartnerLocks(loaded.cache)
            if wanted <= {file.relative for file in loaded.files}:
                findings, involved, _ = validate_indexed(loaded.repo, loaded.files, named=wanted, previous=previous,
                                                         progress=progress, one_per_default=False, read_lock=locks)
            else:
                # Not (all) object files: an _overlay.yaml (what `tiops tag` edits in partner intel), a
                # _defaults.yaml, an import lock. Their findings come from checking the whole repository,
                # which the indexes do reading only the objects a check may report on.
                checked = validate_indexed(loaded.repo, loaded.files, progress=progress, one_per_default=False,
                                           read_lock=locks)
                findings = checked.findings
                involved = involved_ids(loaded.files, wanted, previous - checked.types.keys())
            if not loaded.cache.small_change():  # as save_unless_small: a check of a few files writes nothing
                locks.save()
    except StaleEntry:
        return None  # an entry that cannot be read back: the whole load parses its file again
    loaded.cache.save_unless_small()
    hold_until_exit(loaded)
    return _one_per_default(_concerning(findings, sorted(wanted), involved or set()))


def _involved_ids(repo: Repo, wanted: list[str], gone: set[str] | frozenset[str] = frozenset()) -> set[str]:
    """Ids whose findings concern the named files even when they sit in other files.

    The objects the files define (a duplicate id is reported on whichever copy comes
    second), every relationship or sighting from or to them, and every language-content
    that translates one (a new version of the object leaves it behind, TI303): pre-commit passes only
    the changed files, and a new file that reuses an id or breaks a relationship elsewhere
    must not pass as clean. ``gone``: ids the files defined at HEAD that no file defines
    now (an id changed or an object deleted): a relationship still pointing at one is theirs too.
    """
    exact = set(wanted)
    folders = tuple(w.rstrip("/") + "/" for w in wanted)
    named = {obj.id for obj in repo.objects if obj.file in exact or obj.file.startswith(folders)} | gone
    involved = set(named)
    for obj in repo.objects:
        data = obj.data
        kind = data.get("type")
        # _is_in: a reference the schema reports as not a string (a list, a mapping) cannot be looked up in a set.
        if (kind == "relationship" and (_is_in(data.get("source_ref"), named) or _is_in(data.get("target_ref"), named))) or (
                kind == "sighting" and _is_in(data.get("sighting_of_ref"), named)) or (
                kind == "language-content" and _is_in(data.get("object_ref"), named)):
            involved.add(obj.id)
    return involved


def _is_in(value: Any, ids: set[str]) -> bool:
    return type(value) is str and value in ids


def _previous_ids(root: Path, named: list[Path]) -> set[str]:
    """The ids the named files defined in the commit checked out (HEAD), read from git objects.

    An id a named file no longer defines leaves whatever pointed at it dangling in other files;
    pre-commit names only the changed files, so this is how their check knows the old ids.
    Nothing outside a git repository, or for a file HEAD does not hold.
    """
    from tiops.gitrepo import head_files

    files = [_display(path, root) for path in named if path != root and not path.is_dir()]
    ids: set[str] = set()
    for content in head_files(root, files).values():
        try:
            document = parse_yaml(content.decode("utf-8"))
        except (UnicodeDecodeError, YamlProblem):
            continue
        if isinstance(document, dict) and isinstance(document.get("objects"), list):
            document = document["objects"]  # a bundle
        items = document if isinstance(document, list) else [document]
        ids.update(item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str))
    return ids


def _named_path(path: Path, root: Path, intel: Path | None = None) -> Path:
    """The absolute path of a named file or folder, as the repository names it: the links on the
    way to the repository resolved, those inside it not.

    A file link in the intel is a file of the repository at the link's own path, and an intel
    folder that is a link to ``data/intel`` is walked as ``intel``: loading reads them there and
    findings name those paths. Resolved whole, a named path named the target instead (outside
    the intel, or under ``data/``: "no findings" over the file's errors). A path that reaches
    the repository only through a link into it (a link elsewhere to one of its files) is
    followed, one link at a time, until it is inside the repository. ``intel``: the intel
    folder (tiops.yaml); a path into the folder it is a link to (``data/intel/x.yaml``, as git
    and pre-commit name the file) is named under it.
    """
    named = _unresolved_in(path, root)
    if intel is not None and not named.is_relative_to(intel):
        real_intel = intel.resolve()
        if real_intel != intel and (real := named.resolve()).is_relative_to(real_intel):
            return intel / real.relative_to(real_intel)
    return named


def _intel_folder(root: Path) -> Path:
    """The repository's intel folder as tiops.yaml names it, links not resolved."""
    return load_config(root)[0].intel_path


def _unresolved_in(path: Path, root: Path) -> Path:
    """:func:`_named_path` without the intel folder."""
    absolute = path.absolute()
    if ".." in absolute.parts and Path(os.path.normpath(absolute)).resolve() == absolute.resolve():
        absolute = Path(os.path.normpath(absolute))  # no link before a "..": taken as written
    for ancestor in (absolute, *absolute.parents):
        if ancestor.resolve() == root:
            rest = absolute.parts[len(ancestor.parts):]
            if ".." not in rest:  # else resolved below: what ".." leaves depends on the links before it
                return root.joinpath(*rest)
            break
    for _ in range(_MAX_LINK_HOPS):
        if path.name in ("", ".", ".."):
            break
        kept = path.absolute().parent.resolve() / path.name
        if kept.is_relative_to(root) and kept != root:
            return kept
        if not kept.is_symlink():
            break
        path = kept.parent / os.readlink(kept)  # one hop: a link from elsewhere to a link of the intel
    return path.resolve()


_MAX_LINK_HOPS = 40  # as Linux follows at most 40 links in resolving one path (path_resolution(7))


def _display(path: Path, root: Path) -> str:
    return display_name(path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix())


def _is_under(file: str, wanted: str) -> bool:
    return file == wanted or file.startswith(wanted.rstrip("/") + "/") or wanted == "."

"""Load stage: read an intel repository (or a plain STIX bundle) into memory.

What comes out is the objects exactly as the authors meant them: `_defaults.yaml`
merged in, omitted ids derived, inline relationships expanded into relationship
objects. Every object remembers where it came from so findings can point at it.
"""

from __future__ import annotations

import marshal
import operator
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

from tiops.codes import make_finding
from tiops.config import Config, load_config
from tiops.filesource import NOT_PARSED, FileSource, ParsedFiles, WorkingTree, blob_id_of
from tiops.findings import Finding, Location, PathPart, Severity
from tiops.forkwork import can_fork, room_for_a_copy, run_in_order, second_cpu_idle
from tiops.inputs import InputProblem, display_name, is_utf8_name, read_input
from tiops.jsonschemas import (
    common_property_names,
    known_properties,
    sco_common_property_names,
    tiops_schema_errors,
)
from tiops.jsontext import duplicate_keys
from tiops.memory import paused_gc, share_strings
from tiops.progress import Progress, no_progress
from tiops.stix import (
    BUILTIN_MARKING_IDS,
    ID_RE,
    SCO_TYPES,
    derive_relationship_id,
    derive_sco_id,
    derive_sdo_id,
    timestamp_key,
)
from tiops.stix20 import (
    MOVED_FROM_LABELS,
    TYPES_21_ONLY,
    holds_only_implicit_20,
    is_stix20_object,
    upgrade_from_20,
)
from tiops.yamlio import YamlProblem, parse_json, parse_yaml

# The per-object check of tiops.validate (check_object), handed to load_repo by its callers.
ObjectCheck = Callable[["IntelObject"], list[Finding]]
DEFAULTS_FILE = "_defaults.yaml"
# Local changes to partner intel (docs/import.md): beside an imported source's _defaults.yaml.
OVERLAY_FILE = "_overlay.yaml"
# The only properties of partner intel a repository may change, as in Microsoft Sentinel:
# tags (STIX labels), expiration (valid_until), confidence and revoked.
OVERLAY_PROPERTIES = ("labels", "valid_until", "confidence", "revoked")
YAML_SUFFIXES = (".yaml", ".yml")
INLINE_RELATIONSHIPS_KEY = "relationships"
# Properties an inline relationship entry may carry besides its one TYPE: TARGET key
# (the relationship's own properties, STIX 2.1 section 5.1).
RELATIONSHIP_PROPERTIES = frozenset(
    {
        "id", "description", "start_time", "stop_time", "created", "modified", "confidence",
        "labels", "external_references", "object_marking_refs", "created_by_ref", "lang",
        "granular_markings", "revoked", "extensions",
    }
)  # fmt: skip
# Properties an inline relationship inherits from the object that declares it.
INHERITED_BY_RELATIONSHIPS = ("created", "modified", "created_by_ref", "object_marking_refs")


@dataclass(frozen=True)
class Defaults:
    """The effective `_defaults.yaml` content for one folder (parents merged in)."""

    properties: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    files: tuple[str, ...] = ()
    imported_folder: str | None = None  # the folder whose _defaults.yaml says `imported: true`
    overlay: dict[str, Any] | None = None  # that folder's _overlay.yaml: id -> allowed properties
    # The defaulted_properties tuples of this folder's objects, one shared tuple per distinct value.
    defaulted_tuples: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    # The properties each type of object takes (for_type), worked out once per type.
    by_type: dict[Any, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)
    # Which of ``files`` gives each of ``properties`` (the nearest that names it).
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def for_type(self, stix_type: Any) -> dict[str, Any]:
        """The defaults an object of ``stix_type`` takes: all of them, but a common property of
        other kinds of object that this type lacks (``created_by_ref`` and ``confidence`` for
        an SCO, whose common properties are fewer, STIX 2.1 section 6.1): given to such an
        object it would only be a warning (TI208) at an object that never wrote it."""
        if stix_type.__class__ is not str:
            return self.properties  # a type that is a list or a mapping: the schema reports it
        chosen = self.by_type.get(stix_type)
        if chosen is None:
            chosen = self.properties
            known = known_properties(stix_type)
            if known:
                foreign = common_property_names()
                chosen = {name: value for name, value in self.properties.items() if name in known or name not in foreign}
            self.by_type[stix_type] = chosen
        return chosen

    def for_object(self, own: dict[str, Any]) -> dict[str, Any]:
        """The defaults ``own`` takes: :meth:`for_type`, and for an object of a custom type that
        its own ``extensions`` declare an SCO type (``extension_type: new-sco``, STIX 2.1
        section 7.3) only what an SCO can hold, as for a predefined SCO type."""
        chosen = self.for_type(own.get("type"))
        if chosen is not self.properties or not _declares_new_sco(own):
            return chosen
        sco = self.by_type.get(_NEW_SCO)
        if sco is None:
            foreign = common_property_names() - sco_common_property_names()
            sco = self.by_type[_NEW_SCO] = {name: value for name, value in self.properties.items() if name not in foreign}
        return sco


# Defaults.origins' key for the _defaults.yaml that names the folder's source (no property can be named so).
SOURCE_ORIGIN: Final = "\0source"

# by_type's key for the defaults of an object whose type an extension makes an SCO.
_NEW_SCO: Final = object()


def _declares_new_sco(own: dict[str, Any]) -> bool:
    extensions = own.get("extensions")
    return isinstance(extensions, dict) and any(
        isinstance(entry, dict) and entry.get("extension_type") == "new-sco" for entry in extensions.values())


@dataclass(slots=True)
class IntelObject:
    """One STIX object and where it came from."""

    data: dict[str, Any]
    file: str
    path: tuple[PathPart, ...] = ()
    source: str | None = None
    id_derived: bool = False
    defaults_files: tuple[str, ...] = ()
    defaulted_properties: tuple[str, ...] = ()
    declared_by: str | None = None  # the object whose inline `relationships:` made this one
    imported_folder: str | None = None  # set for partner intel written by `tiops import`
    imported_data: dict[str, Any] | None = None  # partner intel: the file's own content, before the overlay
    overlay_file: str | None = None
    overlaid_properties: tuple[str, ...] = ()  # properties whose value comes from overlay_file

    @property
    def id(self) -> str:
        return str(self.data.get("id", ""))

    @property
    def type(self) -> str:
        return str(self.data.get("type", ""))

    def location(self, *more: PathPart) -> Location:
        return Location(self.file, path=(*self.path, *more))

    def with_data(self, data: dict[str, Any]) -> IntelObject:
        """This object holding other data: how the rules engine copies on write.

        Built from the other fields directly, about five times cheaper than copy.copy.
        """
        return IntelObject(data, *_FIELDS_AFTER_DATA(self))


# Every field of IntelObject after `data`, in declaration order (for with_data).
_FIELDS_AFTER_DATA = operator.attrgetter(*(f.name for f in fields(IntelObject)[1:]))


@dataclass
class Repo:
    """A loaded repository or bundle: objects, load findings and configuration."""

    root: Path
    config: Config
    objects: list[IntelObject] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    is_bundle: bool = False
    # Imported source folders (relative) -> their parsed _overlay.yaml ({} when absent).
    overlays: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Bundles: path of each STIX 2.0 object checked through its 2.1 upgrade -> the
    # properties the upgrade added (2.1 name -> the 2.0 name it came from, "" when it
    # came from nowhere), so findings are reported at the 2.0 place.
    upgraded_from_20: dict[tuple[PathPart, ...], dict[str, str]] = field(default_factory=dict)
    # A bundle linted inside a repository: that repository's configuration, whose
    # relationship table (tiops.yaml relationship_tables, rules/relationships.yaml) applies.
    repository_config: Config | None = None
    # What the per-object check given to load_repo found, every object's in object order;
    # None when loading ran no check (tiops.validate runs it then).
    object_findings: list[Finding] | None = None
    # The _defaults.yaml files of a folder (IntelObject.defaults_files) -> which of them gives
    # each default property, so a finding at a defaulted property is reported where it is written.
    default_origins: dict[tuple[str, ...], dict[str, str]] = field(default_factory=dict)

    def by_id(self) -> dict[str, IntelObject]:
        return {obj.id: obj for obj in self.objects}


def missing_intel_folder(config: Config) -> list[Finding]:
    """TI107 when the intel folder tiops.yaml names (``intel``, by default ``intel/``) is missing or
    is no folder: loaded as empty, the build would hold no object and an apply would revoke every
    object of its target, with nothing said. An empty folder is a repository with no intel yet."""
    intel = os.fspath(config.intel_path)
    if config.files.is_dir(intel):
        return []
    what = "is not a folder" if config.files.lexists(intel) else "does not exist"
    shown = display_name(config.intel_dir)
    return [make_finding(
        "TI107",
        f"the intel folder {shown} {what}: no object was read, so a build would be empty and an apply would revoke "
        f"every object of its target; make it a folder (tiops init makes one), or name yours with 'intel:' in tiops.yaml",
        Location(shown, 1, 1),
    )]


def load_repo(root: Path, *, progress: Progress = no_progress, source: FileSource | None = None,
              parsed: ParsedFiles | None = None, check: ObjectCheck | None = None) -> Repo:
    """Load every object file under the configured intel folder of ``root``.

    ``source``: where the files are read from (default the working tree; tiops.gitrepo
    reads a revision). ``parsed``: documents already parsed, by blob id, offered every
    document this load parses (tiops.filesource). ``check``: the per-object check of
    tiops.validate, run here when loading is shared with a forked helper (each process
    checks the objects of the files it parsed, see :attr:`Repo.object_findings`).
    """
    config, findings = load_config(root, source)
    repo = Repo(root=root, config=config, findings=list(findings))
    intel = config.intel_path
    if not config.files.is_dir(os.fspath(intel)):
        repo.findings.extend(missing_intel_folder(config))
        return repo
    with paused_gc():
        files = list(_object_files(intel, root, repo))
        if parsed is None and type(config.files) is WorkingTree and fork_helper(len(files)):
            _load_object_files_forked(files, repo, progress, check)
            return repo
        for done, (path, relative, defaults) in enumerate(files, 1):
            if parsed is None:
                _load_object_file(path, relative, defaults, repo)
            else:
                _load_shared_object_file(path, relative, defaults, repo, parsed)
            if done % 1000 == 0 or done == len(files):
                progress("load", done, len(files))
    return repo


# From this many object files on, a forked helper parses files alongside (tiops.forkwork)
# when a second CPU is idle: below it, forking and the pipe cost more than the second
# core saves (docs/performance.md, "Cold load on two cores").
PARALLEL_MIN_FILES = 2000


def fork_helper(files: int) -> bool:
    """Whether to load ``files`` object files with a forked helper (docs/ci.md).

    TIOPS_LOAD_FORK=0 never, =1 whenever the system allows it (tiops.forkwork.can_fork);
    otherwise when it allows it, there are at least :data:`PARALLEL_MIN_FILES` files and a
    second CPU is idle. Only the speed depends on it: the objects and findings are the same.
    """
    wanted = os.environ.get("TIOPS_LOAD_FORK")
    if wanted == "0" or files < 2 or not can_fork():
        return False
    return wanted == "1" or (files >= PARALLEL_MIN_FILES and second_cpu_idle())


def helpers_wanted(copying: bool = False) -> bool:
    """Whether a build may fork a helper for work of its own now, by the rule of :func:`fork_helper`
    without its count of files (the caller judges whether its work is worth one).

    ``copying``: the helper reads many objects this process holds, and so copies their pages
    (tiops.forkwork.room_for_a_copy): it is also wanted only while the memory available could
    hold a copy of this process. TIOPS_LOAD_FORK=1 still forks it.
    """
    wanted = os.environ.get("TIOPS_LOAD_FORK")
    if wanted == "0" or not can_fork():
        return False
    return wanted == "1" or (second_cpu_idle() and (not copying or room_for_a_copy()))


def _load_object_files_forked(files: list[tuple[str, str, Defaults]], repo: Repo, progress: Progress,
                              check: ObjectCheck | None) -> None:
    """:func:`_load_object_file` for every file, in order, the parsing shared with a forked helper.

    The helper reads and parses (:func:`_parsed_document`); objects and findings are
    made here, in file order, exactly as one process makes them, from the document one
    process read (a file changed meanwhile is read by one of them only). With ``check``,
    the helper also makes the objects of its files in a scratch repository and runs the
    check on them; an object it found clean is not checked again here (findings do not
    travel as marshal data: the objects with any are checked here). What travels is the
    document the file holds and a flag per object, nothing the files do not say.
    """
    source = repo.config.files
    parent = os.getpid()
    object_findings: list[Finding] | None = [] if check is not None else None

    def parse(index: int) -> Any:
        path, relative, defaults = files[index]
        try:
            document = _parsed_document(path, source)
        except YamlProblem as problem:
            return (False, problem.code, problem.message, problem.line, problem.column)
        if check is None or os.getpid() == parent:
            return (True, document, None)
        # The helper sends the document as parsed (making objects of it may change it: a
        # derived id), then makes those objects in a scratch repository only to check them.
        sent = marshal.dumps(document)
        scratch = Repo(root=repo.root, config=repo.config)
        _add_document(document, relative, defaults, scratch, shared=True)
        return (True, sent, tuple(not check(obj) for obj in scratch.objects))

    def add(index: int, outcome: Any) -> None:
        _path, relative, defaults = files[index]
        if not outcome[0]:
            _failed, code, message, line, column = outcome
            repo.findings.append(make_finding(code, message, Location(relative, line, column)))
            return
        _parsed, document, clean = outcome
        if clean is not None:
            document = marshal.loads(document)
        before = len(repo.objects)
        _add_document(document, relative, defaults, repo, shared=True)
        if check is None or object_findings is None:
            return
        made = repo.objects[before:]
        if clean is None or len(clean) != len(made):
            clean = (False,) * len(made)
        for obj, is_clean in zip(made, clean, strict=True):
            if not is_clean:
                object_findings.extend(check(obj))

    total = len(files)
    run_in_order(total, parse, add, chunk=64,
                 on_chunk=lambda done: progress("load", done, total) if done % 1024 == 0 or done == total else None)
    repo.object_findings = object_findings


def _repeated_names(name: str, raw: bytes, data: Any) -> list[Finding]:
    """TI101 for each name a mapping of a JSON bundle gives twice (STIX 2.1 section 2, dictionary: keys are
    unique), of which the parse kept one value, as YAML files get it (tiops import rejects such an object)."""
    findings = []
    for duplicate in duplicate_keys(raw, data):
        path: tuple[PathPart, ...] = (*duplicate.path, duplicate.key)
        # The object the mapping belongs to: an item of the bundle's objects, of a bare array, or the document.
        in_bundle = isinstance(data, dict) and duplicate.path[:1] == ("objects",)
        items, inside = (data.get("objects"), path[1:]) if in_bundle else (data, path)
        item, within = items, inside
        if isinstance(items, list) and len(inside) > 1 and type(inside[0]) is int:
            item, within = items[inside[0]], inside[1:]
        wrapper = item is data and isinstance(data, dict) and ("objects" in data or data.get("type") == "bundle")
        stix_id = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) and not wrapper else None
        findings.append(make_finding(
            "TI101", f"{'.'.join(map(str, within))} is written {duplicate.times} in one mapping, "
                     f"{'each time with the same value' if duplicate.same else 'with different values'}: a JSON "
                     "parser keeps one of them (RFC 8259 section 4)",
            Location(name, path=path), stix_id=stix_id,
            hint="Keep one of them: which value a consumer reads is undefined; 'tiops import' rejects an object "
                 "whose values differ (docs/import.md)."))
    return findings


def load_bundle(path: Path, display: str | None = None, *, repository_config: Config | None = None) -> Repo:
    """Load a plain STIX bundle or JSON array of objects, for linting what others send.

    ``repository_config``: the configuration of the repository it is linted in, if any.
    """
    name = display_name(display or path.as_posix())
    repo = Repo(root=_display_root(path, name), config=Config(root=path.parent), is_bundle=True,
                repository_config=repository_config)
    try:
        raw = read_input(os.fspath(path))
        data = parse_json(raw)
    except InputProblem as problem:
        repo.findings.append(make_finding(problem.code, problem.message, Location(name, 1, 1)))
        return repo
    except YamlProblem as problem:
        repo.findings.append(make_finding(problem.code, problem.message, Location(name, problem.line, problem.column)))
        return repo
    repo.findings.extend(_repeated_names(name, raw, data))
    prefix: tuple[PathPart, ...] | None
    stix20_bundle = False
    if isinstance(data, dict) and data.get("type") == "bundle":
        items, prefix = data.get("objects") or [], ("objects",)
        repo.findings.extend(check_bundle_wrapper(data, name))
        stix20_bundle = data.get("spec_version") == "2.0"
        if not isinstance(items, list):
            return repo
    elif isinstance(data, list):
        items, prefix = data, ()
    elif isinstance(data, dict):
        items, prefix = [data], None
    else:
        repo.findings.append(make_finding("TI104", "expected a STIX bundle, an array of objects or one object", Location(name, 1, 1)))
        return repo
    stix20 = 0
    custom_as_20 = not stix20_bundle and holds_only_implicit_20(items)
    for index, item in enumerate(items):
        item_path: tuple[PathPart, ...] = () if prefix is None else (*prefix, index)
        if not isinstance(item, dict):
            repo.findings.append(make_finding("TI104", f"item {index} is not an object", Location(name, path=item_path)))
            continue
        if not isinstance(item.get("type"), str):
            defect = "has no 'type'" if "type" not in item else "has a 'type' that is not a string"
            repo.findings.append(make_finding("TI201", f"item {index} {defect}", Location(name, path=(*item_path, "type")),
                                              hint="Every STIX object names its type, for example \"type\": \"indicator\"."))
            continue
        if stix20_bundle and item.get("spec_version") == "2.1":
            # STIX 2.0 Part 1, bundle: a bundle saying 2.0 holds 2.0 objects. This one says it
            # is 2.1 and is checked as 2.1, its own claim being the nearer one.
            repo.findings.append(make_finding(
                "TI215", f"item {index} says spec_version 2.1 in a bundle that says spec_version 2.0 (STIX 2.0 "
                "Part 1, bundle: a 2.0 bundle holds STIX 2.0 objects); checked as STIX 2.1",
                Location(name, path=(*item_path, "spec_version")), stix_id=item.get("id") if isinstance(item.get("id"), str) else None))
        elif stix20_bundle and item["type"] in SCO_TYPES:
            # STIX 2.0 Part 3: cyber observables live inside observed-data's objects only.
            repo.findings.append(make_finding(
                "TI215", f"item {index} is a {item['type']} cyber observable at the top of a bundle that says "
                "spec_version 2.0 (STIX 2.0 Part 3: 2.0 observables are only inside observed-data objects); "
                "checked as STIX 2.1", Location(name, path=(*item_path, "type")),
                stix_id=item.get("id") if isinstance(item.get("id"), str) else None))
        elif stix20_bundle and item["type"] in TYPES_21_ONLY:
            repo.findings.append(make_finding(
                "TI215", f"item {index} is a {item['type']}, a type STIX 2.1 added, in a bundle that says "
                "spec_version 2.0 (STIX 2.0 Part 1, bundle: a 2.0 bundle holds STIX 2.0 objects); checked as STIX 2.1",
                Location(name, path=(*item_path, "type")),
                stix_id=item.get("id") if isinstance(item.get("id"), str) else None))
        elif is_stix20_object(item, in_stix20_bundle=stix20_bundle, custom_as_20=custom_as_20):
            stix20 += 1
            upgraded = upgrade_from_20(item, Counter())
            moved = MOVED_FROM_LABELS.get(item["type"])
            repo.upgraded_from_20[item_path] = {
                added: "labels" if added == moved else "" for added in upgraded if added not in item
            }
            item = upgraded
        repo.objects.append(IntelObject(data=item, file=name, path=item_path))
    if stix20:
        repo.findings.append(
            make_finding(
                "TI210",
                f"{stix20} object(s) are STIX 2.0 (no spec_version, or spec_version 2.0): checked as upgraded to "
                "STIX 2.1 the way 'tiops import' upgrades them, findings at their 2.0 place",
                Location(name, 1, 1),
            )
        )
    return repo


def _display_root(path: Path, name: str) -> Path:
    """The folder ``name`` (a bundle's path as shown) is relative to, where findings are located from.

    ``tiops validate dir/bundle.json`` shows the path as given; reading it back from the
    bundle's own folder would find no file and leave every finding at line 1.
    """
    relative = Path(name)
    if relative.is_absolute() or not path.is_absolute() or path.parts[-len(relative.parts):] != relative.parts:
        return path.parent
    return path.parents[len(relative.parts) - 1]


def check_bundle_wrapper(bundle: dict[str, Any], name: str) -> list[Finding]:
    """STIX 2.1 section 8: a bundle has type, an id of its own type, and a list of objects."""
    findings: list[Finding] = []
    identifier = bundle.get("id")
    if identifier is None:
        findings.append(make_finding("TI249", "the bundle has no id; a bundle MUST have one (STIX 2.1 section 8)",
                                     Location(name, 1, 1)))
    elif not isinstance(identifier, str) or ID_RE.match(identifier) is None or not identifier.startswith("bundle--"):
        findings.append(make_finding("TI249", f"bundle id {identifier!r} is not 'bundle--<UUID>' (STIX 2.1 sections 2.9, 8)",
                                     Location(name, path=("id",))))
    objects = bundle.get("objects")
    if "objects" in bundle and not isinstance(objects, list):
        findings.append(make_finding("TI249", "the bundle's objects is not a list (STIX 2.1 section 8)",
                                     Location(name, path=("objects",))))
    elif objects == []:
        findings.append(make_finding("TI243", "the bundle's objects is an empty list; leave it out instead "
                                     "(STIX 2.1 section 8, list type)", Location(name, path=("objects",))))
    version = bundle.get("spec_version")
    if version is not None and version != "2.0":
        # Section 8 lists type, id and objects; some producers add spec_version anyway,
        # which misleads no reader, so this one is a warning.
        findings.append(make_finding("TI249", f"bundle spec_version {version!r}: a STIX 2.1 bundle has no spec_version "
                                     "(section 8); 2.0 bundles say 2.0", Location(name, path=("spec_version",)),
                                     severity=Severity.WARNING))
    return findings


def _object_files(intel: Path, root: Path, repo: Repo) -> Iterable[tuple[str, str, Defaults]]:
    """Object files in a stable order, each with the defaults that apply to its folder.

    Plain strings rather than pathlib here: this runs once per file, and on 100k-file
    repositories Path construction was a measurable share of loading.
    """
    for directory, relative_dir, defaults, names in _object_folders(intel, root, repo):
        for filename in names:
            yield os.path.join(directory, filename), f"{relative_dir}/{filename}", defaults


def _object_folders(intel: Path, root: Path, repo: Repo) -> Iterable[tuple[str, str, Defaults, list[str]]]:
    """The folders of :func:`_object_files`, each with its defaults and the names of its object files, in order.

    The same walk and the same findings: a caller that visits every file (the build cache's
    warm route, tiops.buildcache) works a folder at a time rather than a file at a time.
    """
    defaults_by_dir: dict[str, Defaults] = {}

    def report(path: str, code: str, message: str) -> None:
        relative = display_name(_relative(Path(path), root))
        repo.findings.append(make_finding(code, message, Location(relative, 1, 1)))

    for directory, subdirs, filenames in repo.config.files.walk(os.fspath(intel), report):
        # A folder whose name starts with a dot is not entered, as a file so named is not read:
        # intel/.enrichment/ is the lock's, and a team keeps drafts out of the build so (.drafts/).
        subdirs[:] = [name for name in subdirs if not name.startswith(".")]
        for name in (DEFAULTS_FILE, OVERLAY_FILE):
            if name in subdirs:  # its files are no objects, and the folder's defaults or overlay would be gone unsaid
                subdirs.remove(name)
                report(os.path.join(directory, name), "TI108",
                       f"{name} is a folder, not a file: it was not read, and its files are not objects")
        parent = defaults_by_dir.get(os.path.dirname(directory), Defaults())
        relative_dir = _relative(Path(directory), root)
        defaults = parent
        if DEFAULTS_FILE in filenames:
            defaults = _read_defaults(
                os.path.join(directory, DEFAULTS_FILE), f"{relative_dir}/{DEFAULTS_FILE}", parent, repo
            )
            if defaults.imported_folder == relative_dir:
                defaults = _with_overlay(defaults, directory, relative_dir, repo)
        defaults_by_dir[directory] = defaults
        # An _overlay.yaml is never an object file: beside an imported source's _defaults.yaml it is the
        # source's overlay (_with_overlay), anywhere else one that applies to nothing (TI707 below).
        names = [filename for filename in filenames
                 if filename.endswith(YAML_SUFFIXES) and filename != DEFAULTS_FILE and not filename.startswith(".")
                 and filename != OVERLAY_FILE]
        if len(names) != len(filenames):
            if OVERLAY_FILE in filenames and defaults.imported_folder != relative_dir:
                report(os.path.join(directory, OVERLAY_FILE), "TI707", _stray_overlay_message(defaults.imported_folder))
            for filename in filenames:
                # X.YAML was skipped without a word: its objects were in no build (file systems and
                # editors keep the case written; git and CI do too).
                if not filename.endswith(YAML_SUFFIXES) and filename.lower().endswith(YAML_SUFFIXES) \
                        and not filename.startswith("."):
                    report(os.path.join(directory, filename), "TI115",
                           "the name ends in .yaml or .yml in other letters; tiops reads files ending in .yaml or "
                           ".yml, so this one was not read")
        # One check for the folder (this runs for each of 100k files): a name that is not UTF-8
        # holds a surrogate, which the strict encoder refuses wherever it stands in the joined names.
        if not is_utf8_name("".join(names)):
            kept = []
            for filename in names:
                if is_utf8_name(filename):
                    kept.append(filename)
                else:
                    report(os.path.join(directory, filename), "TI114", "the file name is not UTF-8; the file was not read")
            names = kept
        yield directory, relative_dir, defaults, names


def _stray_overlay_message(imported_folder: str | None) -> str:
    """Why an _overlay.yaml outside an imported source folder's own folder changes nothing (TI707)."""
    if imported_folder is not None:
        return (f"an overlay applies only in the source folder {imported_folder} itself, beside its _defaults.yaml "
                f"(imported: true), not below it: this one changes nothing and its content is not read as objects")
    return ("this folder holds no partner intel (no _defaults.yaml with imported: true here): an overlay applies only "
            "in an imported source folder, so this one changes nothing and its content is not read as objects")


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _read_text(path: str, relative: str, repo: Repo) -> str | None:
    # os.open/os.read (in tiops.inputs) rather than open(): a text-mode file object costs
    # four extra system calls per file (fstat, ioctl, lseek...), a measurable share of
    # loading 50k files. Line endings are normalised as text mode would.
    try:
        content = repo.config.files.read(path)
    except InputProblem as problem:
        repo.findings.append(make_finding(problem.code, problem.message, Location(relative, 1, 1)))
        return None
    return _decode(content, relative, repo)


def _decode(content: bytes, relative: str, repo: Repo) -> str | None:
    try:
        return _decoded(content)
    except YamlProblem as problem:
        repo.findings.append(make_finding(problem.code, problem.message, Location(relative, problem.line, problem.column)))
        return None


def _decoded(content: bytes) -> str:
    """A file's text, line endings normalised as text mode would; TI106 (a YamlProblem) when it is not UTF-8."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        # At the line and column of the byte: the text before it is UTF-8, so it is counted as text.
        before = content[:error.start].decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        raise YamlProblem("TI106", f"not UTF-8 ({error.reason} at byte {error.start})", line, column) from None
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _parse(text: str, relative: str, repo: Repo, *, shared: bool = False) -> Any:
    try:
        return parse_yaml(text, shared=shared)
    except YamlProblem as problem:
        repo.findings.append(make_finding(problem.code, problem.message, Location(relative, problem.line, problem.column)))
        return _UNREADABLE


_UNREADABLE = object()
# The paths of the items of a bulk file, shared by every bulk file (one tuple per object otherwise).
_ITEM_PATHS: tuple[tuple[PathPart, ...], ...] = tuple((index,) for index in range(1024))


def _read_defaults(path: str, relative: str, parent: Defaults, repo: Repo) -> Defaults:
    text = _read_text(path, relative, repo)
    data = _parse(text, relative, repo) if text is not None else _UNREADABLE
    if data is _UNREADABLE:
        return parent
    data = {} if data is None else data
    errors = tiops_schema_errors("defaults", data)
    for error_path, message in errors:
        repo.findings.append(make_finding("TI111", message, Location(relative, path=error_path)))
    if errors or not isinstance(data, dict):
        return parent
    source = data.get("source", parent.source)
    imported_folder = parent.imported_folder
    inherited = parent.properties
    files = (*parent.files, relative)
    if data.get("imported") is True and imported_folder is None:
        imported_folder = relative.rpartition("/")[0]
        # Partner intel is what the partner sent: the defaults of the folders above (our
        # own created_by_ref and markings) would rewrite it and credit it to us.
        inherited = {}
        # So the files above contribute nothing to it (explain and the report say where an object's
        # values came from), but the source name when this folder names none.
        files = files if "source" not in data and parent.source is not None else (relative,)
    given = data.get("defaults") or {}
    if imported_folder is not None and given:
        # Partner intel is read-only but for its overlay: a folder default would add properties to
        # every partner object below it (the lock's digests are of the files, so no edit check sees it).
        for key in given:
            repo.findings.append(make_finding(
                "TI700", f"defaults.{key}: a folder default in imported source folder {imported_folder} would change "
                         "partner intel, which is read-only except labels, valid_until, confidence, revoked "
                         "(not applied)",
                Location(relative, path=("defaults", key)),
                hint=f"Remove 'defaults' from {relative}; set labels, valid_until, confidence or revoked per object "
                     f"in {imported_folder}/_overlay.yaml (docs/import.md)."))
        given = {}
    wrong = _wrong_default_values(given)
    for key, message in wrong.items():
        # Said once, here, and not applied: applied, the value was one finding per object that inherits it.
        repo.findings.append(make_finding("TI111", message, Location(relative, path=("defaults", key))))
    applied = {key: value for key, value in given.items() if key not in wrong}
    # Nearer folders win: this folder's keys replace the parent's (shallow merge).
    origins = {**(parent.origins if inherited else {}), **dict.fromkeys(applied, relative)}
    if "source" in data:
        origins[SOURCE_ORIGIN] = relative
    elif parent.origins.get(SOURCE_ORIGIN) and source is not None:
        origins[SOURCE_ORIGIN] = parent.origins[SOURCE_ORIGIN]
    repo.default_origins[files] = origins
    return Defaults(
        properties={**inherited, **applied},
        source=source,
        files=files,
        imported_folder=imported_folder,
        overlay=parent.overlay,
        origins=origins,
    )


# The common properties of STIX 2.1 section 3.2, checked on an object made to hold nothing else.
_PROBE = {"type": "x-tiops-default", "spec_version": "2.1", "id": "x-tiops-default--00000000-0000-4000-8000-000000000000",
          "created": "2000-01-01T00:00:00.000Z", "modified": "2000-01-01T00:00:00.000Z"}


def _wrong_default_values(given: dict[str, Any]) -> dict[str, str]:
    """Default values a common property cannot hold (``confidence: high``), by key, with why."""
    from tiops.jsonschemas import common_properties_validator

    common = [key for key in given if key in _COMMON_DEFAULT_KEYS]
    if not common:
        return {}
    wrong: dict[str, str] = {}
    probe = {**_PROBE, **{key: given[key] for key in common}}
    for error in common_properties_validator("sdo").iter_errors(probe):
        path = list(error.instance_path)
        if path and path[0] in common and path[0] not in wrong:
            where = ".".join(str(part) for part in path)
            wrong[str(path[0])] = f"defaults.{where}: {error.message} (not applied to the objects of this folder)"
    return wrong


# The common properties a folder's defaults may give (STIX 2.1 section 3.2), whose values are checked here.
_COMMON_DEFAULT_KEYS = frozenset({"created_by_ref", "revoked", "labels", "confidence", "lang", "external_references",
                                  "object_marking_refs", "granular_markings"})


def _with_overlay(defaults: Defaults, directory: str, relative_dir: str, repo: Repo) -> Defaults:
    """Attach the imported folder's _overlay.yaml; a broken one is reported and applies nothing."""
    overlay: dict[str, Any] = {}
    path = os.path.join(directory, OVERLAY_FILE)
    if repo.config.files.lexists(path):  # a pipe or a dangling link is reported by _read_text, not skipped
        relative = f"{relative_dir}/{OVERLAY_FILE}"
        text = _read_text(path, relative, repo)
        data = _parse(text, relative, repo) if text is not None else _UNREADABLE
        if isinstance(data, dict):
            overlay = data
        elif data is not None and data is not _UNREADABLE:
            repo.findings.append(make_finding("TI704", f"the overlay is a {_kind(data)}, not a mapping of object ids",
                                              Location(relative, 1, 1)))
    repo.overlays[relative_dir] = overlay
    return replace(defaults, overlay=overlay)


def _load_object_file(path: str, relative: str, defaults: Defaults, repo: Repo) -> None:
    try:
        data = _parsed_document(path, repo.config.files)
    except YamlProblem as problem:
        repo.findings.append(make_finding(problem.code, problem.message, Location(relative, problem.line, problem.column)))
        return
    _add_document(data, relative, defaults, repo, shared=True)


def _parsed_document(path: str, source: FileSource) -> Any:
    """The document of one object file, parsed with its strings shared (held by nothing
    else: the objects keep it as it is). Every reason it cannot be read (tiops.inputs,
    not UTF-8, YAML) is raised as a :class:`YamlProblem`, at line 1 column 1 when the
    file could not be read at all."""
    try:
        content = source.read(path)
    except InputProblem as problem:
        raise YamlProblem(problem.code, problem.message, 1, 1) from None
    return parse_yaml(_decoded(content), shared=True)


def _add_document(data: Any, relative: str, defaults: Defaults, repo: Repo, *, shared: bool = False) -> None:
    """Add the objects of one parsed file. ``shared``: ``data`` holds shared strings
    (tiops.memory) and nothing else holds it; otherwise each object is a shared copy."""
    if isinstance(data, dict):
        _add_object(data, relative, (), defaults, repo, shared)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            if isinstance(item, dict):
                _add_object(item, relative, _ITEM_PATHS[index] if index < len(_ITEM_PATHS) else (index,), defaults,
                            repo, shared)
            else:
                repo.findings.append(
                    make_finding("TI104", f"item {index} is a {_kind(item)}, not a STIX object mapping", Location(relative, path=(index,)))
                )
    elif data is None:
        repo.findings.append(make_finding("TI104", "the file is empty", Location(relative, 1, 1)))
    else:
        repo.findings.append(make_finding("TI104", f"the document is a {_kind(data)}, not a STIX object mapping or a list of them", Location(relative, 1, 1)))


def _load_shared_object_file(path: str, relative: str, defaults: Defaults, repo: Repo, parsed: ParsedFiles) -> None:
    """:func:`_load_object_file` that reuses a document parsed before from the same blob.

    A file whose blob id the source knows (a git revision) is not even read when its
    document is there; a working-tree file is read and hashed, which costs far less
    than parsing it again.
    """
    files = repo.config.files
    blob = files.blob_id(path)
    if blob is not None and _reuse_loaded(relative, blob, defaults, repo, parsed):
        return
    document = parsed.lookup(relative, blob) if blob is not None else NOT_PARSED
    if document is NOT_PARSED:
        try:
            content = files.read(path)
        except InputProblem as problem:
            repo.findings.append(make_finding(problem.code, problem.message, Location(relative, 1, 1)))
            return
        if blob is None:
            blob = blob_id_of(content)
            if _reuse_loaded(relative, blob, defaults, repo, parsed):
                return
        document = parsed.lookup(relative, blob)
        if document is NOT_PARSED:
            text = _decode(content, relative, repo)
            if text is None:
                return
            document = _parse(text, relative, repo)
            if document is _UNREADABLE:
                return
            parsed.offer(relative, blob, document)
    assert blob is not None  # known from the source or computed from the content above
    objects_before, findings_before = len(repo.objects), len(repo.findings)
    _add_document(document, relative, defaults, repo)
    parsed.offer_loaded(relative, blob, defaults, repo.objects[objects_before:], repo.findings[findings_before:])


def _reuse_loaded(relative: str, blob: str, defaults: Defaults, repo: Repo, parsed: ParsedFiles) -> bool:
    """Take the objects an earlier load made of the same file, blob and defaults."""
    loaded = parsed.loaded(relative, blob, defaults)
    if loaded is None:
        return False
    repo.objects.extend(loaded[0])
    repo.findings.extend(loaded[1])
    return True


def _kind(value: Any) -> str:
    return {str: "string", int: "number", float: "number", bool: "boolean", list: "list"}.get(type(value), type(value).__name__)


def _add_object(parsed: dict[str, Any], relative: str, path: tuple[PathPart, ...], defaults: Defaults, repo: Repo,
                shared: bool) -> None:
    # One copy of the parsed data, with its repeated strings shared (tiops.memory), so at
    # a million objects memory holds each object once: the parsed data itself when the
    # parser shared its strings already and nothing else holds it.
    raw = parsed if shared else share_strings(parsed)
    if (defaults.properties or defaults.source) and isinstance(raw.get("id"), str) and raw["id"] in BUILTIN_MARKING_IDS:
        # A TLP marking definition is fixed to the last property (STIX 2.1 section 7.2.1.4):
        # a folder default or a source system would make it an altered one (TI247).
        defaults = replace(defaults, properties={}, source=None, defaulted_tuples={}, by_type={})
    defaulted: tuple[str, ...]
    inline = raw.get(INLINE_RELATIONSHIPS_KEY)
    if inline is None and not defaults.properties and defaults.imported_folder is None:
        # `raw` is already a copy of its own: rules and overlays may change it.
        data, defaulted = raw, ()
    else:
        own = raw if inline is None else {key: value for key, value in raw.items() if key != INLINE_RELATIONSHIPS_KEY}
        properties = defaults.for_object(own) if defaults.properties else defaults.properties
        # A copy: rules and overlays change `data`, never `imported_data` (what the file says).
        data = {**properties, **own}
        # Defaults hold a handful of keys; looking each up beats building a set per object.
        # Objects of one folder mostly leave out the same defaults: one tuple for all of them.
        defaulted = tuple(sorted(key for key in properties if key not in own))
        defaulted = defaults.defaulted_tuples.setdefault(defaulted, defaulted)
    obj = IntelObject(
        data=data,
        file=relative,
        path=path,
        source=defaults.source,
        defaults_files=defaults.files,
        defaulted_properties=defaulted,
    )
    if defaults.imported_folder is not None:
        _apply_overlay(obj, raw, defaults)
    stix_type = data.get("type")
    if not isinstance(stix_type, str):
        repo.findings.append(make_finding("TI201", "the object has no 'type'", obj.location(), hint="Add 'type: <stix type>', for example 'type: indicator'."))
        return
    if "id" not in data:
        try:
            derived = derive_sco_id(data) if stix_type in SCO_TYPES else derive_sdo_id(stix_type, data)
        except (TypeError, ValueError):
            # orjson, which writes the id's seed, cannot write an integer beyond 64 bits.
            repo.findings.append(
                make_finding("TI201", "the object has no 'id', and a property it would be derived from holds "
                             "an integer beyond 64 bits", obj.location(),
                             hint="Add an 'id' (TYPE--UUID), or write the number as a string.")
            )
            return
        if derived is None:
            repo.findings.append(
                make_finding("TI201", "the object has no 'id' and no name-like property to derive one from", obj.location(),
                             hint="Add an 'id' (TYPE--UUID), or a 'name' from which tiops derives a stable id.")
            )
            return
        data["id"] = derived
        obj.id_derived = True
        repo.findings.append(make_finding("TI120", f"no id written; derived {derived}", obj.location(), stix_id=derived))
    repo.objects.append(obj)
    if inline is not None:
        _add_inline_relationships(obj, inline, repo)


def _apply_overlay(obj: IntelObject, raw: dict[str, Any], defaults: Defaults) -> None:
    """Partner intel: overlay values replace the imported ones, for the four allowed properties only.

    Anything else in the overlay is left for `tiops validate` to report (TI703); it never
    changes the object. A null value or an empty list removes the property.
    """
    obj.imported_folder = defaults.imported_folder
    obj.imported_data = raw
    entry = (defaults.overlay or {}).get(str(raw.get("id")))
    if not isinstance(entry, dict):
        return
    obj.overlay_file = f"{defaults.imported_folder}/{OVERLAY_FILE}"
    applied = []
    for name in OVERLAY_PROPERTIES:
        if name not in entry:
            continue
        value = entry[name]
        if overlay_value_problem(name, value) is not None:
            continue  # TI704 at the overlay's line says why; the imported value stays
        if value is None or value == []:
            obj.data.pop(name, None)
        else:
            obj.data[name] = value
        applied.append(name)
    obj.overlaid_properties = tuple(applied)


def overlay_value_problem(name: str, value: Any) -> str | None:
    """Why an overlay value cannot replace the imported one (None when it can; null removes)."""
    if value is None:
        return None
    if name == "labels":
        if not isinstance(value, list) or not all(isinstance(label, str) and label for label in value):
            return "must be a list of non-empty strings (an empty list removes the labels)"
    elif name == "confidence":
        # STIX 2.1 section 3.2: confidence is an integer from 0 to 100.
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            return "must be a whole number from 0 to 100 (STIX 2.1 section 3.2)"
    elif name == "revoked":
        if not isinstance(value, bool):
            return "must be true or false"
    elif name == "valid_until" and (not isinstance(value, str) or timestamp_key(value) is None):
        return "must be an RFC 3339 UTC timestamp such as 2026-01-01T00:00:00.000Z (STIX 2.1 section 3.2)"
    return None


def _add_inline_relationships(parent: IntelObject, entries: Any, repo: Repo) -> None:
    where = parent.location(INLINE_RELATIONSHIPS_KEY)
    if not isinstance(entries, list):
        repo.findings.append(make_finding("TI401", "'relationships' must be a list of {TYPE: TARGET_ID} entries", where, stix_id=parent.id))
        return
    # The inherited properties the declaring object took from its folder's defaults: so are
    # the relationship's, unless its entry writes its own (a finding at one is the default's).
    inherited_defaults = tuple(name for name in INHERITED_BY_RELATIONSHIPS if name in parent.defaulted_properties)
    for index, entry in enumerate(entries):
        entry_location = parent.location(INLINE_RELATIONSHIPS_KEY, index)
        if not isinstance(entry, dict):
            repo.findings.append(make_finding("TI401", f"entry {index} is a {_kind(entry)}, not a mapping", entry_location, stix_id=parent.id))
            continue
        kinds = [key for key in entry if key not in RELATIONSHIP_PROPERTIES and not key.startswith("x_")]
        if len(kinds) != 1:
            found = "no relationship type" if not kinds else "several relationship types (" + ", ".join(map(str, kinds)) + ")"
            repo.findings.append(make_finding("TI401", f"entry {index} has {found}", entry_location, stix_id=parent.id))
            continue
        relationship_type, target = kinds[0], entry[kinds[0]]
        if not isinstance(target, str):
            repo.findings.append(make_finding("TI401", f"the target of '{relationship_type}' must be one object id", entry_location, stix_id=parent.id))
            continue
        data: dict[str, Any] = {
            "type": "relationship",
            "spec_version": "2.1",
            "id": derive_relationship_id(parent.id, relationship_type, target),
            "relationship_type": relationship_type,
            "source_ref": parent.id,
            "target_ref": target,
        }
        for name in INHERITED_BY_RELATIONSHIPS:
            if name in parent.data:
                data[name] = parent.data[name]
        data.update({key: value for key, value in entry.items() if key != relationship_type})
        repo.objects.append(
            IntelObject(
                data=data,
                file=parent.file,
                path=(*parent.path, INLINE_RELATIONSHIPS_KEY, index),
                source=parent.source,
                id_derived="id" not in entry,
                defaults_files=parent.defaults_files,
                defaulted_properties=inherited_defaults if not inherited_defaults or entry.keys().isdisjoint(
                    inherited_defaults) else tuple(name for name in inherited_defaults if name not in entry),
                declared_by=parent.id,
            )
        )

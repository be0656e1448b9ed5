"""Compile stage: a validated repository becomes one deterministic STIX 2.1 bundle.

Determinism rules: canonical JSON (sorted keys, no insignificant spaces, UTF-8),
objects sorted by (type, id), one object per line so bundles diff well in git,
a bundle id derived from the content, and nothing taken from the clock, the
checkout path or hash seeds.
"""

from __future__ import annotations

import array
import bisect
import contextlib
import errno
import hashlib
import os
import threading
import uuid
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

import orjson

from tiops.enrich.attach import (
    ENRICHMENT_EXTENSION_ID,
    ENRICHMENT_EXTENSION_OBJECT,
    BundleEnrichment,
    EnrichmentPlan,
)
from tiops.errors import TiopsError
from tiops.findings import Finding, Severity
from tiops.forkwork import remove_abandoned
from tiops.load import IntelObject, Repo
from tiops.memory import WRITE_PIECE, paused_gc
from tiops.outputs import rename_over
from tiops.rules import RulesOutcome, apply_repo_rules
from tiops.stix import (
    BUILTIN_DEPENDENCIES,
    BUILTIN_OBJECTS,
    SOURCE_EXTENSION_ID,
    SOURCE_EXTENSION_OBJECTS,
    TIOPS_NAMESPACE,
)

_JSON_OPTIONS = orjson.OPT_SORT_KEYS
_WRITE_BUFFER = 1 << 20
_NONE: dict[str, Any] = {}


def compiled_objects(repo: Repo, *, rules: RulesOutcome | None = None,
                     built: dict[int, tuple[IntelObject, dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """The objects of the bundle, sorted, built-ins and the source extension included.

    Ingestion rules (tiops.rules) are applied first; pass ``rules`` when they already ran.
    ``built``: compiled forms by object identity, filled and reused (two revisions compared
    share the objects of their unchanged files: tiops.revision).
    """
    objects = bundle_objects(repo, rules=rules)
    return list(objects) if built is None else objects.reusing(built)


class BundleObjects:
    """The objects of the bundle in bundle order, each built only when iteration reaches it.

    Streaming lets :func:`serialize_bundle` reuse one object's memory for the next
    instead of holding a copy of every object at once (see tiops.memory). The enrichment
    extension an object takes (RulesOutcome.enrichment) is built at the same moment.
    """

    def __init__(self, entries: list[_Entry], enrichment: BundleEnrichment | None, groups: LineGroups) -> None:
        self._entries = entries
        self._enrichment = enrichment
        self.groups = groups  # where each group of lines the bundle id digests starts (:func:`line_groups`)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        enrichment = self._enrichment
        for entry in self._entries:
            if isinstance(entry, IntelObject):
                yield _with_source(entry)
            elif isinstance(entry, tuple):
                assert enrichment is not None  # a plan comes from it (bundle_objects)
                yield _with_extensions(entry[0], enrichment.extension(entry[0].data, entry[1]))
            else:
                yield entry

    def lock_enriched_keys(self) -> set[str]:
        """``type NUL id`` of each object that takes its enrichment extension from the lock here
        (tiops.bundlereuse records which files' objects carry one)."""
        return {f"{entry[0].type}\0{entry[0].id}" for entry in self._entries if isinstance(entry, tuple)}

    def reusing(self, built: dict[int, tuple[IntelObject, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Every object, taken from ``built`` when the same object was compiled before."""
        result = []
        enrichment = self._enrichment
        for entry in self._entries:
            if isinstance(entry, IntelObject):
                earlier = built.get(id(entry))
                if earlier is None or earlier[0] is not entry:
                    earlier = built[id(entry)] = (entry, _with_source(entry))
                result.append(earlier[1])
            elif isinstance(entry, tuple):  # enrichment comes from this revision's lock: never reused
                assert enrichment is not None
                result.append(_with_extensions(entry[0], enrichment.extension(entry[0].data, entry[1])))
            else:
                result.append(entry)
        return result


# A bundle entry: an object as the rules left it, one with the values whose locked results
# the bundle adds as an enrichment extension (RulesOutcome.enrichment), or a built-in object.
_Entry = IntelObject | tuple[IntelObject, EnrichmentPlan] | dict[str, Any]


def bundle_objects(repo: Repo, *, rules: RulesOutcome | None = None) -> BundleObjects:
    """The bundle's objects, sorted by (type, id), built-ins and the source extension included.

    Ingestion rules (tiops.rules) are applied first; pass ``rules`` when they already ran.
    """
    with paused_gc():
        outcome = rules if rules is not None else apply_repo_rules(repo)[0]
        survivors = outcome.objects
        # One pass reads what the bundle needs of every object (a pass each cost a 100k-object
        # compile a fifth of a second: docs/performance.md, "Compile stage and enrichment lock").
        keyed, sourced, enriched, markings = survey_objects(survivors)
        found: list[_Entry] = list(survivors)
        if outcome.enrichment is not None:
            # Which objects take an extension is known here (the definition goes in with the
            # first); each is built as the bundle is written (BundleObjects).
            for position, plan in enumerate(outcome.enrichment.plans(survivors)):
                if plan is not None:
                    found[position] = (survivors[position], plan)
                    enriched = True
        present = {key[1] for key in keyed}
        extra = builtin_extras(present, sourced=sourced, enriched=enriched, markings=markings)
        entries = [*found, *extra.values()]
        keyed.extend((o["type"], o["id"]) for o in extra.values())
        order, keys, in_key_order = _bundle_order(keyed)
        groups = line_groups(keys, in_key_order=in_key_order)
    return BundleObjects([entries[position] for position in order], outcome.enrichment, groups)


def entry_forms(objects: list[IntelObject], enrichment: BundleEnrichment | None) -> tuple[list[dict[str, Any]], bool]:
    """The bundle forms of ``objects`` (source and locked enrichment extensions added, as
    :func:`bundle_objects` adds them) and whether any took an enrichment extension from the lock.

    For compiling some objects on their own (tiops.bundlereuse: the objects of changed files).
    """
    if enrichment is None:
        return [_with_source(obj) for obj in objects], False
    forms: list[dict[str, Any]] = []
    enriched = False
    for obj, plan in zip(objects, enrichment.plans(objects), strict=True):
        if plan is None:
            forms.append(_with_source(obj))
        else:
            forms.append(_with_extensions(obj, enrichment.extension(obj.data, plan)))
            enriched = True
    return forms, enriched


def builtin_object(stix_id: str) -> dict[str, Any] | None:
    """The object :func:`builtin_extras` adds under ``stix_id`` when a bundle needs it (None: not one of them)."""
    for definition in (*SOURCE_EXTENSION_OBJECTS, ENRICHMENT_EXTENSION_OBJECT):
        if definition["id"] == stix_id:
            return definition
    return BUILTIN_OBJECTS.get(stix_id)


def builtin_extras(present: Container[str], *, sourced: bool, enriched: bool,
                   markings: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The built-in objects a bundle adds to its own, by id: what they need and do not hold.

    ``present``: the ids the bundle holds already; ``sourced``: whether any object names a
    source system (the source extension's definition and its identity go in); ``enriched``:
    whether any carries locked enrichment (its property-extension needs its definition);
    ``markings``: the built-in marking definitions the objects reference, with their
    dependencies. One place for both the full compile and the reuse of a previous bundle
    (tiops.bundlereuse), so the two cannot add different objects.
    """
    extra: dict[str, dict[str, Any]] = {}
    if sourced:
        extra.update({o["id"]: o for o in SOURCE_EXTENSION_OBJECTS if o["id"] not in present})
    if enriched:
        for definition in (SOURCE_EXTENSION_OBJECTS[0], ENRICHMENT_EXTENSION_OBJECT):
            if definition["id"] not in present:
                extra[definition["id"]] = definition
    for marking_id in sorted(marking for marking in markings if marking not in present):
        extra[marking_id] = BUILTIN_OBJECTS[marking_id]
        for dependency in BUILTIN_DEPENDENCIES.get(marking_id, ()):
            if dependency not in present:
                extra[dependency] = BUILTIN_OBJECTS[dependency]
    return extra


def _bundle_order(keyed: list[tuple[str, str]]) -> tuple[list[int], list[str], bool]:
    """The positions of ``keyed`` sorted by (type, id), ties in their given order; the keys
    (type NUL id) in that order; and whether that is the keys' own order.

    Sorting one string per object, type and id joined by NUL, is about four times
    quicker than sorting the pairs, and gives the same order whenever no type holds a
    NUL: NUL sorts below every other character, so a type that is a prefix of another
    still comes first. Otherwise the pairs themselves are sorted.
    """
    joined = [f"{stix_type}\0{stix_id}" for stix_type, stix_id in keyed]
    if any("\0" in stix_type for stix_type in {stix_type for stix_type, _ in keyed}):
        order = sorted(range(len(keyed)), key=keyed.__getitem__)
        return order, list(map(joined.__getitem__, order)), False
    order = sorted(range(len(joined)), key=joined.__getitem__)
    return order, list(map(joined.__getitem__, order)), True


def survey_objects(objects: list[IntelObject]) -> tuple[list[tuple[str, str]], bool, bool, set[str]]:
    """(type, id) of each object, whether any has a source system, whether any
    carries locked enrichment, and the built-in markings they reference."""
    keyed: list[tuple[str, str]] = []
    append = keyed.append
    sourced = enriched = False
    markings: set[str] = set()
    builtins = BUILTIN_OBJECTS
    enrichment_id = ENRICHMENT_EXTENSION_ID
    for intel in objects:
        obj = intel.data
        stix_type = obj.get("type", "")
        stix_id = obj.get("id", "")
        # IntelObject.type and .id, without two property calls per object.
        append((stix_type if stix_type.__class__ is str else str(stix_type),
                stix_id if stix_id.__class__ is str else str(stix_id)))
        if not sourced and intel.source:
            sourced = True
        if not enriched and enrichment_id in (obj.get("extensions") or _NONE):
            enriched = True
        refs = obj.get("object_marking_refs")
        if refs:
            for marking_id in refs:
                if marking_id in builtins:
                    markings.add(marking_id)
        granular_markings = obj.get("granular_markings")
        if granular_markings:
            for granular in granular_markings:
                marking_id = granular.get("marking_ref") if isinstance(granular, dict) else None
                if marking_id in builtins:
                    markings.add(marking_id)
    return keyed, sourced, enriched, markings


def serialize_bundle(objects: Iterable[dict[str, Any] | bytes], *, groups: LineGroups | None = None) -> bytes:
    """Canonical bundle bytes: one object per line, bundle id a UUIDv5 of the content
    (:func:`bundle_id_of`). The same bytes as :func:`write_bundle` writes to a file, held in memory.

    ``groups``: the groups of the lines (:func:`line_groups`); found here when not given.
    """
    objects, groups = _with_groups(objects, groups)
    body = bytearray()
    bundle_id, _ = _write_body(objects, body.extend, groups.starts)
    head = bundle_head(bundle_id)
    body[: len(head)] = head
    return bytes(body)


# The bundle id (docs/format.md, "The bundle"). Its lines fall in groups by their key (type NUL id)
# up to two characters into the UUID: each group's lines, joined by ",\n" as the file joins them,
# have a SHA-256, and the id is a UUIDv5 of the SHA-256 of those digests in bundle order. A bundle
# written again with a few lines changed digests only their groups again (tiops.bundlereuse): the
# others' digests are in its record. A digest of every line would have to follow the lines, and
# the file's own digest starts with the head that holds the id (:func:`write_line_runs`).
GROUP_DIGEST_SIZE = 32


def line_group(line_key: str) -> str:
    """The group of the bundle line whose key is ``line_key`` (type NUL id): the key up to two
    characters past the type's "--" in the id, so 256 groups a type of UUID ids.

    Keys in ascending order give groups in ascending order: a key's group is a prefix of it
    at least two characters longer than its type, so two keys that differ in their type
    differ within both groups, and two of one type are cut at the same length.
    """
    cut = line_key.find("\0")
    return line_key[:2 * cut + 5] if cut >= 0 else line_key


class LineGroups(NamedTuple):
    """The groups of a bundle's lines: where each starts (line numbers, ascending, the first 0), and its group."""

    starts: list[int]
    names: list[str]


def line_groups(keys: Sequence[str], *, in_key_order: bool) -> LineGroups:
    """The groups of the lines whose keys, in bundle order, are ``keys``: each run of lines of one group.

    ``in_key_order``: ``keys`` ascend, so each group is one run, found by bisection (a few
    thousand groups rather than a look at every key: at a million lines, 0.1 s less).
    """
    starts: list[int] = []
    names: list[str] = []
    if in_key_order:
        at, count = 0, len(keys)
        while at < count:
            name = line_group(keys[at])
            starts.append(at)
            names.append(name)
            at = bisect.bisect_right(keys, name, lo=at + 1, key=line_group)
        return LineGroups(starts, names)
    for at, line_key in enumerate(keys):
        name = line_group(line_key)
        if not names or names[-1] != name:
            starts.append(at)
            names.append(name)
    return LineGroups(starts, names)


def bundle_id_of(group_digests: bytes) -> str:
    """The bundle id of the bundle whose line groups' digests, in order, are ``group_digests``."""
    return f"bundle--{uuid.uuid5(TIOPS_NAMESPACE, hashlib.sha256(group_digests).hexdigest())}"


def _line_key(obj: dict[str, Any] | bytes) -> str:
    data = orjson.loads(obj) if isinstance(obj, bytes) else obj
    return f"{data['type']}\0{data['id']}"


def _with_groups(objects: Iterable[dict[str, Any] | bytes],
                 groups: LineGroups | None) -> tuple[Iterable[dict[str, Any] | bytes], LineGroups]:
    """``objects`` and the groups of their lines: given, a bundle's own (:class:`BundleObjects`),
    or found from each object's type and id (the objects are then held: a list, or a few lines)."""
    if groups is not None:
        return objects, groups
    if isinstance(objects, BundleObjects):
        return objects, objects.groups
    held = list(objects)
    return held, line_groups([_line_key(obj) for obj in held], in_key_order=False)


@dataclass(frozen=True)
class WrittenBundle:
    """A bundle written to a file by :func:`write_bundle`."""

    path: Path
    bundle_id: str
    sha256: str  # of the file's bytes
    size: int
    group_digests: bytes = b""  # of its line groups, in order (:func:`bundle_id_of`)


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[BinaryIO]:
    """A buffered, readable stream to a file beside ``target``, renamed over it when the block ends.

    The bundle appears complete or not at all; on any error the partial file is removed,
    and a file-system error is a TiopsError naming ``target``. Created as a plain open()
    would create the bundle (mode 0666 less the umask); the partial file is never opened
    through a symbolic link. A ``target`` that is a link has the file it leads to replaced;
    one that is a named pipe or a device gets the bundle streamed to it (:func:`_streamed_to`).
    """
    if target.exists() and not target.is_file() and not target.is_dir():
        # A named pipe or a device (/dev/stdout, a link to one): nothing to rename over. The bundle is
        # made aside, where its head can be written last, and then streamed to it whole.
        with _streamed_to(target) as stream:
            yield stream
        return
    if target.is_symlink():
        # The user's path may be a link: the bundle replaces the file it leads to and the link stays,
        # as a plain open() writes through it (replacing the link would cut whoever follows it).
        target = Path(os.path.realpath(target))
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    # The partial file of a compile killed while writing this target goes (tiops.forkwork.remove_abandoned).
    remove_abandoned(target.parent, f".{target.name}.", ".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
    except OSError as error:
        raise _unwritable(target, error) from None
    try:
        with os.fdopen(handle, "w+b", buffering=_WRITE_BUFFER) as stream:
            yield stream
        rename_over(temporary, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise _unwritable(target, error) from None
        raise


@contextlib.contextmanager
def _streamed_to(target: Path) -> Iterator[BinaryIO]:
    """A seekable stream in a temporary file, copied to ``target`` (a pipe or a device) when the block ends.

    The target is opened first, without waiting: a named pipe nobody reads from is an error at
    once, not a build that hangs at its end (a writer's open of a pipe waits for a reader).
    """
    import fcntl
    import shutil
    import tempfile

    try:
        sink = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ENXIO:
            raise TiopsError(f"cannot write the bundle to {target}: it is a named pipe and nothing reads from it",
                             hint="Start the reader first, or name a file with -o.") from None
        raise _unwritable(target, error) from None
    out = os.fdopen(sink, "wb")
    # Closed without a second flush: after a failed write (/dev/full, a reader gone) the buffer still
    # holds bytes, and close() raising them again would replace the error naming the target.
    with contextlib.closing(_CloseQuietly(out)):
        fcntl.fcntl(sink, fcntl.F_SETFL, fcntl.fcntl(sink, fcntl.F_GETFL) & ~os.O_NONBLOCK)  # a slow reader is waited for
        try:
            aside = tempfile.TemporaryFile("w+b", buffering=_WRITE_BUFFER)  # noqa: SIM115 (entered below, once it exists)
        except OSError as error:
            raise _unwritable(target, error) from None
        with aside:
            yield cast(BinaryIO, aside)  # opened "w+b": binary
            aside.flush()
            aside.seek(0)
            try:
                shutil.copyfileobj(aside, out, _WRITE_BUFFER)
                out.flush()
            except OSError as error:
                raise _unwritable(target, error) from None


class _CloseQuietly:
    """Closes a stream, dropping what it could not write (the error was reported when it failed)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()


def write_bundle(objects: Iterable[dict[str, Any] | bytes], target: Path, *,
                 line_starts: array.array[int] | None = None, groups: LineGroups | None = None) -> WrittenBundle:
    """Stream the canonical bundle (the bytes :func:`serialize_bundle` returns) to ``target``.

    Only one object's line is held at a time: at a million objects the bundle is
    about 800 MB, which building it in memory held twice (docs/performance.md). The
    bundle id, from the digests of the line groups (:func:`bundle_id_of`), goes in the head:
    the head is written over a placeholder of the same length at the end. The file appears complete or not at
    all: it is written beside ``target`` and renamed over it.

    ``line_starts``: where each object line starts in the file is appended to it, for the
    bundle record (tiops.bundlereuse), which otherwise reads the file back for them.
    ``groups``: the groups of the lines (:func:`line_groups`), needed with a stream of
    objects other than :class:`BundleObjects` (else the objects are held to find them).
    """
    objects, groups = _with_groups(objects, groups)
    with _replacing(target) as stream:
        bundle_id, group_digests = _write_body(objects, stream.write, groups.starts, line_starts)
        size = stream.tell()
        stream.seek(0)
        stream.write(bundle_head(bundle_id))
        stream.flush()
        # The file digest needs the head first, which needed every line first: read it back.
        stream.seek(0)
        file_digest = hashlib.sha256()
        while chunk := stream.read(_WRITE_BUFFER):
            file_digest.update(chunk)
    digest = file_digest.hexdigest()
    return WrittenBundle(target, bundle_id, digest, size, group_digests)


class LineRun(NamedTuple):
    """Lines kept from a previous bundle: ``view[start:end]`` holds them joined by ",\n" as a bundle does,
    and ``starts`` (ascending, ``starts[0] == start``) is where each one begins in ``view``."""

    view: memoryview
    start: int
    end: int
    starts: Sequence[int]


def write_line_runs(pieces: Sequence[bytes | LineRun], target: Path, group_digests: bytes, *,
                    meanwhile: Callable[[str, int], None] | None = None) -> WrittenBundle:
    """Write the bundle whose object lines are ``pieces`` (each one line, or a :class:`LineRun` of lines kept
    from the previous bundle: tiops.bundlereuse) and whose line groups' digests are ``group_digests``
    (its id: :func:`bundle_id_of`), the bytes :func:`write_bundle` writes for the same lines.

    The id is known before the lines are written (the groups a few changed lines fall in were
    digested again: tiops.bundlereuse), so the file's digest is taken on a thread while the
    file is written: SHA-256 releases the GIL for the long runs of kept lines, and writing
    is a system call, so the two share two CPUs. When the id was a digest of every line,
    that digest came first and the file's second: two passes in a row, 0.05 s more of a
    one-file recompile at 100k objects (docs/performance.md).

    ``meanwhile``: called with the bundle id and size once the file is in place, while its
    digest may still be being taken (what does not need the digest, done on the other CPU).

    The file is in place before its digest is known: should the digest fail, the error is
    raised with the new bundle written (its bytes are right; only their digest is missing, and
    the caller keeps no record naming it). On an error or Ctrl-C the digest's thread is waited
    for, up to one pass over the kept lines.
    """
    bundle_id = bundle_id_of(group_digests)
    file_digest = hashlib.sha256()
    head = bundle_head(bundle_id)
    hashing = _OnThread(lambda: _digest_parts(file_digest, head, pieces))
    try:
        with _replacing(target) as stream:
            hashing.start()
            stream.write(head)
            for part in _body(pieces):
                stream.write(part)
            size = stream.tell()
        if meanwhile is not None:
            meanwhile(bundle_id, size)
    except BaseException:
        hashing.join(raising=False)  # the error on its way out is the one to report
        raise
    hashing.join()
    return WrittenBundle(target, bundle_id, file_digest.hexdigest(), size, group_digests)


class _OnThread:
    """``work`` run on a thread; :meth:`join` waits for it and raises what it raised."""

    def __init__(self, work: Callable[[], None]) -> None:
        self._work = work
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tiops-digest", daemon=True)

    def _run(self) -> None:
        try:
            self._work()
        except BaseException as error:  # handed to join(): a thread would only print it
            self._error = error

    def start(self) -> None:
        self._thread.start()

    def join(self, *, raising: bool = True) -> None:
        if self._thread.ident is None:
            return  # never started
        self._thread.join()
        error, self._error = self._error, None
        if error is not None and raising:
            raise error


def _digest_parts(digest: Any, head: bytes, pieces: Sequence[bytes | LineRun]) -> None:
    """The file's digest: ``head``, then the body as :func:`_body` gives it.

    A run of kept lines is digested in one call, not in the pieces it is written in: SHA-256
    lets go of the GIL for the whole run, and this thread needs the GIL back only once per
    run while the command writes the file and goes on with the bundle record
    (tiops.pipeline._write_spliced)."""
    digest.update(head)
    for index, piece in enumerate(pieces):
        if index:
            digest.update(b",\n")
        if isinstance(piece, LineRun):
            digest.update(piece.view[piece.start:piece.end])
        else:
            digest.update(piece)
    digest.update(BUNDLE_TAIL)


def run_lines_digest(pieces: Sequence[bytes | LineRun], piece_lines: Sequence[int], first: int, stop: int) -> bytes:
    """The SHA-256 of lines ``first`` to ``stop`` (exclusive) of the bundle whose lines are ``pieces``, joined
    by ",\n" (a line group's digest: :func:`bundle_id_of`). ``piece_lines``: the number of each piece's first line."""
    digest = hashlib.sha256()
    place = bisect.bisect_right(piece_lines, first) - 1
    number = first
    while number < stop:
        piece, piece_first = pieces[place], piece_lines[place]
        if number > first:
            digest.update(b",\n")
        if isinstance(piece, LineRun):
            # Kept lines in a row are joined by ",\n" in the previous file already: one slice.
            count = len(piece.starts)
            upto = min(stop, piece_first + count)
            end = piece.starts[upto - piece_first] - 2 if upto - piece_first < count else piece.end
            digest.update(piece.view[piece.starts[number - piece_first]:end])
            number = upto
        else:
            digest.update(piece)
            number += 1
        place += 1
    return digest.digest()


def _body(pieces: Sequence[bytes | LineRun]) -> Iterator[bytes | memoryview]:
    """What follows the head: the lines joined by ",\n", then the tail."""
    for index, piece in enumerate(pieces):
        if index:
            yield b",\n"
        if isinstance(piece, LineRun):
            # A run is up to the whole previous bundle: handed on a piece at a time, since one write of
            # tens of megabytes costs far more than the same bytes in pieces (tiops.memory.WRITE_PIECE).
            for start in range(piece.start, piece.end, WRITE_PIECE):
                yield piece.view[start:min(start + WRITE_PIECE, piece.end)]
        else:
            yield piece
    yield BUNDLE_TAIL


def object_line(obj: dict[str, Any]) -> bytes:
    """One object's line in the bundle."""
    return orjson.dumps(obj, option=_JSON_OPTIONS)


def bundle_head_size() -> int:
    """The length of the bundle's head, the same for every bundle: where its first object line starts."""
    return len(bundle_head(_PLACEHOLDER_ID))


class BundleWriteError(TiopsError):
    """The bundle could not be written where it was asked for."""


def _unwritable(target: Path, error: OSError) -> TiopsError:
    return BundleWriteError(f"cannot write the bundle to {target}: {error.strerror or error}",
                      hint="Check that the folder is writable and that no folder has the bundle's name.")


def _write_body(objects: Iterable[dict[str, Any] | bytes], write: Callable[[bytes], object],
                group_starts: Sequence[int], line_starts: array.array[int] | None = None) -> tuple[str, bytes]:
    """Write a placeholder head, the object lines and the tail; return the bundle id and the
    digests of the line groups, which start at the line numbers ``group_starts`` (:func:`line_groups`).
    With ``line_starts``, append where each line starts to it."""
    head = bundle_head(_PLACEHOLDER_ID)
    write(head)
    digests = bytearray()
    group: Any = None
    update: Callable[[bytes], object] = digests.extend  # replaced at the first line, which starts a group
    dumps, options = orjson.dumps, _JSON_OPTIONS
    note = line_starts.append if line_starts is not None else None
    starts = iter(group_starts)
    next_group = next(starts, -1)
    at = len(head)
    index = -1
    with paused_gc():
        for index, obj in enumerate(objects):
            # bytes: a line as it is written, the same as dumping its object
            line = obj if obj.__class__ is bytes else dumps(obj, option=options)
            if index:
                write(b",\n")
            if index == next_group:
                if group is not None:
                    digests += group.digest()
                group = hashlib.sha256()
                update = group.update
                next_group = next(starts, -1)
            elif index:
                update(b",\n")
            else:
                raise ValueError("the first line starts no group")
            if note is not None:
                if index:
                    at += 2
                note(at)
                at += len(line)
            write(line)
            update(line)
    if next_group != -1:
        raise ValueError(f"group starts not ascending, or past the last of {index + 1} lines: {next_group}")
    if group is not None:
        digests += group.digest()
    write(BUNDLE_TAIL)
    return bundle_id_of(bytes(digests)), bytes(digests)


def compile_bundle(repo: Repo) -> bytes:
    """The bundle bytes of an already validated repository."""
    return serialize_bundle(bundle_objects(repo))


def blocking_errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]


_PLACEHOLDER_ID = f"bundle--{uuid.UUID(int=0)}"
# How every bundle file ends (tiops.bundlereuse checks a previous bundle by it).
BUNDLE_TAIL = b'\n],"type":"bundle"}\n'


def bundle_head(bundle_id: str) -> bytes:
    """The bundle's first line, up to the first object line. Every bundle id has the same
    length, so the head is written last, over a placeholder."""
    return b'{"id":"' + bundle_id.encode() + b'","objects":[\n'


def _with_source(obj: IntelObject) -> dict[str, Any]:
    source = obj.source
    if not source:
        return obj.data
    data = obj.data.copy()
    existing = data.get("extensions")
    entry = _source_extension(source)
    if existing:
        extensions = dict(existing)
        extensions[SOURCE_EXTENSION_ID] = entry
    else:  # the usual case: no other extension, so no copy of an empty one
        extensions = {SOURCE_EXTENSION_ID: entry}
    data["extensions"] = extensions
    return data


def _with_extensions(obj: IntelObject, enrichment: dict[str, Any]) -> dict[str, Any]:
    """The object with its enrichment extension (tiops.enrich.attach) and, with a source, the source one."""
    data = obj.data.copy()
    existing = data.get("extensions")
    extensions = dict(existing) if existing else {}
    extensions[ENRICHMENT_EXTENSION_ID] = enrichment
    if obj.source:
        extensions[SOURCE_EXTENSION_ID] = _source_extension(obj.source)
    data["extensions"] = extensions
    return data


def _source_extension(source: str) -> dict[str, Any]:
    # STIX 2.1 section 7.3: a property-extension adds properties under extensions.<id>.
    return {"extension_type": "property-extension", "source_system": source}

"""Plans: what ``tiops apply`` will do to a target, computed as pure data.

A plan compares the compiled objects with the target's manifest (id -> current
version and content digest) and lists creates, updates (a new STIX version of an
existing id), revokes and deletes. It is versioned JSON that can be saved, read
and applied later; apply refuses it when the target or the content changed since.

Versions (STIX 2.1 section 3.6): a content change is sent as a new version with a
later ``modified``. When the compiled ``modified`` is not later than the stored one
(an ingestion rule or a re-import changed content without touching ``modified``),
the new version's ``modified`` is the stored one plus 1 ms, so the result depends
only on the repository and the store state. Revocations work the same way.

Unchanged objects: the SQL stores keep the digest of each current object's exact
text (``StoredVersion.object_digest``). A compiled object whose canonical JSON has
that digest is the stored version, byte for byte, so it is unchanged without
computing its content digest or comparing timestamps. The canonical JSON is made
once per object and also feeds the bundle digest (:class:`BundleDigests`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, overload

import orjson

from tiops.errors import UsageError
from tiops.lastbuild import RecordedObjects
from tiops.redact import redact_registered, redact_values
from tiops.stix import canonical_json
from tiops.stores import (
    StoredVersion,
    TargetSettings,
    content_digest,
    object_digest,
    parse_timestamp,
    version_key,
)

FORMAT_VERSION = 1
ACTIONS = ("create", "update", "revoke", "delete")


@dataclass(frozen=True)
class FieldChange:
    """One property difference: ``op`` is '+' (added), '~' (changed) or '-' (removed)."""

    op: str
    path: str
    old: Any = None
    new: Any = None


@dataclass(frozen=True)
class Change:
    action: str
    id: str
    type: str
    #: The version the target holds now (None for a create).
    stored: StoredVersion | None
    #: ``modified`` as compiled, and as it will be written (they differ when tiops moved it forward).
    compiled_modified: str | None = None
    effective_modified: str | None = None
    #: The object version to write (None for a delete) and its content digest.
    object: Mapping[str, Any] | None = None
    digest: str | None = None
    #: The target's current version was changed outside tiops.
    drift: bool = False
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class Plan:
    target: str
    target_type: str
    source_commit: str | None
    bundle_digest: str
    state_fingerprint: str
    changes: tuple[Change, ...]
    unchanged: int
    #: How many objects of the target tiops manages (the base of the removal safety gate).
    managed: int
    warnings: tuple[str, ...] = ()
    format_version: int = FORMAT_VERSION
    counts: dict[str, int] = field(default_factory=dict, compare=False)
    #: Made by ``tiops plan --refresh-only``: the drift alone, to read, never to apply.
    refresh_only: bool = False

    def __post_init__(self) -> None:
        counts = {action: 0 for action in ACTIONS}
        for change in self.changes:
            counts[change.action] += 1
        counts["drift"] = sum(1 for change in self.changes if change.drift)
        counts["unchanged"] = self.unchanged
        object.__setattr__(self, "counts", counts)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    @property
    def removals(self) -> int:
        return self.counts["revoke"] + self.counts["delete"]

    def drift_only(self) -> Plan:
        """The plan restricted to drift (``tiops plan --refresh-only``)."""
        return Plan(
            self.target, self.target_type, self.source_commit, self.bundle_digest, self.state_fingerprint,
            tuple(c for c in self.changes if c.drift), self.unchanged, self.managed, self.warnings,
            refresh_only=True,
        )

    def to_json(self) -> bytes:
        data = {
            "format_version": self.format_version,
            "target": self.target,
            "target_type": self.target_type,
            "source_commit": self.source_commit,
            "bundle_digest": self.bundle_digest,
            "state_fingerprint": self.state_fingerprint,
            "counts": self.counts,
            "managed": self.managed,
            "warnings": list(self.warnings),
            "changes": [_change_to_json(change) for change in self.changes],
        }
        if self.refresh_only:  # only then: every other plan keeps the bytes it always had
            data["refresh_only"] = True
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def from_json(cls, text: bytes | str) -> Plan:
        try:
            data = orjson.loads(text)
            version = data.get("format_version")
            if version != FORMAT_VERSION:
                raise UsageError(
                    f"plan format version {version!r} is not supported (this tiops reads version {FORMAT_VERSION})",
                    hint="Make a new plan with 'tiops plan -o FILE' using this tiops.",
                )
            return cls(
                target=data["target"],
                target_type=data["target_type"],
                source_commit=data["source_commit"],
                bundle_digest=data["bundle_digest"],
                state_fingerprint=data["state_fingerprint"],
                changes=tuple(_change_from_json(item) for item in data["changes"]),
                unchanged=int(data["counts"]["unchanged"]),
                managed=int(data["managed"]),
                warnings=tuple(str(warning) for warning in data["warnings"]),
                refresh_only=data.get("refresh_only") is True,
            )
        except KeyError as error:  # str() of a KeyError is only the quoted key
            raise UsageError(f"not a tiops plan file: it has no {error.args[0]!r}",
                             hint="Make a new plan with 'tiops plan -o FILE'.") from error
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as error:
            raise UsageError(f"not a tiops plan file: {error}") from error


def bundle_digest(objects: Iterable[Mapping[str, Any]]) -> str:
    """A digest of the compiled content the plan was made from."""
    return BundleDigests.of(objects).bundle


class CompiledLines(Sequence[dict[str, Any]]):
    """The compiled objects as the lines of a bundle file, each parsed only when it is read.

    A bundle line is an object's canonical JSON (tiops.compile writes it with sorted keys,
    as :func:`~tiops.stix.canonical_json` does), so its SHA-256 is the object digest the
    SQL stores keep and ``orjson.loads`` of it is the object. A plan of a repository with a
    few changed files compares 100k digests and parses only the lines whose digest the
    target does not hold, rather than holding and serialising every compiled object
    (docs/performance.md, "A plan after a one-file change").

    ``content`` is the bundle (bytes or a read-only ``mmap``); ``ids`` the id of each line and
    ``starts`` where it starts, in bundle order; ``body_end`` where the last line ends. Lines
    are joined by ",\n" (the bundle's layout, tiops.compile). A line read is kept: a plan reads
    a changed object up to four times (the ids to read, the plan, its update, the record), and
    when every object changed (a new as-of time, a rule edited) they are all held, as before.
    """

    def __init__(self, content: Any, ids: list[str], starts: Sequence[int], body_end: int) -> None:
        if len(ids) != len(starts):
            raise ValueError("a start is needed for each line")
        self._view = memoryview(content)
        self._read: dict[int, dict[str, Any]] = {}
        self.ids = ids
        self._starts = starts
        self._body_end = body_end

    def __len__(self) -> int:
        return len(self.ids)

    def line(self, index: int) -> memoryview:
        """The canonical JSON of the object at ``index``, without copying it."""
        starts = self._starts
        end = starts[index + 1] - 2 if index + 1 < len(starts) else self._body_end
        return self._view[starts[index]:end]

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[position] for position in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        parsed = self._read.get(index)
        if parsed is None:
            parsed = self._read[index] = orjson.loads(self.line(index))
        return parsed

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for position in range(len(self)):
            yield self[position]


def compiled_ids(compiled: Sequence[Mapping[str, Any]]) -> list[str]:
    """The id of each compiled object, in order (a :class:`CompiledLines` knows them without parsing)."""
    if isinstance(compiled, CompiledLines):
        return compiled.ids
    return [obj["id"] for obj in compiled]


@dataclass(frozen=True)
class BundleDigests:
    """The bundle digest and each object's :func:`~tiops.stores.object_digest`, from one serialisation."""

    bundle: str
    #: id -> object digest (the last object of an id wins, as in a manifest).
    objects: dict[str, str]

    @classmethod
    def of(cls, objects: Iterable[Mapping[str, Any]]) -> BundleDigests:
        if isinstance(objects, CompiledLines):
            return cls.of_lines(objects)
        digest = hashlib.sha256()
        by_id: dict[str, str] = {}
        for obj in objects:
            text = canonical_json(obj)
            digest.update(text)
            digest.update(b"\n")
            by_id[obj["id"]] = object_digest(text)
        return cls(digest.hexdigest(), by_id)

    @classmethod
    def of_lines(cls, lines: CompiledLines) -> BundleDigests:
        """:meth:`of` the objects whose canonical JSON ``lines`` holds, from the lines themselves."""
        digest = hashlib.sha256()
        by_id: dict[str, str] = {}
        sha256, update, line = hashlib.sha256, digest.update, lines.line
        for position, stix_id in enumerate(lines.ids):
            text = line(position)
            update(text)
            update(b"\n")
            by_id[stix_id] = sha256(text).hexdigest()  # tiops.stores.object_digest, without a copy of the line
        return cls(digest.hexdigest(), by_id)


def state_fingerprint(manifest: Mapping[str, StoredVersion]) -> str:
    """A digest of a target's manifest: any change in the target changes it."""
    digest = hashlib.sha256()
    for stix_id in sorted(manifest):
        digest.update(orjson.dumps([stix_id, *manifest[stix_id].to_json()]))
        digest.update(b"\n")
    return digest.hexdigest()


def ids_to_read(
    compiled: Sequence[Mapping[str, Any]], manifest: Mapping[str, StoredVersion], settings: TargetSettings,
    digests: BundleDigests | None = None,
) -> list[str]:
    """Ids whose stored content a plan needs (to diff an update, or to build a revocation)."""
    ids = compiled_ids(compiled)
    present = set(ids)
    known = (digests or BundleDigests.of(compiled)).objects
    wanted = [
        stix_id for position, stix_id in enumerate(ids)
        if stix_id in manifest and _differs_at(compiled, position, manifest[stix_id], known.get(stix_id))
    ]
    wanted.extend(i for i, s in manifest.items() if i not in present and s.managed and not s.revoked)
    return sorted(wanted)


def make_plan(
    compiled: Sequence[Mapping[str, Any]],
    manifest: Mapping[str, StoredVersion],
    stored_objects: Mapping[str, Mapping[str, Any]],
    settings: TargetSettings,
    *,
    supports_delete: bool,
    source_commit: str | None,
    digests: BundleDigests | None = None,
) -> Plan:
    """Compare compiled objects with a target's manifest. Pure: same inputs, same plan.

    ``stored_objects`` holds the stored content of the ids :func:`ids_to_read` names;
    ``digests``, when given, is :meth:`BundleDigests.of` ``compiled`` (made once per session).
    """
    digests = digests or BundleDigests.of(compiled)
    known = digests.objects
    changes: list[Change] = []
    warnings: list[str] = []
    unchanged = 0
    present: set[str] = set()
    # By position: an object is read (for a CompiledLines, parsed) only when its digest is not the stored one.
    for position, stix_id in enumerate(compiled_ids(compiled)):
        present.add(stix_id)
        stored = manifest.get(stix_id)
        if stored is None:
            obj = compiled[position]
            changes.append(Change(
                "create", stix_id, obj["type"], None, obj.get("modified"), version_key(obj), obj,
                content_digest(obj),
            ))
        elif not _differs_at(compiled, position, stored, known.get(stix_id)):
            unchanged += 1
        elif stored.revoked:
            # STIX 2.1 section 3.6: a revoked object MUST NOT be versioned further.
            warnings.append(f"{stix_id} is revoked in the target and cannot get a new version; give it a new id")
        else:
            changes.append(_update(compiled[position], stored, stored_objects.get(stix_id, {})))
    use_delete = settings.on_remove == "delete" and supports_delete
    for stix_id in sorted(set(manifest) - present):
        stored = manifest[stix_id]
        if not stored.managed:
            continue  # tiops never published it: not ours to remove
        old = stored_objects.get(stix_id, {})
        stix_type = stix_id.split("--", 1)[0]
        if use_delete:
            changes.append(Change("delete", stix_id, stix_type, stored, drift=not stored.by_tiops))
        elif stored.revoked:
            continue
        elif not old.get("modified"):
            warnings.append(f"{stix_id} left the repository but is not versioned, so it cannot be revoked; "
                            "set on_remove: delete to remove it")
        else:
            effective = next_version(stored.modified)
            revoked = {**old, "modified": effective, "revoked": True}
            changes.append(Change(
                "revoke", stix_id, stix_type, stored, None, effective, revoked, content_digest(revoked),
                drift=not stored.by_tiops, fields=(FieldChange("~", "revoked", old.get("revoked", False), True),),
            ))
    changes.sort(key=lambda c: (c.type, c.id))
    return Plan(
        target=settings.name,
        target_type=settings.type,
        source_commit=source_commit,
        bundle_digest=digests.bundle,
        state_fingerprint=state_fingerprint(manifest),
        changes=tuple(changes),
        unchanged=unchanged,
        managed=sum(1 for s in manifest.values() if s.managed),
        warnings=tuple(warnings),
    )


def unchanged_plan(
    objects: RecordedObjects,
    bundle: str,
    manifest: Mapping[str, StoredVersion],
    settings: TargetSettings,
    *,
    supports_delete: bool,
    source_commit: str | None,
) -> Plan | None:
    """The plan :func:`make_plan` gives when the target holds the compiled objects already, or None.

    ``objects`` describe the compiled objects in bundle order and ``bundle`` is their
    bundle digest (a recorded build, tiops.lastbuild), so the objects themselves are not
    needed. None means the plan may have changes or warnings and must be made by
    :func:`make_plan`; otherwise the plan is the one ``make_plan`` makes. Step by step:
    every compiled object is unchanged by the very test of ``_differs`` (its object
    digest is the stored one, or its recorded content digest is and its ``modified`` is
    not later), so there is no create, no update and no warning about a revoked object;
    every managed object of the target left out of the bundle is already revoked and
    is not revoked again (``on_remove: revoke``); so no change and no warning.
    """
    last = dict(zip(objects.ids, range(len(objects.ids)), strict=True))  # the last of an id wins, as in BundleDigests
    object_digests = objects.object_digests
    for stix_id, index in last.items():
        stored = manifest.get(stix_id)
        if stored is None:
            return None
        if stored.object_digest is not None and stored.object_digest == object_digests[index]:
            continue
        content = objects.content_digests[index]
        if not (content and content == stored.digest and not _later(objects.modified[index] or None, stored.modified)):
            return None
    use_delete = settings.on_remove == "delete" and supports_delete
    managed = 0
    for stix_id, stored in manifest.items():
        if not stored.managed:
            continue
        managed += 1
        if stix_id not in last and (use_delete or not stored.revoked):
            return None
    return Plan(
        target=settings.name,
        target_type=settings.type,
        source_commit=source_commit,
        bundle_digest=bundle,
        state_fingerprint=state_fingerprint(manifest),
        changes=(),
        unchanged=len(objects),
        managed=managed,
        warnings=(),
    )


def next_version(modified: str) -> str:
    """``modified`` plus 1 ms, written like STIX timestamps (milliseconds, Z).

    The stored value is first cut to whole milliseconds, so the result is always
    later than it, whatever its precision.
    """
    key = parse_timestamp(modified)
    if key is None:
        raise UsageError(f"the target holds an invalid 'modified' timestamp {modified!r}")
    moment, fraction = key
    milliseconds = int(fraction * 1000)
    later = moment + timedelta(milliseconds=milliseconds + 1)
    return later.strftime("%Y-%m-%dT%H:%M:%S.") + f"{later.microsecond // 1000:03d}Z"


def _later(a: str | None, b: str) -> bool:
    if a == b:
        return False  # the same text is the same moment: nothing to parse
    key_a, key_b = parse_timestamp(a or ""), parse_timestamp(b)
    return key_a is not None and key_b is not None and key_a > key_b


def _differs_at(compiled: Sequence[Mapping[str, Any]], position: int, stored: StoredVersion,
                compiled_digest: str | None) -> bool:
    """:func:`_differs` of the compiled object at ``position``, read only when the digests do not settle it."""
    if compiled_digest is not None and compiled_digest == stored.object_digest:
        return False
    return _differs(compiled[position], stored)


def _differs(obj: Mapping[str, Any], stored: StoredVersion, compiled_digest: str | None = None) -> bool:
    if compiled_digest is not None and compiled_digest == stored.object_digest:
        return False  # the stored text is this object's canonical JSON: same content, same modified
    # A new version is due when the content differs, or when the author moved
    # `modified` forward themselves.
    return content_digest(obj) != stored.digest or _later(obj.get("modified"), stored.modified)


def _update(obj: Mapping[str, Any], stored: StoredVersion, old: Mapping[str, Any]) -> Change:
    compiled_modified = obj.get("modified")
    new: Mapping[str, Any] = obj
    if compiled_modified is not None and not _later(compiled_modified, stored.modified):
        new = {**obj, "modified": next_version(stored.modified)}
    # A new version that sets revoked is a revoke (as `tiops diff` says), e.g. an overlay's revoked: true.
    action = "revoke" if obj.get("revoked") is True and not stored.revoked else "update"
    return Change(
        action, obj["id"], obj["type"], stored, compiled_modified, version_key(new), new, content_digest(new),
        drift=stored.managed and not stored.by_tiops, fields=tuple(field_changes(old, new)),
    )


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[FieldChange]:
    """Property-level differences, recursing into nested mappings."""
    found: list[FieldChange] = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        if key not in old:
            found.append(FieldChange("+", path, None, new[key]))
        elif key not in new:
            found.append(FieldChange("-", path, old[key], None))
        elif old[key] != new[key]:
            if isinstance(old[key], dict) and isinstance(new[key], dict):
                found.extend(field_changes(old[key], new[key], f"{path}."))
            else:
                found.append(FieldChange("~", path, old[key], new[key]))
    return found


def _change_to_json(change: Change) -> dict[str, Any]:
    return {
        "action": change.action,
        "id": change.id,
        "type": change.type,
        "stored": None if change.stored is None else change.stored.to_json(),
        "compiled_modified": change.compiled_modified,
        "effective_modified": change.effective_modified,
        "object": change.object,
        "digest": change.digest,
        "drift": change.drift,
        # The diff shown to people quotes what the target's server stores, which could hold a secret
        # tiops sent it: hidden here as `tiops plan` hides it in text. Apply never reads it
        # (tiops.plan_check leaves it out), so a saved plan stays appliable.
        "fields": [[f.op, redact_registered(f.path), redact_values(f.old), redact_values(f.new)] for f in change.fields],
    }


def _change_from_json(data: Mapping[str, Any]) -> Change:
    if data["action"] not in ACTIONS:
        raise ValueError(f"unknown action {data['action']!r}")
    if not isinstance(data["id"], str) or not isinstance(data["type"], str):
        raise ValueError("a change's id and type must be strings")
    if data["object"] is not None and not isinstance(data["object"], dict):
        raise ValueError(f"the object of change {data['id'][:100]!r} is not a JSON object")
    if data["action"] != "delete" and (data["object"] is None or not isinstance(data["digest"], str)):
        raise ValueError(f"change {data['id'][:100]!r} has no object to write")
    return Change(
        action=data["action"],
        id=data["id"],
        type=data["type"],
        stored=None if data["stored"] is None else StoredVersion.from_json(data["stored"]),
        compiled_modified=data["compiled_modified"],
        effective_modified=data["effective_modified"],
        object=data["object"],
        digest=data["digest"],
        drift=bool(data["drift"]),
        fields=tuple(FieldChange(*item) for item in data["fields"]),
    )

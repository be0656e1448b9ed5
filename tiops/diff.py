"""The semantic diff of two compiled revisions: what a change to the intel means.

Pure: two compiled revisions in, a :class:`Diff` out. Objects are matched by id.
A changed object is put in one of three places by what caused the change:

* ``changed``: its own file was edited (or it was revoked: ``revoked``);
* ``effects``: its file says the same, but a ``_defaults.yaml``, an ingestion
  rule or (partner intel) its source's ``_overlay.yaml`` now gives it another
  compiled form ("rule effect", "partner object, overlay change"), grouped by
  that file or rule.

Relationships added or removed are listed on their own, by (source, type, target).
Enrichment (tiops.enrich) is compared per looked-up value in its own section, not
as a change of every object that names the value: a refreshed lock is one
reviewable change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tiops.enrich.attach import ENRICHMENT_EXTENSION_ID
from tiops.load import SOURCE_ORIGIN
from tiops.revision import CompiledRevision

_ABSENT: Any = None


@dataclass(frozen=True)
class FieldDiff:
    field: str  # a dotted path, e.g. "external_references.0.url"
    before: Any  # None: the property was absent
    after: Any  # None: the property was removed


@dataclass(frozen=True)
class ObjectRef:
    id: str
    type: str
    name: str  # a display name: name, value, pattern or relationship summary


@dataclass(frozen=True)
class ObjectChange:
    ref: ObjectRef
    fields: tuple[FieldDiff, ...]


EnrichmentState = Literal["added", "removed", "changed"]


@dataclass(frozen=True)
class EnrichmentChange(ObjectChange):
    """One looked-up value whose result the bundle carries differently: ``ref.type`` is the
    section ("enrichment": GeoLocation and ASN, or "whois"), ``ref.id`` the value.

    ``state``: "added" (no object of the base carried a result for it), "removed" (none of
    the head does) or "changed"; a refreshed lock reads as mostly "changed", new intel as "added".
    """

    state: EnrichmentState


@dataclass(frozen=True)
class RelationshipRef:
    id: str
    source_ref: str
    relationship_type: str
    target_ref: str
    source_name: str
    target_name: str


@dataclass(frozen=True)
class Effect:
    """Objects whose compiled form changed only because of one rule or defaults file."""

    cause: str  # "rule NAME", "rules A and B", "defaults FILE" or "partner object, overlay change (FILE)"
    changes: tuple[ObjectChange, ...]


@dataclass(frozen=True)
class Diff:
    base: str
    head: str
    added: tuple[ObjectRef, ...] = ()
    changed: tuple[ObjectChange, ...] = ()
    revoked: tuple[ObjectChange, ...] = ()
    removed: tuple[ObjectRef, ...] = ()
    relationships_added: tuple[RelationshipRef, ...] = ()
    relationships_removed: tuple[RelationshipRef, ...] = ()
    effects: tuple[Effect, ...] = ()
    notes: tuple[str, ...] = field(default=())
    # Per looked-up value: ref.type "enrichment" (GeoLocation/ASN) or "whois", ref.id the value.
    enrichment: tuple[EnrichmentChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.revoked or self.removed or self.relationships_added
                    or self.relationships_removed or self.effects or self.enrichment)

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "revoked": len(self.revoked),
            "removed": len(self.removed),
            "relationships_added": len(self.relationships_added),
            "relationships_removed": len(self.relationships_removed),
            "rule_effects": sum(len(e.changes) for e in self.effects),
            "enrichment": len(self.enrichment),
        }


def diff_revisions(base: CompiledRevision, head: CompiledRevision) -> Diff:
    """What changed from ``base`` to ``head``, sorted by (type, id) in every section."""
    before = {obj["id"]: _without_enrichment(obj) for obj in base.objects if obj["id"] != ENRICHMENT_EXTENSION_ID}
    after = {obj["id"]: _without_enrichment(obj) for obj in head.objects if obj["id"] != ENRICHMENT_EXTENSION_ID}
    names = _Names(before, after)
    added: list[ObjectRef] = []
    removed: list[ObjectRef] = []
    rel_added: list[RelationshipRef] = []
    rel_removed: list[RelationshipRef] = []
    changed: list[ObjectChange] = []
    revoked: list[ObjectChange] = []
    effects: dict[str, list[ObjectChange]] = {}
    for object_id in sorted(set(after) - set(before), key=_order(after)):
        obj = after[object_id]
        cause = _drop_cause(base, object_id)
        if cause is not None:  # it existed in the files, a rule dropped it before: a rule effect, or its own change's
            why, field = _drop_effect(base, head, object_id, cause, now_dropped=False)
            _list_change(ObjectChange(_ref(obj, names), (field,)), why, changed, effects)
        elif obj["type"] == "relationship":
            rel_added.append(_relationship(obj, names))
        else:
            added.append(_ref(obj, names))
    for object_id in sorted(set(before) - set(after), key=_order(before)):
        obj = before[object_id]
        cause = _drop_cause(head, object_id)
        if cause is not None:
            why, field = _drop_effect(base, head, object_id, cause, now_dropped=True)
            _list_change(ObjectChange(_ref(obj, names), (field,)), why, changed, effects)
        elif obj["type"] == "relationship":
            rel_removed.append(_relationship(obj, names))
        else:
            removed.append(_ref(obj, names))
    # Unchanged objects first, cheaply: objects of files unchanged between the sides are the
    # very same dicts (tiops.revision.SharedWork), and most objects of a review are unchanged.
    both = [object_id for object_id, new in after.items()
            if (old := before.get(object_id)) is not None and old is not new and old != new]
    for object_id in sorted(both, key=_order(after)):
        old, new = before[object_id], after[object_id]
        change = ObjectChange(_ref(new, names), tuple(field_diffs(old, new)))
        if new.get("revoked") is True and old.get("revoked") is not True:
            revoked.append(change)
            continue
        cause = _effect_cause(base, head, object_id)
        if cause is None:
            changed.append(change)
        else:
            effects.setdefault(cause, []).append(change)
    notes = tuple(
        f"{rev.label} has {count} validation error(s); its compiled form may be incomplete"
        for rev, count in ((base, _base_errors(base)), (head, head.error_count)) if count
    ) + tuple(
        f"{rev.label}: its ingestion rules have {rev.rule_errors} error(s), so it was compiled without them; what "
        "the rules do shows below as changes, whether or not they changed"
        for rev in (base, head) if rev.rule_errors
    )
    return Diff(
        base=base.label,
        head=head.label,
        added=tuple(added),
        changed=tuple(changed),
        revoked=tuple(revoked),
        removed=tuple(removed),
        relationships_added=tuple(rel_added),
        relationships_removed=tuple(rel_removed),
        effects=tuple(Effect(cause, tuple(items)) for cause, items in sorted(effects.items())),
        notes=notes,
        enrichment=tuple(_enrichment_changes(base.objects, head.objects)),
    )


def _base_errors(base: CompiledRevision) -> int:
    """The base's errors, without the missing intel folder of a base from before the intel (the pull
    request that adds it): such a base is empty, not broken. A head without it is still an error."""
    return base.error_count - base.missing_intel_errors


def _without_enrichment(obj: dict[str, Any]) -> dict[str, Any]:
    extensions = obj.get("extensions")
    if not isinstance(extensions, dict) or ENRICHMENT_EXTENSION_ID not in extensions:
        return obj
    rest = {k: v for k, v in extensions.items() if k != ENRICHMENT_EXTENSION_ID}
    return {**{k: v for k, v in obj.items() if k != "extensions"}, **({"extensions": rest} if rest else {})}


def _enrichment_results(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(section, value) -> the result the bundle carries, whichever objects name the value."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for obj in objects:
        extension = (obj.get("extensions") or {}).get(ENRICHMENT_EXTENSION_ID)
        if not isinstance(extension, dict):
            continue
        for section in ("enrichment", "whois"):
            for item in extension.get(section) or ():
                if isinstance(item, dict) and isinstance(item.get("value"), str):
                    # age_days depends on the object naming the value, not on the result
                    found[(section, item["value"])] = {k: v for k, v in item.items() if k not in ("value", "age_days")}
    return found


def _enrichment_changes(base: list[dict[str, Any]], head: list[dict[str, Any]]) -> list[EnrichmentChange]:
    old, new = _enrichment_results(base), _enrichment_results(head)
    changes: list[EnrichmentChange] = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        fields = field_diffs(before or {}, after or {})
        if fields:
            state: EnrichmentState = "added" if before is None else "removed" if after is None else "changed"
            changes.append(EnrichmentChange(ObjectRef(key[1], key[0], key[1]), tuple(fields), state))
    return changes


def field_diffs(old: Any, new: Any, prefix: str = "") -> list[FieldDiff]:
    """Field-by-field differences; nested mappings are walked, lists compared whole."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[FieldDiff] = []
        for key in sorted(set(old) | set(new)):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in new:
                found.append(FieldDiff(name, old[key], _ABSENT))
            elif key not in old:
                found.append(FieldDiff(name, _ABSENT, new[key]))
            elif old[key] != new[key]:
                found.extend(field_diffs(old[key], new[key], name))
        return found
    return [FieldDiff(prefix, old, new)]


def display_name(obj: dict[str, Any]) -> str:
    for key in ("name", "value", "pattern", "relationship_type", "definition_type"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return str(obj.get("id", ""))


class _Names:
    """Display names by id, the head's first, worked out only for the objects a diff shows."""

    def __init__(self, before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> None:
        self._before, self._after = before, after

    def get(self, object_id: str, default: Any = None) -> Any:
        obj = self._after.get(object_id) or self._before.get(object_id)
        return display_name(obj) if obj is not None else default


def _order(objects: dict[str, dict[str, Any]]) -> Any:
    return lambda object_id: (objects[object_id]["type"], object_id)


def _ref(obj: dict[str, Any], names: _Names) -> ObjectRef:
    if obj["type"] == "relationship":
        name = (f"{names.get(obj.get('source_ref', ''), obj.get('source_ref'))} {obj.get('relationship_type')} "
                f"{names.get(obj.get('target_ref', ''), obj.get('target_ref'))}")
    else:
        name = names.get(obj["id"], obj["id"])
    return ObjectRef(obj["id"], obj["type"], name)


def _relationship(obj: dict[str, Any], names: _Names) -> RelationshipRef:
    source, target = str(obj.get("source_ref", "")), str(obj.get("target_ref", ""))
    return RelationshipRef(obj["id"], source, str(obj.get("relationship_type", "")), target,
                           names.get(source, source), names.get(target, target))


def _list_change(change: ObjectChange, cause: str | None, changed: list[ObjectChange],
                 effects: dict[str, list[ObjectChange]]) -> None:
    """Under the edits (``cause`` None: the object's own file changed) or its cause's effects."""
    if cause is None:
        changed.append(change)
    else:
        effects.setdefault(cause, []).append(change)


def _drop_effect(base: CompiledRevision, head: CompiledRevision, object_id: str, drop: str,
                 *, now_dropped: bool) -> tuple[str | None, FieldDiff]:
    """Under what an object a rule drops on one side only is listed, and its line: the rule's effect when
    the object came in the same on both sides; else what changed it (an overlay, a _defaults.yaml), or
    None for an edit of its own file, which then made the rule drop (or keep) it."""
    old, new = base.loaded.get(object_id), head.loaded.get(object_id)
    if old is None or new is None or old == new:
        return drop, FieldDiff("(object)", *(("kept", "dropped") if now_dropped else ("dropped", "kept")))
    by = f"dropped by {drop}" if drop.startswith("rule") else f"dropped ({drop})"
    return _effect_cause(base, head, object_id), FieldDiff("(object)", *(("kept", by) if now_dropped else (by, "kept")))


def _drop_cause(revision: CompiledRevision, object_id: str) -> str | None:
    rules = revision.dropped_by_rules.get(object_id)
    if not rules:
        return None
    first = rules[0]
    return first if first.startswith("points at") else f"rule {first}"


def _defaults_file(base: CompiledRevision, head: CompiledRevision, object_id: str, keys: list[str]) -> str:
    """The _defaults.yaml that gives the first of ``keys`` (the defaulted properties that changed, or
    the source) to the object in ``head``, or gave it in ``base`` when ``head`` no longer does: not
    simply the nearest, which a change higher up reaches through (tiops.load.Repo.default_origins)."""
    for revision in (head, base):
        origin = revision.provenance[object_id]
        origins = revision.repo.default_origins.get(origin.defaults_files, {}) if revision.repo is not None else {}
        for key in keys:
            if key in origins:
                return origins[key]
    return head.provenance[object_id].defaults_files[-1]


def _effect_cause(base: CompiledRevision, head: CompiledRevision, object_id: str) -> str | None:
    """Why an object's compiled form changed when its own file did not, or None for an edit."""
    old, new = base.authored.get(object_id), head.authored.get(object_id)
    if old is None or new is None:
        return None  # built-in objects (TLP markings) or content tiops adds: treat as edits
    old_origin, new_origin = base.provenance[object_id], head.provenance[object_id]
    if old == new and new_origin.imported_folder is not None and (old_origin.overlaid or new_origin.overlaid):
        overlay = new_origin.overlay_file or old_origin.overlay_file
        return f"partner object, overlay change ({overlay})"
    if old != new:
        if old_origin.file != new_origin.file and old_origin.defaults_files != new_origin.defaults_files:
            # Moved under other _defaults.yaml files: the move is the edit, not a change of a defaults
            # file (which may not have changed at all). Moved under the same ones, a change of theirs is.
            return None
        own_old = {k: v for k, v in old.items() if k not in old_origin.defaulted}
        own_new = {k: v for k, v in new.items() if k not in new_origin.defaulted}
        if own_old != own_new or not new_origin.defaults_files:
            return None
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        return f"defaults {_defaults_file(base, head, object_id, changed)}"
    if old_origin.source != new_origin.source and new_origin.defaults_files:
        return f"defaults {_defaults_file(base, head, object_id, [SOURCE_ORIGIN])}"
    # The rules that newly change the object or no longer do; else every rule that changes it on
    # both sides (one of them was edited). Each of several is named: which one made which field
    # cannot be told from the two compiled forms, and naming the first alone hid the others.
    rules = ([r for r in new_origin.rules if r not in old_origin.rules]
             + [r for r in old_origin.rules if r not in new_origin.rules]) or list(new_origin.rules)
    return _rules_cause(rules) if rules else "rules (no trace)"


def _rules_cause(rules: list[str]) -> str:
    if len(rules) == 1:
        return f"rule {rules[0]}"
    return f"rules {', '.join(rules[:-1])} and {rules[-1]}"

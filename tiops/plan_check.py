"""A saved plan is applied only when every change in it follows from the repository as compiled now.

A plan file travels between CI jobs, and anyone who can edit it on the way could
otherwise publish intel that was never validated: the bundle digest and the state
fingerprint say nothing about ``changes[].object``. So before a saved plan is
applied, the plan is made again from the bundle compiled now and the target's base
state (the state the plan was made against, see :func:`tiops.apply.base_manifest`),
and the two must agree change for change: same actions, ids, stored versions,
objects and digests.

Revocations carry the stored object's content, which the repository no longer
holds; it is checked against the content digest the target itself reports for the
stored version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tiops.errors import TiopsError
from tiops.plan import Change, Plan, make_plan
from tiops.stores import StoredVersion, TargetSettings, content_digest


class TamperedPlan(TiopsError):
    """A saved plan holds a change that the repository compiled now does not produce."""


def check_plan_changes(
    plan: Plan,
    compiled: Sequence[Mapping[str, Any]],
    base: Mapping[str, StoredVersion],
    settings: TargetSettings,
    *,
    supports_delete: bool,
) -> None:
    """Raise :class:`TamperedPlan` unless ``plan.changes`` is exactly what a plan made now would hold."""
    stored_objects = {}
    for change in plan.changes:
        if change.action == "revoke":
            stored_objects[change.id] = _stored_before_revoke(change)
    expected = make_plan(compiled, base, stored_objects, settings, supports_delete=supports_delete,
                         source_commit=plan.source_commit)
    dropped = sorted(set(expected.warnings) - set(plan.warnings))
    if dropped:
        raise _tampered(f"it leaves out what a plan made now reports: {dropped[0][:200]}")
    saved = {change.id: change for change in plan.changes}
    made = {change.id: change for change in expected.changes}
    if len(saved) != len(plan.changes):
        raise _tampered("it lists an object more than once")
    for stix_id in sorted(saved.keys() | made.keys()):
        mine, theirs = made.get(stix_id), saved.get(stix_id)
        if mine is None or theirs is None:
            what = "a change the repository does not call for" if mine is None else "no change for it, though one is due"
            raise _tampered(f"it holds {what} ({_show_id(stix_id)})")
        if _essence(mine) != _essence(theirs):
            raise _tampered(f"its {theirs.action} of {_show_id(stix_id)} differs from what the repository compiles to")


def _stored_before_revoke(change: Change) -> dict[str, Any]:
    """The stored object a revocation was built from: the change's object without the revocation.

    It must have the content digest the target reports for its current version, or
    the revocation would publish content the target never held.
    """
    revoked = change.object
    if not isinstance(revoked, Mapping) or change.stored is None or revoked.get("revoked") is not True:
        raise _tampered(f"its revoke of {_show_id(change.id)} is not a revocation of the stored version")
    base = {key: value for key, value in revoked.items() if key != "revoked"}
    for candidate in (base, {**base, "revoked": False}):
        try:
            matches = content_digest(candidate) == change.stored.digest
        except (TypeError, ValueError):  # nesting or a number orjson cannot write: not from tiops
            matches = False
        if matches:
            return {**candidate, "modified": change.stored.modified}
    raise _tampered(f"its revoke of {_show_id(change.id)} carries content the target does not hold")


def _essence(change: Change) -> tuple[Any, ...]:
    """What apply acts on; ``fields`` (the diff shown to people) is left out."""
    stored = None if change.stored is None else change.stored.to_json()
    return (change.action, change.id, change.type, stored, change.compiled_modified, change.effective_modified,
            None if change.object is None else dict(change.object), change.digest, change.drift)


def _show_id(stix_id: str) -> str:
    return stix_id if len(stix_id) <= 120 else stix_id[:117] + "..."


def _tampered(reason: str) -> TamperedPlan:
    return TamperedPlan(
        f"the saved plan was changed after it was made: {reason}",
        hint="Apply only plans written by 'tiops plan -o FILE'; make a new plan from the repository and review it.",
    )

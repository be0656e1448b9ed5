"""make_plan is pure: compiled objects + a manifest in, a plan out."""

from __future__ import annotations

from typing import Any

import pytest

from tiops.errors import UsageError
from tiops.lastbuild import RecordedObjects
from tiops.plan import (
    BundleDigests,
    Plan,
    make_plan,
    next_version,
    state_fingerprint,
    unchanged_plan,
)
from tiops.stores import StoredVersion, TargetSettings, content_digest

SETTINGS = TargetSettings("t", "sqlite")


def obj(number: int, **changes: Any) -> dict[str, Any]:
    base = {"type": "malware", "spec_version": "2.1", "id": f"malware--00000000-0000-4000-8000-{number:012d}",
            "created": "2025-01-01T00:00:00Z", "modified": "2025-01-01T00:00:00Z", "name": f"m{number}",
            "is_family": True}
    return {**base, **changes}


def stored(o: dict[str, Any], **changes: Any) -> StoredVersion:
    return StoredVersion(**{"modified": o["modified"], "digest": content_digest(o), **changes})


def plan(compiled: list[dict[str, Any]], manifest: dict[str, StoredVersion],
         objects: dict[str, dict[str, Any]] | None = None) -> Plan:
    return make_plan(compiled, manifest, objects or {}, SETTINGS, supports_delete=True, source_commit="abc")


@pytest.mark.parametrize(("stored_modified", "expected"), [
    ("2025-01-01T00:00:00Z", "2025-01-01T00:00:00.001Z"),
    ("2025-01-01T00:00:00.999Z", "2025-01-01T00:00:01.000Z"),
    ("2025-01-01T00:00:00.1234567Z", "2025-01-01T00:00:00.124Z"),
    ("2024-12-31T23:59:59.999Z", "2025-01-01T00:00:00.000Z"),
])
def test_next_version_is_one_millisecond_later(stored_modified: str, expected: str) -> None:
    assert next_version(stored_modified) == expected


def test_next_version_rejects_an_invalid_timestamp() -> None:
    with pytest.raises(UsageError):
        next_version("yesterday")


def test_the_plan_is_deterministic_and_round_trips_through_json() -> None:
    compiled = [obj(2), obj(1, name="new name")]
    manifest = {obj(1)["id"]: stored(obj(1))}
    first, second = plan(compiled, manifest, {obj(1)["id"]: obj(1)}), plan(compiled, dict(manifest), {obj(1)["id"]: obj(1)})
    assert first.to_json() == second.to_json()
    assert Plan.from_json(first.to_json()).to_json() == first.to_json()
    assert [c.action for c in first.changes] == ["update", "create"]  # sorted by (type, id)
    assert first.state_fingerprint == state_fingerprint(manifest)


def test_a_secret_the_target_stores_is_hidden_in_the_saved_plan_and_it_still_applies() -> None:
    from tiops.plan_check import check_plan_changes
    from tiops.redact import register_secret

    # The target's server holds a token tiops sent it (echoed into an object, or once written in the
    # intel): `tiops plan` hides it in text, and the JSON plan (--format json, -o FILE) the same way.
    register_secret("CANARY-stored-token-5521")
    old = obj(1, description="leaked CANARY-stored-token-5521", x_note={"CANARY-stored-token-5521": ["x"]})
    compiled, manifest = [obj(1, description="clean")], {old["id"]: stored(old)}
    made = plan(compiled, manifest, {old["id"]: old})
    text = made.to_json().decode()
    assert [c.action for c in made.changes] == ["update"]
    assert "CANARY" not in text and "leaked ***" in text
    # Apply checks a saved plan against one made again, without the diff shown to people.
    check_plan_changes(Plan.from_json(text), compiled, manifest, SETTINGS, supports_delete=True)


def test_objects_tiops_never_wrote_are_not_removed() -> None:
    foreign = obj(9)
    result = plan([obj(1)], {foreign["id"]: stored(foreign, by_tiops=False, managed=False)})
    assert [c.action for c in result.changes] == ["create"]


def test_a_revoked_object_back_in_the_repository_gives_a_warning_not_a_version() -> None:
    old = obj(1, revoked=True)
    result = plan([obj(1, name="back")], {old["id"]: stored(old, revoked=True)})
    assert not result.changes and "revoked in the target" in result.warnings[0]


def test_an_unknown_plan_format_is_refused() -> None:
    with pytest.raises(UsageError, match="format version 99"):
        Plan.from_json(b'{"format_version": 99}')
    with pytest.raises(UsageError, match="not a tiops plan"):
        Plan.from_json(b"[1, 2")


def _recorded(compiled: list[dict[str, Any]], *, contents: bool) -> RecordedObjects:
    digests = BundleDigests.of(compiled)
    return RecordedObjects([o["id"] for o in compiled], [digests.objects[o["id"]] for o in compiled],
                           [content_digest(o) if contents else "" for o in compiled],
                           [str(o.get("modified") or "") for o in compiled])


def _exact(o: dict[str, Any], **changes: Any) -> StoredVersion:
    """The stored version of ``o`` as the SQL stores keep it: its object digest included."""
    return stored(o, object_digest=BundleDigests.of([o]).objects[o["id"]], **changes)


_A, _B, _GONE = obj(1), obj(2, modified="2025-02-01T00:00:00Z"), obj(9)
_BUMPED = {**_B, "modified": "2025-03-01T00:00:00.000Z"}  # tiops moved it forward: content the same


@pytest.mark.parametrize("manifest", [
    {_A["id"]: _exact(_A), _B["id"]: _exact(_B)},  # the target holds exactly the compiled objects
    {_A["id"]: _exact(_A), _B["id"]: stored(_BUMPED)},  # a version tiops moved forward: content digests decide
    {_A["id"]: _exact(_A), _B["id"]: stored(_B, object_digest=None)},  # a store without object digests
    {_A["id"]: _exact(_A)},  # a create
    {_A["id"]: _exact(_A), _B["id"]: stored(_B, digest="other")},  # an update
    {_A["id"]: _exact(_A), _B["id"]: stored(_B, modified="2025-01-15T00:00:00Z")},  # compiled modified is later
    {_A["id"]: _exact(_A), _B["id"]: stored(_B, digest="other", revoked=True)},  # revoked: a warning
    {_A["id"]: _exact(_A), _B["id"]: _exact(_B), _GONE["id"]: stored(_GONE)},  # a revoke
    {_A["id"]: _exact(_A), _B["id"]: _exact(_B), _GONE["id"]: stored(_GONE, revoked=True)},  # revoked already
    {_A["id"]: _exact(_A), _B["id"]: _exact(_B), _GONE["id"]: stored(_GONE, managed=False, by_tiops=False)},
])
@pytest.mark.parametrize("on_remove", ["revoke", "delete"])
@pytest.mark.parametrize("contents", [True, False])
def test_a_plan_from_recorded_digests_is_make_plans_or_none(manifest: dict[str, StoredVersion], on_remove: str,
                                                          contents: bool) -> None:
    compiled = [_A, _B]
    settings = TargetSettings("t", "sqlite", on_remove=on_remove)
    full = make_plan(compiled, manifest, {_GONE["id"]: _GONE}, settings, supports_delete=True, source_commit="abc")
    recorded = unchanged_plan(_recorded(compiled, contents=contents), BundleDigests.of(compiled).bundle, manifest,
                              settings, supports_delete=True, source_commit="abc")
    if recorded is None:
        # Only a plan with something to do, or objects the record cannot vouch for, needs the compiled objects.
        assert full.has_changes or full.warnings or not contents
    else:
        assert recorded.to_json() == full.to_json()
        assert not full.has_changes and not full.warnings
    if not full.has_changes and not full.warnings and contents:
        assert recorded is not None, "a no-change plan the record has every digest for needs no build"

"""StoredVersion: a store's current version of one object, compared without its object digest."""

from __future__ import annotations

import operator
from typing import Any

import pytest

from tiops.stores import StoredVersion

_BASE = StoredVersion("2025-01-01T00:00:00.000Z", "a" * 64, False, True, True, "b" * 64)


def test_the_object_digest_is_left_out_of_equality_and_hash() -> None:
    other_digest = _BASE._replace(object_digest="c" * 64)
    without = _BASE._replace(object_digest=None)
    assert other_digest == _BASE and without == _BASE
    assert not operator.ne(other_digest, _BASE)  # __ne__ as well as __eq__
    assert hash(other_digest) == hash(_BASE) == hash(without)
    assert len({_BASE, other_digest, without}) == 1


@pytest.mark.parametrize("field", ["modified", "digest", "revoked", "by_tiops", "managed"])
def test_every_field_of_the_version_counts(field: str) -> None:
    value = getattr(_BASE, field)
    changes: dict[str, Any] = {field: (not value) if isinstance(value, bool) else value + "x"}
    changed = _BASE._replace(**changes)
    assert operator.ne(changed, _BASE) and not operator.eq(changed, _BASE)


def test_keywords_defaults_and_the_plan_files_form() -> None:
    made = StoredVersion(modified="2025-01-01T00:00:00.000Z", digest="a" * 64)
    assert (made.revoked, made.by_tiops, made.managed, made.object_digest) == (False, True, True, None)
    assert StoredVersion.from_json(_BASE.to_json()) == _BASE
    assert _BASE.to_json() == ["2025-01-01T00:00:00.000Z", "a" * 64, False, True, True]  # no object digest


def test_anything_else_is_not_equal() -> None:
    assert operator.ne(_BASE, object()) and operator.ne(_BASE, "2025-01-01T00:00:00.000Z")
    assert _BASE.__eq__(object()) is NotImplemented


def test_a_plain_tuple_of_the_same_values_is_not_a_stored_version() -> None:
    as_tuple = tuple(_BASE)
    assert not operator.eq(_BASE, as_tuple) and not operator.eq(as_tuple, _BASE)
    assert operator.ne(_BASE, as_tuple) and operator.ne(as_tuple, _BASE)


@pytest.mark.parametrize("compare", [operator.lt, operator.le, operator.gt, operator.ge])
def test_versions_have_no_order(compare: object) -> None:
    other = _BASE._replace(digest="0" * 64)
    with pytest.raises(TypeError):
        compare(_BASE, other)  # type: ignore[operator]

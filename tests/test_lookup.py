"""Finding an object by id, id prefix or name (tiops explain, tiops relate)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiops.errors import UsageError
from tiops.load import load_repo
from tiops.lookup import find_object

WICKSTEALER = "malware--50b859d6-40df-4375-959c-7f616560f92f"


@pytest.mark.parametrize("text", [WICKSTEALER, "malware--50b8", "50b859d6", "WickStealer", "wickstealer", " WickStealer "])
def test_id_prefix_and_name_find_the_object(example_repo: Path, text: str) -> None:
    assert find_object(load_repo(example_repo), text).id == WICKSTEALER


def test_a_name_that_looks_like_hex_wins_over_a_bare_uuid_prefix(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/m.yaml": (
        "- {type: malware, spec_version: '2.1', id: malware--cafe0000-1111-4111-8111-111111111111, created: '2024-01-01T00:00:00.000Z', modified: '2024-01-01T00:00:00.000Z', name: Other, is_family: true}\n"
        "- {type: malware, spec_version: '2.1', id: malware--22222222-1111-4111-8111-111111111111, created: '2024-01-01T00:00:00.000Z', modified: '2024-01-01T00:00:00.000Z', name: cafe, is_family: true}\n")})
    repo = load_repo(root)
    assert find_object(repo, "cafe").id == "malware--22222222-1111-4111-8111-111111111111"
    assert find_object(repo, "cafe0").id == "malware--cafe0000-1111-4111-8111-111111111111"
    assert find_object(repo, "malware--caf").id == "malware--cafe0000-1111-4111-8111-111111111111"


def test_ambiguous_and_unknown_names_are_usage_errors(example_repo: Path) -> None:
    repo = load_repo(example_repo)
    with pytest.raises(UsageError, match="objects match this id prefix") as ambiguous:
        find_object(repo, "attack-pattern--")
    assert "Spearphishing Link" in ambiguous.value.message  # candidates are listed by name
    with pytest.raises(UsageError) as unknown:
        find_object(repo, "WickStealr")
    assert unknown.value.hint is not None and "'WickStealer'" in unknown.value.hint


def test_ids_that_differ_only_in_case_are_each_found_as_written_and_ambiguous_otherwise(tmp_path: Path) -> None:
    import json

    from tiops.errors import UsageError
    from tiops.load import load_repo
    from tiops.lookup import find_object

    def malware(identifier: str) -> dict[str, object]:
        return {"type": "malware", "spec_version": "2.1", "id": identifier, "created": "2025-01-01T00:00:00.000Z",
                "modified": "2025-01-01T00:00:00.000Z", "name": identifier[-4:], "is_family": True}
    lower, upper = "malware--0000000a-0000-4000-8000-00000000abcd", "malware--0000000A-0000-4000-8000-00000000ABCD"
    (tmp_path / "intel").mkdir()
    (tmp_path / "intel" / "m.yaml").write_text(json.dumps([malware(lower), malware(upper)]))
    repo = load_repo(tmp_path)
    assert find_object(repo, lower).id == lower and find_object(repo, upper).id == upper
    with pytest.raises(UsageError):  # a third spelling names both: not silently the first
        find_object(repo, "malware--0000000A-0000-4000-8000-00000000abcd")

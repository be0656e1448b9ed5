"""validate_repo looks for duplicate ids only when the id map says two objects could share one;
what it reports is what check_duplicate_ids reports over every object."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiops.load import load_repo
from tiops.validate import validate_repo
from tiops.validate.references import check_duplicate_ids

U = "6c1e0c0e-0d66-4b5e-9b4a-2f7f1e3a1a11"
IDENTITY = "type: identity\nspec_version: '2.1'\nid: {id}\ncreated: '2025-01-01T00:00:00.000Z'\n" \
           "modified: '2025-01-01T00:00:00.000Z'\nname: {name}\n"


@pytest.mark.parametrize(
    ("ids", "duplicated"),
    [
        ([f"identity--{U}", f"identity--{U[:-1]}2"], 0),  # distinct: nothing to find
        ([f"identity--{U}", f"identity--{U}"], 1),  # the same id in two files
        ([f"identity--{U}", f"identity--{U}", f"identity--{U}"], 2),
        (["5", "5"], 1),  # not string ids: left out of the id map, found all the same
        ([f"identity--{U}", "5"], 0),
    ],
)
def test_duplicate_ids_are_reported_as_the_full_check_reports_them(tmp_path: Path, ids: list[str],
                                                                     duplicated: int) -> None:
    folder = tmp_path / "intel"
    folder.mkdir()
    for index, identifier in enumerate(ids):
        (folder / f"object-{index}.yaml").write_text(IDENTITY.format(id=identifier, name=f"Name {index}"))
    repo = load_repo(tmp_path)
    reported = [finding for finding in validate_repo(repo) if finding.code == "TI302"]
    expected = check_duplicate_ids(repo.objects)
    assert len(reported) == len(expected) == duplicated
    assert sorted(finding.message for finding in reported) == sorted(finding.message for finding in expected)

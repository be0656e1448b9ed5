"""A language-content's object_modified against the object it names (tiops/validate/language.py, TI303)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tiops.findings import Finding
from tiops.load import load_bundle
from tiops.validate import validate_paths, validate_repo

MIMIKATZ = "tool--9cedae7f-83d0-492a-b759-6d9ba212b91c"  # intel/malware/mimikatz.yaml, modified 2024-09-20T11:40:00.000Z
TRANSLATION = "intel/translations/mimikatz-de.yaml"


def translation(root: Path, object_modified: str, object_ref: str = MIMIKATZ) -> Path:
    path = root / TRANSLATION
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("type: language-content\nspec_version: '2.1'\n"
                    "id: language-content--5f2a3c1e-8d4b-4e6f-9a7b-0c1d2e3f4a5b\n"
                    "created: 2024-10-01T00:00:00.000Z\nmodified: 2024-10-01T00:00:00.000Z\n"
                    f"object_ref: {object_ref}\nobject_modified: {object_modified}\n"
                    "contents:\n  de:\n    description: Werkzeug zum Auslesen von Anmeldedaten.\n", encoding="utf-8")
    return path


def ti303(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.code == "TI303"]


def test_a_translation_of_an_earlier_version_is_a_warning_at_its_object_modified(example_repo: Path) -> None:
    translation(example_repo, "2024-06-01T00:00:00.000Z")
    (finding,) = ti303(validate_paths(example_repo, [], cache=False))
    assert finding.severity.name == "WARNING"
    assert (finding.location.file, finding.location.line) == (TRANSLATION, 7)
    assert finding.stix_id == "language-content--5f2a3c1e-8d4b-4e6f-9a7b-0c1d2e3f4a5b"
    assert finding.message == (f"object_modified is 2024-06-01T00:00:00.000Z, but {MIMIKATZ} has modified "
                               "2024-09-20T11:40:00.000Z: the contents translate another version of it "
                               "(STIX 2.1 section 7.1)")
    assert finding.hint.endswith("then set object_modified to 2024-09-20T11:40:00.000Z.")


@pytest.mark.parametrize("object_modified", ["2024-09-20T11:40:00.000Z", "2024-09-20T11:40:00Z",
                                             "2024-09-20T11:40:00.0000Z"])
def test_the_same_instant_at_any_precision_is_no_finding(example_repo: Path, object_modified: str) -> None:
    translation(example_repo, object_modified)
    assert ti303(validate_paths(example_repo, [], cache=False)) == []


def test_an_object_not_in_the_repository_is_the_dangling_references_finding(example_repo: Path) -> None:
    translation(example_repo, "2024-06-01T00:00:00.000Z", object_ref="tool--00000000-0000-4000-8000-000000000000")
    codes = {f.code for f in validate_paths(example_repo, [], cache=False)}
    assert "TI300" in codes and "TI303" not in codes


def test_the_build_cache_gives_the_same_findings(example_repo: Path) -> None:
    # Checked from the file indexes, a file is read only where a check may report: the translation
    # and the object it names must both be read, though neither has any other finding.
    translation(example_repo, "2024-06-01T00:00:00.000Z")
    uncached = validate_paths(example_repo, [], cache=False)
    assert ti303(uncached)
    assert validate_paths(example_repo, [], cache=True) == uncached  # builds the cache
    assert validate_paths(example_repo, [], cache=True) == uncached  # reads the indexes back
    # Named files: the translation, and the object it names (a new version of it leaves the translation behind).
    for named in (example_repo / TRANSLATION, example_repo / "intel" / "malware" / "mimikatz.yaml"):
        assert ti303(validate_paths(example_repo, [named], cache=True)) == ti303(uncached), named.name
        assert validate_paths(example_repo, [named], cache=True) == validate_paths(example_repo, [named], cache=False)


def test_in_a_bundle_any_version_it_carries_matches(tmp_path: Path) -> None:
    def tool(modified: str) -> dict[str, object]:
        return {"type": "tool", "spec_version": "2.1", "id": MIMIKATZ, "created": "2024-01-01T00:00:00.000Z",
                "modified": modified, "name": "Mimikatz"}

    content = {"type": "language-content", "spec_version": "2.1",
               "id": "language-content--5f2a3c1e-8d4b-4e6f-9a7b-0c1d2e3f4a5b", "created": "2024-10-01T00:00:00.000Z",
               "modified": "2024-10-01T00:00:00.000Z", "object_ref": MIMIKATZ,
               "object_modified": "2024-01-01T00:00:00.000Z", "contents": {"de": {"name": "Mimikatz"}}}
    bundle = tmp_path / "bundle.json"
    for versions, expected in ((["2024-01-01T00:00:00.000Z", "2024-09-20T11:40:00.000Z"], 0),
                               (["2024-09-20T11:40:00.000Z"], 1)):
        bundle.write_text(json.dumps({"type": "bundle", "id": "bundle--5f2a3c1e-8d4b-4e6f-9a7b-0c1d2e3f4a5b",
                                      "objects": [*map(tool, versions), content]}), encoding="utf-8")
        assert len(ti303(validate_repo(load_bundle(bundle)))) == expected, versions

"""The synthetic repository generator: deterministic, valid STIX 2.1, the documented mix."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import stix2
import yaml
from stix2patterns.validator import run_validator

GENERATOR_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "generate_repo.py"
N = 300
SEED = 1

TLP_2_IDS = {
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
# STIX 2.1 Appendix B triples the generator is documented to use.
ALLOWED_TRIPLES = {
    ("indicator", "indicates", "malware"),
    ("indicator", "indicates", "threat-actor"),
    ("threat-actor", "uses", "malware"),
    ("threat-actor", "uses", "attack-pattern"),
    ("campaign", "attributed-to", "threat-actor"),
}
SDO_TYPES = {"threat-actor", "intrusion-set", "malware", "tool", "attack-pattern", "identity", "campaign"}  # fmt: skip


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_repo", GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class bodies run.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


generate_repo = _load_generator()


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = generate_repo.generate_objects(N, SEED)
    return result


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    generate_repo.write_repository(root, N, SEED)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def test_same_seed_gives_same_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert (
        generate_repo.main(
            [str(N), str(first), "--seed", str(SEED), "--json", str(tmp_path / "first.json")]
        )
        == 0
    )
    assert (
        generate_repo.main(
            [str(N), str(second), "--seed", str(SEED), "--json", str(tmp_path / "second.json")]
        )
        == 0
    )

    first_files, second_files = _files(first), _files(second)
    assert first_files.keys() == second_files.keys()
    for name, content in first_files.items():
        assert content == second_files[name], name
    assert (tmp_path / "first.json").read_bytes() == (tmp_path / "second.json").read_bytes()


def test_another_seed_gives_other_objects() -> None:
    ids_one = {obj["id"] for obj in generate_repo.generate_objects(N, 1)}
    ids_two = {obj["id"] for obj in generate_repo.generate_objects(N, 2)}
    assert not ids_one & ids_two


def test_generates_exactly_n_objects_with_unique_ids(objects: list[dict[str, Any]]) -> None:
    assert len(objects) == N
    assert len({obj["id"] for obj in objects}) == N


def test_type_mix(objects: list[dict[str, Any]]) -> None:
    counts = Counter(obj["type"] for obj in objects)
    indicators = counts.pop("indicator")
    relationships = counts.pop("relationship")
    assert set(counts) == SDO_TYPES
    assert indicators == pytest.approx(0.80 * N, abs=2)
    assert relationships == pytest.approx(0.12 * N, abs=2)
    assert sum(counts.values()) == pytest.approx(0.08 * N, abs=2)


def test_indicators_cover_every_pattern_kind(objects: list[dict[str, Any]]) -> None:
    patterns = " ".join(obj["pattern"] for obj in objects if obj["type"] == "indicator")
    for observable in ("ipv4-addr:value", "ipv6-addr:value", "domain-name:value", "url:value",
                       "email-addr:value", "file:hashes.'SHA-256'", "file:hashes.MD5"):  # fmt: skip
        assert observable in patterns


def test_indicator_properties(objects: list[dict[str, Any]]) -> None:
    indicators = [obj for obj in objects if obj["type"] == "indicator"]
    with_until = [obj for obj in indicators if "valid_until" in obj]
    assert 0.3 < len(with_until) / len(indicators) < 0.7
    # Fixed-width RFC 3339 UTC timestamps compare correctly as text (STIX 2.1 section 4.7).
    assert all(obj["valid_until"] > obj["valid_from"] for obj in with_until)
    for obj in indicators:
        assert obj["pattern_type"] == "stix"
        assert 0 <= obj["confidence"] <= 100
        assert obj["labels"]
        assert obj["indicator_types"]
        assert obj["created_by_ref"].startswith("identity--")
        assert set(obj["object_marking_refs"]) <= TLP_2_IDS
        assert "2024-01-01" <= obj["created"] <= obj["modified"] < "2027"


def test_relationships_follow_appendix_b(objects: list[dict[str, Any]]) -> None:
    types = {obj["id"]: obj["type"] for obj in objects}
    relationships = [obj for obj in objects if obj["type"] == "relationship"]
    triples = {
        (types[r["source_ref"]], r["relationship_type"], types[r["target_ref"]])
        for r in relationships
    }
    assert triples <= ALLOWED_TRIPLES
    assert len(
        {(r["source_ref"], r["relationship_type"], r["target_ref"]) for r in relationships}
    ) == len(relationships)


def test_sample_parses_with_stix2_and_patterns_validate(objects: list[dict[str, Any]]) -> None:
    sample = random.Random(7).sample(objects, 80)
    sample += [obj for obj in objects if obj["type"] not in {"indicator", "relationship"}]
    for obj in sample:
        parsed = stix2.parse(obj, allow_custom=False)
        assert parsed.id == obj["id"]
        if obj["type"] == "indicator":
            assert run_validator(obj["pattern"], stix_version="2.1") == [], obj["pattern"]


def test_sample_passes_reference_validator(objects: list[dict[str, Any]]) -> None:
    stix2validator = pytest.importorskip("stix2validator")
    options = stix2validator.ValidationOptions(version="2.1")
    for obj in random.Random(11).sample(objects, 40):
        result = stix2validator.validate_instance(obj, options)
        assert result.is_valid, [str(error) for error in result.errors]


def test_layout(repo_dir: Path) -> None:
    assert (repo_dir / "tiops.yaml").is_file()
    feeds = sorted(path for path in (repo_dir / "intel" / "feeds").iterdir())
    assert feeds
    for feed in feeds:
        defaults = yaml.safe_load((feed / "_defaults.yaml").read_text(encoding="utf-8"))
        assert set(defaults) == {"source", "defaults"}
        assert defaults["defaults"]["created_by_ref"].startswith("identity--")
        assert list(feed.glob("bulk-*.yaml"))
        assert list((feed / "indicators").rglob("*.yaml"))
    for folder in [repo_dir, *(path for path in repo_dir.rglob("*") if path.is_dir())]:
        assert len(list(folder.iterdir())) <= generate_repo.FILES_PER_FOLDER + 1


def test_files_hold_the_objects(repo_dir: Path, objects: list[dict[str, Any]]) -> None:
    """Reading the files back (defaults merged, inline relationships expanded) gives the objects."""
    by_id = {obj["id"]: obj for obj in objects}
    found: dict[str, dict[str, Any]] = {}
    for path in (repo_dir / "intel").rglob("*.yaml"):
        if path.name == "_defaults.yaml":
            continue
        defaults: dict[str, Any] = {}
        for folder in path.relative_to(repo_dir).parents:
            defaults_file = repo_dir / folder / "_defaults.yaml"
            if defaults_file.is_file():
                defaults = yaml.safe_load(defaults_file.read_text(encoding="utf-8"))["defaults"]
                break
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for item in data if isinstance(data, list) else [data]:
            # Timestamps are quoted, so even a YAML 1.1 reader keeps them as text.
            assert isinstance(item["created"], str)
            inline = item.pop("relationships", [])
            obj = {**defaults, **item}
            found[obj["id"]] = obj
            for entry in inline:
                relationship_type = next(key for key in entry if key != "description")
                matches = [
                    candidate for candidate in objects
                    if candidate["type"] == "relationship"
                    and candidate["source_ref"] == obj["id"]
                    and candidate["relationship_type"] == relationship_type
                    and candidate["target_ref"] == entry[relationship_type]
                ]  # fmt: skip
                assert len(matches) == 1
                assert matches[0]["created_by_ref"] == obj["created_by_ref"]
                found[matches[0]["id"]] = matches[0]
    assert found.keys() == by_id.keys()
    for stix_id, obj in found.items():
        assert obj == by_id[stix_id]


def test_inline_relationships_are_present(objects: list[dict[str, Any]]) -> None:
    intel = generate_repo.generate(N, SEED)
    inline = sum(len(entries) for entries in intel.inline.values())
    assert inline > 0
    assert inline + len(intel.relationships) == sum(
        1 for obj in objects if obj["type"] == "relationship"
    )


def test_json_bundle_holds_the_expanded_objects(
    tmp_path: Path, objects: list[dict[str, Any]]
) -> None:
    bundle_path = tmp_path / "bundle.json"
    generate_repo.main([str(N), str(tmp_path / "repo"), "--json", str(bundle_path)])
    bundle = json.loads(bundle_path.read_text(encoding="utf-8"))
    assert bundle["type"] == "bundle"
    assert bundle["id"].startswith("bundle--")
    assert bundle["objects"] == objects


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_bulk_share_moves_indicators_between_layouts(tmp_path: Path, share: float) -> None:
    generate_repo.write_repository(tmp_path, N, SEED, bulk_share=share)
    bulk_files = list((tmp_path / "intel" / "feeds").rglob("bulk-*.yaml"))
    single_files = list((tmp_path / "intel" / "feeds").rglob("indicators/**/*.yaml"))
    assert bool(bulk_files) == (share > 0)
    assert bool(single_files) == (share < 1)


LOOK_ALIKES = ["2024-05-01T12:00:00.000Z", "2024-05-01", "1e3", "0o17", "0x1F", "no", "on", "null", "~", ".inf", "1_000", "12:30", "2.1"]  # fmt: skip


@pytest.mark.parametrize("value", LOOK_ALIKES)
def test_strings_that_look_like_other_types_are_quoted(value: str) -> None:
    text = generate_repo.dump_yaml({"key": value})
    assert text.split(": ", 1)[1].strip()[0] in "'\"", text
    assert yaml.safe_load(text) == {"key": value}


def test_too_few_objects_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        generate_repo.generate_objects(generate_repo.MIN_OBJECTS - 1, SEED)

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiops import ValidationFailed, build, load_repo, validate_repo
from tiops.compile import compiled_objects
from tiops.stix import SOURCE_EXTENSION_ID, TLP2_MARKINGS

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_example_repository_compiles_to_valid_stix(example_repo: Path) -> None:
    import stix2

    result = build(example_repo)
    bundle = json.loads(result.bundle)
    assert bundle["type"] == "bundle"
    assert len(bundle["objects"]) == result.object_count
    ids = [o["id"] for o in bundle["objects"]]
    assert len(ids) == len(set(ids))
    keys = [(o["type"], o["id"]) for o in bundle["objects"]]
    assert keys == sorted(keys)
    stix2.parse(bundle, allow_custom=True)  # the bundle as a whole is STIX 2.1


def test_a_compiled_bundle_lints_clean_with_tiops_itself(example_repo: Path, tmp_path: Path) -> None:
    # The TLP 2.0 extension-definition tiops adds names its creator (CISA's identity) as OASIS
    # publishes it; the bundle lint knows that id as it knows the built-in markings.
    from click.testing import CliRunner

    from tiops.cli import main

    bundle = tmp_path / "bundle.json"
    assert CliRunner().invoke(main, ["-C", str(example_repo), "compile", "-o", str(bundle)]).exit_code == 0
    assert "identity--b3bca3c2-1f3d-4b54-b44f-dac42c3a8f01" in bundle.read_text(encoding="utf-8")
    linted = CliRunner().invoke(main, ["validate", "--strict", str(bundle)])
    assert linted.exit_code == 0 and linted.output.strip() == "no findings", linted.output


def test_same_content_gives_same_bytes_in_any_path_and_hash_seed(example_repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "deeper" / "checkout"
    shutil.copytree(example_repo, other)
    outputs = []
    for root, seed in ((example_repo, "0"), (other, "12345")):
        out = root / "out.json"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-m", "tiops", "-C", str(root), "compile", "-o", str(out)], check=True, env=env, capture_output=True)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0].endswith(b"\n")


def test_bundle_layout_is_canonical(example_repo: Path) -> None:
    result = build(example_repo)
    lines = result.bundle.decode().splitlines()
    assert lines[0].startswith('{"id":"bundle--') and lines[0].endswith('"objects":[')
    assert lines[-1] == '],"type":"bundle"}'
    for line in lines[1:-1]:
        obj = json.loads(line.rstrip(","))
        assert line.rstrip(",") == json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_content_change_changes_bundle_id(make_repo) -> None:  # type: ignore[no-untyped-def]
    identity = 'type: identity\nspec_version: "2.1"\nid: identity--55555555-5555-4555-8555-555555555555\ncreated: "2024-01-01T00:00:00.000Z"\nmodified: "2024-01-01T00:00:00.000Z"\nname: {name}\n'
    first = build(make_repo({"intel/a.yaml": identity.format(name="A")})).bundle
    root = make_repo({"intel/a.yaml": identity.format(name="B")})
    second = build(root).bundle
    assert first.split(b",", 1)[0] != second.split(b",", 1)[0]


def test_defaults_source_and_builtin_markings(make_repo) -> None:  # type: ignore[no-untyped-def]
    green = TLP2_MARKINGS["green"][0]
    root = make_repo(
        {
            "intel/_defaults.yaml": f"defaults:\n  object_marking_refs: [{green}]\n  confidence: 50\n",
            "intel/feed/_defaults.yaml": "source: Contoso TI\ndefaults:\n  confidence: 70\n",
            "intel/feed/ip.yaml": "type: indicator\nspec_version: '2.1'\npattern: \"[ipv4-addr:value = '203.0.113.9']\"\npattern_type: stix\ncreated: '2024-01-01T00:00:00.000Z'\nmodified: '2024-01-01T00:00:00.000Z'\nvalid_from: '2024-01-01T00:00:00Z'\n",
            "intel/own.yaml": "type: indicator\nspec_version: '2.1'\nconfidence: 90\npattern: \"[domain-name:value = 'example.org']\"\npattern_type: stix\ncreated: '2024-01-01T00:00:00.000Z'\nmodified: '2024-01-01T00:00:00.000Z'\nvalid_from: '2024-01-01T00:00:00Z'\n",
        }
    )
    objects = {o["type"] + ":" + str(o.get("pattern", o.get("name"))): o for o in compiled_objects(load_repo(root))}
    feed = objects["indicator:[ipv4-addr:value = '203.0.113.9']"]
    own = objects["indicator:[domain-name:value = 'example.org']"]
    assert feed["confidence"] == 70  # the nearer _defaults.yaml wins
    assert own["confidence"] == 90  # the object's own value wins
    assert feed["object_marking_refs"] == [green]
    assert feed["extensions"][SOURCE_EXTENSION_ID]["source_system"] == "Contoso TI"
    assert "extensions" not in own
    types = {o["type"] for o in objects.values()}
    assert {"marking-definition", "extension-definition"} <= types
    # Derived ids are stable UUIDv5s.
    assert build(root).bundle == build(root).bundle


def test_a_default_goes_only_to_the_types_that_have_the_property(make_repo) -> None:  # type: ignore[no-untyped-def]
    green = TLP2_MARKINGS["green"][0]
    identity = "identity--3b241a2b-0f6e-45f2-8247-30783a977105"
    root = make_repo({
        "intel/_defaults.yaml": (f"defaults:\n  created_by_ref: {identity}\n  confidence: 60\n"
                                 f"  object_marking_refs: [{green}]\n  x_team: blue\n"),
        "intel/identity.yaml": (f"type: identity\nspec_version: '2.1'\nid: {identity}\nname: Us\n"
                                "identity_class: organization\ncreated: '2024-01-01T00:00:00.000Z'\n"
                                "modified: '2024-01-01T00:00:00.000Z'\n"),
        "intel/ip.yaml": "type: ipv4-addr\nspec_version: '2.1'\nvalue: 203.0.113.9\n",
        "intel/custom.yaml": ("type: x-acme-playbook\nspec_version: '2.1'\nid: x-acme-playbook--4f1e0e4c-0d6a-4e8b-9c1a-3a6e2b9f7c11\n"
                              "created: '2024-01-01T00:00:00.000Z'\nmodified: '2024-01-01T00:00:00.000Z'\n"),
    })
    repo = load_repo(root)
    by_type = {obj.data["type"]: obj for obj in repo.objects}
    # STIX 2.1 section 6.1: an SCO has object_marking_refs but no created_by_ref or confidence;
    # a property STIX does not define (x_team) goes everywhere, as written.
    assert by_type["ipv4-addr"].defaulted_properties == ("object_marking_refs", "x_team")
    assert by_type["identity"].defaulted_properties == ("confidence", "created_by_ref", "object_marking_refs", "x_team")
    assert by_type["x-acme-playbook"].defaulted_properties == ("confidence", "created_by_ref", "object_marking_refs",
                                                               "x_team")
    assert [f for f in validate_repo(repo) if f.code == "TI208" and "'created_by_ref'" in f.message] == []
    sco = next(o for o in compiled_objects(repo) if o["type"] == "ipv4-addr")
    assert sco["object_marking_refs"] == [green] and "created_by_ref" not in sco and "confidence" not in sco


def test_inline_relationships_compile_to_stable_relationships(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo(
        {
            "intel/actor.yaml": "type: threat-actor\nspec_version: '2.1'\nid: threat-actor--44444444-4444-4444-8444-444444444444\ncreated: '2024-01-01T00:00:00.000Z'\nmodified: '2024-02-01T00:00:00.000Z'\nname: Copper\nrelationships:\n  - {uses: malware--11111111-1111-4111-8111-111111111111, description: loader}\n",
            "intel/malware.yaml": "type: malware\nspec_version: '2.1'\nid: malware--11111111-1111-4111-8111-111111111111\ncreated: '2024-01-01T00:00:00.000Z'\nmodified: '2024-01-01T00:00:00.000Z'\nname: Loader\nis_family: true\n",
        }
    )
    relationships = [o for o in compiled_objects(load_repo(root)) if o["type"] == "relationship"]
    assert len(relationships) == 1
    rel = relationships[0]
    assert (rel["source_ref"], rel["relationship_type"], rel["target_ref"]) == (
        "threat-actor--44444444-4444-4444-8444-444444444444", "uses", "malware--11111111-1111-4111-8111-111111111111")
    assert rel["description"] == "loader"
    assert rel["modified"] == "2024-02-01T00:00:00.000Z"  # inherited from the declaring object
    assert "relationships" not in next(o for o in compiled_objects(load_repo(root)) if o["type"] == "threat-actor")
    from tiops.stix import derive_relationship_id

    assert rel["id"] == derive_relationship_id(rel["source_ref"], "uses", rel["target_ref"])


def test_compile_refuses_when_validation_has_errors(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/bad.yaml": "type: identity\nspec_version: '2.1'\nname: No dates\n"})
    with pytest.raises(ValidationFailed) as caught:
        build(root)
    assert any(f.code == "TI201" for f in caught.value.findings)


def test_bundle_order_is_type_then_id_whatever_the_types_hold() -> None:
    """The joined-key sort orders as (type, id) pairs do: prefixes, hyphens, NULs and ties."""
    import random

    from tiops.compile import _bundle_order

    rng = random.Random(7)
    alphabets = ("ab-", "ab-\0", "x-\0\1")  # the last two force the pairwise fallback
    for alphabet in alphabets:
        keyed = [("".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 4))),
                  "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 3)))) for _ in range(400)]
        expected = sorted(range(len(keyed)), key=lambda position: (keyed[position], position))
        order, keys, in_key_order = _bundle_order(keyed)
        assert order == expected
        assert keys == [f"{keyed[position][0]}\0{keyed[position][1]}" for position in expected]
        assert in_key_order == (not any("\0" in stix_type for stix_type, _ in keyed))


def test_bundle_lists_a_type_before_the_longer_type_it_prefixes(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({
        "intel/custom.yaml": (
            "- type: x-acme\n  spec_version: '2.1'\n  id: x-acme--00000000-0000-4000-8000-00000000000f\n"
            "  created: 2024-01-01T00:00:00.000Z\n  modified: 2024-01-01T00:00:00.000Z\n"
            "- type: x-acme-b\n  spec_version: '2.1'\n  id: x-acme-b--00000000-0000-4000-8000-000000000001\n"
            "  created: 2024-01-01T00:00:00.000Z\n  modified: 2024-01-01T00:00:00.000Z\n"
            "- type: x-acme0\n  spec_version: '2.1'\n  id: x-acme0--00000000-0000-4000-8000-000000000002\n"
            "  created: 2024-01-01T00:00:00.000Z\n  modified: 2024-01-01T00:00:00.000Z\n"
        ),
    })
    objects = json.loads(build(root).bundle)["objects"]
    keys = [(o["type"], o["id"]) for o in objects]
    assert keys == sorted(keys)
    assert [t for t, _ in keys if t.startswith("x-acme")] == ["x-acme", "x-acme-b", "x-acme0"]

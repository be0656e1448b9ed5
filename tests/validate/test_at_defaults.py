"""Findings at a property a folder's _defaults.yaml gives are reported at the default's line, once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tiops.validate import validate_paths

TEAM = "identity--272de0aa-9200-5f58-860b-8d7220641ae2"
MISSING = "identity--11111111-9200-5f58-860b-8d7220641ae2"
ALSO_MISSING = "identity--22222222-9200-5f58-860b-8d7220641ae2"


def _actor(name: str, extra: str = "") -> str:
    return (f"type: threat-actor\nspec_version: '2.1'\nname: {name}\ncreated: 2024-01-01T00:00:00.000Z\n"
            f"modified: 2024-01-01T00:00:00.000Z\n{extra}")


def _repository(make_repo: Callable[[dict[str, str]], Path]) -> Path:
    identity = ("type: identity\nspec_version: '2.1'\nid: {id}\nname: {name}\n"
                "created: 2024-01-01T00:00:00.000Z\nmodified: 2024-01-01T00:00:00.000Z\n")
    return make_repo({
        "intel/_defaults.yaml": f"source: Team\ndefaults:\n  labels: [ours]\n  created_by_ref: {MISSING}\n",
        "intel/team.yaml": identity.format(id=TEAM, name="Team"),
        # Its inline relationship inherits the created_by_ref A took from the default.
        "intel/actors/a.yaml": _actor("A", f"relationships:\n  - related-to: {TEAM}\n"),
        "intel/actors/b.yaml": _actor("B"),
        "intel/actors/list.yaml": "- " + _actor("C").replace("\n", "\n  ").rstrip() + "\n- "
                                  + _actor("D").replace("\n", "\n  ").rstrip() + "\n",
        # Its own value wins over the default: its finding stays at its own line.
        "intel/actors/own.yaml": _actor("E", f"created_by_ref: {MISSING}\n"),
        # A nearer folder gives another default: its finding is at that file's line.
        "intel/actors/sub/_defaults.yaml": f"defaults:\n  x_team: blue\n  created_by_ref: {ALSO_MISSING}\n",
        "intel/actors/sub/f.yaml": _actor("F"),
    })


def _seen(root: Path, named: list[Path], cache: bool) -> list[tuple[str, str, int, int, str | None, str]]:
    return [(f.code, f.location.file, f.location.line, f.location.column, f.stix_id, f.message)
            for f in validate_paths(root, named, cache=cache) if f.code in ("TI300", "TI301")]


def test_a_defect_in_a_default_is_one_finding_at_its_line(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = _repository(make_repo)
    seen = _seen(root, [], cache=False)
    by_file = {(code, file): (line, column, stix_id, message) for code, file, line, column, stix_id, message in seen}
    # The identity, actors A to D and A's relationship take the root folder's created_by_ref; E writes its own.
    line, column, stix_id, message = by_file["TI300", "intel/_defaults.yaml"]
    assert (line, column, stix_id) == (4, 3, None)
    assert message.endswith("(a default, given to 6 objects)") and MISSING in message
    assert by_file["TI300", "intel/actors/own.yaml"][0] == 6  # its own line, not the default's
    line, column, stix_id, message = by_file["TI300", "intel/actors/sub/_defaults.yaml"]
    assert (line, column) == (3, 3) and stix_id is not None and message.endswith("(a default, given to 1 object)")
    assert len(seen) == 3
    # The build cache's route (first build, then warm) says the same.
    assert _seen(root, [], cache=True) == seen
    assert _seen(root, [], cache=True) == seen


def test_a_named_file_shows_the_default_it_takes(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = _repository(make_repo)
    for cache in (False, True, True):
        seen = _seen(root, [root / "intel/actors/a.yaml"], cache=cache)
        # A's own finding and its relationship's (an id involved with the file), as one.
        assert [(code, file, line) for code, file, line, *_ in seen] == [("TI300", "intel/_defaults.yaml", 4)]
        assert seen[0][4] is None and seen[0][5].endswith("(a default, given to 2 objects)")


def test_naming_the_defaults_file_shows_its_finding_for_every_object(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = _repository(make_repo)
    for cache in (False, True, True):
        seen = _seen(root, [root / "intel/_defaults.yaml"], cache=cache)
        assert [(file, line, stix_id) for _, file, line, _, stix_id, _ in seen] == [("intel/_defaults.yaml", 4, None)]
        assert seen[0][5].endswith("(a default, given to 6 objects)")

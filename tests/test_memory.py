"""tiops.memory: shared strings keep the data equal and each object's containers its own."""

from __future__ import annotations

from typing import Any

import yaml_rs

from tiops.memory import share_strings


def _parsed(text: str) -> Any:
    return yaml_rs.loads(text, parse_datetime=False)


INDICATOR = """
type: indicator
spec_version: '2.1'
id: indicator--{n}1c1e0c0-0d66-4b5e-9b4a-2f7f1e3a1a11
name: Indicator {n}
created_by_ref: identity--6c1e0c0e-0d66-4b5e-9b4a-2f7f1e3a1a11
labels: [phishing, c2]
confidence: 80
revoked: false
valid_until: null
kill_chain_phases:
  - {{kill_chain_name: mitre-attack, phase_name: initial-access}}
external_references:
  - {{source_name: vendor, url: 'https://example.org/{n}', hashes: {{SHA-256: abc}}}}
nested: [[a, b], [c]]
"""


def test_shared_data_is_equal_to_what_was_parsed() -> None:
    parsed = _parsed(INDICATOR.format(n=1))
    expected = _parsed(INDICATOR.format(n=1))
    shared = share_strings(parsed)
    assert shared == expected
    assert list(shared) == list(expected)  # key order is kept: it is the order findings and dumps follow
    assert list(shared["external_references"][0]) == list(expected["external_references"][0])


def test_names_and_recurring_values_are_one_object_across_objects() -> None:
    first, second = (share_strings(_parsed(INDICATOR.format(n=n))) for n in (1, 2))
    first_keys = {key: key for key in first}
    for key in second:
        assert key is first_keys[key]  # every property name is one string
    for name in ("type", "spec_version", "created_by_ref"):  # vocabulary, version, reference
        assert second[name] is first[name]
    assert second["labels"][0] is first["labels"][0]
    first_phase, second_phase = first["kill_chain_phases"][0], second["kill_chain_phases"][0]
    assert second_phase["phase_name"] is first_phase["phase_name"]
    assert second["external_references"][0]["source_name"] is first["external_references"][0]["source_name"]


def test_free_text_and_identifiers_are_left_alone() -> None:
    parsed = [_parsed(INDICATOR.format(n=1)) for _ in range(2)]
    first, second = (share_strings(p) for p in parsed)
    # Equal ids in two parses are not merged: ids and names are nearly always distinct,
    # and interning them would only grow the interpreter's table.
    assert first["id"] == second["id"] and first["id"] is not second["id"]
    assert first["name"] == second["name"] and first["name"] is not second["name"]

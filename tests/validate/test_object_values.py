"""Values inside objects: pattern literals read by the quick path and by the general
lexer give the same findings; SCO values are found at any depth."""

from __future__ import annotations

from typing import Any

import pytest

from tiops.load import IntelObject
from tiops.validate.values import check_values


def _indicator(pattern: str) -> IntelObject:
    return IntelObject({"type": "indicator", "id": "indicator--8d8d8d8d-8d8d-4d8d-8d8d-8d8d8d8d8d8d",
                        "pattern": pattern, "pattern_type": "stix"}, "x.yaml")


@pytest.mark.parametrize(("quick", "general"), [
    ("[ipv4-addr:value = '999.1.1.1']", "[ipv4-addr:value = '999.1.1.1' ]"),
    ("[file:hashes.'SHA-256' = 'abc']", "[file:hashes.'SHA-256' = 'abc' AND file:name = 'a']"),
    ("[email-message:from_ref.value = 'Eve <e@example.com>']", "[email-message:from_ref.value IN ('Eve <e@example.com>')]"),
])
def test_quick_and_general_pattern_readings_agree(quick: str, general: str) -> None:
    first = [(f.code, f.message) for f in check_values(_indicator(quick))]
    second = [(f.code, f.message) for f in check_values(_indicator(general))]
    assert first and first == second


def test_like_and_matches_literals_are_not_values() -> None:
    assert check_values(_indicator("[ipv4-addr:value LIKE '10.%' OR url:value MATCHES '^no scheme']")) == []


def test_a_pattern_that_did_not_parse_is_not_read_for_values() -> None:
    assert check_values(_indicator("[ipv4-addr:value = '999.1.1.1'"), pattern_parsed=False) == []


def test_sco_values_are_found_in_extensions_and_lists() -> None:
    data: dict[str, Any] = {
        "type": "file", "id": "file--8d8d8d8d-8d8d-4d8d-8d8d-8d8d8d8d8d8d", "name": "a.exe",
        "extensions": {"windows-pebinary-ext": {"pe_type": "exe", "sections": [{"name": ".text", "hashes": {"MD5": "zz"}}]}},
    }
    findings = check_values(IntelObject(data, "x.yaml", path=("objects", 3)))
    assert [(f.code, f.location.path) for f in findings] == [
        ("TI237", ("objects", 3, "extensions", "windows-pebinary-ext", "sections", 0, "hashes", "MD5"))]

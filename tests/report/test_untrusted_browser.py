"""Keys, names and query words from intel or the address, in a real headless Chromium: a
``__proto__`` key is shown, a field named like an inherited property is an unknown field, and
controls and bidirectional overrides are shown escaped, as the CLI prints them."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sitedata import object_url

from tiops.report import build_report

PROTO_ID = "malware--11111111-2222-4333-8444-555555555555"
BIDI_ID = "malware--21111111-2222-4333-8444-555555555555"
INTEL = f"""\
- type: malware
  spec_version: '2.1'
  id: {PROTO_ID}
  created: 2024-01-01T00:00:00.000Z
  modified: 2024-01-01T00:00:00.000Z
  name: Proto keeper
  is_family: false
  x_data:
    __proto__: {{secret: HIDDEN-VALUE}}
    visible: v
- type: malware
  spec_version: '2.1'
  id: {BIDI_ID}
  created: 2024-01-01T00:00:00.000Z
  modified: 2024-01-01T00:00:00.000Z
  name: "invoice\\u202Efdp.exe"
  description: "line one\\nline\\u2066two\\u0085"
  is_family: false
  labels: ["nul\\0byte"]
"""
LONG_ID = "malware--31111111-2222-4333-8444-555555555555"
BIDI_CHARACTERS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@pytest.fixture
def site(make_repo: Callable[[dict[str, str]], Path], tmp_path: Path) -> Path:
    root = make_repo({"intel/objects.yaml": INTEL})
    out = tmp_path / "site"
    build_report(root, out, as_of="2024-11-01", allow_invalid=True)
    return out


def test_a_proto_key_is_shown_as_stored(browser: Any, site: Path) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(object_url(site, PROTO_ID))
    page.wait_for_selector("table.properties")
    shown = page.locator("table.properties").inner_text()
    assert '"__proto__"' in shown and "HIDDEN-VALUE" in shown and '"visible": "v"' in shown
    # A query reads it too: the browser's copy of the object keeps the key.
    page.goto("about:blank")
    page.goto((site / "browse.html").as_uri() + "#q=" + urllib.parse.quote("x_data.__proto__.secret = HIDDEN-VALUE"))
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('1 of')", timeout=5000)
    assert errors == []
    page.close()


@pytest.mark.parametrize("field", ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"])
def test_a_field_named_like_an_inherited_property_is_an_unknown_field(browser: Any, site: Path, field: str) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((site / "browse.html").as_uri() + "#q=" + urllib.parse.quote(f"{field} exists"))
    page.wait_for_function("document.querySelector('#query-error').textContent !== ''", timeout=5000)
    assert page.locator("#query-error").inner_text().startswith(f"unknown field '{field}'")
    assert errors == []
    page.close()


def test_an_operator_or_posix_class_named_like_an_inherited_property_is_refused(browser: Any, site: Path) -> None:
    page = browser.new_page()
    page.goto((site / "browse.html").as_uri())
    page.wait_for_selector("#results tbody tr")
    message = page.evaluate("""() => {
        try { TiopsQuery.parse("name constructor x", null); return "parsed"; } catch (e) { return e.message; } }""")
    assert message == 'unknown operator "constructor"'
    refused = page.evaluate("""() => {
        try { TiopsQuery.re2RegExp("[[:constructor:]]"); return "accepted"; } catch (e) { return e.message; } }""")
    assert "invalid character class range: [:constructor:] (RE2" in refused
    page.close()


def test_bidi_overrides_and_controls_are_shown_escaped(browser: Any, site: Path) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(object_url(site, BIDI_ID))
    page.wait_for_selector("table.properties")
    heading = page.locator("h1").inner_text()
    assert "invoice\\u202efdp.exe" in heading and not any(c in heading for c in BIDI_CHARACTERS)
    assert page.title() == "invoice\\u202efdp.exe · tiops report"
    properties = page.locator("table.properties").inner_text()
    assert "nul\\u0000byte" in properties and "\x00" not in properties  # labels, a list, are shown as JSON
    # A description on several lines keeps its line break; the isolate and NEL are escaped.
    assert "line one\nline\\u2066two\\x85" in page.locator("table.properties pre").first.inner_text()

    page.goto((site / "browse.html").as_uri())
    page.wait_for_selector("#results tbody tr")
    page.fill("#search", "invoice")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('1 of')", timeout=5000)
    row = page.locator("#results tbody tr").first
    assert row.locator("td").first.inner_text() == "invoice\\u202efdp.exe"
    assert row.locator("td").nth(5).inner_text() == "nul\\x00byte"
    # The first page, drawn before the index arrives, from browse.html itself: escaped too.
    first = page.evaluate("JSON.parse(document.getElementById('first-page').textContent).rows.length")
    assert first == 2
    assert errors == []
    page.close()


def test_the_browser_escapes_as_the_cli_does(browser: Any, site: Path) -> None:
    from tiops.render.names import printable

    sample = "".join(chr(code) for code in [*range(0, 0xa1), *range(0x2020, 0x2070)]) + "end"
    page = browser.new_page()
    page.goto((site / "browse.html").as_uri())
    page.wait_for_selector("#results tbody tr")
    assert page.evaluate("text => TiopsData.printable(text)", sample) == printable(sample)
    page.close()


def test_a_name_of_one_long_word_wraps_on_its_page(browser: Any, make_repo: Callable[[dict[str, str]], Path],
                                                    tmp_path: Path) -> None:
    """A 20,000-character name without a space made the object page's title 370,000 pixels wide."""
    root = make_repo({"intel/long.yaml": f"type: malware\nspec_version: '2.1'\nid: {LONG_ID}\n"
                                        "created: 2024-01-01T00:00:00.000Z\nmodified: 2024-01-01T00:00:00.000Z\n"
                                        f"name: LONG{'N' * 20000}\nis_family: false\n"})
    site = tmp_path / "long-site"
    build_report(root, site, as_of="2024-11-01")
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(object_url(site, LONG_ID))
    page.wait_for_selector("h1")
    assert "LONGNNN" in page.evaluate("document.querySelector('h1').textContent")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    page.close()

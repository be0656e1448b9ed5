"""The report as an analyst meets it, in a real headless Chromium: aliases found by free text,
and a site with a missing or damaged data file saying so instead of waiting forever."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sitedata import object_url, shard_entries

from tiops.report import build_report

GROUP_ID = "intrusion-set--a1111111-2222-4333-8444-555555555555"
TOOL_ID = "malware--b1111111-2222-4333-8444-555555555555"
OTHER_ID = "malware--c1111111-2222-4333-8444-555555555555"
INDICATOR_ID = "indicator--d1111111-2222-4333-8444-555555555555"
SIGHTING_ID = "sighting--e1111111-2222-4333-8444-555555555555"
REPORT_ID = "report--f1111111-2222-4333-8444-555555555555"
INTEL = f"""\
- type: intrusion-set
  spec_version: '2.1'
  id: {GROUP_ID}
  created: 2024-01-01T00:00:00.000Z
  modified: 2024-01-01T00:00:00.000Z
  name: APT29
  aliases: [APT29, Cozy Bear, NOBELIUM]
- type: malware
  spec_version: '2.1'
  id: {TOOL_ID}
  created: 2024-01-01T00:00:00.000Z
  modified: 2024-01-01T00:00:00.000Z
  name: Mimikatz
  is_family: true
  x_mitre_aliases: [Mimikatz, Kiwi Dumper]
- type: malware
  spec_version: '2.1'
  id: {OTHER_ID}
  created: 2024-01-01T00:00:00.000Z
  modified: 2024-01-01T00:00:00.000Z
  name: Other
  is_family: true
- type: indicator
  spec_version: '2.1'
  id: {INDICATOR_ID}
  created: 2024-01-01T00:00:00.000Z
  modified: 2024-01-01T00:00:00.000Z
  name: Bad address
  pattern: "[ipv4-addr:value = '198.51.100.7']"
  pattern_type: stix
  valid_from: 2024-01-01T00:00:00.000Z
- type: sighting
  spec_version: '2.1'
  id: {SIGHTING_ID}
  created: 2024-02-01T00:00:00.000Z
  modified: 2024-02-01T00:00:00.000Z
  sighting_of_ref: {INDICATOR_ID}
  count: 3
- type: report
  spec_version: '2.1'
  id: {REPORT_ID}
  created: 2024-03-01T00:00:00.000Z
  modified: 2024-03-01T00:00:00.000Z
  name: Quarterly report
  published: 2024-03-01T00:00:00.000Z
  object_refs: [{GROUP_ID}, {INDICATOR_ID}, {INDICATOR_ID}]
"""


@pytest.fixture
def site(make_repo: Callable[[dict[str, str]], Path], tmp_path: Path) -> Path:
    root = make_repo({"intel/objects.yaml": INTEL})
    out = tmp_path / "site"
    build_report(root, out, as_of="2024-11-01")
    return out


def _shown_after_search(browser: Any, site: Path, words: str) -> list[str]:
    page = browser.new_page()
    page.goto((site / "browse.html").as_uri())
    page.fill("#search", words)
    # The view is drawn when the address has the search (browser.js remember, then draw).
    page.wait_for_function("words => new URLSearchParams(location.hash.slice(1)).get('text') === words", arg=words)
    names = page.locator("#results tbody tr td:first-child a").all_inner_texts()
    page.close()
    return names


@pytest.mark.parametrize(("words", "found"), [("cozy bear", "APT29"), ("NOBELIUM", "APT29"),
                                              ("kiwi dumper", "Mimikatz")])
def test_free_text_finds_an_object_by_its_aliases(browser: Any, site: Path, words: str, found: str) -> None:
    assert _shown_after_search(browser, site, words) == [found]


def _watch(page: Any) -> list[str]:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    return requests


def _packed_script(key: str, payload: bytes) -> str:
    return f'TiopsReport.shard("{key}","{base64.b64encode(zlib.compress(payload)).decode()}");\n'


@pytest.mark.parametrize("damage", ["missing", "cut short", "not base64", "not a list", "another shard's key"])
def test_an_unreadable_shard_is_said_on_the_object_page(browser: Any, site: Path, damage: str) -> None:
    shard = site / "data" / "objects" / "a.js"  # GROUP_ID's: its UUID starts with "a"
    text = shard.read_text(encoding="utf-8")
    if damage == "missing":
        shard.unlink()
    elif damage == "cut short":
        shard.write_text(text[:60], encoding="utf-8")  # a script with a syntax error: "load" fires, nothing is called
    elif damage == "not base64":
        shard.write_text('TiopsReport.shard("a","not base64!");\n', encoding="utf-8")
    elif damage == "not a list":
        shard.write_text(_packed_script("a", b'{"o": 1}'), encoding="utf-8")
    else:
        shard.write_text(text.replace('shard("a"', 'shard("b"'), encoding="utf-8")
    page = browser.new_page()
    requests = _watch(page)
    page.goto(object_url(site, GROUP_ID))
    page.wait_for_function("document.querySelector('#object-status').textContent.indexOf('incomplete') !== -1",
                           timeout=5000)
    what = "is missing" if damage == "missing" else "is damaged"
    assert f"data file data/objects/a.js {what}" in page.locator("#object-status").inner_text()
    assert page.locator("#object").inner_text() == ""
    # The other shards still open, and the damaged one is said again, not "Loading..." forever.
    page.evaluate(f"location.hash = '{TOOL_ID}'")
    page.wait_for_selector("#object h1")
    assert "Mimikatz" in page.locator("#object h1").inner_text()
    page.evaluate(f"location.hash = '{GROUP_ID}'")
    page.wait_for_function("document.querySelector('#object-status').textContent.indexOf('incomplete') !== -1")
    assert page.locator("#object").inner_text() == "" and page.title() == "Object · tiops report"  # not Mimikatz's
    assert all(url.startswith("file://") for url in requests)
    page.close()


@pytest.mark.parametrize("damage", ["cut short", "not base64"])
def test_a_damaged_index_is_said_on_the_browser(browser: Any, site: Path, damage: str) -> None:
    index = site / "data" / "index.js"
    text = index.read_text(encoding="utf-8")
    index.write_text(text[:40] if damage == "cut short" else 'TiopsReport.index("%%%");\n', encoding="utf-8")
    page = browser.new_page()
    page.goto((site / "browse.html").as_uri())
    page.wait_for_function("document.querySelector('#loading').textContent.indexOf('incomplete') !== -1",
                           timeout=5000)
    assert "data file data/index.js is damaged" in page.locator("#loading").inner_text()
    assert page.locator("#results tbody tr").count() == 6  # the first page, built into browse.html, stays
    page.close()


@pytest.mark.parametrize("damage", ["not base64", "another shard's key"])
def test_a_damaged_shard_is_said_when_a_query_needs_every_shard(browser: Any, site: Path, damage: str) -> None:
    shard = site / "data" / "objects" / "b.js"
    if damage == "not base64":
        shard.write_text('TiopsReport.shard("b","!");\n', encoding="utf-8")
    else:  # b.js holds a copy of c.js: c's objects must not count for b's, nor end the wait
        shard.write_text((site / "data" / "objects" / "c.js").read_text(encoding="utf-8"), encoding="utf-8")
    page = browser.new_page()
    page.goto((site / "browse.html").as_uri() + "#q=description%20exists")
    page.wait_for_function("document.querySelector('#loading').textContent.indexOf('incomplete') !== -1",
                           timeout=5000)
    page.wait_for_timeout(300)  # every other shard has arrived: the message stays
    assert "data file data/objects/b.js is damaged" in page.locator("#loading").inner_text()
    assert page.locator("#results tbody tr").count() == 0  # no answer from part of the data
    page.close()


def test_an_object_links_back_to_the_sightings_and_reports_naming_it(browser: Any, site: Path) -> None:
    page = browser.new_page()
    requests = _watch(page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(object_url(site, INDICATOR_ID))
    page.wait_for_selector("ul.referrers")
    assert "Referenced by (2)" in page.locator("#object").inner_text()  # the report's list names it twice: once here
    assert page.locator("ul.referrers li").all_inner_texts() == [
        "Quarterly report (report, object_refs)", "sighting of Bad address (sighting, sighting_of_ref)"]  # a sighting has no name
    # Both ways: to the sighting, then back to the indicator by its sighting_of_ref.
    page.click(f"ul.referrers a[href='#{SIGHTING_ID}']")
    page.wait_for_function(f"document.querySelector('#object code').textContent === '{SIGHTING_ID}'")
    page.click(f"table.properties a[href='#{INDICATOR_ID}']")
    page.wait_for_function(f"document.querySelector('#object code').textContent === '{INDICATOR_ID}'")
    page.go_back()
    page.wait_for_function(f"document.querySelector('#object code').textContent === '{SIGHTING_ID}'")
    # An object no *_ref names has no such section; the report's own page lists what it names, not itself.
    page.evaluate(f"location.hash = '{REPORT_ID}'")
    page.wait_for_function(f"document.querySelector('#object code').textContent === '{REPORT_ID}'")
    assert page.locator("ul.referrers").count() == 0
    assert errors == [] and all(url.startswith("file://") for url in requests)
    page.close()


def test_an_id_whose_uuid_digit_has_no_shard_is_no_object_not_a_damaged_report(browser: Any, site: Path) -> None:
    # Six objects fill the shards a to f only: no data/objects/0.js, and none is missing.
    assert not (site / "data" / "objects" / "0.js").exists()
    page = browser.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    unknown = "malware--01111111-2222-4333-8444-555555555555"
    page.goto(object_url(site, unknown))
    page.wait_for_function("document.querySelector('#object-status').textContent !== ''")
    assert page.locator("#object-status").inner_text() == f"The report has no object {unknown}."
    assert failed == []  # not even asked for
    page.close()


def test_only_references_that_relate_objects_are_linked_back(make_repo: Callable[[dict[str, str]], Path],
                                                             tmp_path: Path) -> None:
    author = "identity--91111111-2222-4333-8444-555555555555"
    extra = f"""\
- type: identity
  spec_version: '2.1'
  id: {author}
  created: 2024-01-01T00:00:00.000Z
  modified: 2024-01-01T00:00:00.000Z
  name: Author
  identity_class: organization
- type: relationship
  spec_version: '2.1'
  id: relationship--81111111-2222-4333-8444-555555555555
  created: 2024-01-01T00:00:00.000Z
  modified: 2024-01-01T00:00:00.000Z
  relationship_type: uses
  source_ref: {GROUP_ID}
  target_ref: {TOOL_ID}
  created_by_ref: {author}
"""
    root = make_repo({"intel/objects.yaml": INTEL + extra})
    out = tmp_path / "site"
    build_report(root, out, as_of="2024-11-01")
    entries = shard_entries(out)
    assert entries[INDICATOR_ID]["b"] == [["object_refs", REPORT_ID, "Quarterly report"],
                                          ["sighting_of_ref", SIGHTING_ID, "sighting of Bad address"]]
    assert entries[GROUP_ID]["b"] == [["object_refs", REPORT_ID, "Quarterly report"]]
    # A relationship's ends are its relationships list; an author is named by everything it wrote.
    assert "b" not in entries[TOOL_ID] and "b" not in entries[author]
    assert [link[0] for link in entries[TOOL_ID]["l"]] == ["uses"]

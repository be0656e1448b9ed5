"""Every list the report cuts short ("and N more") leads to the rest, in headless Chromium: a table
of objects to the browser showing all of them, a chart's left-out values unfolded in place, each
linked to its objects as a bar is."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tiops.report import build_report

AS_OF = "2024-11-01"
COUNT = 12  # malware, each with its own tag, month and confidence
LIMIT = 3
PANELS = f"""\
panels:
  - title: Strongest malware
    query: type = malware
    chart: table
    sort: confidence:desc
    limit: {LIMIT}
  - title: Tags as bars
    query: type = malware
    group-by: tags
    limit: {LIMIT}
  - title: Tags as a table
    query: type = malware
    group-by: tags
    chart: table
    limit: {LIMIT}
  - title: Created per month
    query: type = malware
    group-by: created
    chart: timeline
    limit: {LIMIT}
"""


def _malware(number: int) -> str:
    object_id = f"malware--{uuid.uuid5(uuid.NAMESPACE_URL, f'more-{number}')}"
    # Tag k on k+1 objects: every count differs, so the order of the values is fixed.
    tags = [f"tag-{k:02d}" for k in range(number, COUNT)]
    return (f"- type: malware\n  spec_version: '2.1'\n  id: {object_id}\n"
            f"  created: 2023-{number + 1:02d}-01T00:00:00.000Z\n  modified: 2023-{number + 1:02d}-01T00:00:00.000Z\n"
            f"  name: Malware {number:02d}\n  is_family: true\n  confidence: {10 + number}\n  labels: {tags}\n")


@pytest.fixture
def site(make_repo: Callable[[dict[str, str]], Path], tmp_path: Path) -> Path:
    root = make_repo({"intel/malware.yaml": "".join(_malware(n) for n in range(COUNT)), "report.yaml": PANELS})
    out = tmp_path / "site"
    build_report(root, out, as_of=AS_OF)
    return out


def _browse_count(page: Any, url: str) -> int:
    page.goto("about:blank")  # a new document: a hash change alone would show the last count first
    page.goto(url)
    page.wait_for_function("() => /^\\d+ of \\d+ objects$/.test(document.querySelector('#status').textContent)"
                           " && document.querySelector('#loading').textContent === ''")
    assert page.locator("#query-error").inner_text().strip() == ""
    return int(page.locator("#status").inner_text().split()[0])


def test_the_more_of_a_table_of_objects_opens_the_browser_on_all_of_them(browser: Any, site: Path) -> None:
    page = browser.new_page()
    page.goto((site / "index.html").as_uri())
    panel = page.locator("section.chart", has_text="Strongest malware")
    assert panel.locator("tbody tr").count() == LIMIT
    more = panel.locator("p.more a")
    assert more.inner_text() == f"and {COUNT - LIMIT} more"
    more.click()
    page.wait_for_url("**/browse.html#*")
    page.wait_for_function("() => /^\\d+ of \\d+ objects$/.test(document.querySelector('#status').textContent)")
    assert page.locator("#status").inner_text() == f"{COUNT} of {COUNT} objects"
    # In the panel's order (confidence, highest first), its first rows the panel's.
    names = page.locator("#results tbody td:first-child a").all_inner_texts()
    assert names == [f"Malware {n:02d}" for n in reversed(range(COUNT))]
    page.close()


@pytest.mark.parametrize("title", ["Tags as bars", "Tags as a table", "Created per month"])
def test_the_more_of_a_chart_unfolds_every_value_left_out_each_linked(browser: Any, site: Path, title: str) -> None:
    page = browser.new_page()
    page.goto((site / "index.html").as_uri())
    panel = page.locator("section.chart", has_text=title)
    more = panel.locator("details.more")
    assert more.locator("summary").inner_text() == f"and {COUNT - LIMIT} more"
    assert not more.locator("table").is_visible()
    more.locator("summary").click()
    rows = more.locator("tbody tr")
    assert rows.first.is_visible() and rows.count() == COUNT - LIMIT
    # A bar's whole label is its <title> (the text beside the bar may be cut).
    shown = panel.locator("svg text.label > title, table.panel-table:not(details table) tbody td:first-child") \
        .all_text_contents()
    rest = more.locator("tbody td:first-child").all_inner_texts()
    expected = [f"2023-{n:02d}" for n in range(1, COUNT + 1)] if title.startswith("Created") else \
        [f"tag-{k:02d}" for k in reversed(range(COUNT))]
    assert sorted(shown + rest) == sorted(expected) and len(shown) == LIMIT
    # Each value left out opens the browser on the objects it counts, as a bar does.
    found = [(a.get_attribute("href"), int(a.locator("xpath=ancestor::tr/td[2]").inner_text()))
             for a in more.locator("tbody a").all()]
    assert len(found) == COUNT - LIMIT
    for href, count in found:
        assert href.startswith("browse.html#q=")
        assert _browse_count(page, urllib.parse.urljoin((site / "index.html").as_uri(), href)) == count, href
    page.close()


def test_past_what_unfolds_the_objects_with_a_value_are_a_link_away(make_repo: Callable[[dict[str, str]], Path],
                                                                   tmp_path: Path, browser: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # A panel of as many values as objects (group-by: id at 100k) unfolds only so many.
    monkeypatch.setattr("tiops.report.build._UNFOLDED", 4)
    root = make_repo({"intel/malware.yaml": "".join(_malware(n) for n in range(COUNT)), "report.yaml": PANELS})
    out = tmp_path / "site"
    build_report(root, out, as_of=AS_OF)
    page = browser.new_page()
    page.goto((out / "index.html").as_uri())
    for title in ("Tags as bars", "Tags as a table", "Created per month"):
        more = page.locator("section.chart", has_text=title).locator("details.more")
        assert more.locator("tbody tr").count() == 4
        beyond = more.locator("p.more a")
        assert beyond.text_content() == f"and {COUNT - LIMIT - 4} more values: every object that has one"
        href = beyond.get_attribute("href") or ""
        assert _browse_count(page, urllib.parse.urljoin((out / "index.html").as_uri(), href)) == COUNT, href
        page.goto((out / "index.html").as_uri())
    page.close()

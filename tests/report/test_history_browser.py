"""Back and forward in headless Chromium: from one object to another on the one object page (a
change of its #id), and from the browser's results to an object and back, the previous view
returns where the analyst was on it, not at its top."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sitedata import object_url

from tiops.report import build_report

GROUP_ID = "intrusion-set--a1111111-2222-4333-8444-555555555555"
COUNT = 90  # malware the group uses: a page several screens long, on the object page and in the browser


def _id(kind: str, number: int) -> str:
    return f"{kind}--{uuid.uuid5(uuid.NAMESPACE_URL, f'history-{kind}-{number}')}"


def _intel() -> str:
    stamp = "created: 2024-01-01T00:00:00.000Z\n  modified: 2024-01-01T00:00:00.000Z"
    parts = [f"- type: intrusion-set\n  spec_version: '2.1'\n  id: {GROUP_ID}\n  {stamp}\n  name: APT29\n"]
    for n in range(COUNT):
        parts.append(f"- type: malware\n  spec_version: '2.1'\n  id: {_id('malware', n)}\n  {stamp}\n"
                     f"  name: Malware {n:02d}\n  is_family: true\n")
        parts.append(f"- type: relationship\n  spec_version: '2.1'\n  id: {_id('relationship', n)}\n  {stamp}\n"
                     f"  relationship_type: uses\n  source_ref: {GROUP_ID}\n  target_ref: {_id('malware', n)}\n")
    return "".join(parts)


@pytest.fixture
def site(make_repo: Callable[[dict[str, str]], Path], tmp_path: Path) -> Path:
    root = make_repo({"intel/objects.yaml": _intel()})
    out = tmp_path / "site"
    build_report(root, out, as_of="2024-11-01")
    return out


def _shown(page: Any, object_id: str) -> None:
    page.wait_for_function(f"document.querySelector('#object code') && "
                           f"document.querySelector('#object code').textContent === '{object_id}'")


def _scroll_to(page: Any, selector: str) -> int:
    """Scroll ``selector`` to the middle of the window, well down the page (so that clicking it
    scrolls no further); the position reached."""
    page.eval_on_selector(selector, "element => element.scrollIntoView({block: 'center'})")
    position: int = page.evaluate("window.scrollY")
    assert position > 500
    return position


def test_back_to_an_object_returns_where_the_analyst_was(browser: Any, site: Path) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 600})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(object_url(site, GROUP_ID))
    _shown(page, GROUP_ID)
    target = _id("malware", 70)
    link = f"ul.relationships a[href='#{target}']"
    position = _scroll_to(page, link)
    page.click(link)
    _shown(page, target)
    assert page.evaluate("window.scrollY") == 0  # another object: from its top
    page.mouse.wheel(0, 300)  # reads on, a little way down
    page.wait_for_function("window.scrollY > 0")
    page.wait_for_timeout(300)
    further = page.evaluate("window.scrollY")
    page.go_back()
    _shown(page, GROUP_ID)
    page.wait_for_function(f"window.scrollY === {position}", timeout=3000)
    assert page.title() == "APT29 · tiops report"
    page.go_forward()  # forward too: where the analyst was on that one
    _shown(page, target)
    page.wait_for_function(f"window.scrollY === {further}", timeout=3000)
    page.go_back()
    _shown(page, GROUP_ID)
    page.wait_for_function(f"window.scrollY === {position}", timeout=3000)
    assert errors == []
    page.close()


def test_back_from_an_object_to_the_results_returns_where_the_analyst_was(browser: Any, site: Path) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 600})
    # A view in the address: its rows are drawn once the index has arrived, after the page.
    page.goto((site / "browse.html").as_uri() + "#q=type%20%3D%20malware")
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length === 50")
    target = _id("malware", 40)
    link = f"#results tr[data-id='{target}'] a"
    position = _scroll_to(page, link)
    page.click(link)
    _shown(page, target)
    page.go_back()
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length === 50")
    page.wait_for_function(f"window.scrollY === {position}", timeout=3000)
    assert page.locator("#status").inner_text() == f"{COUNT} of {COUNT + 1 + COUNT} objects"
    page.close()

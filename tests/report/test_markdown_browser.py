"""ATT&CK's Markdown in descriptions, in headless Chromium: "[text](url)" and "(Citation: Name)"
become links, only to http(s) URLs; everything else from intel stays text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sitedata import object_url

from tiops.report import build_report

TOOL_ID = "malware--b1111111-2222-4333-8444-555555555555"
# The object whose own page ATT&CK's link names, and an older, revoked one (a lesser id) claiming the same URL.
MIMIKATZ_ID = "tool--c1111111-2222-4333-8444-555555555555"
REVOKED_ID = "tool--01111111-2222-4333-8444-555555555555"
DESCRIPTION = ("Uses [Mimikatz](https://attack.mitre.org/software/S0002) and [a wiki](https://en.wikipedia.org/wiki/A_(b)), "
               "not [run me](javascript:alert(1)) nor [data](data:text/html,x) nor [<b>bold</b>](https://x.example/<i>) "
               "<img src=x onerror=window.__xss=1>. (Citation: Vendor 2024) (Citation: Evil) (Citation: Missing)"
               "\\nSecond line (Citation: constructor) runs <code>cmd.exe /c whoami</code> and `net user`, "
               "not <code><b>x</b></code>")
INTEL = f"""\
- type: malware
  spec_version: '2.1'
  id: {TOOL_ID}
  created: 2024-01-01T00:00:00.000Z
  modified: 2024-01-01T00:00:00.000Z
  name: Mimikatz
  is_family: true
  description: "{DESCRIPTION}"
  external_references:
    - source_name: Vendor 2024
      url: https://vendor.example/report
      description: Vendor. (2024). A report.
    - source_name: Evil
      url: javascript:alert(2)
- type: tool
  spec_version: '2.1'
  id: {MIMIKATZ_ID}
  created: 2024-01-01T00:00:00.000Z
  modified: 2024-01-01T00:00:00.000Z
  name: Mimikatz (the tool)
  external_references:
    - source_name: mitre-attack
      url: https://attack.mitre.org/software/S0002
      external_id: S0002
- type: tool
  spec_version: '2.1'
  id: {REVOKED_ID}
  created: 2024-01-01T00:00:00.000Z
  modified: 2024-01-01T00:00:00.000Z
  name: Mimikatz (revoked)
  revoked: true
  external_references:
    - source_name: mitre-attack
      url: https://attack.mitre.org/software/S0002/
      external_id: S0002
"""


@pytest.fixture
def site(make_repo: Callable[[dict[str, str]], Path], tmp_path: Path) -> Path:
    root = make_repo({"intel/objects.yaml": INTEL})
    out = tmp_path / "site"
    build_report(root, out, as_of="2024-11-01")
    return out


def test_markdown_links_and_citations_are_links_only_to_web_addresses(browser: Any, site: Path) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(object_url(site, TOOL_ID))
    page.wait_for_selector("#object h1")
    cell = page.locator("table.properties tr", has=page.locator("th", has_text="description")).locator("td")
    links = cell.locator("a").evaluate_all("links => links.map(a => [a.textContent, a.getAttribute('href'), a.title])")
    assert links == [
        # A link to the own page of an object in the report opens it here; the arrow opens the web page.
        ["Mimikatz", f"#{MIMIKATZ_ID}", "In this report: Mimikatz (the tool)"],
        ["\u2197", "https://attack.mitre.org/software/S0002", "https://attack.mitre.org/software/S0002"],
        ["a wiki", "https://en.wikipedia.org/wiki/A_(b)", "https://en.wikipedia.org/wiki/A_(b)"],
        ["<b>bold</b>", "https://x.example/<i>", "https://x.example/<i>"],
        ["(Citation: Vendor 2024)", "https://vendor.example/report", "Vendor. (2024). A report."],
    ]
    text = cell.inner_text()
    # What is no web link stays as written: other schemes, a reference without a web URL or
    # none at all, a name every JavaScript object inherits, markup.
    for kept in ("[run me](javascript:alert(1))", "[data](data:text/html,x)", "(Citation: Evil)", "(Citation: Missing)",
                 "(Citation: constructor)", "<img src=x onerror=window.__xss=1>"):
        assert kept in text
    assert "Second line" in text.split("\n")[-1]  # the line break stays
    # Code spans are code elements holding text; one with markup inside stays as written.
    assert cell.locator("code").all_text_contents() == ["cmd.exe /c whoami", "net user"]
    assert "not <code><b>x</b></code>" in text
    assert cell.locator("b, i, img, script").count() == 0
    assert page.evaluate("window.__xss") is None and errors == []
    cell.locator("a", has_text="Mimikatz").click()
    page.wait_for_function("document.querySelector('#object h1') && document.querySelector('#object h1').textContent.includes('the tool')")
    assert page.evaluate("location.hash") == f"#{MIMIKATZ_ID}"
    page.close()

"""The report in a real headless Chromium: overview, search, object page, no script injection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hostile import XSS_ID
from sitedata import object_url

from tiops.report import build_report

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
def test_overview_search_and_object_page(browser: Any, report_repo: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build_report(report_repo, site, as_of="2024-11-01")
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto((site / "index.html").as_uri())
    assert page.title() == "Overview · tiops report"
    assert page.locator("section.chart h2").count() == 8
    assert page.locator("section.chart").first.locator("rect").count() > 3
    page.screenshot(path=str(ARTIFACTS / "report-overview.png"), full_page=True)

    page.click("text=Browse objects")
    page.wait_for_selector("#results tbody tr")
    total = page.locator("#status").inner_text()
    assert total.endswith(" objects")
    page.fill("#search", "wickstealer")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('5 of')", timeout=5000)
    names = page.locator("#results tbody tr td:first-child").all_inner_texts()
    assert "WickStealer" in names
    # An AND condition narrows the search to one type.
    page.click("#add-condition")
    page.select_option("#conditions .condition .field", "type")
    page.select_option("#conditions .condition .op", "equals")
    page.fill("#conditions .condition .value", "malware")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('1 of')", timeout=5000)
    page.screenshot(path=str(ARTIFACTS / "report-browse.png"), full_page=True)

    page.click("#results tbody a")
    page.wait_for_selector("h1")
    assert "WickStealer" in page.locator("h1").inner_text()
    assert page.locator("ul.relationships li").count() >= 3
    assert page.locator("svg.graph circle").count() >= 4
    assert "intel/malware/wickstealer.yaml:1" in page.locator("dl.provenance").inner_text()
    page.screenshot(path=str(ARTIFACTS / "report-object.png"), full_page=True)
    assert errors == []
    assert all(url.startswith("file://") for url in requests)  # nothing fetched from the network
    page.close()


def test_hostile_text_does_not_run(browser: Any, report_repo: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build_report(report_repo, site, as_of="2024-11-01")
    page = browser.new_page()
    page.goto(object_url(site, XSS_ID))
    page.wait_for_selector("table.properties")
    assert page.evaluate("window.__xss === undefined")
    assert page.locator("img").count() == 0
    assert "<script>window.__xss=2</script>" in page.locator("table.properties").inner_text()
    page.goto((site / "browse.html").as_uri())
    page.fill("#search", "onerror")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('1 of')", timeout=5000)
    assert page.evaluate("window.__xss === undefined")
    assert page.locator("#results img").count() == 0
    assert 'onerror="window.__xss=1">' in page.locator("#results tbody").inner_text()
    page.close()


def test_addresses_naming_inherited_properties_show_the_page_not_an_error(browser: Any, report_repo: Path,
                                                                           tmp_path: Path) -> None:
    site = tmp_path / "site"
    build_report(report_repo, site, as_of="2024-11-01")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # A sort or an id looked up in a plain object found its inherited properties: a script
    # error and an empty page that only editing the address brought back.
    for sort in ("__proto__", "constructor", "hasOwnProperty"):
        page.goto((site / "browse.html").as_uri() + f"#sort={sort}")
        page.wait_for_selector("#results tbody tr")
        assert page.locator("#status").inner_text().endswith(" objects"), sort
    for missing in ("constructor", "__proto__", "toString"):
        page.goto("about:blank")
        page.goto(object_url(site, missing))
        page.wait_for_function("document.querySelector('#object-status') && "
                               "document.querySelector('#object-status').textContent.startsWith('The report has no object')",
                               timeout=5000)
    assert errors == []
    page.close()

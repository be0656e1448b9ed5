"""Every bar of the overview links to the browser with the query of the objects it counts: in
headless Chromium, the browse page a bar opens shows the bar's count, for every bar of every
panel (type, source, TLP, tags, enrichment country and AS, timelines, report.yaml panels, expiry).
A sighting is named after what it sighted."""

from __future__ import annotations

import re
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sitedata import index_rows, object_url

from tiops.cli import main
from tiops.query import rows_from_objects
from tiops.report import build_report
from tiops.report.links import browse_href, exact_match, literal, month_test, value_tests
from tiops.report.panels import month_counts

REPO_ROOT = Path(__file__).resolve().parents[2]  # the example intel shipped with tiops
AS_OF = "2024-11-01"
MALWARE = "malware--50b859d6-40df-4375-959c-7f616560f92f"  # WickStealer, in the example intel
SIGHTING = "sighting--6c1f4a52-93b1-4c0e-9d0e-4c5d6e7f8a9b"
# Labels the query language must quote, escape or tell apart by case; real IP addresses, which
# the shipped offline database places in countries and autonomous systems.
LABELS = ["APT", "apt", 'say "hi"', "C:\\temp\\x", "two words", "ünïcødé", "and", "true", "123", "a+b&c=d#e%f",
          "tab\there", "javascript:alert(1)", "Straße", "STRASSE", "50"]
ADDRESSES = ["8.8.8.8", "1.1.1.1", "9.9.9.9", "77.88.8.8", "114.114.114.114", "208.67.222.222", "8.8.4.4"]
PANELS = """\
panels:
  - title: Objects by type
    group-by: type
  - title: Objects by source
    group-by: source
  - title: Objects by TLP
    group-by: tlp
  - title: Indicators by tag
    query: type = indicator or type = malware
    group-by: tags
    limit: 40
  - title: Tags as a table
    group-by: labels
    chart: table
    limit: 40
  - title: Mixed custom values
    group-by: x_mixed
  - title: Kill chain phases
    group-by: kill_chain_phases
  - title: Country codes
    group-by: enrichment.country_code
  - title: AS organisations
    query: type = indicator
    group-by: enrichment.as_organization
  - title: Confidence bands
    bars:
      High or unknown: confidence >= 70 or confidence not-exists
      Low: confidence < 70
  - title: Created per month
    group-by: created
    chart: timeline
    limit: 40
  - title: Valid until per month
    query: type = indicator
    group-by: valid_until
    chart: timeline
"""


def indicators() -> str:
    text = []
    for number, address in enumerate(ADDRESSES):
        labels = [LABELS[(number * 3 + k) % len(LABELS)] for k in range(3)]
        text.append(f"""\
- type: indicator
  spec_version: "2.1"
  created: 2024-{1 + number:02d}-0{1 + number}T10:00:00.{number:03d}Z
  modified: 2024-{1 + number:02d}-0{1 + number}T11:00:00.000Z
  name: Resolver {address}
  indicator_types: [malicious-activity]
  pattern: "[ipv4-addr:value = '{address}']"
  pattern_type: stix
  valid_from: 2024-01-01T00:00:00Z
  valid_until: 2024-11-{3 + number * 4:02d}T00:00:00.{number}Z
  {"revoked: true" if number == 5 else "confidence: " + str(15 * number)}
  labels: {_yaml_list(labels)}
  x_mixed: {["1", "true", "One", "one", "1.5", "x y", '"q"'][number]}
""")
    return "".join(text)


def _yaml_list(values: list[str]) -> str:
    return "[" + ", ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t") + '"' for v in values) + "]"


SIGHTING_YAML = f"""\
- type: sighting
  spec_version: "2.1"
  id: {SIGHTING}
  created: 2024-10-05T00:00:00.000Z
  modified: 2024-10-05T00:00:00.000Z
  sighting_of_ref: {MALWARE}
  count: 3
  labels: [APT]
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("links") / "repo"
    repo.mkdir()
    for name in ("intel", "rules"):
        shutil.copytree(REPO_ROOT / name, repo / name)
    if (REPO_ROOT / "tiops.yaml").exists():
        shutil.copy(REPO_ROOT / "tiops.yaml", repo / "tiops.yaml")
    (repo / "intel" / "indicators" / "resolvers.yaml").write_text(indicators(), encoding="utf-8")
    (repo / "intel" / "sightings.yaml").write_text(SIGHTING_YAML, encoding="utf-8")
    (repo / "report.yaml").write_text(PANELS, encoding="utf-8")
    enriched = CliRunner().invoke(main, ["-C", str(repo), "enrich", "--offline"])
    assert enriched.exit_code == 0, enriched.output
    out = repo / "site"
    build_report(repo, out, as_of=AS_OF)
    return out


def links_of(page: Any) -> list[tuple[str, str, int]]:
    """(panel title, href, count shown) of every linked bar and counted row of the overview."""
    found: list[tuple[str, str, int]] = page.evaluate("""() => {
      const found = [];
      for (const a of document.querySelectorAll("section.chart a.bar")) {
        found.push([a.closest("section").querySelector("h2").textContent, a.getAttribute("href"),
                    Number(a.querySelector("text.count").textContent)]);
      }
      for (const a of document.querySelectorAll("section.chart table a[href^='browse.html']")) {
        found.push([a.closest("section").querySelector("h2").textContent, a.getAttribute("href"),
                    Number(a.closest("tr").cells[1].textContent)]);
      }
      return found;
    }""")
    return found


def bars_of(page: Any) -> int:
    """How many bars and counted rows the overview draws, with a link or without."""
    counted: int = page.evaluate("""() => document.querySelectorAll("section.chart svg g").length
      + [...document.querySelectorAll("section.chart table.panel-table")]
          .filter(t => t.querySelector("th:last-child").textContent === "Count")
          .reduce((n, t) => n + t.querySelectorAll("tbody tr").length, 0)""")
    return counted


def browse_count(page: Any, url: str) -> tuple[int, str]:
    """The count the browse page at ``url`` shows, and its query error (empty: none)."""
    page.goto("about:blank")  # a new document: a hash change alone would show the last count first
    page.goto(url)
    page.wait_for_function("() => /^\\d+ of \\d+ objects$/.test(document.querySelector('#status').textContent)"
                           " && document.querySelector('#loading').textContent === ''")
    status = page.locator("#status").inner_text()
    return int(status.split()[0]), page.locator("#query-error").inner_text().strip()


def crawl(browser: Any, site: Path) -> list[tuple[str, str, int]]:
    """Open every bar's link; assert the browse page counts what the bar counts."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((site / "index.html").as_uri())
    found = links_of(page)
    assert found and len(found) == bars_of(page) - len(unlinked(page))
    for title, href, count in found:
        assert href.startswith("browse.html#q="), href
        shown, error = browse_count(page, urllib.parse.urljoin((site / "index.html").as_uri(), href))
        assert (shown, error) == (count, ""), (title, urllib.parse.unquote(href))
    assert errors == []
    page.close()
    return found


def unlinked(page: Any) -> list[str]:
    """The panel of each bar drawn without a link."""
    titles: list[str] = page.evaluate("""() => [...document.querySelectorAll("section.chart svg g")]
      .filter(g => !g.closest("a")).map(g => g.closest("section").querySelector("h2").textContent)""")
    return titles


def test_every_bar_opens_the_browser_on_its_objects(browser: Any, site: Path) -> None:
    found = crawl(browser, site)
    titles = {title for title, _, _ in found}
    for title in ("Objects by type", "Objects by source", "Objects by TLP", "Indicators by tag", "Tags as a table",
                  "Mixed custom values", "Country codes", "AS organisations", "Confidence bands", "Created per month",
                  "Valid until per month", "Enriched objects by country", "Enriched objects by autonomous system"):
        assert title in titles, title
    assert any(title.startswith("Indicators expiring") for title in titles)
    page = browser.new_page()
    page.goto((site / "index.html").as_uri())
    # Only bars whose objects no query finds alone have no link: kill chain phases are mappings,
    # and x_mixed's 1 beside true is one bar for Python and two values for the browser.
    left = unlinked(page)
    assert set(left) == {"Kill chain phases", "Mixed custom values"} and left.count("Mixed custom values") == 1
    page.close()
    queries = {urllib.parse.unquote(href[len("browse.html#q="):]) for _, href, _ in found}
    # Values that '=' would take as one are told apart by case; the rest read as written.
    assert '(type = indicator or type = malware) and tags matches "\\\\AAPT\\\\z"' in queries
    assert 'labels matches "\\\\AStra\\\\x{df}e\\\\z"' in queries  # casefold: Straße is STRASSE
    assert "(type = indicator or type = malware) and tags = \"two words\"" in queries
    assert any(q.startswith("created >= 2024-03-01 and created < 2024-04-01") for q in queries)
    assert any(q.startswith("enrichment.country_code = ") for q in queries)


def test_a_bar_is_a_link_that_navigates(browser: Any, site: Path) -> None:
    page = browser.new_page()
    page.goto((site / "index.html").as_uri())
    bar = page.locator("section.chart", has_text="Enriched objects by country").locator("a.bar").first
    count = int(bar.locator("text.count").text_content() or "")
    bar.click()
    page.wait_for_url(re.compile(r"browse\.html#q="))
    page.wait_for_function("() => /^\\d+ of \\d+ objects$/.test(document.querySelector('#status').textContent)")
    assert page.locator("#status").inner_text().startswith(f"{count} of ")
    assert page.locator("#query").input_value().startswith("enrichment.country_code = ")
    page.close()


def test_links_are_inert_and_the_site_the_same_bytes(site: Path, tmp_path: Path) -> None:
    overview = (site / "index.html").read_text(encoding="utf-8")
    hrefs = re.findall(r'href="([^"]*)"', overview)
    assert any(h.startswith("browse.html#q=") for h in hrefs)
    for href in hrefs:
        # Built from data, never from its text: every value percent-encoded after the fixed start;
        # the one fixed link out is the credit the shipped AS table's licence asks for.
        assert href in ("index.html", "browse.html", "https://db-ip.com") or re.fullmatch(r"(browse|object)\.html#(q=)?[A-Za-z0-9%._~-]*", href), href
    assert "javascript:" not in "".join(hrefs)
    again = tmp_path / "again"
    build_report(site.parent, again, as_of=AS_OF)
    assert sorted(p.relative_to(again) for p in again.rglob("*")) == sorted(p.relative_to(site) for p in site.rglob("*"))
    for path in again.rglob("*.*"):
        assert path.read_bytes() == (site / path.relative_to(again)).read_bytes(), path


def test_a_sighting_is_named_after_what_it_sighted(browser: Any, site: Path) -> None:
    rows = {row["id"]: row for row in index_rows(site)}
    assert rows[SIGHTING]["n"] == "sighting of WickStealer"
    page = browser.new_page()
    page.goto(object_url(site, SIGHTING))
    page.wait_for_function("() => document.title.startsWith('sighting of WickStealer')")
    assert "sighting of WickStealer" in page.locator("h1").inner_text()
    page.goto((site / "browse.html").as_uri() + "#q=" + urllib.parse.quote("type = sighting"))
    page.wait_for_function("() => document.querySelector('#results tbody tr') !== null")
    assert page.locator("#results tbody tr td a").first.inner_text() == "sighting of WickStealer"
    page.close()


def test_values_are_written_as_the_language_reads_them() -> None:
    assert literal("c2") == "c2"
    assert literal("two words") == '"two words"'
    assert literal('a"b\\c') == '"a\\"b\\\\c"'
    assert literal("and") == '"and"' and literal("123") == '"123"' and literal("true") == '"true"'
    assert literal(True) == "true" and literal(42) == "42" and literal(1.5) == "1.5"
    assert literal(2 ** 60) is None and literal(1e-7) is None and literal("\ud800") is None
    assert exact_match("a.b") == "\\Aa\\x{2e}b\\z"
    tests = value_tests("tags", ["APT", "apt", "c2", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000Z"])
    assert tests["c2"] == "tags = c2"
    assert tests["APT"] == 'tags matches "\\\\AAPT\\\\z"'
    assert tests["2024-01-01T00:00:00Z"].startswith("tags matches")
    assert browse_href('tags = "a+b&c"') == "browse.html#q=tags%20%3D%20%22a%2Bb%26c%22"


def test_a_month_counts_objects_as_its_range_finds_them() -> None:
    # Two values of one object in March (whois.registered of two lookups): once in March.
    rows = rows_from_objects([
        {"type": "indicator", "id": "indicator--00000000-0000-4000-8000-000000000001",
         "x_dates": ["2024-03-01T00:00:00Z", "2024-03-31T23:59:59.999Z", "2024-04-01T00:00:00Z"]},
        {"type": "indicator", "id": "indicator--00000000-0000-4000-8000-000000000002",
         "x_dates": ["2024-03-05T00:00:00Z", "not a time"]}])
    assert month_counts(rows, "x_dates") == {"2024-03": 2, "2024-04": 1, "not a t": 1}
    assert month_counts(rows, "x_dates", timestamps_only=True) == {"2024-03": 2, "2024-04": 1}
    assert month_test("created", "2024-12") == "created >= 2024-12-01 and created < 2025-01-01"
    assert month_test("created", "9999-12") == "created >= 9999-12-01"
    assert month_test("created", "not a t") is None

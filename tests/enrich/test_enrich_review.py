"""Reviewing enrichment: diff shows a refreshed lock in its own section, explain names each origin."""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from pr_repo import git
from rdap_server import RdapServer

from enrich.helpers import INDICATOR, write_repo
from tiops.cli import main
from tiops.enrich.lock import read_lock, write_lock


@pytest.fixture
def committed(tmp_path: Path, rdap_server: RdapServer) -> Path:
    root = write_repo(tmp_path / "repo", rdap_server.url)
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "intel with its enrichment lock")
    git(root, "tag", "base")
    return root


def test_a_refreshed_lock_is_its_own_section_of_the_diff(committed: Path) -> None:
    lock, _ = read_lock(committed / "intel", committed)
    lock.geo["8.8.8.8"] = {**lock.geo["8.8.8.8"], "country_code": "NL", "country": "Netherlands"}
    lock.whois["woodgrove-securelogin.net"]["expires"] = "2027-02-20T08:15:00Z"
    lock.whois["woodgrove-securelogin.net"]["retrieved"] = "2026-06-01T00:00:00Z"
    write_lock(committed / "intel", lock)
    git(committed, "commit", "-q", "-am", "refresh enrichment", date="2025-03-02T12:00:00+00:00")

    result = CliRunner().invoke(main, ["-C", str(committed), "diff", "base", "HEAD", "--format", "json"])
    assert result.exit_code in (0, 2), result.output
    data = json.loads(result.output)
    assert data["changed"] == [] and data["rule_effects"] == []  # no indicator "changed"
    changes = {(c["type"], c["id"]): {f["field"]: [f["before"], f["after"]] for f in c["fields"]}
               for c in data["enrichment"]}
    assert changes == {
        ("enrichment", "8.8.8.8"): {"country": ["United States", "Netherlands"], "country_code": ["US", "NL"]},
        ("whois", "woodgrove-securelogin.net"): {"expires": ["2026-02-20T08:15:00Z", "2027-02-20T08:15:00Z"]},
    }
    assert data["counts"]["enrichment"] == 2
    text = CliRunner().invoke(main, ["-C", str(committed), "diff", "base", "HEAD"]).output
    assert "enrichment (intel/.enrichment/ lock):" in text and "~ enrichment 8.8.8.8" in text
    markdown = CliRunner().invoke(main, ["-C", str(committed), "diff", "base", "HEAD", "--format", "markdown"]).output
    assert "Enrichment (lock refresh) (2)" in markdown


def test_explain_shows_where_each_value_came_from(committed: Path) -> None:
    result = CliRunner().invoke(main, ["-C", str(committed), "explain", "indicator--00000000-0000-4000-8000-000000000000",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    origins = {(o["section"], o["value"]): o for o in json.loads(result.output)["enrichment"]}
    geo = origins[("geo", "8.8.8.8")]
    assert geo["status"] == "found" and "geoip2fast" in geo["source"]
    assert geo["lock_file"].startswith("intel/.enrichment/geo/")
    whois = origins[("whois", "8.8.8.8")]
    assert whois["source"].startswith("RDAP http://127.0.0.1:") and whois["retrieved"].endswith("Z")
    text = CliRunner().invoke(main, ["-C", str(committed), "explain", "indicator--00000000-0000-4000-8000-000000000001"])
    # A value with no entry names no lock file as if it held it (it named a shard that did not exist).
    assert "whois 10.0.0.1: private (never looked up)\n" in text.output
    assert "geo 10.0.0.1: private, from GeoLite2" in text.output
    # The shipped database's name says its sources: not "... (geoip2fast 1.2.2) (shipped)".
    geo_line = next(line for line in text.output.splitlines() if "geo 10.0.0.1" in line)
    assert geo_line.count("geoip2fast") == 1 and "(shipped)" not in geo_line, geo_line


def test_explain_says_a_value_whose_lock_file_cannot_be_read_is_unknown_not_missing(committed: Path) -> None:
    explained = ["-C", str(committed), "explain", "indicator--00000000-0000-4000-8000-000000000000", "--format", "json"]
    before = {(o["section"], o["value"]): o for o in json.loads(CliRunner().invoke(main, explained).output)["enrichment"]}
    shard = committed / before[("geo", "8.8.8.8")]["lock_file"]
    shard.write_text("{broken", encoding="utf-8")
    result = CliRunner().invoke(main, explained)
    assert result.exit_code == 0, result.output
    after = {(o["section"], o["value"]): o for o in json.loads(result.output)["enrichment"]}
    geo = after[("geo", "8.8.8.8")]
    # Before: "not in the lock", as if the value had never been enriched.
    assert geo["status"] == "unknown: the lock cannot be read"
    assert geo["problem"].startswith(f"TI150 {before[('geo', '8.8.8.8')]['lock_file']}:1:2: ")
    assert after[("whois", "8.8.8.8")]["status"] == "found"  # its own shard is whole
    text = CliRunner().invoke(main, explained[:-2]).output
    assert "geo 8.8.8.8: unknown: the lock cannot be read (TI150 " in text
    assert "'tiops validate' names every such problem" in text

    # A lock of a newer format: no shard is read at all, so every value is unknown.
    git(committed, "checkout", "-q", "--", ".")
    (committed / "intel" / ".enrichment" / "lock.json").write_text('{"format": 99}\n', encoding="utf-8")
    newer = {(o["section"], o["value"]): o for o in json.loads(CliRunner().invoke(main, explained).output)["enrichment"]}
    assert {o["status"] for o in newer.values()} == {"unknown: the lock cannot be read"}
    assert all("written by a newer tiops" in o["problem"] for o in newer.values())


def test_report_has_country_and_as_panels_and_object_pages_show_enrichment(committed: Path, tmp_path: Path) -> None:
    from tiops.report.build import build_report

    output = tmp_path / "site"
    build_report(committed, output)
    overview = (output / "index.html").read_text(encoding="utf-8")
    assert "Enriched objects by country" in overview and "United States (US)" in overview
    assert "Enriched objects by autonomous system" in overview and "Google LLC" in overview
    # The shipped AS table's sources are credited where its data is shown; DB-IP asks for a link.
    assert '<p class="credit">AS numbers and names from RouteViews, the NRO and DB-IP' in overview
    assert '<a href="https://db-ip.com">IP Geolocation by DB-IP</a>' in overview
    # The object page draws each object, extensions included, from the shard its UUID's first digit names.
    shard = (output / "data" / "objects" / "0.js").read_text(encoding="utf-8")
    entries = json.loads(zlib.decompress(base64.b64decode(shard[len('TiopsReport.shard("0","'):-4])))
    entry = next(e for e in entries if e["o"]["id"] == "indicator--00000000-0000-4000-8000-000000000000")
    extension = json.dumps(entry["o"]["extensions"])
    assert "network-abuse@google.com" in extension and "United States" in extension


def test_the_diff_tells_a_new_result_from_a_gone_one_and_a_changed_one(committed: Path) -> None:
    # Base: every indicator of enrich.helpers. Head: the URL indicator deleted (its host's result
    # is carried by no object any more), one naming 8.8.4.4 added with its result locked, and
    # 8.8.8.8's result refreshed.
    (committed / "intel" / "indicators" / "url.yaml").unlink()
    (committed / "intel" / "indicators" / "dns.yaml").write_text(
        INDICATOR.format(uuid="00000000-0000-4000-8000-000000000099", pattern="[ipv4-addr:value = '8.8.4.4']"),
        encoding="utf-8")
    lock, _ = read_lock(committed / "intel", committed)
    lock.geo["8.8.4.4"] = dict(lock.geo["8.8.8.8"])
    lock.geo["8.8.8.8"] = {**lock.geo["8.8.8.8"], "country_code": "NL", "country": "Netherlands"}
    write_lock(committed / "intel", lock)
    git(committed, "add", "-A")
    git(committed, "commit", "-q", "-m", "new intel, a refresh", date="2025-03-02T12:00:00+00:00")

    result = CliRunner().invoke(main, ["-C", str(committed), "diff", "base", "HEAD", "--format", "json"])
    assert result.exit_code in (0, 2), result.output
    states = {(c["type"], c["id"]): c["state"] for c in json.loads(result.output)["enrichment"]}
    assert states == {("enrichment", "8.8.4.4"): "added", ("enrichment", "8.8.8.8"): "changed",
                      ("whois", "www.woodgrove-statements.net"): "removed"}
    text = CliRunner().invoke(main, ["-C", str(committed), "diff", "base", "HEAD"]).output
    assert "    + enrichment 8.8.4.4\n" in text
    assert "    ~ enrichment 8.8.8.8\n" in text
    assert "    - whois www.woodgrove-statements.net\n" in text
    markdown = CliRunner().invoke(main, ["-C", str(committed), "diff", "base", "HEAD", "--format", "markdown"]).output
    assert "- **8.8.4.4** `enrichment` (added)\n" in markdown
    assert "- **8.8.8.8** `enrichment` (changed)\n" in markdown
    assert "- **www.woodgrove-statements.net** `whois` (removed)\n" in markdown


def test_the_country_panel_counts_objects_as_the_query_command_does(committed: Path, tmp_path: Path) -> None:
    from tiops.report.build import build_report

    # Two indicators name 8.8.8.8; one of them also 8.8.4.4, in the same country: three object-value
    # pairs, two values, two objects.
    (committed / "intel" / "indicators" / "both.yaml").write_text(INDICATOR.format(
        uuid="00000000-0000-4000-8000-000000000098",
        pattern="[ipv4-addr:value = '8.8.8.8'] OR [ipv4-addr:value = '8.8.4.4']"), encoding="utf-8")
    assert CliRunner().invoke(main, ["-C", str(committed), "enrich", "--offline"]).exit_code == 0
    counted = CliRunner().invoke(main, ["-C", str(committed), "query", "--group-by", "enrichment.country_code",
                                        "--format", "json"])
    assert counted.exit_code == 0, counted.output
    us = next(row["count"] for row in json.loads(counted.stdout) if row["value"] == "US")
    build_report(committed, tmp_path / "site")
    overview = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    panel = overview.split("Enriched objects by country", 1)[1].split("</section>", 1)[0]
    assert us == 2  # google.yaml and both.yaml, each once: three (object, value) pairs
    counts = re.findall(r'>([^<>]+)<title>[^<]*</title></text>\s*<rect[^>]*></rect>\s*<text class="count"[^>]*>(\d+)<', panel)
    assert ("United States (US)", str(us)) in counts, counts


def test_a_report_timeline_counts_by_a_whois_date(committed: Path, tmp_path: Path) -> None:
    from tiops.report.build import build_report

    (committed / "report.yaml").write_text("panels:\n  - title: Registered per month\n    group-by: whois.registered\n"
                                           "    chart: timeline\n", encoding="utf-8")
    build_report(committed, tmp_path / "site")
    overview = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    panel = overview.split("Registered per month", 1)[1].split("</section>", 1)[0]
    assert "2025-02" in panel  # woodgrove-securelogin.net, registered 2025-02-20


def test_explain_says_a_value_with_no_entry_is_in_no_lock_file() -> None:
    from tiops.enrich.origin import render_origins

    shard = "intel/.enrichment/whois/8.json"
    text = render_origins([
        {"value": "later.example", "section": "whois", "lock_file": shard, "status": "not in the lock"},
        {"value": "10.1.2.3", "section": "whois", "lock_file": shard, "status": "private (never looked up)"},
        {"value": "a.example", "section": "whois", "lock_file": shard, "status": "found", "source": "RDAP x"},
    ])
    assert text.splitlines() == [
        "  enrichment:",
        f"    whois later.example: not in the lock [no entry; it would go in {shard}]",
        "    whois 10.1.2.3: private (never looked up)",
        f"    whois a.example: found, from RDAP x [{shard}]",
    ]


def test_explain_names_the_registrar_a_registrant_came_from(committed: Path) -> None:
    # A thin registry's registrant is the registrar's word, not the registry's (tiops.enrich.rdap).
    lock, _ = read_lock(committed / "intel", committed)
    lock.whois["8.8.8.8"] = {**lock.whois["8.8.8.8"], "registrant_server": "https://rdap.registrar.example/domain/x.com"}
    write_lock(committed / "intel", lock)
    text = CliRunner().invoke(main, ["-C", str(committed), "explain", "indicator--00000000-0000-4000-8000-000000000000"])
    line = next(line for line in text.output.splitlines() if "whois 8.8.8.8" in line)
    assert "; the registrant from https://rdap.registrar.example/domain/x.com" in line, line
    lock.whois["8.8.8.8"] = {**{k: v for k, v in lock.whois["8.8.8.8"].items() if k != "registrant_server"},
                             "registrant_error": "RDAP rdap.registrar.example: HTTP 503"}
    write_lock(committed / "intel", lock)
    text = CliRunner().invoke(main, ["-C", str(committed), "explain", "indicator--00000000-0000-4000-8000-000000000000"])
    assert "; no registrant from the registrar (RDAP rdap.registrar.example: HTTP 503)" in text.output


def test_the_as_credit_follows_the_database_the_lock_names(tmp_path: Path) -> None:
    from tiops.report.build import _as_credit

    lock = tmp_path / ".enrichment" / "lock.json"
    lock.parent.mkdir()
    assert _as_credit(tmp_path) is None  # no lock
    for backend, credited in (("shipped", True), ("mmdb", False), ("geoip2fast", False)):
        lock.write_text(json.dumps({"format": 1, "geo": {"backend": backend, "database": "x", "date": "2026-01-01"}}))
        assert (_as_credit(tmp_path) is not None) is credited, backend
    lock.write_text("{not json")
    assert _as_credit(tmp_path) is None

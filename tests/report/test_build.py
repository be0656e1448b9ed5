from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from full_disk import fill_up_writing
from hostile import XSS_DESCRIPTION, XSS_ID, XSS_NAME
from sitedata import index_data, index_rows, shard_entries

from tiops.cli import main
from tiops.report import build_report

AS_OF = "2024-11-01"


def site_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_content_gives_the_same_bytes(report_repo: Path, tmp_path: Path) -> None:
    first = build_report(report_repo, tmp_path / "a", as_of=AS_OF)
    build_report(report_repo, tmp_path / "b", as_of=AS_OF)
    assert site_bytes(tmp_path / "a") == site_bytes(tmp_path / "b")
    assert first.pages == 3 and first.objects > 40


def test_same_bytes_from_processes_with_different_hash_seeds(report_repo: Path, tmp_path: Path) -> None:
    """Set and dict order can change between processes (PYTHONHASHSEED); the site must not."""
    sites = []
    for seed in ("1", "2"):
        site = tmp_path / f"site-{seed}"
        subprocess.run([sys.executable, "-m", "tiops", "-C", str(report_repo), "report", "-o", str(site), "--as-of", AS_OF],
                       check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": seed})
        sites.append(site_bytes(site))
    assert sites[0] == sites[1] and "browse.html" in sites[0]


def test_the_build_cache_gives_the_same_site(report_repo: Path, tmp_path: Path) -> None:
    """Cold cache, warm cache and a warm cache after edits all give the uncached site's bytes;
    an edit that moves the entries of a list file moves their provenance lines too."""
    def both(step: str) -> dict[str, bytes]:
        build_report(report_repo, tmp_path / f"{step}-plain", as_of=AS_OF, cache=False)
        build_report(report_repo, tmp_path / f"{step}-cached", as_of=AS_OF, cache=True)
        plain, cached = site_bytes(tmp_path / f"{step}-plain"), site_bytes(tmp_path / f"{step}-cached")
        assert cached == plain, step
        return cached

    assert not (report_repo / ".tiops").exists()
    first = both("cold")
    assert (report_repo / ".tiops" / "build-cache").is_dir()  # written by the cached build
    assert both("warm") == first
    bulk = report_repo / "intel" / "indicators" / "copper-lantern-c2-infrastructure.yaml"
    text = bulk.read_text(encoding="utf-8")
    bulk.write_text(text.replace("- type: indicator", "# moved down\n- type: indicator", 1)
                    .replace("WickStealer C2 203.0.113.47", "WickStealer C2 203.0.113.48"), encoding="utf-8")
    (report_repo / "intel" / "malware" / "hostile.yaml").unlink()
    edited = both("edited")
    assert edited != first
    entries = shard_entries(tmp_path / "edited-cached")
    wick_c2 = entries["indicator--275b3447-b001-4fe5-a059-1525dff06088"]
    assert wick_c2["n"] == "WickStealer C2 203.0.113.48"
    assert wick_c2["p"][:2] == ["intel/indicators/copper-lantern-c2-infrastructure.yaml", 8]
    assert XSS_ID not in entries


def test_cli_no_cache_reads_and_writes_no_cache(report_repo: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["-C", str(report_repo), "report", "--as-of", AS_OF, "--no-cache",
                                       "-o", str(tmp_path / "plain")])
    assert result.exit_code == 0, result.output
    assert not (report_repo / ".tiops").exists()
    result = CliRunner().invoke(main, ["-C", str(report_repo), "report", "--as-of", AS_OF, "-o", str(tmp_path / "cached")])
    assert result.exit_code == 0, result.output
    assert (report_repo / ".tiops" / "build-cache").is_dir()
    assert site_bytes(tmp_path / "plain") == site_bytes(tmp_path / "cached")


def test_three_pages_and_one_shard_per_uuid_digit(report_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    result = build_report(report_repo, out, as_of=AS_OF)
    files = sorted(site_bytes(out))
    shards = [f for f in files if f.startswith("data/objects/")]
    assert [f for f in files if f not in shards] == ["browse.html", "data/index.js", "index.html", "object.html"]
    assert result.data_files == len(shards) + 1 and 1 < len(shards) <= 16
    entries = shard_entries(out)
    assert len(entries) == result.objects == len(index_rows(out))
    for object_id, entry in entries.items():  # the shard is named by the first hex digit of the UUID
        assert object_id.partition("--")[2][0] == entry["shard"]
    assert index_data(out)["shards"] == sorted(f.removeprefix("data/objects/").removesuffix(".js") for f in shards)


def test_a_rebuild_removes_shards_no_object_names(report_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_report(report_repo, out, as_of=AS_OF)
    (out / "data" / "objects" / "zz.js").write_text("stale", encoding="utf-8")
    before = site_bytes(out)
    build_report(report_repo, out, as_of=AS_OF)
    after = site_bytes(out)
    assert "data/objects/zz.js" not in after and {k: v for k, v in before.items() if k != "data/objects/zz.js"} == after


def test_index_holds_what_the_first_view_and_search_need(report_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_report(report_repo, out, as_of=AS_OF)
    rows = {row["id"]: row for row in index_rows(out)}
    wick = rows["malware--50b859d6-40df-4375-959c-7f616560f92f"]
    assert wick["type"] == "malware" and wick["name"] == "WickStealer" and "n" not in wick  # n only when it differs
    assert "description" not in wick  # long text stays in the shards
    hostile = rows[XSS_ID]
    assert hostile["name"] == XSS_NAME and hostile["labels"] == ["<b>bold</b>"]
    assert any("observable" in row and "observable_type" in row for row in rows.values())


def test_hostile_text_renders_as_text(report_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_report(report_repo, out, as_of=AS_OF)
    for page in out.glob("*.html"):  # intel text never reaches a page as markup
        text = page.read_text()
        assert "<script>window.__xss" not in text and "<img src=x" not in text, page
    entry = shard_entries(out)[XSS_ID]
    assert entry["o"]["name"] == XSS_NAME and entry["o"]["description"] == XSS_DESCRIPTION and entry["n"] == XSS_NAME
    browse = (out / "browse.html").read_text()
    blob = re.search(r'<script id="catalogue" type="application/json">(.*?)</script>', browse, re.S)
    assert blob is not None
    assert "<" not in blob.group(1)  # nothing in the catalogue can close the script element
    assert "description" in json.loads(blob.group(1))["seen"]
    first = re.search(r'<script id="first-page" type="application/json">(.*?)</script>', browse, re.S)
    assert first is not None and "<" not in first.group(1) and XSS_NAME in first.group(1).replace("\\u003c", "<").replace(
        "\\u003e", ">").replace('\\"', '"')


def test_overview_counts_like_the_workbook(report_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_report(report_repo, out, as_of=AS_OF)
    overview = (out / "index.html").read_text()
    for title in ("Objects by type", "Indicators by indicator type", "Objects by source", "Objects by TLP",
                  "Objects by tag", "Objects by confidence band", "Indicators expiring", "Objects created per month"):
        assert title in overview
    assert "http://" not in overview.replace("http://www.w3.org/2000/svg", "") and "https://" not in overview
    assert "<svg" in overview and ">amber<" in overview


def test_threat_type_chart_counts_like_tiops_query_group_by(report_repo: Path, tmp_path: Path) -> None:
    build_report(report_repo, tmp_path / "site", as_of=AS_OF)
    overview = (tmp_path / "site" / "index.html").read_text()
    section = overview.split("Indicators by indicator type (threat type)", 1)[1].split("</section>", 1)[0]
    bars = re.findall(r'<text class="label"[^>]*>([^<]*)<title>[^<]*</title></text>\s*<rect[^>]*></rect>\s*'
                      r'<text class="count"[^>]*>(\d+)</text>', section)
    result = CliRunner().invoke(main, ["-C", str(report_repo), "query", "--type", "indicator",
                                       "--group-by", "indicator_types", "--format", "json"])
    assert [(label, int(count)) for label, count in bars] == [(c["value"], c["count"]) for c in json.loads(result.stdout)]
    assert len(bars) >= 3  # one bar per value: a comma-joined pair is never a value of its own


def test_report_yaml_panels_replace_the_defaults(report_repo: Path, tmp_path: Path) -> None:
    (report_repo / "report.yaml").write_text(
        "panels:\n"
        "  - title: Strong indicators\n    query: type = indicator and confidence >= 80\n    chart: table\n"
        "    sort: confidence:desc\n    limit: 2\n"
        "  - title: Malware by tag\n    query: type = malware\n    group-by: tags\n    chart: table\n"
        "  - title: Indicators per month of valid_from\n    query: type = indicator\n    group-by: valid_from\n"
        "    chart: timeline\n", encoding="utf-8")
    build_report(report_repo, tmp_path / "site", as_of=AS_OF)
    overview = (tmp_path / "site" / "index.html").read_text()
    assert "Objects by type" not in overview
    strong = overview.split("Strong indicators", 1)[1].split("</section>", 1)[0]
    assert strong.count("<tr><td><a href=") == 2 and "and 3 more" in strong  # 5 at 80 or more
    assert "LanternLoader statement document" in strong  # confidence 95 sorts first
    months = overview.split("Indicators per month of valid_from", 1)[1].split("</section>", 1)[0]
    labels = re.findall(r'<text class="label"[^>]*>(\d{4}-\d{2})<title>', months)
    assert labels == sorted(labels) and labels


@pytest.mark.parametrize("panel,code,where", [
    ("  - title: Bad chart\n    group-by: type\n    chart: pie\n", "TI140", "report.yaml:4:5"),
    ("  - title: Typo\n    query: typ = indicator\n    group-by: type\n", "TI141", "report.yaml:3:5"),
    ("  - title: Timeline of text\n    group-by: name\n    chart: timeline\n", "TI140", "report.yaml:3:5"),
    ("  - query: type = indicator\n    group-by: type\n", "TI140", "report.yaml:2:5"),
    ("  - title: Bad sort\n    query: type = indicator\n    sort: confidenc\n", "TI141", "report.yaml:4:5"),
    ("  - title: No bars\n    bars: {}\n", "TI140", "report.yaml:3:5"),
])
def test_invalid_panels_are_findings_and_nothing_is_written(report_repo: Path, panel: str, code: str, where: str) -> None:
    (report_repo / "report.yaml").write_text("panels:\n" + panel, encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(report_repo), "report", "--as-of", AS_OF])
    assert result.exit_code == 1
    assert code in result.stderr and where in result.stderr, result.stderr
    assert not (report_repo / "dist" / "report" / "index.html").exists()
    if "bars: {}" in panel:  # the panel is a bar chart without group-by: what is wrong is the empty mapping
        assert "with at least one bar" in result.stderr


def test_object_page_has_properties_relationships_and_provenance(report_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_report(report_repo, out, as_of=AS_OF)
    entries = shard_entries(out)
    wick = entries["malware--50b859d6-40df-4375-959c-7f616560f92f"]
    assert wick["n"] == "WickStealer" and wick["o"]["name"] == "WickStealer"
    relationships = wick["l"]  # [type, outgoing, other id, other name, other has a page, relationship id]
    assert any(rel[0] == "indicates" and rel[1] is False and rel[4] is True for rel in relationships)
    assert all(entries[rel[5]]["o"]["type"] == "relationship" for rel in relationships)
    assert [(rel[0], rel[2]) for rel in relationships] == sorted((rel[0], rel[2]) for rel in relationships)
    assert wick["p"][:2] == ["intel/malware/wickstealer.yaml", 1]
    indicator = entries["indicator--0aca4955-3788-4cb3-ad8a-a87e6a7064df"]
    assert indicator["p"][:2] == ["intel/indicators/copper-lantern-c2-infrastructure.yaml", 24]  # second item of a list file
    indexed = next(row for row in index_rows(out) if row["id"] == "indicator--0aca4955-3788-4cb3-ad8a-a87e6a7064df")
    assert indexed["observable"] and indexed["observable_type"]  # the query language's own fields, in the index only
    assert "observable" not in indicator["o"] and set(indicator) == {"o", "n", "r", "l", "p", "shard"}
    for ref, (name, linked) in indicator["r"].items():
        assert linked == (ref in entries) and name


def test_cli_writes_into_dist_report(report_repo: Path) -> None:
    result = CliRunner().invoke(main, ["-C", str(report_repo), "report", "--as-of", AS_OF])
    assert result.exit_code == 0, result.output
    assert (report_repo / "dist" / "report" / "index.html").is_file()


def test_browse_html_holds_the_first_page_of_the_default_view(report_repo: Path, tmp_path: Path) -> None:
    """The first 50 rows by name (then id) are in browse.html, so they show before the index loads."""
    out = tmp_path / "site"
    build_report(report_repo, out, as_of=AS_OF)
    browse = (out / "browse.html").read_text()
    blob = re.search(r'<script id="first-page" type="application/json">(.*?)</script>', browse, re.S)
    assert blob is not None
    first = json.loads(blob.group(1))
    rows = index_rows(out)
    assert first["total"] == len(rows) and first["fields"] == index_data(out)["fields"]
    def shown(row: dict[str, object]) -> str:
        return str(row.get("n", row.get("name", row["id"])))
    expected = sorted(rows, key=lambda row: (shown(row).lower(), row["id"]))[:50]
    got = [{f: v for f, v in zip(first["fields"], values, strict=True) if v is not None} for values in first["rows"]]
    assert got == expected and len(got) == min(50, len(rows))


def test_provenance_lines_of_every_style_of_list_item_agree_with_explain(report_repo: Path, tmp_path: Path) -> None:
    ids = [f"identity--0a0a0a0a-0a0a-4a0a-8a0a-00000000000{n}" for n in range(1, 5)]
    common = 'spec_version: "2.1"\n{indent}created: 2024-01-01T00:00:00.000Z\n{indent}modified: 2024-01-01T00:00:00.000Z\n'
    (report_repo / "intel" / "styles.yaml").write_text(
        "# items written every way YAML allows\n"
        f"-\n  type: identity\n  id: {ids[0]}\n  name: dash alone\n  {common.format(indent='  ')}"
        f"-   type: identity\n    id: {ids[1]}\n    name: wide\n    {common.format(indent='    ')}"
        f"- {{type: identity, spec_version: '2.1', id: {ids[2]}, name: flow, created: '2024-01-01T00:00:00.000Z', "
        "modified: '2024-01-01T00:00:00.000Z'}\n"
        f"-\n\n  type: identity\n  id: {ids[3]}\n  name: blank line\n  {common.format(indent='  ')}",
        encoding="utf-8")
    build_report(report_repo, tmp_path / "site", as_of=AS_OF)
    entries = shard_entries(tmp_path / "site")
    for identifier in ids:
        explained = CliRunner().invoke(main, ["-C", str(report_repo), "explain", identifier, "--format", "json"])
        assert explained.exit_code == 0, explained.output
        line = json.loads(explained.output)["line"]
        assert entries[identifier]["p"][:2] == ["intel/styles.yaml", line], identifier


def test_the_first_page_built_in_is_in_the_order_the_browser_sorts(report_repo: Path, tmp_path: Path) -> None:
    # JavaScript compares strings by UTF-16 code units, Python by code points: a name of an emoji
    # (surrogates from U+D800) sorted after a full-width letter (U+FF21) here and before it in the
    # page, so rows jumped once the index loaded.
    for slug, name in (("wide", "!\uff21 wide"), ("smile", "!\U0001f600 smile")):
        (report_repo / "intel" / "malware" / f"{slug}.yaml").write_text(
            f"type: malware\nspec_version: '2.1'\nid: malware--{uuid.uuid5(uuid.NAMESPACE_URL, slug)}\n"
            f"created: '2024-01-01T00:00:00.000Z'\nmodified: '2024-01-01T00:00:00.000Z'\nname: \"{name}\"\n"
            "is_family: true\n", encoding="utf-8")
    site = tmp_path / "site"
    build_report(report_repo, site, as_of="2024-11-01")
    page = re.search(r'<script id="first-page" type="application/json">(.*?)</script>',
                     (site / "browse.html").read_text(encoding="utf-8"), re.S)
    assert page is not None
    first = json.loads(page.group(1))
    names = [row[first["fields"].index("name")] for row in first["rows"]]
    assert names.index("!\U0001f600 smile") < names.index("!\uff21 wide"), names


def test_an_object_link_is_percent_encoded_as_the_browser_decodes_it() -> None:
    from tiops.report.build import _href

    # "%41" in an address is "A" to the page: the link opened another object.
    assert _href("x-acme--a%41b", "../") == "../object.html#x-acme--a%2541b"
    assert _href("indicator--00000000-0000-4000-8000-000000000001", "") == (
        "object.html#indicator--00000000-0000-4000-8000-000000000001")  # a valid id is as it was


def test_a_full_disk_is_an_error_naming_the_report_and_leaves_nothing_beside(report_repo: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    fill_up_writing(monkeypatch, "index.html")
    result = CliRunner().invoke(main, ["-C", str(report_repo), "report", "-o", str(site), "--as-of", AS_OF])
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    assert f"cannot write the report to {site}" in result.output and "internal error" not in result.output
    assert not (site / "index.html").exists()
    assert [p.name for p in site.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")] == []


def test_what_a_killed_report_left_beside_its_files_goes_with_the_next(report_repo: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tiops import outputs

    site = tmp_path / "site"
    build_report(report_repo, site, as_of=AS_OF)
    expected = site_bytes(site)
    # What kill -9 between writing a file beside and renaming it leaves (tiops.outputs.replace_whole):
    # a process id no process has.
    left = [site / ".index.html.4194305.writing", site / "data" / "objects" / ".0.js.4194305.writing"]
    for path in left:
        path.write_bytes(b"<html>cut sh")
    monkeypatch.setattr(outputs, "_SWEPT", set(), raising=False)  # another process than the one that wrote
    build_report(report_repo, site, as_of=AS_OF)
    # Before, they stayed, every page unchanged and so never written again: published with the site.
    assert site_bytes(site) == expected

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile import XSS_DESCRIPTION, XSS_ID, XSS_NAME

from tiops.cli import main
from tiops.report import build_report

AS_OF = "2024-11-01"


def site_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_content_gives_the_same_bytes(report_repo: Path, tmp_path: Path) -> None:
    first = build_report(report_repo, tmp_path / "a", as_of=AS_OF)
    build_report(report_repo, tmp_path / "b", as_of=AS_OF)
    assert site_bytes(tmp_path / "a") == site_bytes(tmp_path / "b")
    assert first.pages == first.objects + 2


def test_hostile_text_renders_as_text(report_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_report(report_repo, out, as_of=AS_OF)
    page = next(out.glob(f"objects/*/{XSS_ID}.html")).read_text()
    assert "<script>window.__xss" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;window.__xss=2&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=&#34;window.__xss=1&#34;&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    browse = (out / "browse.html").read_text()
    blob = re.search(r'<script id="objects-data" type="application/json">(.*?)</script>', browse, re.S)
    assert blob is not None
    assert "<" not in blob.group(1)  # nothing in the data can close the script element
    rows = json.loads(blob.group(1))["rows"]
    assert any(row["d"].get("name") == XSS_NAME and row["d"].get("description") == XSS_DESCRIPTION for row in rows)


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
])
def test_invalid_panels_are_findings_and_nothing_is_written(report_repo: Path, panel: str, code: str, where: str) -> None:
    (report_repo / "report.yaml").write_text("panels:\n" + panel, encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(report_repo), "report", "--as-of", AS_OF])
    assert result.exit_code == 1
    assert code in result.stderr and where in result.stderr, result.stderr
    assert not (report_repo / "dist" / "report" / "index.html").exists()


def test_object_page_has_properties_relationships_and_provenance(report_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_report(report_repo, out, as_of=AS_OF)
    page = next(out.glob("objects/*/malware--50b859d6-40df-4375-959c-7f616560f92f.html")).read_text()
    assert "WickStealer" in page and "indicates" in page
    assert "intel/malware/wickstealer.yaml:1" in page
    assert 'class="graph"' in page
    indicator = next(out.glob("objects/*/indicator--0aca4955-3788-4cb3-ad8a-a87e6a7064df.html")).read_text()
    assert "intel/indicators/copper-lantern-c2-infrastructure.yaml:24" in indicator  # second item of a list file


def test_cli_writes_into_dist_report(report_repo: Path) -> None:
    result = CliRunner().invoke(main, ["-C", str(report_repo), "report", "--as-of", AS_OF])
    assert result.exit_code == 0, result.output
    assert (report_repo / "dist" / "report" / "index.html").is_file()

"""`tiops report` refuses invalid intel like compile, or marks every page; the month chart shows the newest months."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tiops.cli import main
from tiops.report import build_report

BROKEN = "type: malware\nspec_version: '2.1'\nname: Broken\nis_family: maybe\n"


def test_report_refuses_validation_errors_and_writes_nothing(example_repo: Path) -> None:
    (example_repo / "intel" / "malware" / "broken.yaml").write_text(BROKEN)
    result = CliRunner().invoke(main, ["-C", str(example_repo), "report"])
    assert result.exit_code == 1
    assert "no report was written" in result.output and "--allow-invalid" in result.output
    assert "intel/malware/broken.yaml" in result.output
    assert not (example_repo / "dist" / "report").exists()


def test_allow_invalid_writes_a_banner_on_every_page(example_repo: Path) -> None:
    (example_repo / "intel" / "malware" / "broken.yaml").write_text(BROKEN)
    result = CliRunner().invoke(main, ["-C", str(example_repo), "report", "--allow-invalid"])
    assert result.exit_code == 0, result.output
    assert "validation error" in result.output
    site = example_repo / "dist" / "report"
    pages = sorted(site.glob("*.html"))
    assert [page.name for page in pages] == ["browse.html", "index.html", "object.html"]
    for page in pages:
        assert 'class="banner"' in page.read_text(), page


def test_a_valid_repository_has_no_banner(example_repo: Path, tmp_path: Path) -> None:
    result = build_report(example_repo, tmp_path / "site")
    assert result.errors == 0
    assert 'class="banner"' not in (tmp_path / "site" / "index.html").read_text()


def test_created_per_month_shows_the_newest_months(make_repo) -> None:  # type: ignore[no-untyped-def]
    months = [f"{2022 + m // 12}-{m % 12 + 1:02d}" for m in range(30)]  # 2022-01 .. 2024-06
    items = "".join(
        f"- {{type: identity, spec_version: '2.1', name: team {month}, identity_class: organization, "
        f"created: '{month}-10T00:00:00.000Z', modified: '{month}-10T00:00:00.000Z'}}\n" for month in months)
    root = make_repo({"intel/identities.yaml": items})
    out = root / "site"
    build_report(root, out, as_of="2024-07-01T00:00:00Z")
    overview = (out / "index.html").read_text()
    chart = overview[overview.index("Objects created per month"):]
    chart = chart[:chart.index("</svg>")]
    assert "2024-06" in chart and "2023-04" in chart  # the newest 15 months
    assert "2022-01" not in chart and "2023-03" not in chart


def test_an_output_that_cannot_be_a_folder_is_a_clear_error(example_repo: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    for output in (tmp_path / "a-file", tmp_path / "a-file" / "report", Path("/dev/null"), Path("/proc/report")):
        result = CliRunner().invoke(main, ["-C", str(example_repo), "report", "-o", str(output)])
        assert result.exit_code != 0 and "internal error" not in result.output, result.output
        assert "a-file" in result.output or "cannot write the report" in result.output, result.output


def test_report_refuses_to_write_into_the_intel_or_rules(example_repo: Path) -> None:
    """As compile refuses -o there: the site's pages and data would be committed as intel."""
    for target in ("intel", "intel/site", "rules/site", "tiops.yaml"):
        result = CliRunner().invoke(main, ["-C", str(example_repo), "report", "-o", str(example_repo / target)])
        assert result.exit_code == 2, (target, result.output)
        assert "is part of the repository's own source" in result.output and "dist/report" in result.output
    assert not (example_repo / "intel" / "index.html").exists() and not (example_repo / "intel" / "site").exists()
    assert CliRunner().invoke(main, ["-C", str(example_repo), "report", "-o", str(example_repo / "site")]).exit_code == 0

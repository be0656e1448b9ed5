"""Intel the report cannot take as it is: --allow-invalid still writes the whole site (or leaves the
previous one as it was), and text that would act rather than show (controls, bidirectional
overrides) is written escaped, as the CLI prints it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sitedata import index_rows, shard_entries

import tiops.report.build as report_build
from tiops.report import build_report

MALWARE_ID = "malware--11111111-2222-4333-8444-555555555555"
ENRICHMENT_ID = "extension-definition--19a70723-4bc6-51a5-823d-294ada9aec6c"
SOURCED = "source: partner-feed\n"  # every object gets the source extension (tiops.compile._with_source)


def malware(extra: str, object_id: str = MALWARE_ID, name: str = "Broken one") -> str:
    return (f"type: malware\nspec_version: '2.1'\nid: {object_id}\ncreated: 2024-01-01T00:00:00.000Z\n"
            f"modified: 2024-01-01T00:00:00.000Z\nname: \"{name}\"\nis_family: false\n{extra}")


def site_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("extra", [
    "x_big: 123456789012345678901234567890\n",
    "confidence: 123456789012345678901234567890\n",
    "x_nested: {deep: [123456789012345678901234567890]}\n",
    "extensions: [1]\n",
    "extensions: 5\n",
    "object_marking_refs: 5\n",
    "object_marking_refs: [5, [a]]\n",
    "granular_markings: [{marking_ref: [1], selectors: [name]}]\n",
    f"extensions:\n  {ENRICHMENT_ID}:\n    extension_type: property-extension\n"
    "    enrichment: [str, 5, {country_code: XX}]\n",
], ids=["big-int", "big-confidence", "nested-big-int", "extensions-list", "extensions-int", "marking-refs-int",
        "marking-refs-lists", "granular-list-ref", "enrichment-not-mappings"])
def test_allow_invalid_writes_the_report_whatever_the_values(make_repo: Callable[[dict[str, str]], Path],
                                                            extra: str) -> None:
    root = make_repo({"intel/_defaults.yaml": SOURCED, "intel/broken.yaml": malware(extra)})
    site = root / "site"
    result = build_report(root, site, as_of="2024-11-01", allow_invalid=True)
    assert result.errors >= 1
    for page in ("index.html", "browse.html", "object.html"):
        assert 'class="banner"' in (site / page).read_text(encoding="utf-8")
    entry = shard_entries(site)[MALWARE_ID]
    assert entry["n"] == "Broken one"
    if "123456789012345678901234567890" in extra:  # beyond JSON's integers in orjson: shown as its text
        assert "123456789012345678901234567890" in str(entry["o"])
    # Deterministic: the same intel, the same bytes.
    build_report(root, root / "again", as_of="2024-11-01", allow_invalid=True)
    assert site_bytes(site) == site_bytes(root / "again")


def test_allow_invalid_shows_an_id_that_is_not_text_as_text(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = make_repo({"intel/broken.yaml": malware("", object_id="[a]")})
    site = root / "site"
    build_report(root, site, as_of="2024-11-01", allow_invalid=True)
    assert 'class="banner"' in (site / "index.html").read_text(encoding="utf-8")
    assert '["a"]' in shard_entries(site)
    assert any(row.get("id") == '["a"]' for row in index_rows(site))


def test_allow_invalid_enrichment_that_is_not_records_leaves_them_out_of_the_charts(
        make_repo: Callable[[dict[str, str]], Path]) -> None:
    extra = (f"extensions:\n  {ENRICHMENT_ID}:\n    extension_type: property-extension\n"
             "    enrichment: [str, 5, {country_code: XX}]\n")
    root = make_repo({"intel/broken.yaml": malware(extra)})
    build_report(root, root / "site", as_of="2024-11-01", allow_invalid=True)
    overview = (root / "site" / "index.html").read_text(encoding="utf-8")
    assert "Enriched objects by country" in overview and "XX (XX)" in overview


def test_a_failed_build_leaves_the_previous_site_as_it_was(make_repo: Callable[[dict[str, str]], Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_repo({"intel/a.yaml": malware("")})
    site = root / "site"
    build_report(root, site, as_of="2024-11-01")
    before = site_bytes(site)
    (root / "intel" / "a.yaml").write_text(malware("labels: [fresh]\n", name="Renamed"), encoding="utf-8")

    def broken(*_: Any) -> bytes:
        raise RuntimeError("a bug while making the data files")

    monkeypatch.setattr(report_build, "shard_script", broken)
    with pytest.raises(RuntimeError):
        build_report(root, site, as_of="2024-11-01")
    assert site_bytes(site) == before  # not the new overview beside the old data
    monkeypatch.undo()
    build_report(root, site, as_of="2024-11-01")
    assert "Renamed" in str(shard_entries(site)[MALWARE_ID]) and "fresh" in (site / "index.html").read_text(encoding="utf-8")


REPORT_YAML = """\
panels:
  - title: Named objects
    query: type = malware
    chart: table
  - title: Tags
    group-by: tags
"""


def test_controls_and_bidi_overrides_are_written_escaped_as_the_cli_prints_them(
        make_repo: Callable[[dict[str, str]], Path]) -> None:
    # A NUL in a double-quoted YAML string, a right-to-left override in the name (Trojan Source).
    extra = 'labels: ["nul\\0byte", "esc\\e[31mred", "c1\\u0085next", "iso\\u2067late"]\n'
    root = make_repo({"report.yaml": REPORT_YAML, "intel/a.yaml": malware(extra, name="invoice\\u202Efdp.exe")})
    site = root / "site"
    build_report(root, site, as_of="2024-11-01", allow_invalid=True)
    for page in ("index.html", "browse.html", "object.html"):
        text = (site / page).read_text(encoding="utf-8")
        assert not any((ord(c) < 0x20 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f or 0x202a <= ord(c) <= 0x202e
                       or 0x2066 <= ord(c) <= 0x2069 for c in text), page
    overview = (site / "index.html").read_text(encoding="utf-8")
    for shown in (r"invoice\u202efdp.exe", r"nul\x00byte", r"esc\x1b[31mred", r"c1\x85next", r"iso\u2067late"):
        assert shown in overview, shown

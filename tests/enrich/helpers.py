"""Small intel repositories for the enrichment tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

INDICATOR = """type: indicator
spec_version: "2.1"
id: indicator--{uuid}
created: 2025-03-01T00:00:00.000Z
modified: 2025-03-01T00:00:00.000Z
pattern: "{pattern}"
pattern_type: stix
valid_from: 2025-03-04T00:00:00Z
"""
PATTERNS = {
    "google": "[ipv4-addr:value = '8.8.8.8']",
    "private": "[ipv4-addr:value = '10.0.0.1']",
    "phish": "[domain-name:value = 'woodgrove-securelogin.net']",
    "url": "[url:value = 'https://www.woodgrove-statements.net/login']",
    "unknown": "[domain-name:value = 'unknown.net']",
}


def write_repo(root: Path, server_url: str, names: list[str] | None = None, extra: dict[str, str] | None = None,
               rpm: int = 6000) -> Path:
    (root / "intel" / "indicators").mkdir(parents=True, exist_ok=True)
    (root / "tiops.yaml").write_text(
        f"enrichment:\n  rdap:\n    bootstrap: {server_url}\n    requests_per_minute: {rpm}\n    max_retries: 1\n",
        encoding="utf-8")
    for path in (root / "intel" / "indicators").glob("*.yaml"):
        path.unlink()
    for number, name in enumerate(names or list(PATTERNS)):
        text = INDICATOR.format(uuid=f"00000000-0000-4000-8000-{number:012d}", pattern=PATTERNS.get(name) or (extra or {})[name])
        (root / "intel" / "indicators" / f"{name}.yaml").write_text(text, encoding="utf-8")
    return root


def write_mmdb(path: Path, database_type: str, records: dict[str, dict[str, object]], *,
               ip_version: int = 6, built: datetime | None = None) -> None:
    """A MaxMind DB file of ``records`` (network -> record), as MaxMind builds them (mmdb_writer)."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    class Writer(MMDBWriter):
        def _build_meta(self) -> dict[str, object]:
            meta: dict[str, object] = super()._build_meta()
            if built is not None:  # a file MaxMind built on that day (mmdb_writer writes the time of writing)
                meta["build_epoch"] = int(built.timestamp())
            return meta

    writer = Writer(ip_version=ip_version, ipv4_compatible=ip_version == 6, database_type=database_type)
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))

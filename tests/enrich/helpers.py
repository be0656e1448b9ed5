"""Small intel repositories for the enrichment tests."""

from __future__ import annotations

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

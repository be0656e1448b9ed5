"""Data-driven: each file in tests/data/invalid/ names the findings it must produce.

The first line is ``# expect: CODE@LINE:COL ...`` (warnings and errors; info findings
are not listed). The file is validated inside a repository of its own.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tiops.findings import Severity
from tiops.load import load_repo
from tiops.validate import validate_repo

INVALID = Path(__file__).resolve().parent.parent / "data" / "invalid"
EXPECT = re.compile(r"([A-Z]+\d+)@(\d+):(\d+)")


def _expected(path: Path) -> list[tuple[str, int, int]]:
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("# expect:"), f"{path.name} must start with '# expect:'"
    return sorted((code, int(line), int(col)) for code, line, col in EXPECT.findall(header))


@pytest.mark.parametrize("case", sorted(INVALID.glob("*.yaml")), ids=lambda p: p.stem)
def test_invalid_case_reports_exactly_the_expected_findings(case: Path, tmp_path: Path) -> None:
    target = tmp_path / "intel" / case.name
    target.parent.mkdir(parents=True)
    shutil.copy(case, target)
    findings = validate_repo(load_repo(tmp_path))
    got = sorted(
        (f.code, f.location.line, f.location.column) for f in findings if f.severity >= Severity.WARNING
    )
    assert got == _expected(case), "\n".join(f"{f.location}: {f.code} {f.message}" for f in findings)
    for finding in findings:
        assert finding.location.file == f"intel/{case.name}"
        assert finding.hint, f"{finding.code} has no fix hint"

from __future__ import annotations

from pathlib import Path

import pytest
from hostile import XSS_OBJECT


@pytest.fixture
def report_repo(example_repo: Path) -> Path:
    """The example intel plus an object whose text tries to inject HTML and script."""
    (example_repo / "intel" / "malware" / "hostile.yaml").write_text(XSS_OBJECT, encoding="utf-8")
    return example_repo

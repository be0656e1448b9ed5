from __future__ import annotations

from collections.abc import Iterator

import pytest
from rdap_server import RdapServer, start_rdap_server


@pytest.fixture
def rdap_server() -> Iterator[RdapServer]:
    """An RDAP server on 127.0.0.1 (tests/rdap_server.py)."""
    server = start_rdap_server()
    try:
        yield server
    finally:
        server.stop()

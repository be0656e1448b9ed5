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


@pytest.fixture
def rdap_target() -> Iterator[RdapServer]:
    """A second RDAP server on 127.0.0.1, another origin (its own port): where rdap_server redirects to,
    as a registry sends a client to a registrar's server (RFC 7480 section 5.2)."""
    server = start_rdap_server()
    try:
        yield server
    finally:
        server.stop()

"""Store fixtures: a SQLite file per test, and a throw-away PostgreSQL server.

The server: ``TIOPS_TEST_PG_DSN`` names an existing one; otherwise the fixture
starts its own from the binaries under /usr/lib/postgresql/*/bin (initdb into a
temporary directory, pg_ctl on a free port on 127.0.0.1, stopped at the end of
the session). Tests that need it skip with the reason when neither is available.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_database_numbers = itertools.count()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    # initdb refuses to run as root: run the server as the `postgres` system user.
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as the postgres user")
        return [runuser, "-u", "postgres", "--", *command]
    return command


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A DSN (without database name) of a PostgreSQL server for the session."""
    existing = os.environ.get("TIOPS_TEST_PG_DSN")
    if existing:
        yield existing.rstrip("/")
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql), and TIOPS_TEST_PG_DSN is not set")
    bin_dir = Path(binaries[-1]).parent
    workdir = Path(tempfile.mkdtemp(prefix="tiops-pg-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    data, port = workdir / "data", _free_port()
    subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                 "--no-sync"]), check=True, capture_output=True)
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                 str(workdir / "log"), "-w", "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def postgres_dsn(postgres_server: str) -> str:
    """A DSN of a fresh, empty database on the session's server."""
    import psycopg

    name = f"tiops_test_{os.getpid()}_{next(_database_numbers)}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], dict[str, str]]:
    """A tiops.yaml target entry of each store type (and its environment, set for the test)."""
    if request.param == "sqlite":
        return lambda: {"type": "sqlite", "path": str(tmp_path / "store.sqlite")}
    dsn = request.getfixturevalue("postgres_dsn")
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("TIOPS_TEST_STORE_DSN", dsn)
    return lambda: {"type": "postgres", "dsn_env": "TIOPS_TEST_STORE_DSN"}

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from misbehaving_taxii import Page
from misbehaving_taxii import Server as MisbehavingTaxii
from taxii_server import TaxiiServer, start_taxii_server

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
CORPORA = REPO_ROOT.parent / "shared" / "corpora"


@pytest.fixture(scope="session", autouse=True)
def _repository_search_stays_in_the_test_folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Commands look for the repository in parent folders too; a stray intel/ above the
    temporary folders (say in /tmp) must not be taken for the test's repository."""
    import os

    from tiops.discover import CEILING_VARIABLE

    before = os.environ.get(CEILING_VARIABLE)
    os.environ[CEILING_VARIABLE] = str(tmp_path_factory.getbasetemp().resolve())
    yield
    if before is None:
        os.environ.pop(CEILING_VARIABLE, None)
    else:
        os.environ[CEILING_VARIABLE] = before


@pytest.fixture(scope="session", autouse=True)
def _no_step_summary_of_the_job_running_the_suite() -> Iterator[None]:
    """`tiops validate --format github` adds to the file GITHUB_STEP_SUMMARY names; when the
    suite itself runs in GitHub Actions, its tests must not write into that job's summary."""
    import os

    before = os.environ.pop("GITHUB_STEP_SUMMARY", None)
    yield
    if before is not None:
        os.environ["GITHUB_STEP_SUMMARY"] = before


@pytest.fixture(scope="session", autouse=True)
def _compiled_bundles_pass_the_reference_validator() -> Iterator[None]:
    """stix2-validator reports no error on any object of any bundle the suite compiles
    (tests/reference_validator.py); checked once, when the session ends."""
    import os

    from reference_validator import EVERY_OBJECT_SWITCH, BundleWatch

    watch = BundleWatch()
    watch.install()
    _WATCHES.append(watch)
    yield
    _WATCHES.remove(watch)
    watch.uninstall()
    problems = watch.invalid_objects(every_object=os.environ.get(EVERY_OBJECT_SWITCH) == "all")
    assert not problems, (f"stix2-validator finds {len(problems)} of the {len(watch.objects)} distinct objects of "
                          f"{watch.bundles} compiled bundles invalid:\n" + "\n".join(problems[:20]))


_WATCHES: list[Any] = []


@pytest.fixture
def hand_made_bundles() -> Iterator[None]:
    """For a test that writes hand-made objects through tiops.compile's bundle writer: they are
    no compiled intel, so the reference validator check of the session leaves them out."""
    with contextlib.ExitStack() as stack:
        for watch in _WATCHES:
            stack.enter_context(watch.paused())
        yield


@pytest.fixture
def corpora() -> Path:
    if not CORPORA.is_dir():
        pytest.skip(f"shared corpora not found at {CORPORA} (they sit beside the repository checkout)")
    return CORPORA


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    """A copy of the example intel repository shipped at the repository root."""
    target = tmp_path / "example"
    target.mkdir()
    for name in ("intel", "rules"):
        shutil.copytree(REPO_ROOT / name, target / name)
    if (REPO_ROOT / "tiops.yaml").exists():
        shutil.copy(REPO_ROOT / "tiops.yaml", target / "tiops.yaml")
    return target


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Write a repository from {relative path: file text}."""

    def make(files: dict[str, str]) -> Path:
        root = tmp_path / "repo"
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        root.mkdir(exist_ok=True)
        (root / "intel").mkdir(exist_ok=True)  # what makes it a repository (tiops.discover)
        return root

    return make


@pytest.fixture
def misbehaving_taxii() -> Iterator[Callable[[Page], MisbehavingTaxii]]:
    """Start a TAXII server that answers with what the test's page function returns (tests/misbehaving_taxii.py)."""
    servers: list[MisbehavingTaxii] = []

    def start(page: Page) -> MisbehavingTaxii:
        servers.append(MisbehavingTaxii(page))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def taxii_server(tmp_path: Path) -> Iterator[TaxiiServer]:
    """medallion (the OASIS TAXII 2.1 reference server) on 127.0.0.1, empty collection; see tests/taxii_server.py."""
    try:
        import medallion  # noqa: F401
    except ImportError:
        pytest.skip("medallion is not installed (pip install -e '.[test]')")
    server = start_taxii_server(tmp_path / "taxii-server")
    try:
        yield server
    finally:
        server.stop()

"""`tiops import taxii` against a real TAXII 2.1 server (OASIS medallion on 127.0.0.1)."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from click.testing import CliRunner
from taxii_server import COLLECTION_ID, TaxiiServer, start_taxii_server

from tiops.cli import main
from tiops.errors import TiopsError, UsageError
from tiops.importers.taxii import CHECKPOINT_FILE, import_taxii
from tiops.yamlio import parse_yaml

PAGE_SIZE = 2
CREDENTIALS_YAML = ("taxii_credentials:\n  - url: http://127.0.0.1\n"
                    "    username_env: TIOPS_TEST_TAXII_USER\n    password_env: TIOPS_TEST_TAXII_PASSWORD\n")


def _indicator(number: int, modified: str = "2025-01-01T00:00:00.000Z") -> dict[str, Any]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{number:08d}-0000-4000-8000-000000000000",
        "created": "2025-01-01T00:00:00.000Z", "modified": modified, "name": f"Indicator {number}",
        "pattern": f"[ipv4-addr:value = '198.51.100.{number}']", "pattern_type": "stix",
        "valid_from": "2025-01-01T00:00:00Z",
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TaxiiServer]:
    """The shared medallion helper (tests/taxii_server.py), preloaded and with small pages so paging is exercised."""
    pytest.importorskip("medallion", reason="medallion is not installed (pip install -e '.[test]')")
    running = start_taxii_server(tmp_path_factory.mktemp("taxii"), [_indicator(n) for n in range(1, 6)],
                                 max_page_size=PAGE_SIZE)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def repo(tmp_path: Path, server: TaxiiServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "tiops.yaml").write_text(CREDENTIALS_YAML)
    user, password = server.auth
    monkeypatch.setenv("TIOPS_TEST_TAXII_USER", user)
    monkeypatch.setenv("TIOPS_TEST_TAXII_PASSWORD", password)
    return tmp_path


def _post(server: TaxiiServer, objects: list[dict[str, Any]]) -> None:
    envelope = {"objects": objects}
    answer = requests.post(f"{server.collection_url}objects/", auth=server.auth, data=orjson.dumps(envelope), timeout=10,
                           headers={"Content-Type": "application/taxii+json;version=2.1",
                                    "Accept": "application/taxii+json;version=2.1"})
    assert answer.status_code == 202, answer.text


def test_pull_follows_every_page_then_only_what_was_added(repo: Path, server: TaxiiServer) -> None:
    report = import_taxii(repo, server.api_root_url, COLLECTION_ID, "Partner TAXII", page_size=PAGE_SIZE)
    assert (report.total, report.created, report.failed) == (5, 5, 0)
    assert f"pulled 5 object(s) in 3 page(s) from {server.collection_url}" in report.notes
    folder = repo / "intel/partner-taxii"
    assert len(list(folder.glob("indicator/*.yaml"))) == 5
    checkpoint = orjson.loads((folder / CHECKPOINT_FILE).read_bytes())
    first_mark = checkpoint["collections"][server.collection_url]["added_after"]
    assert first_mark.startswith("2025-01-01T00:00:00")  # the data file's date_added
    text = (repo / "tiops.yaml").read_text() + (folder / CHECKPOINT_FILE).read_text()
    assert server.auth[1] not in text  # the password is never written

    # The server gets a new object and a new version of an old one: the next pull fetches just those.
    _post(server, [_indicator(6), _indicator(1, modified="2025-03-01T00:00:00.000Z") | {"confidence": 90}])
    report = import_taxii(repo, server.api_root_url, COLLECTION_ID, "Partner TAXII", page_size=PAGE_SIZE)
    assert (report.total, report.created, report.updated) == (2, 1, 1)
    assert report.notes[0].startswith(f"pulled 2 object(s) added after {first_mark} in 1 page(s)")
    updated = parse_yaml((folder / "indicator/00000001-0000-4000-8000-000000000000.yaml").read_text())
    assert updated["confidence"] == 90
    later_mark = orjson.loads((folder / CHECKPOINT_FILE).read_bytes())["collections"][server.collection_url]["added_after"]
    assert later_mark > first_mark

    # Nothing new: nothing pulled, no file changes.
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    report = import_taxii(repo, server.api_root_url, COLLECTION_ID, "Partner TAXII", page_size=PAGE_SIZE)
    assert report.total == 0
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before

    # --full pulls everything again; unchanged objects stay unchanged.
    report = import_taxii(repo, server.api_root_url, COLLECTION_ID, "Partner TAXII", page_size=PAGE_SIZE, full=True)
    assert (report.total, report.created, report.updated, report.unchanged) == (6, 0, 0, 6)


def test_cli_pull_and_overlay_survives(repo: Path, server: TaxiiServer) -> None:
    runner = CliRunner()
    args = ["-C", str(repo), "import", "taxii", server.api_root_url, "--collection", COLLECTION_ID, "--source", "Feed"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "intel/feed: total" in result.output and "rejected 0" in result.output
    result = runner.invoke(main, ["-C", str(repo), "tag", "add", "seen", "--id", _indicator(2)["id"]])
    assert result.exit_code == 0 and "intel/feed/_overlay.yaml" in result.output
    assert runner.invoke(main, [*args, "--full"]).exit_code == 0
    assert parse_yaml((repo / "intel/feed/_overlay.yaml").read_text()) == {_indicator(2)["id"]: {"labels": ["seen"]}}
    result = runner.invoke(main, ["-C", str(repo), "validate"])
    assert result.exit_code == 0, result.output


def test_missing_collection_option_is_a_usage_error(repo: Path, server: TaxiiServer) -> None:
    result = CliRunner().invoke(main, ["-C", str(repo), "import", "taxii", server.api_root_url, "--source", "X"])
    assert result.exit_code == 2 and "--collection" in result.output


def test_unset_credential_variable_is_named(repo: Path, server: TaxiiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIOPS_TEST_TAXII_PASSWORD")
    with pytest.raises(UsageError, match="TIOPS_TEST_TAXII_PASSWORD is not set"):
        import_taxii(repo, server.api_root_url, COLLECTION_ID, "X")


def test_wrong_password_is_a_clear_error(repo: Path, server: TaxiiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIOPS_TEST_TAXII_PASSWORD", "wrong")
    with pytest.raises(TiopsError, match="answered 401") as caught:
        import_taxii(repo, server.api_root_url, COLLECTION_ID, "X")
    assert caught.value.hint is not None and "password" in caught.value.hint
    assert not (repo / "intel/x" / CHECKPOINT_FILE).exists()


def test_unknown_collection_is_a_clear_error(repo: Path, server: TaxiiServer) -> None:
    with pytest.raises(TiopsError, match="answered 404"):
        import_taxii(repo, server.api_root_url, "00000000-0000-4000-8000-00000000dead", "X")


def test_not_a_url(repo: Path) -> None:
    with pytest.raises(UsageError, match="not an http"):
        import_taxii(repo, "ftp://example/api1/", COLLECTION_ID, "X")


def test_a_dependent_waiting_for_its_target_is_fetched_again_by_the_next_pull(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("medallion", reason="medallion is not installed (pip install -e '.[test]')")
    source = {"type": "malware", "spec_version": "2.1", "id": "malware--00000000-0000-4000-8000-0000000000a1",
              "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "name": "S",
              "is_family": True}
    target = {**source, "id": "malware--00000000-0000-4000-8000-0000000000a2", "name": "T"}
    relationship = {"type": "relationship", "spec_version": "2.1",
                    "id": "relationship--00000000-0000-4000-8000-0000000000a3", "created": "2025-01-01T00:00:00.000Z",
                    "modified": "2025-01-01T00:00:00.000Z", "relationship_type": "variant-of",
                    "source_ref": source["id"], "target_ref": target["id"]}
    running = start_taxii_server(tmp_path / "taxii", [source, relationship])
    try:
        root = tmp_path / "repo"
        root.mkdir()
        (root / "tiops.yaml").write_text(CREDENTIALS_YAML)
        user, password = running.auth
        monkeypatch.setenv("TIOPS_TEST_TAXII_USER", user)
        monkeypatch.setenv("TIOPS_TEST_TAXII_PASSWORD", password)
        first = import_taxii(root, running.api_root_url, COLLECTION_ID, "Partner")
        assert (first.created, first.rejected_as_dependent) == (1, 1)
        assert any("the checkpoint stays" in note for note in first.notes), first.notes
        _post(running, [target])  # the target comes in a later pull
        # The checkpoint moved past the relationship: no incremental pull sent it again, and it was lost.
        second = import_taxii(root, running.api_root_url, COLLECTION_ID, "Partner")
        assert second.failed == 0 and second.created == 2, second
        assert len(list((root / "intel" / "partner").glob("relationship/*.yaml"))) == 1
    finally:
        running.stop()


_OTHER_COLLECTION = "https://taxii.other.example/api1/collections/other/"


def _two_checkpoints(folder: Path, url: str) -> bytes:
    folder.mkdir(parents=True)
    text = orjson.dumps({"collections": {url: {"added_after": "2025-01-01T00:00:00Z"},
                                         _OTHER_COLLECTION: {"added_after": "2024-06-01T00:00:00Z"}}})
    (folder / CHECKPOINT_FILE).write_bytes(text)
    return text


def test_a_checkpoint_is_replaced_by_a_new_file(tmp_path: Path) -> None:
    from tiops.importers.taxii import _write_checkpoint, read_checkpoint

    url = "https://taxii.partner.example/api1/collections/c1/"
    folder = tmp_path / "intel" / "partner"
    _two_checkpoints(folder, url)
    before = (folder / CHECKPOINT_FILE).stat().st_ino
    _write_checkpoint(folder, url, "2025-02-01T00:00:00Z")
    # Renamed into place: an interrupted write leaves the previous file, not one cut short.
    assert (folder / CHECKPOINT_FILE).stat().st_ino != before
    assert read_checkpoint(folder, url) == "2025-02-01T00:00:00Z"
    assert read_checkpoint(folder, _OTHER_COLLECTION) == "2024-06-01T00:00:00Z"
    assert [p.name for p in folder.iterdir()] == [CHECKPOINT_FILE]


def test_a_checkpoint_cut_short_by_a_full_disk_leaves_every_collection_s_previous_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from full_disk import fill_up_writing

    from tiops.importers.taxii import _write_checkpoint, read_checkpoint

    url = "https://taxii.partner.example/api1/collections/c1/"
    folder = tmp_path / "intel" / "partner"
    previous = _two_checkpoints(folder, url)
    fill_up_writing(monkeypatch, CHECKPOINT_FILE)
    # A clear error (exit 1), not an internal one; a file cut short would read as no checkpoint at
    # all, and the next pull would start from scratch and forget the other collection's.
    with pytest.raises(TiopsError, match=f"cannot write the TAXII checkpoint {folder / CHECKPOINT_FILE}: No space"):
        _write_checkpoint(folder, url, "2025-02-01T00:00:00Z")
    monkeypatch.undo()
    assert (folder / CHECKPOINT_FILE).read_bytes() == previous
    assert read_checkpoint(folder, url) == "2025-01-01T00:00:00Z"
    assert read_checkpoint(folder, _OTHER_COLLECTION) == "2024-06-01T00:00:00Z"
    assert [p.name for p in folder.iterdir()] == [CHECKPOINT_FILE]


@pytest.fixture
def lookalike() -> Iterator[tuple[str, list[str | None]]]:
    """A server on 127.0.0.10, whose URL starts with the text of the credentials entry http://127.0.0.1:
    the Authorization header of each request it is sent, answered 401."""
    from http.server import BaseHTTPRequestHandler

    from quiet_http import QuietHTTPServer

    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()

    try:
        server = QuietHTTPServer(("127.0.0.10", 0), Handler)
    except OSError:
        pytest.skip("127.0.0.10 cannot be bound here (not all of 127.0.0.0/8 is loopback)")
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"127.0.0.10:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("api_root", ["http://{host}/api/", "http://127.0.0.1@{host}/api/"],
                         ids=["longer-host-name", "user-info"])
def test_credentials_go_only_to_the_host_their_entry_names(
    repo: Path, server: TaxiiServer, lookalike: tuple[str, list[str | None]], api_root: str
) -> None:
    # The entry is http://127.0.0.1; as text it is also the start of these URLs of another host.
    host, seen = lookalike
    with pytest.raises(TiopsError, match="answered 401"):
        import_taxii(repo, api_root.format(host=host), COLLECTION_ID, "X")
    password = server.auth[1]
    basic = base64.b64encode(f"{server.auth[0]}:{password}".encode()).decode()
    assert seen and all(header is None or basic not in header for header in seen), seen
    # The entry's own host, on any port (the entry names none), still gets them.
    assert import_taxii(repo, server.api_root_url, COLLECTION_ID, "X").written


def test_a_credentials_entry_names_its_scheme_host_and_port() -> None:
    from tiops.importers.taxii import _names

    assert _names("https://taxii.example", "https://taxii.example/api1/collections/c/")
    assert _names("http://127.0.0.1", "http://127.0.0.1:8080/api1/")  # no port named: any port of the host
    assert not _names("https://taxii.example", "https://taxii.example.attacker.net/api1/")
    assert not _names("https://taxii.example", "https://taxii.example@attacker.net/api1/")
    assert not _names("http://127.0.0.1:1", "http://127.0.0.1:15000/api1/")
    assert not _names("https://taxii.example/", "http://taxii.example/")

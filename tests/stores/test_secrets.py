"""No token, password or DSN reaches stdout, stderr, a plan, a crash log, .tiops/ or the report.

Real servers on 127.0.0.1: PostgreSQL (a DSN with a password), the Sentinel contract
server, and a hostile HTTP server that echoes the request's Authorization header back
in its reason phrase and its error messages.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import json
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import pytest
from click.testing import CliRunner
from quiet_http import QuietHTTPServer
from sentinel_contract import TOKEN, WORKSPACE, SentinelContract
from test_plan_apply import indicator, write_repo

from tiops.cli import main
from tiops.commands.common import handle_errors
from tiops.redact import redact, register_secret, server_text

PASSWORD = "Pg-S3cret-pw-7781"
TAXII_USER, TAXII_PASSWORD = "publisher", "taxii-S3cret-9924"
BASIC = base64.b64encode(f"{TAXII_USER}:{TAXII_PASSWORD}".encode()).decode()


class EchoServer:
    """Answers every request with ``status``, echoing the Authorization header in the reason and the body."""

    def __init__(self, status: int = 403, body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.body = body
        self.seen: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def answer(self) -> None:
                authorization = self.headers.get("Authorization")
                server.seen.append(authorization)
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = server.body if server.body is not None else {
                    "title": f"echo {authorization}", "description": f"you sent {authorization}",
                    "errors": [{"recordIndex": 0, "errorMessages": [f"header {authorization}"]}]}
                data = json.dumps(body).encode()
                self.send_response(server.status, f"Echo {authorization}")
                self.send_header("Content-Type", "application/taxii+json;version=2.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = answer

        self._server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    try:
        yield server
    finally:
        server.stop()


def _logs() -> set[str]:
    return set(glob.glob(str(Path(tempfile.gettempdir()) / "tiops-crash-*.log")))


@pytest.fixture
def crash_logs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[Path]]:
    """The crash logs written since the test started. They go to a folder of the test's own (the
    temporary folder, in this process and in the tiops processes it starts), not the machine's /tmp."""
    folder = tmp_path_factory.mktemp("crash-logs")
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    before = _logs()
    return lambda: [Path(p) for p in sorted(_logs() - before)]


def written_text(root: Path) -> str:
    """Everything under the repository (plans, .tiops/, dist/, the report), as text."""
    parts = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def invoke(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-C", str(root), *args])
    assert result.exit_code != 3, result.output
    return result.exit_code, result.stdout + result.stderr


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


# --- PostgreSQL: DSNs -------------------------------------------------------------------------


@pytest.mark.parametrize("dsn", [f"postgres:{PASSWORD}@127.0.0.1/db", f"postgresql://postgres:{PASSWORD}@[::1/db"],
                         ids=["no-scheme", "unclosed-bracket"])
def test_an_unparseable_dsn_is_a_clear_error_without_the_password(
    tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch, crash_logs: Callable[[], list[Path]]
) -> None:
    monkeypatch.setenv("TIOPS_TEST_BAD_DSN", dsn)
    root = write_repo(tmp_path / "repo", {"type": "postgres", "dsn_env": "TIOPS_TEST_BAD_DSN"}, [indicator(1)])
    for command in (["plan"], ["apply", "--auto-approve"]):
        code, output = invoke(root, *command)
        assert code == 1
        assert "the connection string in TIOPS_TEST_BAD_DSN cannot be parsed" in output
        assert_no_secret(output, PASSWORD, dsn)
    assert crash_logs() == []


@pytest.mark.parametrize("dsn", [
    "postgresql://tiops:Head-Pw@Tail-Pw-9917@127.0.0.1:5432/db",  # the tail became the host
    "postgresql://tiops:Head-Pw@127.0.0.1:Tail-Pw-9917@127.0.0.1:5432/db",  # ... and the port
    "postgresql://localhost:Tail-Pw-9917/x@127.0.0.1:5432/db",  # a raw '/': user and password became host and port
], ids=["at", "at-colon", "slash"])
def test_a_password_with_a_raw_at_or_slash_is_refused_without_quoting_it(
    tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch, crash_logs: Callable[[], list[Path]]
) -> None:
    # libpq ends the password at the first '@' before the first '/'; its errors then quoted the rest
    # of the password as a host ("failed to resolve host 'Tail-Pw-9917@127.0.0.1'") or a port.
    monkeypatch.setenv("TIOPS_TEST_RAW_DSN", dsn)
    root = write_repo(tmp_path / "repo", {"type": "postgres", "dsn_env": "TIOPS_TEST_RAW_DSN"}, [indicator(1)])
    for command in (["plan"], ["apply", "--auto-approve"], ["query", "--target", "t", "type = indicator"]):
        code, output = invoke(root, *command)
        assert code == 1, output
        assert "has an '@' that libpq does not read as the end of the user name and password" in output
        assert "Tail-Pw" not in output and "Head-Pw" not in output
    assert crash_logs() == []


def test_the_postgres_happy_path_keeps_the_dsn_out_of_everything(
    tmp_path: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch, crash_logs: Callable[[], list[Path]]
) -> None:
    # The test server trusts 127.0.0.1, so a password in the DSN is sent and ignored.
    dsn = postgres_dsn.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")
    monkeypatch.setenv("TIOPS_TEST_SECRET_DSN", dsn)
    root = write_repo(tmp_path / "repo", {"type": "postgres", "dsn_env": "TIOPS_TEST_SECRET_DSN"}, [indicator(1)])
    outputs = []
    for command in (["validate"], ["compile"], ["plan", "-o", str(root / "plan.json")], ["apply", str(root / "plan.json")],
                    ["plan", "--format", "json"], ["report"]):
        code, output = invoke(root, *command)
        assert code == 0, output
        outputs.append(output)
    assert (root / "dist" / "report").is_dir()
    # An error path: the server refuses the database.
    monkeypatch.setenv("TIOPS_TEST_SECRET_DSN", dsn.rsplit("/", 1)[0] + "/no_such_database")
    code, output = invoke(root, "plan")
    assert code == 1
    outputs.append(output)
    everything = "\n".join([*outputs, written_text(root), *(p.read_text() for p in crash_logs())])
    assert_no_secret(everything, PASSWORD, dsn)


def test_a_crash_log_never_holds_a_secret(crash_logs: Callable[[], list[Path]]) -> None:
    register_secret("registered-Secret-4410")

    @click.command()
    @handle_errors
    def explode() -> None:
        raise RuntimeError(f"cannot use postgresql://app:{PASSWORD}@db/x; token registered-Secret-4410; "
                           f"Authorization: Basic {BASIC}; host=db password={PASSWORD}")

    result = CliRunner().invoke(explode, [])
    assert result.exit_code == 3
    [log] = crash_logs()
    text = log.read_text()
    assert "RuntimeError" in text and "postgresql://app:***@db/x" in text
    assert_no_secret(text, PASSWORD, "registered-Secret-4410", BASIC)


# --- HTTP servers that echo the Authorization header -------------------------------------------


def sentinel_target(url: str, monkeypatch: pytest.MonkeyPatch, token: str = TOKEN) -> dict[str, Any]:
    monkeypatch.setenv("TIOPS_TEST_SENTINEL_TOKEN", token)
    return {"type": "sentinel", "workspace_id": WORKSPACE, "token_env": "TIOPS_TEST_SENTINEL_TOKEN",
            "upload_url": f"{url}/upload", "query_url": f"{url}/query", "requests_per_minute": 6000}


@pytest.mark.parametrize("status", [401, 403, 429, 500])
def test_a_sentinel_reason_phrase_echoing_the_token_is_not_printed(
    tmp_path: Path, echo: EchoServer, monkeypatch: pytest.MonkeyPatch, status: int, crash_logs: Callable[[], list[Path]]
) -> None:
    echo.status = status
    root = write_repo(tmp_path / "repo", sentinel_target(echo.url, monkeypatch), [indicator(1)])
    code, output = invoke(root, "plan")
    assert code == 1 and f"HTTP {status}" in output
    assert echo.seen and echo.seen[0] == f"Bearer {TOKEN}"  # the server really had the token to echo
    assert_no_secret(output + written_text(root) + "".join(p.read_text() for p in crash_logs()), TOKEN)


def test_sentinel_error_messages_echoing_the_token_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract = SentinelContract(limit=1000, window=1.0).start()
    try:
        target = {**sentinel_target(contract.base_url, monkeypatch), "upload_url": contract.upload_url,
                  "query_url": contract.query_url}
        contract.reject({indicator(1)["id"]: f"refused; you sent Bearer {TOKEN}\x1b[2J"})
        root = write_repo(tmp_path / "repo", target, [indicator(1)])
        code, output = invoke(root, "apply", "--auto-approve")
    finally:
        contract.stop()
    assert code == 1 and "refused; you sent Bearer ***" in output
    assert "\x1b" not in output
    assert_no_secret(output + written_text(root), TOKEN)


def test_a_next_link_to_another_host_does_not_get_the_token(
    tmp_path: Path, echo: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = EchoServer(status=200, body={"value": []})
    echo.status, echo.body = 200, {"value": [], "nextLink": f"http://localhost:{elsewhere.url.rsplit(':', 1)[1]}/steal"}
    try:
        root = write_repo(tmp_path / "repo", sentinel_target(echo.url, monkeypatch), [indicator(1)])
        code, output = invoke(root, "plan")
    finally:
        elsewhere.stop()
    assert code == 1 and "nextLink leads to another host" in output
    assert elsewhere.seen == []


def test_a_taxii_server_echoing_basic_auth_gets_nothing_printed(
    tmp_path: Path, echo: EchoServer, monkeypatch: pytest.MonkeyPatch, crash_logs: Callable[[], list[Path]]
) -> None:
    monkeypatch.setenv("TIOPS_TEST_TAXII_USER", TAXII_USER)
    monkeypatch.setenv("TIOPS_TEST_TAXII_PASSWORD", TAXII_PASSWORD)
    target = {"type": "taxii", "url": f"{echo.url}/api/collections/c1/", "user_env": "TIOPS_TEST_TAXII_USER",
              "password_env": "TIOPS_TEST_TAXII_PASSWORD"}
    root = write_repo(tmp_path / "repo", target, [indicator(1)])
    (root / "tiops.yaml").write_text(json.dumps({
        "default_target": "t", "targets": {"t": target},
        "taxii_credentials": [{"url": echo.url, "username_env": "TIOPS_TEST_TAXII_USER",
                               "password_env": "TIOPS_TEST_TAXII_PASSWORD"}]}), encoding="utf-8")
    outputs = []
    for status in (401, 500):
        echo.status = status
        for command in (["plan"], ["import", "taxii", f"{echo.url}/api/", "--collection", "c1", "--source", "P"]):
            code, output = invoke(root, *command)
            assert code in (1, 2), output
            outputs.append(output)
    echo.status, echo.body = 200, {"title": f"not TAXII {BASIC}"}
    code, output = invoke(root, "import", "taxii", f"{echo.url}/api/", "--collection", "c1", "--source", "P")
    outputs.append(output)
    assert f"Basic {BASIC}" in echo.seen
    everything = "\n".join([*outputs, written_text(root), *(p.read_text() for p in crash_logs())])
    assert_no_secret(everything, TAXII_PASSWORD, BASIC)


QUOTED_PASSWORD = "taxii-Pw's \"9\\x"  # a generated password: both quotes and a backslash


def test_a_taxii_target_url_with_credentials_never_shows_them(
    tmp_path: Path, echo: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests sends user:password@ of the URL as Basic credentials. Not registered, a password
    # holding a quote escaped the URL pattern and was printed with the URL.
    url = f"http://{TAXII_USER}:{quote(QUOTED_PASSWORD, safe=chr(39) + chr(34))}@{echo.url[7:]}/api/collections/c1/"
    echo.status = 401
    root = write_repo(tmp_path / "repo", {"type": "taxii", "url": url}, [indicator(1)])
    code, output = invoke(root, "plan")
    assert code == 1 and "HTTP 401" in output
    assert echo.seen and echo.seen[0] == "Basic " + base64.b64encode(f"{TAXII_USER}:{QUOTED_PASSWORD}".encode()).decode()
    assert "taxii-Pw" not in output and "taxii-Pw" not in written_text(root / ".tiops")  # tiops.yaml holds it


def test_a_manifest_entry_echoing_a_quoted_password_is_redacted(
    tmp_path: Path, echo: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The entry is quoted as Python writes a dict ('taxii-Pw\'s "9\\x'): not the password as
    # registered, so it was shown. One body serves the collection's information and its manifest.
    monkeypatch.setenv("TIOPS_TEST_TAXII_USER", TAXII_USER)
    monkeypatch.setenv("TIOPS_TEST_TAXII_PASSWORD", QUOTED_PASSWORD)
    echo.status, echo.body = 200, {"id": "c1", "title": "c", "can_read": True, "can_write": True, "more": False,
                                   "objects": [{"id": "indicator--x", "note": f"you sent {QUOTED_PASSWORD}"}]}
    target = {"type": "taxii", "url": f"{echo.url}/api/collections/c1/", "username_env": "TIOPS_TEST_TAXII_USER",
              "password_env": "TIOPS_TEST_TAXII_PASSWORD"}
    root = write_repo(tmp_path / "repo", target, [indicator(1)])
    code, output = invoke(root, "plan")
    assert code == 1 and "sent a manifest entry without an id and a version" in output and "you sent ***" in output
    assert "taxii-Pw" not in output


@contextlib.contextmanager
def _token_stored_on_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A repository applied to a Sentinel server with the token in an object's description, then
    changed so the next plan updates that object (the stored text shows in the plan's details)."""
    contract = SentinelContract(limit=1000, window=1.0).start()
    try:
        target = {**sentinel_target(contract.base_url, monkeypatch), "upload_url": contract.upload_url,
                  "query_url": contract.query_url}
        root = write_repo(tmp_path / "repo", target, [indicator(1, description=f"leaked {TOKEN}")])
        assert invoke(root, "apply", "--auto-approve")[0] == 0
        write_repo(root, target, [indicator(1, description="clean")])
        yield root
    finally:
        contract.stop()


def test_a_saved_plan_hides_a_token_the_server_stored_and_still_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _token_stored_on_the_server(tmp_path, monkeypatch) as root:
        code, shown = invoke(root, "plan", "--format", "json")
        assert code == 0 and "leaked ***" in shown
        assert invoke(root, "plan", "-o", str(root / "plan.json"))[0] == 0
        saved = (root / "plan.json").read_text()
        code, applied = invoke(root, "apply", str(root / "plan.json"))
    assert code == 0, applied
    assert_no_secret(shown + saved + applied, TOKEN)


def test_server_text_is_redacted_escaped_and_cut_short() -> None:
    register_secret("tok-ABCDEFGH-1234")
    shown = server_text("x" * 500 + "tok-ABCDEFGH-1234")
    assert len(shown) <= 300 and shown.endswith("…")
    assert server_text("a\x1b[31mred\x00") == "a\\x1b[31mred\\x00"
    assert redact(f"Basic {base64.b64encode(b'u:tok-ABCDEFGH-1234').decode()}") == "Basic ***"
    assert redact("postgresql://u:pw@h/db and u2:pw2@h2") == "postgresql://u:***@h/db and u2:***@h2"


@pytest.mark.parametrize("text", ["x" * 100_000, "a:" * 50_000 + "@", ("ab" * 1000 + ":") * 50 + "@",
                                  "http://" + "a" * 100_000 + ":pw@host"])
def test_redacting_a_long_unbroken_text_takes_no_longer_than_reading_it(text: str) -> None:
    # The credential patterns are bounded: unbounded, every start in a long run scanned to its
    # end, and `tiops explain` of a pasted 100k-character blob ran for minutes. Measured by the
    # regex engine's work, not the clock: each text finishes and keeps its credentials masked.
    assert ":pw@" not in redact(text)
    assert redact("postgresql://tiops:" + "s" * 900 + "@db/x") == "postgresql://tiops:***@db/x"
    register_secret("Tok3n-in-a-long-reply")
    shown = server_text("x" * 290 + "Tok3n-in-a-long-reply" + ":" * 1_000_000)
    assert "Tok3n" not in shown and shown.startswith("x" * 290 + "***")


@pytest.mark.parametrize("bad", ["huge", "deep"])
def test_an_object_a_server_sends_that_tiops_cannot_read_is_a_clear_error(
    tmp_path: Path, echo: EchoServer, monkeypatch: pytest.MonkeyPatch, crash_logs: Callable[[], list[Path]], bad: str
) -> None:
    value: Any = 2**80
    if bad == "deep":
        value = "x"
        for _ in range(400):
            value = [value]
    echo.status, echo.body = 200, {"value": [{**indicator(1), "x_bad": value}]}
    root = write_repo(tmp_path / "repo", sentinel_target(echo.url, monkeypatch), [indicator(1)])
    code, output = invoke(root, "plan")
    assert code == 1 and "that tiops cannot read" in output
    assert crash_logs() == []


def test_a_token_the_server_stored_in_an_object_is_not_shown_in_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _token_stored_on_the_server(tmp_path, monkeypatch) as root:
        code, output = invoke(root, "plan")
    assert code == 0 and "description" in output and "leaked ***" in output
    assert_no_secret(output, TOKEN)


def test_a_secret_written_where_a_variable_name_goes_is_not_printed(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tiops.cli import main

    (tmp_path / "intel").mkdir()
    for key, value in (("dsn_env", "postgresql://tiops:S3cretPgPass-1@localhost/db"), ("dsn_env", "S3cretPgPass-1")):
        (tmp_path / "tiops.yaml").write_text(f"targets:\n  pg:\n    type: postgres\n    {key}: '{value}'\n")
        for command in (["validate"], ["plan", "--target", "pg"]):
            result = CliRunner().invoke(main, ["-C", str(tmp_path), *command])
            assert result.exit_code == 1 and "TI110" in result.output, result.output
            assert "S3cretPgPass" not in result.output


def test_detailed_exitcode_gives_1_not_2_for_an_error(example_repo: Path) -> None:
    from click.testing import CliRunner

    from tiops.cli import main

    # 2 is "changes" (a CI job applies on it); an unknown target is an error, which is 1 here.
    result = CliRunner().invoke(main, ["-C", str(example_repo), "plan", "--target", "nope", "--detailed-exitcode"])
    assert result.exit_code == 1 and "nope" in result.output, result.output
    plain = CliRunner().invoke(main, ["-C", str(example_repo), "plan", "--target", "nope"])
    assert plain.exit_code == 2  # a usage error, as everywhere else


def test_a_held_remote_target_lock_names_its_holder_and_the_command_that_frees_it(tmp_path: Path) -> None:
    import os

    import pytest

    from tiops.stores import LockHeld
    from tiops.stores.remote import LocalLock

    first, second = LocalLock(tmp_path, "feed"), LocalLock(tmp_path, "feed")
    first.acquire("release job")
    with pytest.raises(LockHeld) as held:
        second.acquire("another job")
    assert "target 'feed' is locked by release job" in held.value.message and f"pid {os.getpid()}" in held.value.message
    assert held.value.hint is not None and "tiops force-unlock --target feed" in held.value.hint


def test_a_token_ending_in_a_line_break_is_sent_without_it(
    tmp_path: Path, echo: EchoServer, monkeypatch: pytest.MonkeyPatch, crash_logs: Callable[[], list[Path]]
) -> None:
    # A token mounted from a file ends in "\n", which no HTTP header may hold: an internal error before.
    echo.status = 403
    root = write_repo(tmp_path / "repo", sentinel_target(echo.url, monkeypatch, token=TOKEN + "\n"), [indicator(1)])
    code, output = invoke(root, "plan")
    assert code == 1 and "HTTP 403" in output and "internal error" not in output
    assert echo.seen == [f"Bearer {TOKEN}"]
    assert_no_secret(output + "".join(p.read_text() for p in crash_logs()), TOKEN)


def test_a_token_holding_a_line_break_inside_is_refused_without_showing_it(
    tmp_path: Path, echo: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_repo(tmp_path / "repo", sentinel_target(echo.url, monkeypatch, token=TOKEN + "\nX-Other: 1"),
                      [indicator(1)])
    code, output = invoke(root, "plan")
    assert code == 2 and "TIOPS_TEST_SENTINEL_TOKEN holds a line break" in output
    assert echo.seen == []
    assert_no_secret(output, TOKEN)


@pytest.mark.parametrize("page_size", ['"abc"', "0", "true", "1.5"])
def test_a_taxii_page_size_that_is_no_positive_integer_is_a_clear_error(tmp_path: Path, page_size: str) -> None:
    target = {"type": "taxii", "url": "http://127.0.0.1:9/api/collections/c1/"}
    root = write_repo(tmp_path / "repo", target, [indicator(1)])
    config = json.loads((root / "tiops.yaml").read_text())
    config["targets"]["t"]["page_size"] = json.loads(page_size)
    (root / "tiops.yaml").write_text(json.dumps(config))
    code, output = invoke(root, "plan")
    assert code == 2 and "page_size must be a positive integer" in output, output


def test_a_sentinel_object_whose_id_is_no_string_is_a_clear_error(
    tmp_path: Path, echo: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo.status, echo.body = 200, {"value": [{"type": "indicator", "id": ["indicator--1"]}]}
    root = write_repo(tmp_path / "repo", sentinel_target(echo.url, monkeypatch), [indicator(1)])
    code, output = invoke(root, "plan")  # invoke: exit 3 (an internal error) fails the test
    assert code == 1 and "an object's id is a JSON array, not a STIX identifier" in output, output

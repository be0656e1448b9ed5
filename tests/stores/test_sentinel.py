"""plan -> apply against a local server enforcing Microsoft Sentinel's documented upload/query contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sentinel_contract import TOKEN, WORKSPACE, SentinelContract
from test_plan_apply import apply, indicator, kill_apply_midway, make_plan, rerun_apply, write_repo

from tiops.apply import ApplyIncomplete
from tiops.cli import main
from tiops.errors import UsageError
from tiops.paging import MAX_IDLE_PAGES
from tiops.stores import StoreError, open_store
from tiops.stores.sentinel import DEFAULT_UPLOAD_URL, RequestPacer, open_sentinel

TOKEN_ENV = "TIOPS_TEST_SENTINEL_TOKEN"
# The contract server's window is shortened so tests run in seconds: 10 requests per 0.25 s
# (2400 a minute); the target paces itself a little below that.
LIMIT, WINDOW, PACED_RATE = 10, 0.25, 2000


@pytest.fixture
def sentinel() -> Iterator[SentinelContract]:
    server = SentinelContract(limit=LIMIT, window=WINDOW).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def target(sentinel: SentinelContract, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return {"type": "sentinel", "workspace_id": WORKSPACE, "token_env": TOKEN_ENV,
            "upload_url": sentinel.upload_url, "query_url": sentinel.query_url,
            "requests_per_minute": PACED_RATE, "page_size": 50}


def test_plan_apply_plan_has_no_changes(tmp_path: Path, sentinel: SentinelContract, target: dict[str, Any]) -> None:
    # 250 objects in one apply batch of 500: the store splits them into uploads of at most 100
    # (the server answers 400 to more).
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(250)])
    assert make_plan(root).counts["create"] == 251
    apply(root)
    assert len(sentinel.versions()) == 251
    second = make_plan(root)
    assert not second.has_changes and second.counts["unchanged"] == 251
    assert sentinel.throttled == 0


def test_a_changed_object_becomes_a_new_version_and_a_removed_one_is_revoked(
    tmp_path: Path, sentinel: SentinelContract, target: dict[str, Any]
) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(6)])
    apply(root)
    write_repo(root, target, [indicator(0, description="Now a sinkhole"), *(indicator(n) for n in range(1, 5))])
    plan = make_plan(root)
    assert [(c.action, c.effective_modified) for c in plan.changes] == [
        ("update", "2025-01-01T00:00:00.001Z"), ("revoke", "2025-01-01T00:00:00.001Z")]
    apply(root, plan)
    assert not make_plan(root).has_changes
    first, removed = indicator(0)["id"], indicator(5)["id"]
    assert [v for i, v in sentinel.versions() if i == first] == [
        "2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00.001Z"]
    assert sentinel.current[first]["description"] == "Now a sinkhole"
    assert sentinel.current[removed]["revoked"] is True
    assert (removed, "2025-01-01T00:00:00.001Z", True) in sentinel.uploads


def test_a_rejected_object_is_reported_and_retried_by_the_next_apply(
    tmp_path: Path, sentinel: SentinelContract, target: dict[str, Any]
) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(4)])
    rejected = indicator(2)["id"]
    sentinel.reject({rejected: "pattern refused by policy"})
    with pytest.raises(ApplyIncomplete, match=f"{rejected}: Sentinel: pattern refused by policy") as caught:
        apply(root)
    assert [e.stix_id for e in caught.value.errors] == [rejected]
    assert len(sentinel.versions()) == 4  # the rest of the batch landed
    [change] = make_plan(root).changes
    assert (change.action, change.id) == ("create", rejected)
    sentinel.reject({})
    apply(root)
    assert not make_plan(root).has_changes


def test_an_upload_refused_as_a_whole_names_its_objects_and_leaves_them_no_ones(
    tmp_path: Path, sentinel: SentinelContract, target: dict[str, Any]
) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(3)])
    apply(root)
    theirs = indicator(9)
    sentinel.current[theirs["id"]] = {**theirs, "name": "another tool's"}  # written by another tool
    write_repo(root, target, [*(indicator(n) for n in range(3)), indicator(9, modified="2025-02-01T00:00:00.000Z")])
    sentinel.refuse_whole({theirs["id"]: "pattern refused by policy"})
    # A 400 named neither the object nor the reason, and left the batch recorded as tiops' own.
    with pytest.raises(StoreError, match=f"refused for {theirs['id']}: pattern refused by policy"):
        apply(root)
    sentinel.refuse_whole({})
    write_repo(root, target, [indicator(n) for n in range(3)])  # the object leaves the repository
    # Never written by tiops, so never revoked by it (docs/targets.md).
    assert not [c for c in make_plan(root).changes if c.id == theirs["id"]]


@pytest.mark.parametrize("status", [429, 500])
def test_a_server_failing_for_a_while_is_ridden_out(
    tmp_path: Path, sentinel: SentinelContract, target: dict[str, Any], status: int
) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(3)])
    plan = make_plan(root)
    sentinel.fail_next(status, 3, retry_after=0.05)
    sleeps: list[float] = []
    apply(root, plan, sleep=sleeps.append)
    assert sleeps == [0.05, 0.05, 0.05]
    assert len(sentinel.versions()) == 4
    assert not make_plan(root).has_changes


def test_a_server_asking_to_wait_for_hours_fails_the_apply_instead_of_sleeping(
    tmp_path: Path, sentinel: SentinelContract, target: dict[str, Any]
) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(3)])
    plan = make_plan(root)
    sentinel.fail_next(429, 1, retry_after=86_400)  # a day (RFC 9110 section 10.2.3 allows any figure)
    sleeps: list[float] = []
    with pytest.raises(StoreError) as raised:
        apply(root, plan, sleep=sleeps.append)
    assert "asked to wait 1 days before retrying; tiops waits at most 300 s" in str(raised.value)
    assert sleeps == []
    apply(root, plan)  # the rerun converges
    assert not make_plan(root).has_changes


def test_a_paced_apply_stays_under_the_rate_limit(tmp_path: Path, sentinel: SentinelContract,
                                                   target: dict[str, Any]) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(30)])
    apply(root, batch_size=1)
    assert sentinel.requests > 3 * LIMIT and sentinel.throttled == 0
    assert not make_plan(root).has_changes


def test_an_unpaced_apply_is_throttled_and_rides_it_out(tmp_path: Path, sentinel: SentinelContract,
                                                        target: dict[str, Any]) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(30)],
                      requests_per_minute=1_000_000)
    apply(root, batch_size=1, max_retries=20)
    assert sentinel.throttled > 0  # the contract server does enforce the limit
    assert len(sentinel.versions()) == 31
    assert not make_plan(root).has_changes


def test_the_pacer_spaces_requests_by_the_configured_rate() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    pacer = RequestPacer(120, clock=lambda: now[0], sleep=sleep)
    pacer.wait()
    pacer.wait()
    now[0] += 0.2
    pacer.wait()
    now[0] += 2.0
    pacer.wait()
    assert slept == [0.5, 0.3] and pacer.requests == 4


def test_credentials_never_appear_in_plans_logs_or_errors(
    tmp_path: Path, sentinel: SentinelContract, target: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(1)])
    runner = CliRunner()
    planned = runner.invoke(main, ["-C", str(root), "plan", "-o", str(tmp_path / "plan.json")])
    assert planned.exit_code == 0, planned.output
    assert TOKEN not in (tmp_path / "plan.json").read_text() and TOKEN not in planned.output
    applied = runner.invoke(main, ["-C", str(root), "apply", "--auto-approve"])
    assert applied.exit_code == 0, applied.output
    assert TOKEN not in applied.output
    monkeypatch.setenv(TOKEN_ENV, TOKEN + "-wrong")
    refused = runner.invoke(main, ["-C", str(root), "plan"])
    assert refused.exit_code != 0 and "401" in refused.output
    assert TOKEN not in refused.output


def test_settings_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(UsageError, match=f"environment variable {TOKEN_ENV} is not set"):
        open_store("t", {"type": "sentinel", "workspace_id": WORKSPACE, "token_env": TOKEN_ENV}, tmp_path)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with pytest.raises(UsageError, match="needs the setting 'workspace_id'"):
        open_store("t", {"type": "sentinel", "token_env": TOKEN_ENV}, tmp_path)
    for url in ("ftp://upload.example/", "http://[::1/upload", "https://upload.example:port/"):  # were internal errors
        with pytest.raises(UsageError, match=r"upload_url .* is not an http:// or https:// URL"):
            open_store("t", {"type": "sentinel", "workspace_id": WORKSPACE, "token_env": TOKEN_ENV,
                             "upload_url": url}, tmp_path)
    for rate in (0, -1, 1e-300, 0.001, True, "fast", float("nan")):  # 1e-300 was an OverflowError in the pacer
        with pytest.raises(UsageError, match=r"requests_per_minute must be a number of at least 0\.1"):
            open_store("t", {"type": "sentinel", "workspace_id": WORKSPACE, "token_env": TOKEN_ENV,
                             "requests_per_minute": rate}, tmp_path)
    store = open_sentinel("t", {"workspace_id": WORKSPACE, "token_env": TOKEN_ENV, "subscription_id": "s",
                                "resource_group": "g", "workspace_name": "w"}, tmp_path)
    try:
        assert store.upload_url == DEFAULT_UPLOAD_URL.format(workspace_id=WORKSPACE, api_version="2024-02-01-preview")
        assert store.query_url.startswith("https://management.azure.com/subscriptions/s/resourceGroups/g/")
    finally:
        store.close()


def test_a_killed_apply_converges_when_rerun(tmp_path: Path, sentinel: SentinelContract,
                                             target: dict[str, Any]) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(200)], batch_size=20)
    kill_apply_midway(root, lambda: len(sentinel.versions()))
    assert 20 <= len(sentinel.versions()) < 201
    rerun = rerun_apply(root)
    assert rerun.returncode == 0, rerun.stderr
    assert len(sentinel.versions()) == 201
    assert not make_plan(root).has_changes


def _plan_output(root: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-C", str(root), "plan"])
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return result.exit_code, result.output


def test_a_query_whose_pages_go_round_in_a_circle_ends_the_plan(tmp_path: Path, sentinel: SentinelContract,
                                                                target: dict[str, Any]) -> None:
    stored = indicator(1)
    # Every page names the same object and links on to the same next page.
    sentinel.query_answer = lambda skip: {"value": [stored], "nextLink": f"{sentinel.query_url}&$skipToken=1"}
    root = write_repo(tmp_path / "repo", target, [indicator(1)])
    code, output = _plan_output(root)
    assert code == 1
    assert f"sent {MAX_IDLE_PAGES} pages in a row with no object it had not sent already" in output
    assert sentinel.requests <= MAX_IDLE_PAGES + 2


def test_a_query_answer_whose_value_is_not_a_list_ends_the_plan(tmp_path: Path, sentinel: SentinelContract,
                                                                target: dict[str, Any]) -> None:
    sentinel.query_answer = lambda skip: {"value": 5}
    code, output = _plan_output(write_repo(tmp_path / "repo", target, [indicator(1)]))
    assert code == 1
    assert "the answer's value is a JSON number, not a list of objects" in output


@pytest.mark.parametrize(("answer", "said"), [("all good", "the answer is a JSON string, not an object"),
                                              ({}, "has no 'value' list"),
                                              ({"objects": []}, "has no 'value' list")])
def test_a_query_answer_that_is_not_one_ends_the_plan_rather_than_reading_as_empty(
        tmp_path: Path, sentinel: SentinelContract, target: dict[str, Any], answer: Any, said: str) -> None:
    sentinel.query_answer = lambda skip: answer
    code, output = _plan_output(write_repo(tmp_path / "repo", target, [indicator(1)]))
    assert code == 1 and said in output, output
    assert "to create" not in output  # not a plan that would upload everything again


class _Killed(BaseException):
    """The process dying right after the API took an upload, before anything else ran."""


def test_objects_sent_just_before_a_kill_stay_tiops_own(tmp_path: Path, sentinel: SentinelContract,
                                                        target: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from tiops.stores.sentinel import SentinelStore

    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(6)], batch_size=3)
    real = SentinelStore._post

    def uploaded_then_killed(self: Any, url: str, headers: Any, body: Any, what: str) -> Any:
        answer = real(self, url, headers, body, what)
        if what == "upload":
            raise _Killed
        return answer

    monkeypatch.setattr(SentinelStore, "_post", uploaded_then_killed)
    with pytest.raises(_Killed):
        apply(root, batch_size=3)
    monkeypatch.setattr(SentinelStore, "_post", real)
    sent = {identifier for identifier, _ in sentinel.versions()}
    assert sent and len(sent) < 7
    plan = make_plan(root)
    assert plan.managed >= len(sent)  # what it sent is tiops' own, not someone else's
    apply(root, plan)
    # One it sent before the kill leaves the repository: it is revoked, as any object tiops wrote.
    gone = sorted(identifier for identifier in sent if identifier.startswith("indicator--"))[0]
    kept = [indicator(n) for n in range(6) if indicator(n)["id"] != gone]
    write_repo(root, target, kept, batch_size=3)
    assert [(c.action, c.id) for c in make_plan(root).changes] == [("revoke", gone)]

"""plan -> apply against a TAXII 2.1 collection on medallion (the OASIS reference server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from taxii_server import TaxiiServer
from test_plan_apply import apply, indicator, kill_apply_midway, make_plan, rerun_apply, write_repo

from tiops.apply import ApplyIncomplete
from tiops.cli import main

USER_ENV, PASSWORD_ENV = "TIOPS_TEST_TAXII_USER", "TIOPS_TEST_TAXII_PASSWORD"


@pytest.fixture
def target(taxii_server: TaxiiServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    user, password = taxii_server.auth
    monkeypatch.setenv(USER_ENV, user)
    monkeypatch.setenv(PASSWORD_ENV, password)
    return {"type": "taxii", "url": taxii_server.collection_url, "username_env": USER_ENV, "password_env": PASSWORD_ENV,
            "page_size": 50}


def collection_versions(server: TaxiiServer) -> list[tuple[str, str]]:
    """Every (id, version) the collection holds, read straight from the server."""
    answer = requests.get(f"{server.collection_url}manifest/", params={"match[version]": "all"}, auth=server.auth,
                          headers={"Accept": "application/taxii+json;version=2.1"}, timeout=10)
    answer.raise_for_status()
    return sorted((entry["id"], entry["version"]) for entry in answer.json().get("objects", []))


def stored_object(server: TaxiiServer, stix_id: str) -> dict[str, Any]:
    answer = requests.get(f"{server.collection_url}objects/{stix_id}/", auth=server.auth,
                          headers={"Accept": "application/taxii+json;version=2.1"}, timeout=10)
    answer.raise_for_status()
    [obj] = answer.json()["objects"]
    return dict(obj)


def test_plan_apply_plan_has_no_changes(tmp_path: Path, taxii_server: TaxiiServer, target: dict[str, Any]) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(120)], batch_size=40)
    assert make_plan(root).counts["create"] == 121
    apply(root)
    assert len(collection_versions(taxii_server)) == 121
    second = make_plan(root)
    assert not second.has_changes and second.counts["unchanged"] == 121


def test_another_checkout_reads_the_state_without_the_local_cache(
    tmp_path: Path, taxii_server: TaxiiServer, target: dict[str, Any]
) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(5)])
    apply(root)
    other = write_repo(tmp_path / "other", target, [indicator(n) for n in range(5)])
    plan = make_plan(other)
    assert not plan.has_changes and plan.counts["unchanged"] == 6


def test_a_changed_object_becomes_a_new_version_and_a_removed_one_is_revoked(
    tmp_path: Path, taxii_server: TaxiiServer, target: dict[str, Any]
) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(6)])
    apply(root)
    write_repo(root, target, [indicator(0, description="Now a sinkhole"), *(indicator(n) for n in range(1, 5))])
    plan = make_plan(root)
    assert [(c.action, c.effective_modified) for c in plan.changes] == [
        ("update", "2025-01-01T00:00:00.001Z"), ("revoke", "2025-01-01T00:00:00.001Z")]
    apply(root, plan)
    assert not make_plan(root).has_changes
    held = collection_versions(taxii_server)
    assert [v for i, v in held if i == indicator(0)["id"]] == ["2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00.001Z"]
    assert stored_object(taxii_server, indicator(0)["id"])["description"] == "Now a sinkhole"
    assert stored_object(taxii_server, indicator(5)["id"])["revoked"] is True


def test_a_rejected_object_is_reported_and_retried_by_the_next_apply(
    tmp_path: Path, taxii_server: TaxiiServer, target: dict[str, Any]
) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(4)])
    rejected = indicator(2)["id"]
    taxii_server.reject({rejected: "pattern refused by policy"})
    with pytest.raises(ApplyIncomplete, match=f"{rejected}: TAXII server: pattern refused by policy") as caught:
        apply(root)
    assert [e.stix_id for e in caught.value.errors] == [rejected]
    assert len(collection_versions(taxii_server)) == 4  # the rest of the batch landed
    [change] = make_plan(root).changes
    assert (change.action, change.id) == ("create", rejected)
    taxii_server.reject({})
    apply(root)
    assert not make_plan(root).has_changes


def test_a_changed_object_without_modified_is_refused_by_name_not_counted_as_written(
    tmp_path: Path, taxii_server: TaxiiServer, target: dict[str, Any]
) -> None:
    # A collection keys a version by id and modified (created without one): a changed marking
    # definition is the version it holds already. Its "already held" read as written, exit 0,
    # and every later plan showed the same update while the server kept the old statement.
    statement = {"type": "marking-definition", "spec_version": "2.1",
                 "id": "marking-definition--4444aaaa-4444-4444-8444-444444444444",
                 "created": "2024-01-01T00:00:00.000Z", "definition_type": "statement",
                 "definition": {"statement": "Copyright Contoso"}}
    root = write_repo(tmp_path / "repo", target, [statement, indicator(1)])
    apply(root)
    changed = {**statement, "definition": {"statement": "Copyright Contoso, 2025"}}
    write_repo(root, target, [changed, indicator(1, description="Now a sinkhole")])
    with pytest.raises(ApplyIncomplete, match="an object without 'modified' cannot be changed in place") as caught:
        apply(root)
    assert [e.stix_id for e in caught.value.errors] == [statement["id"]]
    assert stored_object(taxii_server, indicator(1)["id"])["description"] == "Now a sinkhole"  # the rest landed
    assert stored_object(taxii_server, statement["id"])["definition"] == statement["definition"]


def test_an_object_without_modified_or_created_is_found_under_its_date_added(
    tmp_path: Path, taxii_server: TaxiiServer, target: dict[str, Any]
) -> None:
    # An SCO (an enriched ipv4-addr carries the enrichment extension) has no version of its own;
    # the manifest names it by its date_added. It was never found under that version: every plan
    # showed it as to create, and each apply failed on the collection's refusal of the re-POST.
    address = {"type": "ipv4-addr", "spec_version": "2.1", "id": "ipv4-addr--33333333-3333-4333-8333-333333333333",
               "value": "9.9.9.9"}
    root = write_repo(tmp_path / "repo", target, [address, indicator(1)])
    apply(root)
    plan = make_plan(root)
    assert not plan.has_changes and plan.counts["unchanged"] == 3
    other = write_repo(tmp_path / "other", target, [address, indicator(1)])
    plan = make_plan(other)  # no digest cache: read back once, then found as the same object
    assert not plan.has_changes and plan.counts["unchanged"] == 3
    assert not make_plan(other).has_changes
    write_repo(root, target, [{**address, "value": "9.9.9.10"}, indicator(1)])
    [change] = make_plan(root).changes
    assert (change.action, change.id) == ("update", address["id"])
    with pytest.raises(ApplyIncomplete, match="an object without 'modified' cannot be changed in place"):
        apply(root)
    assert stored_object(taxii_server, address["id"])["value"] == "9.9.9.9"


@pytest.mark.parametrize("status", [429, 500])
def test_a_server_failing_for_a_while_is_ridden_out(
    tmp_path: Path, taxii_server: TaxiiServer, target: dict[str, Any], status: int
) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(3)])
    plan = make_plan(root)
    taxii_server.fail_next(status, 3, retry_after=0.05)
    sleeps: list[float] = []
    apply(root, plan, sleep=sleeps.append)
    assert sleeps == [0.05, 0.05, 0.05]
    assert len(collection_versions(taxii_server)) == 4
    assert not make_plan(root).has_changes


def test_a_re_posted_version_counts_as_present(tmp_path: Path, taxii_server: TaxiiServer,
                                               target: dict[str, Any]) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(1)])
    apply(root)
    from tiops.stores import open_store

    store = open_store("t", target, root)
    try:  # medallion answers this POST with a failure: the version is there, so it is no error
        assert store.write_versions([indicator(1)]) == []
    finally:
        store.close()
    assert len(collection_versions(taxii_server)) == 2


def test_credentials_never_appear_in_plans_logs_or_errors(
    tmp_path: Path, taxii_server: TaxiiServer, target: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(1)])
    password = taxii_server.auth[1]
    runner = CliRunner()
    planned = runner.invoke(main, ["-C", str(root), "plan", "-o", str(tmp_path / "plan.json")])
    assert planned.exit_code == 0, planned.output
    assert password not in (tmp_path / "plan.json").read_text() and password not in planned.output
    monkeypatch.setenv(PASSWORD_ENV, password + "-wrong")
    refused = runner.invoke(main, ["-C", str(root), "plan"])
    assert refused.exit_code != 0 and "401" in refused.output
    assert password not in refused.output


def test_a_killed_apply_converges_when_rerun(tmp_path: Path, taxii_server: TaxiiServer,
                                             target: dict[str, Any]) -> None:
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(200)], batch_size=20)
    kill_apply_midway(root, lambda: len(collection_versions(taxii_server)))
    assert 20 <= len(collection_versions(taxii_server)) < 201
    rerun = rerun_apply(root)
    assert rerun.returncode == 0, rerun.stderr
    held = collection_versions(taxii_server)
    assert len(held) == len(set(held)) == 201
    assert not make_plan(root).has_changes


def test_the_old_user_env_spelling_still_works_with_a_warning(tmp_path: Path, taxii_server: TaxiiServer,
                                                              target: dict[str, Any]) -> None:
    old = {**{k: v for k, v in target.items() if k != "username_env"}, "user_env": USER_ENV}
    root = write_repo(tmp_path / "repo", old, [indicator(n) for n in range(3)])
    result = CliRunner().invoke(main, ["-C", str(root), "plan"])
    assert result.exit_code == 0, result.output
    assert "TI130" in result.output and "username_env" in result.output
    apply(root)
    assert len(collection_versions(taxii_server)) == 4
    validated = CliRunner().invoke(main, ["-C", str(root), "validate"])
    assert "TI130" in validated.output and "tiops.yaml:" in validated.output


class _Killed(BaseException):
    """The process dying right after the server took a batch, before anything else ran."""


def test_objects_sent_just_before_a_kill_stay_tiops_own(tmp_path: Path, taxii_server: TaxiiServer,
                                                        target: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from taxii2client.v21 import Collection  # type: ignore[import-untyped]

    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(6)], batch_size=3)
    real = Collection.add_objects

    def sent_then_killed(self: Any, *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        raise _Killed

    monkeypatch.setattr(Collection, "add_objects", sent_then_killed)
    with pytest.raises(_Killed):
        apply(root, batch_size=3)
    monkeypatch.setattr(Collection, "add_objects", real)
    sent = {i for i, _ in collection_versions(taxii_server)}
    assert sent and len(sent) < 7
    plan = make_plan(root)
    assert plan.managed >= len(sent)  # what it sent is tiops' own, not someone else's
    apply(root, plan)
    # One it sent before the kill leaves the repository: it is revoked, as any object tiops wrote.
    gone = sorted(sent - {"identity--" + i.split("--", 1)[1] for i in sent if i.startswith("identity--")})[0]
    kept = [indicator(n) for n in range(6) if indicator(n)["id"] != gone]
    write_repo(root, target, kept, batch_size=3)
    assert [(c.action, c.id) for c in make_plan(root).changes] == [("revoke", gone)]

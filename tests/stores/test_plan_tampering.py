"""apply refuses a saved plan whose changes do not follow from the repository compiled now."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_plan_apply import indicator, versions, write_repo

from tiops.cli import main


def saved_plan(tmp_path: Path, objects: list[dict[str, Any]], before: list[dict[str, Any]] | None = None) -> tuple[Path, Path, dict[str, str]]:
    target = {"type": "sqlite", "path": str(tmp_path / "store.sqlite")}
    root = write_repo(tmp_path / "repo", target, before or objects, max_remove_share=1)
    runner = CliRunner()
    if before is not None:
        assert runner.invoke(main, ["-C", str(root), "apply", "--auto-approve"]).exit_code == 0
        write_repo(root, target, objects, max_remove_share=1)
    plan = tmp_path / "plan.json"
    result = runner.invoke(main, ["-C", str(root), "plan", "-o", str(plan)])
    assert result.exit_code == 0, result.output
    return root, plan, target


def edit(plan: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(plan.read_text())
    change(data)
    plan.write_text(json.dumps(data))


def apply_saved(root: Path, plan: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-C", str(root), "apply", str(plan)])
    assert result.exit_code != 3, result.output
    return result.exit_code, result.output


def by_id(data: dict[str, Any], stix_id: str) -> dict[str, Any]:
    return next(change for change in data["changes"] if change["id"] == stix_id)


def set_name(data: dict[str, Any]) -> None:
    change = by_id(data, indicator(1)["id"])
    change["object"]["name"] = "Never validated"


def set_name_and_digest(data: dict[str, Any]) -> None:
    from tiops.stores import content_digest

    change = by_id(data, indicator(1)["id"])
    change["object"]["pattern"] = "[ipv4-addr:value = '6.6.6.6']"
    change["digest"] = content_digest(change["object"])


def add_a_create(data: dict[str, Any]) -> None:
    from tiops.stores import content_digest

    extra = indicator(99)
    data["changes"].append({"action": "create", "id": extra["id"], "type": "indicator", "stored": None,
                            "compiled_modified": extra["modified"], "effective_modified": extra["modified"],
                            "object": extra, "digest": content_digest(extra), "drift": False, "fields": []})
    data["counts"]["create"] += 1


def drop_a_change(data: dict[str, Any]) -> None:
    data["changes"] = [c for c in data["changes"] if c["id"] != indicator(1)["id"]]


@pytest.mark.parametrize("tamper", [set_name, set_name_and_digest, add_a_create, drop_a_change])
def test_a_tampered_create_plan_is_refused_and_nothing_is_written(tmp_path: Path, tamper: Callable[[dict[str, Any]], None]) -> None:
    root, plan, target = saved_plan(tmp_path, [indicator(1), indicator(2)])
    edit(plan, tamper)
    code, output = apply_saved(root, plan)
    assert code == 1 and "the saved plan was changed after it was made" in output
    assert not (tmp_path / "store.sqlite").exists() or versions(root, target) == []


def test_a_tampered_update_is_refused(tmp_path: Path) -> None:
    root, plan, target = saved_plan(tmp_path, [indicator(1, "Sinkholed")], before=[indicator(1)])
    edit(plan, set_name)
    code, output = apply_saved(root, plan)
    assert code == 1 and "its update of indicator--" in output
    assert len(versions(root, target)) == 2  # the identity and the first version only


def test_a_tampered_revocation_is_refused(tmp_path: Path) -> None:
    root, plan, target = saved_plan(tmp_path, [indicator(2)], before=[indicator(1), indicator(2)])

    def unrevoke_content(data: dict[str, Any]) -> None:
        by_id(data, indicator(1)["id"])["object"]["description"] = "Planted"

    edit(plan, unrevoke_content)
    code, output = apply_saved(root, plan)
    assert code == 1 and "carries content the target does not hold" in output
    assert not any(revoked for _, _, revoked in versions(root, target))


def test_a_dropped_revocation_is_refused(tmp_path: Path) -> None:
    root, plan, _ = saved_plan(tmp_path, [indicator(2)], before=[indicator(1), indicator(2)])
    edit(plan, drop_a_change)
    code, output = apply_saved(root, plan)
    assert code == 1 and "the saved plan was changed after it was made" in output


def test_an_untouched_plan_applies(tmp_path: Path) -> None:
    root, plan, target = saved_plan(tmp_path, [indicator(1, "Sinkholed"), indicator(3)], before=[indicator(1), indicator(2)])
    code, output = apply_saved(root, plan)
    assert code == 0, output
    assert {(stix_id, revoked) for stix_id, _, revoked in versions(root, target)} >= {
        (indicator(2)["id"], True), (indicator(3)["id"], False)}


@pytest.mark.parametrize("bad", [[1, 2], "text", None])
def test_a_plan_whose_object_is_not_a_mapping_is_not_a_plan(tmp_path: Path, bad: object) -> None:
    root, plan, _ = saved_plan(tmp_path, [indicator(1)])
    edit(plan, lambda data: data["changes"][0].__setitem__("object", bad))
    code, output = apply_saved(root, plan)
    assert code == 2 and "not a tiops plan file" in output


def test_a_revocation_holding_what_orjson_cannot_write_is_refused(tmp_path: Path) -> None:
    root, plan, _ = saved_plan(tmp_path, [indicator(2)], before=[indicator(1), indicator(2)])
    deep: object = "x"
    for _ in range(300):
        deep = [deep]

    def plant(data: dict[str, Any]) -> None:
        by_id(data, indicator(1)["id"])["object"]["x_deep"] = deep

    edit(plan, plant)
    code, output = apply_saved(root, plan)
    assert code == 1 and "carries content the target does not hold" in output


def test_a_plan_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path) -> None:
    # /dev/zero never ends: reading it whole made apply hang and fill memory.
    import os

    root, _, target = saved_plan(tmp_path, [indicator(1)])
    fifo = tmp_path / "plan.fifo"
    os.mkfifo(fifo)
    for plan in (Path("/dev/zero"), fifo):
        code, output = apply_saved(root, plan)
        assert code == 2 and "cannot read the plan" in output and "not a regular file" in output, output
    assert versions(root, target) == []


def test_a_plan_missing_a_count_names_what_it_misses(tmp_path: Path) -> None:
    root, plan, _ = saved_plan(tmp_path, [indicator(1)])
    edit(plan, lambda data: data.__setitem__("counts", {}))
    code, output = apply_saved(root, plan)
    # str() of the KeyError was the bare key: "not a tiops plan file: 'unchanged'".
    assert code == 2 and "not a tiops plan file: it has no 'unchanged'" in output
    assert "Make a new plan with 'tiops plan -o FILE'" in output

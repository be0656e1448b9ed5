"""`tiops plan` against a TAXII collection whose server misbehaves (tests/misbehaving_taxii.py).

The plan reads the collection's manifest page by page (TAXII 2.1 section 5.6). Pages that
go round in a circle, pages that are not envelopes, and entries without an id or a version
must end the plan with a clear error naming the server, never an internal error and never
a plan that asks the server forever.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from misbehaving_taxii import Server
from test_plan_apply import indicator, write_repo

from tiops.cli import main
from tiops.paging import MAX_IDLE_PAGES

ENTRY = {"id": "indicator--00000000-0000-4000-8000-000000000001", "date_added": "2025-01-01T00:00:00.000Z",
         "version": "2025-01-01T00:00:00.000Z", "media_type": "application/stix+json;version=2.1"}


def _plan(tmp_path: Path, server: Server) -> tuple[int, str]:
    root = write_repo(tmp_path / "repo", {"type": "taxii", "url": server.collection_url}, [indicator(1)])
    result = CliRunner().invoke(main, ["-C", str(root), "plan"])
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return result.exit_code, result.output


def test_a_manifest_that_goes_round_in_a_circle_ends_the_plan(tmp_path: Path,
                                                              misbehaving_taxii: Callable[[Any], Server]) -> None:
    server = misbehaving_taxii(lambda endpoint, number, query: {"more": True, "next": "1", "objects": [ENTRY]})
    code, output = _plan(tmp_path, server)
    assert code == 1
    assert f"sent {MAX_IDLE_PAGES} pages in a row with no object it had not sent already" in output
    assert server.requests <= MAX_IDLE_PAGES + 5


@pytest.mark.parametrize(("answer", "said"), [
    ([ENTRY], "sent an answer that is not TAXII 2.1: a page is a JSON array, not an envelope object"),
    ({"objects": "entries"}, "sent an answer that is not TAXII 2.1: 'objects' is a JSON string, not a list"),
    ({"objects": [{"version": "2025-01-01T00:00:00.000Z"}]}, "sent a manifest entry without an id and a version"),
    ({"objects": [{"id": ENTRY["id"]}]}, "sent a manifest entry without an id and a version"),
])
def test_a_manifest_page_of_the_wrong_shape_ends_the_plan(tmp_path: Path, misbehaving_taxii: Callable[[Any], Server],
                                                          answer: Any, said: str) -> None:
    code, output = _plan(tmp_path, misbehaving_taxii(lambda endpoint, number, query: answer))
    assert code == 1
    assert said in output


@pytest.mark.parametrize("url", ["ftp://taxii.example/api1/collections/c/", "http://[::1/api1/collections/c/",
                                 "http://taxii.example:port/collections/c/", "taxii.example/collections/c/"])
def test_a_target_url_that_is_not_http_is_a_usage_error_naming_the_target(tmp_path: Path, url: str) -> None:
    # requests' own InvalidURL and InvalidSchema used to escape as internal errors.
    from tiops.errors import UsageError
    from tiops.stores import open_store

    with pytest.raises(UsageError, match=r"target 'partner': url .* is not an http:// or https:// URL"):
        open_store("partner", {"type": "taxii", "url": url}, tmp_path)

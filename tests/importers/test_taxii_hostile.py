"""`tiops import taxii` against a TAXII server that misbehaves (a real HTTP server on 127.0.0.1).

The OASIS reference server always answers well; these answers are the ones it never
gives: pages that go round in a circle, pages that never end, and pages that are not
envelopes (TAXII 2.1 sections 3.4 and 3.7). Each must end the pull with a clear error,
write nothing and move no checkpoint, so that a later pull starts from the same place.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from misbehaving_taxii import COLLECTION, Server

from tiops.cli import main
from tiops.importers.taxii import CHECKPOINT_FILE
from tiops.paging import MAX_IDLE_PAGES

INDICATOR = {
    "type": "indicator", "spec_version": "2.1", "id": "indicator--11111111-1111-4111-8111-111111111111",
    "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "name": "Indicator",
    "pattern": "[ipv4-addr:value = '198.51.100.1']", "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z",
}
def _pull(tmp_path: Path, server: Server) -> tuple[int, str]:
    (tmp_path / "intel").mkdir(exist_ok=True)
    result = CliRunner().invoke(main, ["-C", str(tmp_path), "import", "taxii", server.api_root, "--collection",
                                       COLLECTION, "--source", "feed"])
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return result.exit_code, result.output


def _nothing_written(tmp_path: Path) -> bool:
    folder = tmp_path / "intel" / "feed"
    written = list(folder.rglob("*.yaml")) + list(folder.glob(CHECKPOINT_FILE)) if folder.exists() else []
    return not written


def test_pages_that_go_round_in_a_circle_stop_the_pull(tmp_path: Path, misbehaving_taxii: Callable[[Any], Server]) -> None:
    server = misbehaving_taxii(lambda endpoint, number, query: {"more": True, "next": "page-2", "objects": [INDICATOR]})
    code, output = _pull(tmp_path, server)
    assert code == 1
    assert (f"sent {MAX_IDLE_PAGES} pages in a row with no object it had not sent already, while saying there "
            "are more: the read would never end") in output
    assert server.requests <= MAX_IDLE_PAGES + 3 and _nothing_written(tmp_path)


def test_more_pages_without_a_token_stop_the_pull(tmp_path: Path, misbehaving_taxii: Callable[[Any], Server]) -> None:
    # taxii2client asks for the first page again when no token is given: a circle too.
    server = misbehaving_taxii(lambda endpoint, number, query: {"more": True, "objects": [INDICATOR]})
    code, output = _pull(tmp_path, server)
    assert code == 1 and "the read would never end" in output
    assert _nothing_written(tmp_path)


def test_pages_that_never_bring_an_object_stop_the_pull(tmp_path: Path, misbehaving_taxii: Callable[[Any], Server]) -> None:
    server = misbehaving_taxii(lambda endpoint, number, query: {"more": True, "next": f"token-{number}", "objects": []})
    code, output = _pull(tmp_path, server)
    assert code == 1 and f"sent {MAX_IDLE_PAGES} pages in a row with no object" in output
    assert server.requests <= MAX_IDLE_PAGES + 3 and _nothing_written(tmp_path)


def test_one_token_for_the_whole_query_is_followed(tmp_path: Path, misbehaving_taxii: Callable[[Any], Server]) -> None:
    # A cursor behind one token, as the OASIS reference server keeps it: 25 pages, each new.
    def page(endpoint: str, number: int, query: dict[str, list[str]]) -> Any:
        objects = [dict(INDICATOR, id=f"indicator--{number:08d}-1111-4111-8111-111111111111")]
        return {"more": number < 26, "next": "the-query", "objects": objects}

    code, output = _pull(tmp_path, misbehaving_taxii(page))
    assert code == 0, output
    assert "created 25" in output


def test_pages_that_bring_objects_are_followed_to_the_end(tmp_path: Path, misbehaving_taxii: Callable[[Any], Server]) -> None:
    def page(endpoint: str, number: int, query: dict[str, list[str]]) -> Any:
        step = int(query.get("next", ["0"])[0])
        if step < 30:  # more pages than the empty-page limit, each with an object or none
            objects = [dict(INDICATOR, id=f"indicator--{step:08d}-1111-4111-8111-111111111111")] if step % 2 else []
            return {"more": True, "next": str(step + 1), "objects": objects}
        return {"more": False, "objects": [INDICATOR]}

    code, output = _pull(tmp_path, misbehaving_taxii(page))
    assert code == 0, output
    assert "created 16" in output and "in 31 page(s)" in output


@pytest.mark.parametrize(("answer", "said"), [
    ([INDICATOR], "a page is a JSON array, not an envelope object"),
    ("objects", "a page is a JSON string, not an envelope object"),
    ({"more": False, "objects": 5}, "'objects' is a JSON number, not a list"),
    ({"more": False, "objects": {"id": "x"}}, "'objects' is a JSON object, not a list"),
    ({"more": "false", "objects": [INDICATOR]}, "'more' is a JSON string, not true or false"),
])
def test_a_page_that_is_not_an_envelope_is_a_clear_error(tmp_path: Path, misbehaving_taxii: Callable[[Any], Server],
                                                          answer: Any, said: str) -> None:
    code, output = _pull(tmp_path, misbehaving_taxii(lambda endpoint, number, query: answer))
    assert code == 1
    assert "sent an answer that is not TAXII 2.1: " + said + " (section 3.7, envelope)" in output
    assert _nothing_written(tmp_path)


def test_a_web_page_in_place_of_taxii_says_so_without_the_clients_python_advice(
        tmp_path: Path, misbehaving_taxii: Callable[[Any], Server]) -> None:
    from misbehaving_taxii import Answer

    page = Answer("<html><body>Sign in</body></html>", content_type="text/html")
    code, output = _pull(tmp_path, misbehaving_taxii(lambda endpoint, number, query: page))
    assert code == 1
    assert "sent an answer that is not TAXII 2.1: " in output and "text/html" in output
    assert "taxii2client" not in output and "import X" not in output
    assert "check that the URL is the server's API root" in output
    assert _nothing_written(tmp_path)


def test_an_envelope_without_objects_is_an_empty_page(tmp_path: Path, misbehaving_taxii: Callable[[Any], Server]) -> None:
    code, output = _pull(tmp_path, misbehaving_taxii(lambda endpoint, number, query: {"more": False}))
    assert code == 0, output
    assert "pulled 0 object(s) in 1 page(s)" in output


SECRET = "S3cret-in-the-url"


def test_credentials_in_the_url_are_sent_but_never_shown_or_written(tmp_path: Path,
                                                                    misbehaving_taxii: Callable[[Any], Server]) -> None:
    from tiops.importers.taxii import _write_checkpoint, read_checkpoint

    server = misbehaving_taxii(lambda endpoint, number, query: {"more": False, "objects": [INDICATOR]})
    (tmp_path / "intel").mkdir()
    api_root = server.api_root.replace("http://", f"http://publisher:{SECRET}@")
    result = CliRunner().invoke(main, ["-C", str(tmp_path), "import", "taxii", api_root, "--collection", COLLECTION,
                                       "--source", "feed"])
    assert result.exit_code == 0 and "created 1" in result.output, result.output
    assert SECRET not in result.output and f"from {server.collection_url}" in result.output
    # The checkpoint, which the team commits, names the collection without them, and reads an older file
    # that named it with them (rewriting it without).
    url = server.collection_url.replace("http://", f"http://publisher:{SECRET}@")
    folder = tmp_path / "intel" / "feed"
    (folder / CHECKPOINT_FILE).write_text(f'{{"collections": {{"{url}": {{"added_after": "2025-01-01T00:00:00Z"}}}}}}')
    assert read_checkpoint(folder, url) == "2025-01-01T00:00:00Z"
    _write_checkpoint(folder, url, "2025-02-01T00:00:00Z")
    assert SECRET not in (folder / CHECKPOINT_FILE).read_text() and read_checkpoint(folder, url) == "2025-02-01T00:00:00Z"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_a_server_that_does_not_answer_ends_the_pull(tmp_path: Path, misbehaving_taxii: Callable[[Any], Server],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from misbehaving_taxii import Answer

    from tiops.importers import taxii

    monkeypatch.setattr(taxii, "TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(taxii, "_RETRIES", 0)
    server = misbehaving_taxii(lambda endpoint, number, query: Answer({"more": False, "objects": [INDICATOR]}, delay=3))
    code, output = _pull(tmp_path, server)
    assert code == 1 and "cannot reach the TAXII server" in output and "no answer within 0.5 s" in output
    assert _nothing_written(tmp_path)


def test_a_transient_failure_is_asked_again(tmp_path: Path, misbehaving_taxii: Callable[[Any], Server],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from misbehaving_taxii import Answer

    def page(endpoint: str, number: int, query: dict[str, list[str]]) -> Any:
        busy = number <= 2  # the collection request and the first page get 429, then 503
        return Answer({"title": "busy"}, status=429 if number == 1 else 503) if busy else {"more": False,
                                                                                         "objects": [INDICATOR]}

    server = misbehaving_taxii(page)
    code, output = _pull(tmp_path, server)
    assert code == 0 and "created 1" in output, output


def test_an_object_naming_a_property_twice_is_rejected_alone(tmp_path: Path,
                                                              misbehaving_taxii: Callable[[Any], Server]) -> None:
    from misbehaving_taxii import Answer

    # taxii2client's JSON parser kept the last "name" without a word.
    other = {**INDICATOR, "id": "indicator--22222222-2222-4222-8222-222222222222",
             "pattern": "[ipv4-addr:value = '198.51.100.2']"}
    twice = json.dumps(other).replace('"name": "Indicator"', '"name": "Indicator", "name": "Renamed"')
    page = f'{{"more": false, "objects": [{json.dumps(INDICATOR)}, {twice}]}}'.encode()
    server = misbehaving_taxii(lambda endpoint, number, query: Answer(None, raw=page))
    code, output = _pull(tmp_path, server)
    assert code == 1, output
    assert "total 2, created 1," in output and "rejected 1," in output
    assert ("index 1 indicator--22222222-2222-4222-8222-222222222222: name: written twice with different values "
            "('Indicator', 'Renamed')") in output


def test_an_envelope_naming_a_member_twice_stops_the_pull(tmp_path: Path,
                                                           misbehaving_taxii: Callable[[Any], Server]) -> None:
    from misbehaving_taxii import Answer

    page = f'{{"more": false, "objects": [{json.dumps(INDICATOR)}], "objects": []}}'.encode()
    server = misbehaving_taxii(lambda endpoint, number, query: Answer(None, raw=page))
    code, output = _pull(tmp_path, server)
    assert code == 1 and "sent an envelope that names 'objects' more than once" in output
    assert _nothing_written(tmp_path)


@pytest.mark.parametrize("api_root", ["https://user:secret@taxii.example/api1/?token=secret",
                                      "https://taxii.example/api1/#secret", "https://taxii.example/api1?x=secret#y"])
def test_an_api_root_with_a_query_or_fragment_is_refused_without_showing_it(api_root: str) -> None:
    """The collection's path was appended after the query: the pull asked another URL."""
    from tiops.errors import UsageError
    from tiops.importers.taxii import collection_url

    with pytest.raises(UsageError) as raised:
        collection_url(api_root, "91a7b528-80eb-42ed-a74d-c6fbd5a26116")
    assert "query or fragment" in str(raised.value) and "secret" not in str(raised.value)
    assert collection_url("https://taxii.example/api1", "c") == "https://taxii.example/api1/collections/c/"

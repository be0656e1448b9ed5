"""One grammar, one meaning: the same expressions through `tiops query` and through the
report browser in headless Chromium give the same objects; object pages name what they
reference."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sitedata import object_url

from tiops.cli import main
from tiops.report import build_report

AS_OF = "2024-11-01"
ICS_TECHNIQUE = "attack-pattern--0b8b6f4e-2d3c-4f5a-9b1c-8e7d6a5b4c3d"
WINDOWS_INDICATOR = "indicator--5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
EXTRA = [
    {"type": "attack-pattern", "spec_version": "2.1", "id": ICS_TECHNIQUE, "name": "Spearphishing Attachment (ICS)",
     "created": "2024-09-12T15:10:00.000Z", "modified": "2024-09-12T15:10:00.000Z", "x_mitre_deprecated": True,
     "created_by_ref": "identity--ff888c08-eabd-425f-b26a-66adce26a4b0",
     "object_marking_refs": ["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"],
     "external_references": [
         {"source_name": "mitre-ics-attack", "external_id": "T0865", "url": "https://attack.mitre.org/techniques/T0865"},
         {"source_name": "hostile", "url": "javascript:window.__clicked=1"}]},
    {"type": "indicator", "spec_version": "2.1", "id": WINDOWS_INDICATOR, "name": "Dropper path",
     "created": "2024-10-01T00:00:00.000Z", "modified": "2024-10-01T00:00:00.000Z", "valid_from": "2024-10-01T00:00:00Z",
     "pattern_type": "stix", "indicator_types": ["malicious-activity"], "confidence": 65, "revoked": True,
     "pattern": "[file:name = 'C:\\\\Users\\\\o\\'neil\\\\evil.exe'] OR [file:hashes.'SHA-256' = "
                "'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']"},
]
# A type an extension-definition adds (STIX 2.1 section 7.3, new-sdo): searched as any other.
EXTRA += [
    {"type": "extension-definition", "spec_version": "2.1", "id": "extension-definition--9c59fd79-4215-4ba2-920d-3e4f320e1e62",
     "created": "2022-01-01T00:00:00.000Z", "modified": "2022-01-01T00:00:00.000Z",
     "created_by_ref": "identity--3b241a2b-0f6e-45f2-8247-30783a977105", "name": "Malware behavior",
     "schema": "https://example.com/mb.json", "version": "1.0.0", "extension_types": ["new-sdo"]},
    {"type": "malware-behavior", "spec_version": "2.1", "id": "malware-behavior--ac97aae4-83f1-46ca-a351-7aeb76678189",
     "created": "2024-09-01T00:00:00.000Z", "modified": "2024-09-01T00:00:00.000Z", "name": "Process Injection",
     "extensions": {"extension-definition--9c59fd79-4215-4ba2-920d-3e4f320e1e62": {"extension_type": "new-sdo"}}},
]
# The same hosts written other ways (tiops/query/keys.py): a /32, an uncompressed IPv6 address in
# upper case, a name in U-labels with the root's dot.
EXTRA += [
    {"type": "indicator", "spec_version": "2.1", "id": f"indicator--6d1e3c2b-0a4f-4e8d-9c7b-{number:012d}",
     "created": "2024-10-02T00:00:00.000Z", "modified": "2024-10-02T00:00:00.000Z", "valid_from": "2024-10-02T00:00:00Z",
     "pattern_type": "stix", "pattern": pattern}
    for number, pattern in ((1, "[ipv4-addr:value = '198.51.100.23/32']"), (2, "[ipv6-addr:value = '2001:0DB8::0023']"),
                            (3, "[domain-name:value = 'Bücher.example.']"), (4, "[ipv4-addr:value = '198.51.100.0/24']"))
]
EXTRA += [  # names that only full case folding (str.casefold) makes equal: toLowerCase leaves ß and ς as they are
    {"type": "malware", "spec_version": "2.1", "id": f"malware--7e2d4c1b-3a5f-4b6e-8d9c-{number:012d}", "name": name,
     "created": "2024-10-03T00:00:00.000Z", "modified": "2024-10-03T00:00:00.000Z", "is_family": False}
    for number, name in ((1, "Straße Loader"), (2, "STRASSE LOADER"), (3, "ΣΚΙΑΣ"), (4, "σκιας"))
]
EXPRESSIONS = [
    'name = "straße loader"',
    "name in ['STRASSE LOADER']",
    "name contains strasse or name contains ΣΚΙΑΣ",
    'name starts-with "STRAß" or name ends-with "SSE LOADER"',
    "name ends-with σκιαΣ and type = malware",
    "type = indicator",
    "type = malware-behavior",
    "observable = 198.51.100.23",
    "observable = aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f",
    'observable = "C:\\\\Users\\\\o\'neil\\\\evil.exe"',
    "observable ends-with .EXE",
    "observable = ::FFFF:198.51.100.23",
    "observable in [2001:db8::23, xn--bcher-kva.example, '198.51.100.0/255.255.255.0']",
    "observable = bücher.example and type = indicator",
    "observable != 198.51.100.23/32 and observable_type = ipv4-addr",
    "not observable in ['2001:db8:0:0:0:0:0:23', BÜCHER.EXAMPLE] and observable exists",
    "observable_type in [ipv4-addr, ipv6-addr]",
    "external_id = T0865 or external_id starts-with t1566",
    "(tags exists and (confidence >= 80 or tlp = amber)) or (type = malware and not name contains wick)",
    "not type in [relationship, indicator, marking-definition]",
    "confidence > 60 and confidence <= 90",
    "valid_until < 2025-01-01",
    "modified >= 2024-10-01T00:00:00.5Z",
    "name matches '^Wick'",
    "name matches '(?i)^wick'",  # RE2's leading flags, in the browser too
    "name matches '(?=Wick)'",  # lookaround: RE2 refuses it, and so does the browser
    r"observable matches '\\A198\\.51\\.100\\.\\d+\\z'",  # a backslash in a quoted value is written twice
    "tlp != amber and type != relationship",
    "external_references.source_name = mitre-attack",
    "kill_chain_phases.phase_name = initial-access",
    "revoked = true or x_mitre_deprecated = true",
    "source = 'Contoso TI' and not-exists",  # a syntax error in both
    "labels contains c2 or indicator_types = anomalous-activity",
    "description contains Woodgrove and created < 2024-10-01",
    # A timestamp equals the moment it names, whatever its precision; a date is midnight UTC.
    "created = 2024-09-20T11:00:00Z",
    "created in [2024-09-12T15:10:00.0Z, 2024-10-01]",
    "created != 2024-09-20T11:00:00.000000Z and type = indicator",
    "created > 2024-02-30",  # no such day: an error in both
    "modified < 2024-09-20T24:00:00Z",  # no such hour
]


@pytest.fixture
def site(example_repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    (example_repo / "intel" / "extra.yaml").write_text(json.dumps(EXTRA), encoding="utf-8")
    out = tmp_path / "site"
    build_report(example_repo, out, as_of=AS_OF)
    # tiops query reads the bundle compiled at the same as-of time as the report.
    assert CliRunner().invoke(main, ["-C", str(example_repo), "compile", "--as-of", AS_OF]).exit_code == 0
    return example_repo, out


def cli_ids(repo: Path, expression: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["-C", str(repo), "query", expression, "--format", "ids"])
    return result.exit_code, sorted(result.stdout.split()) if result.exit_code == 0 else []


def fill_condition(condition: Any, field: str, op: str, value: str) -> None:
    """One row of the condition builder: its field, operator and value."""
    condition.locator(".field").select_option(field)
    condition.locator(".op").select_option(op)
    condition.locator(".value").fill(value)


def browser_ids(page: Any, site: Path, expression: str) -> tuple[bool, list[str]]:
    page.goto((site / "browse.html").as_uri() + "#q=" + urllib.parse.quote(expression))
    page.wait_for_function("expected => document.querySelector('#query').value === expected", arg=expression)
    page.wait_for_selector("#status:not(:empty)")
    if page.locator("#query-error").inner_text().strip():
        return False, []
    found: list[str] = []
    while True:
        found.extend(page.eval_on_selector_all("#results tbody tr", "rows => rows.map(r => r.dataset.id)"))
        if page.locator("#next").is_disabled():
            return True, sorted(found)
        page.click("#next")


def test_the_same_expressions_find_the_same_objects(browser: Any, site: tuple[Path, Path]) -> None:
    repo, out = site
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    compared = 0
    for expression in EXPRESSIONS:
        exit_code, expected = cli_ids(repo, expression)
        parsed, found = browser_ids(page, out, expression)
        assert (exit_code == 0) == parsed, expression
        assert found == expected, expression
        compared += bool(expected)
    assert compared >= len(EXPRESSIONS) - 4  # every expression finds something but the four that are errors
    assert errors == []
    page.close()


def test_typos_are_errors_in_the_browser_too(browser: Any, site: tuple[Path, Path]) -> None:
    _, out = site
    page = browser.new_page()
    for expression, message in (("typ = indicator", "did you mean 'type'"), ("confidence >= high", "is a number"),
                                ("type = indicatr", "did you mean 'indicator'"),
                                ("created > 2024-99-99", "is a timestamp; '2024-99-99' is not one"),
                                ("enrichment.bogus = 1", "unknown field 'enrichment.bogus'"),
                                ("whois.registerd exists", "did you mean 'whois.registered'"),
                                ("type in []", "needs a non-empty list")):
        page.goto((out / "browse.html").as_uri() + "#q=" + urllib.parse.quote(expression))
        page.wait_for_function("expected => document.querySelector('#query').value === expected", arg=expression)
        assert message in page.locator("#query-error").inner_text()
        assert page.locator("#results tbody tr").count() == 0
    page.close()


def test_a_suggestion_is_named_once(browser: Any, site: tuple[Path, Path]) -> None:
    _, out = site
    page = browser.new_page()
    page.goto((out / "browse.html").as_uri() + "#q=" + urllib.parse.quote("nam = x"))
    page.wait_for_function("document.querySelector('#query-error').textContent.includes('did you mean')")
    message = page.locator("#query-error").inner_text()
    suggestions = re.findall(r"'([^']+)'", message.split("did you mean", 1)[1])
    assert suggestions and len(suggestions) == len(set(suggestions)), message
    page.close()


@pytest.mark.parametrize("descending", [False, True])
def test_objects_without_the_sorted_value_come_last_as_in_the_cli(browser: Any, site: tuple[Path, Path],
                                                                   descending: bool) -> None:
    repo, out = site
    expression = "type = indicator or type = malware"
    sort = "confidence:desc" if descending else "confidence"
    result = CliRunner().invoke(main, ["-C", str(repo), "query", expression, "--sort", sort, "--format", "json"])
    expected = [str(obj["confidence"]) if "confidence" in obj else "" for obj in json.loads(result.stdout)]
    assert "" in expected and expected[-1] == ""  # the repository has objects without a confidence
    page = browser.new_page()
    address = "#q=" + urllib.parse.quote(expression) + "&sort=confidence" + ("&desc=1" if descending else "")
    page.goto((out / "browse.html").as_uri() + address)
    page.wait_for_function(f"document.querySelector('#status').textContent.startsWith('{len(expected)} of')")
    column = [th.strip() for th in page.locator("#results thead th").all_inner_texts()].index("Confidence")
    shown = [cells[column].strip() for cells in page.eval_on_selector_all(
        "#results tbody tr", "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))")]
    assert shown == expected
    page.close()


def test_filters_live_in_the_address_and_groups_nest(browser: Any, site: tuple[Path, Path]) -> None:
    repo, out = site
    page = browser.new_page()
    page.goto((out / "browse.html").as_uri())
    page.fill("#search", "t0865")  # free text finds external ids
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('1 of')", timeout=5000)
    page.fill("#search", "")
    page.fill("#query", "type = indicator")
    # The builder: a nested group (confidence >= 80 or tlp = red) under the AND of the root.
    page.click("#add-group")
    group = page.locator("#conditions > .group")
    group.locator(".combine").select_option("any")
    group.locator(".add-condition").click()
    group.locator(".add-condition").click()
    conditions = group.locator(".children > .condition")
    fill_condition(conditions.nth(0), "confidence", ">=", "80")
    fill_condition(conditions.nth(1), "tlp", "equals", "red")
    expected = cli_ids(repo, "type = indicator and (confidence >= 80 or tlp = red)")[1]
    # The count alone can match a state half built (the first condition only, when no red
    # indicator is below 80): wait for the address to hold the whole expression first.
    page.wait_for_function("expected => decodeURIComponent(location.hash).replace(/[+]/g, ' ').includes(expected)",
                           arg="(type = indicator) and (confidence >= 80 or tlp = red)", timeout=5000)
    page.wait_for_function(f"document.querySelector('#status').textContent.startsWith('{len(expected)} of')", timeout=5000)
    address = urllib.parse.unquote(page.evaluate("location.hash"))
    assert "(type = indicator) and (confidence >= 80 or tlp = red)" in address.replace("+", " ")
    shared = page.evaluate("location.href")
    other = browser.new_page()  # the address alone reproduces the view
    other.goto(shared)
    other.wait_for_selector("#status:not(:empty)")
    ids = sorted(other.eval_on_selector_all("#results tbody tr", "rows => rows.map(r => r.dataset.id)"))
    assert ids == expected
    other.close()
    page.close()


@pytest.mark.parametrize(("combine", "joined"), [("all", "and"), ("any", "or")])
def test_two_conditions_at_the_top_combine_as_chosen(browser: Any, site: tuple[Path, Path], combine: str,
                                                       joined: str) -> None:
    repo, out = site
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((out / "browse.html").as_uri())
    page.wait_for_selector("#status:not(:empty)")
    page.select_option("#combine", combine)
    page.click("#add-condition")
    page.click("#add-condition")
    conditions = page.locator("#conditions > .condition")
    fill_condition(conditions.nth(0), "type", "equals", "indicator")
    fill_condition(conditions.nth(1), "confidence", ">=", "80")
    built = f"(type = indicator {joined} confidence >= 80)"
    expected = cli_ids(repo, built)[1]
    page.wait_for_function("expected => decodeURIComponent(location.hash).replace(/[+]/g, ' ').includes(expected)",
                           arg=built, timeout=5000)
    page.wait_for_function(f"document.querySelector('#status').textContent.startsWith('{len(expected)} of')", timeout=5000)
    assert errors == []
    page.close()


def test_object_page_names_references_and_links_only_web_urls(browser: Any, site: tuple[Path, Path]) -> None:
    _, out = site
    page = browser.new_page()
    page.goto(object_url(out, ICS_TECHNIQUE))
    page.wait_for_selector("table.properties")
    assert "deprecated" in page.locator("h1 .deprecated").inner_text()
    properties = page.locator("table.properties").inner_text()
    assert "Contoso TI" in properties and "TLP:AMBER" in properties
    assert "identity--ff888c08" not in properties  # the id is the link's title, not its text
    assert page.locator("table.external a[href='https://attack.mitre.org/techniques/T0865']").count() == 1
    assert page.locator("a[href^='javascript']").count() == 0
    assert "javascript:window.__clicked=1" in page.locator("table.external").inner_text()  # shown, not linked
    page.goto(object_url(out, "malware--50b859d6-40df-4375-959c-7f616560f92f"))
    page.wait_for_selector("svg.graph")
    edges = page.eval_on_selector_all("svg.graph text.edge", "texts => texts.map(t => t.textContent)")
    assert "indicates" in edges
    kinds = set(page.eval_on_selector_all("svg.graph circle.node", "nodes => nodes.map(n => n.getAttribute('class'))"))
    assert {"node t-indicator"} <= kinds and len(kinds) >= 2
    colours = set(page.eval_on_selector_all("svg.graph circle.node", "nodes => nodes.map(n => getComputedStyle(n).fill)"))
    assert len(colours) >= 2  # node colour follows the type
    page.goto((out / "browse.html").as_uri() + "#q=" + urllib.parse.quote("revoked = true or x_mitre_deprecated = true"))
    page.wait_for_selector("#results tbody tr")
    assert page.locator("#results tbody tr.revoked .revoked").count() >= 1
    assert page.locator("#results tbody tr.deprecated .deprecated").count() == 1
    page.close()


def test_object_page_is_deep_linkable_and_follows_links_in_place(browser: Any, site: tuple[Path, Path]) -> None:
    """object.html#<id> opens any object from its shard; a link to another object only
    changes the address, and back returns to the first; an unknown id says so."""
    _, out = site
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    wick = "malware--50b859d6-40df-4375-959c-7f616560f92f"
    page.goto(object_url(out, wick))
    page.wait_for_selector("#object h1")
    assert "WickStealer" in page.locator("#object h1").inner_text() and page.title() == "WickStealer · tiops report"
    page.locator("ul.relationships a").filter(has_not_text="indicates").first.click()
    page.wait_for_function("expected => !document.querySelector('#object h1').textContent.includes(expected)", arg="WickStealer")
    other = page.evaluate("decodeURIComponent(location.hash.slice(1))")
    assert other != wick and other in page.locator("p.id").inner_text()
    page.go_back()
    page.wait_for_function("expected => document.querySelector('#object h1').textContent.includes(expected)", arg="WickStealer")
    page.goto(object_url(out, "malware--ffffffff-0000-4000-8000-000000000000"))
    page.wait_for_function("document.querySelector('#object-status').textContent.includes('has no object')")
    assert page.locator("#object h1").count() == 0
    assert errors == [] and all(url.startswith("file://") for url in requests)
    assert any("/data/objects/" in url for url in requests)
    page.close()


def test_the_first_view_loads_only_the_index(browser: Any, site: tuple[Path, Path]) -> None:
    """browse.html reads data/index.js alone; only a query over a field the index lacks loads the shards."""
    repo, out = site
    expected = cli_ids(repo, "description contains Woodgrove")[1]
    assert expected
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto((out / "browse.html").as_uri())
    page.wait_for_selector("#status:not(:empty)")
    page.fill("#query", "type = malware and confidence exists")
    page.wait_for_timeout(300)
    assert [url.rsplit("/", 2)[-2:] for url in requests if url.endswith(".js")] == [["data", "index.js"]]
    page.fill("#query", "description contains Woodgrove")
    page.wait_for_function(f"document.querySelector('#status').textContent.startsWith('{len(expected)} of ')")
    shards = sorted(url.rsplit("/", 1)[1] for url in requests if "/data/objects/" in url)
    assert shards == sorted(p.name for p in (out / "data" / "objects").glob("*.js"))
    assert sorted(page.eval_on_selector_all("#results tbody tr", "rows => rows.map(r => r.dataset.id)")) == expected
    page.close()


def test_the_first_page_before_the_index_is_the_page_after_it(browser: Any, site: tuple[Path, Path]) -> None:
    """The rows browse.html shows at once are those the engine shows once data/index.js is in."""
    _, out = site
    page = browser.new_page()
    page.goto((out / "browse.html").as_uri(), wait_until="commit")
    page.wait_for_selector("#status:not(:empty)")
    status = page.locator("#status").inner_text()
    before = page.eval_on_selector_all("#results tbody tr", "rows => rows.map(r => r.dataset.id)")
    page.fill("#search", "zzzz-no-such-text")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('0 of')")
    page.fill("#search", "")
    page.wait_for_function("expected => document.querySelector('#status').textContent === expected", arg=status)
    after = page.eval_on_selector_all("#results tbody tr", "rows => rows.map(r => r.dataset.id)")
    assert before == after and len(before) == min(50, int(status.split()[0]))
    page.close()


def test_the_browser_folds_case_as_python_does_for_every_character(browser: Any, site: tuple[Path, Path]) -> None:
    """tiops query compares text by str.casefold; the browser by the table the report carries. toLowerCase
    differed for 352 characters (ß, ς, µ and the long s among them)."""
    from tiops.report.build import CASED_UP_TO

    page = browser.new_page()
    page.goto((site[1] / "browse.html").as_uri())
    characters = [chr(point) for point in range(CASED_UP_TO) if not 0xD800 <= point <= 0xDFFF]
    folded = page.evaluate("chars => chars.map(ch => window.TiopsQuery.caseless(ch))", characters)
    assert [(ch, ch.casefold(), js) for ch, js in zip(characters, folded, strict=True) if ch.casefold() != js] == []
    # Nothing past the table's range folds, so the table leaves nothing out.
    assert all(chr(point).casefold() == chr(point) for point in range(CASED_UP_TO, 0x110000) if not 0xD800 <= point <= 0xDFFF)
    assert page.evaluate("window.TiopsQuery.caseless('Straße ΣΚΙΑΣ')") == "Straße ΣΚΙΑΣ".casefold()

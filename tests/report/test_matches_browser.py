"""`matches` means the same in the report browser as in `tiops query`: RE2's syntax and answers.

tiops searches with RE2; the browser has only its own RegExp, so query.js rewrites each pattern
into RegExp's syntax with RE2's meaning. Each pattern below runs through RE2 (the engine tiops
query and the rules use) and through the report's query.js in headless Chromium, on the same
texts: both give the same answer for every text, or both refuse the pattern, or the browser
says it cannot run it (RegExp has nothing the same) and names tiops query, which can.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import re2  # type: ignore[import-untyped]

QUERY_JS = Path(__file__).resolve().parents[2] / "tiops" / "report" / "static" / "query.js"

TEXTS = [
    "", "a", "A", "abc", "ABC", "aBc", "a\nb", "a\rb", "a\u2028b", "x\ny\n", "\n", "a\vb", "a\u00a0b", "a b", "a\tb",
    "Wickstealer", "wick", "198.51.100.23", "evil.exe", "C:\\Users\\evil.exe", "a{,3}", "a{", "]", "a.b", "a-b",
    "αβγ", "ΑΒΓ", "K", "\u212a", "😀", "x😀y", "aaaa", "aaab", "ab", "abab", "0x1F", "under_score", "T1566.001",
]

PATTERNS = [
    "abc", "^Wick", "(?i)^wick", "exe$", r"\.exe$", r"\d+\.\d+\.\d+\.\d+", r"^\w+$", r"\s", r"\S+", r"a\sb",
    r"[\s]", r"[^\d\s]", ".", "^.$", "a.b", "(?s)a.b", "(?m)^b", "(?m)b$", "(?m)^y$", r"\Aa", r"b\z", "^$",
    "[[:alpha:]]+$", "[[:upper:]]", "[[:punct:]]", "[[:space:]]", "[^[:alnum:]]", r"\pL+", r"\p{Greek}", r"\PL",
    r"\p{Lu}", r"\p{^Greek}", r"\Qa.b\E", r"\x{41}", r"\x41", r"\x{1F600}", r"\12", r"\-", r"a\{", "a{,3}", "a{",
    "]", "a{2}", "a{2,}", "a{1,2}b", "(?U)a+", "(?U)a+?", "a+?b", "(a|b)+$", "(?:ab)+", "(?P<x>a)b", "(?<x>a)b",
    "(?i)k", "(?i)ΑΒΓ", "(?i:a)b", "😀", "[😀]", "x.y", "T1566(\\.\\d{3})?$", "[a-c]+", "[a\\-c]", "[]a]", "[^]a]",
    r"\bwick\b", r"(?i)\bk", "a|", "|a", "(?i)(?:a|b)c", "(?s).$", "(?s)a.$", r"\A.\z", "$+", r"\b*a",
    r"[\s-z]", r"[[:word:]-~]", "[!-[:digit:]]", r"[\d-z]", r"\pC", r"[\pC]", r"a\Q\E*b", r"\x{0000041}", "(?P<é>x)",
    "(?P<1a>x)", "(?P<n>a)(?P<n>b)", "(?)a", "(a{10}){100}", r"\p{Latin}+", r"\p{Old_Italic}", r"(?i)\p{Lu}",
]
REFUSED_BY_BOTH = [
    r"\1", "(a)\\1", "(?=a)", "(?!a)", "(?<=a)", "(?<!a)", "(?P=x)", "(?#c)", "(?>a)", r"a\Z", r"\e", r"\8", "a**",
    "x{2}{3}", "a{1001}", "a{2,1}", "[[:foo:]]", "(", ")", "[a", "*a", r"\N{x}", "\\",
    r"\p{Latn}", r"\p{Cn}", r"\p{latin}", r"[\x00-\s]", "(a{100}){100}", "(a{2}){501}", "((a{10}){10}){11}", "[z-a]",
    "(?-)a", "(?i-)x", "(?P<>x)", r"[\--\n]", "[\U0001f600-A]", r"\x{110000}",
]
# RE2 takes these; RegExp has nothing the same, so the browser says so and names tiops query.
BROWSER_CANNOT = ["ab(?i)c", "(?i)a(?-i)b", "(?m:a)", "(?U:a+)", r"[\S]", r"\C", "[[:^digit:]]", r"\Bick",
                  r"(?i)\P{Ll}", r"(?i)\p{^Greek}", r"(?i)[^s\P{Lu}]", r"[\PC]"]


def re2_answers(pattern: str) -> list[bool] | None:
    options = re2.Options()
    options.log_errors = False
    try:
        compiled = re2.compile(pattern, options=options)
    except re2.error:
        return None
    return [compiled.search(text) is not None for text in TEXTS]


@pytest.fixture(scope="module")
def page(browser: Any) -> Any:
    opened = browser.new_page()
    opened.set_content("<html><body></body></html>")
    opened.add_script_tag(path=str(QUERY_JS))
    yield opened
    opened.close()


def browser_answers(page: Any, pattern: str) -> tuple[list[bool] | None, str]:
    return tuple(page.evaluate("""([pattern, texts]) => {
        try {
            const test = window.TiopsQuery.compile({field: "name", op: "matches", value: pattern});
            return [texts.map(text => test({d: {name: text}})), ""];
        } catch (error) {
            if (error instanceof window.TiopsQuery.QueryError) { return [null, error.message]; }
            throw error;
        }
    }""", [pattern, TEXTS]))  # type: ignore[return-value]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_browser_finds_what_re2_finds(page: Any, pattern: str) -> None:
    expected = re2_answers(pattern)
    assert expected is not None, f"RE2 refuses {pattern!r}"
    found, message = browser_answers(page, pattern)
    assert message == ""
    mismatched = [TEXTS[i] for i, (want, got) in enumerate(zip(expected, found, strict=True)) if want != got]
    assert mismatched == [], f"{pattern!r}: RE2 and the browser differ on {mismatched!r}"


@pytest.mark.parametrize("pattern", REFUSED_BY_BOTH)
def test_what_re2_refuses_the_browser_refuses(page: Any, pattern: str) -> None:
    assert re2_answers(pattern) is None, f"RE2 takes {pattern!r}"
    found, message = browser_answers(page, pattern)
    assert found is None and message.startswith("bad regular expression"), message


@pytest.mark.parametrize("pattern", BROWSER_CANNOT)
def test_what_the_browser_cannot_run_it_says_and_names_tiops_query(page: Any, pattern: str) -> None:
    assert re2_answers(pattern) is not None, f"RE2 refuses {pattern!r}"
    found, message = browser_answers(page, pattern)
    assert found is None and "the browser cannot run" in message and message.endswith("tiops query can"), message


def _browser_answers_of_many(page: Any, patterns: list[str], texts: list[str]) -> list[Any]:
    """For each pattern, [the answer for each text, ""] or [None, the refusal], in one evaluation."""
    answers: list[Any] = page.evaluate("""([patterns, texts]) => patterns.map(pattern => {
        try {
            const test = window.TiopsQuery.compile({field: "name", op: "matches", value: pattern});
            return [texts.map(text => test({d: {name: text}})), ""];
        } catch (error) { return [null, error.message]; }
    })""", [patterns, texts])
    return answers


TOKENS = ["a", "b", "K", "😀", ".", r"\s", r"\S", r"\d", r"\w", "[ab]", "[^a]", "[[:alpha:]]", r"[\s.]", "(", ")", "(?:",
          "|", "*", "+", "?", "{2}", "{1,2}", "^", "$", r"\b", r"\.", "{", "}", "]", r"\pL", r"\x{41}", r"\Q.\E", "-",
          r"\A", r"\z", "(?i)", "(?s)", "(?m)", "(?U)", "(?i:", "\n", " ", "[[:upper:]]", r"\p{Greek}", "\u03b1", "\u0391",
          "\u212a", "{0}", "{0,1}", r"\x2e", r"[^\s]", r"\12", r"\0", "[a-c]"]
# \B is left out: the browser refuses it (BROWSER_CANNOT), which the generated patterns would only repeat.


@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("SEEDS", "8"))))
def test_random_patterns_mean_the_same_or_are_refused(page: Any, seed: int) -> None:
    import random

    rng = random.Random(seed)
    patterns = ["".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 7))) for _ in range(300)]
    answers = _browser_answers_of_many(page, patterns, TEXTS)
    compared = 0
    for pattern, (found, message) in zip(patterns, answers, strict=True):
        expected = re2_answers(pattern)
        if expected is None:
            assert found is None, f"RE2 refuses {pattern!r}; the browser ran it"
        elif found is None:
            assert "the browser cannot run" in message, f"{pattern!r}: RE2 takes it; the browser said {message!r}"
        else:
            assert found == expected, f"{pattern!r}: RE2 and the browser differ"
            compared += 1
    assert compared >= 60  # most generated patterns are compared, not refused


CLASS_TEXTS = [*TEXTS, "-", "]", "^", "[", ":", "!", "~", "[:", "\\"]
CLASS_MEMBERS = ["a", "z", "K", "-", "-", "]", "^", "[", r"\s", r"\d", r"\w", "[:word:]", "[:alpha:]", "[:^digit:]",
                 r"\pL", r"\pC", r"\x{41}", r"\-", r"\]", "\u03b1", "\U0001f600", ":", "!", "~", r"\n"]


@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("SEEDS", "8"))))
def test_random_classes_mean_the_same_or_are_refused(page: Any, seed: int) -> None:
    import random

    rng = random.Random(seed)
    patterns = [("(?i)" if rng.random() < 0.25 else "") + "[" + ("^" if rng.random() < 0.3 else "")
                + "".join(rng.choice(CLASS_MEMBERS) for _ in range(rng.randint(1, 5))) + "]" for _ in range(300)]
    answers = _browser_answers_of_many(page, patterns, CLASS_TEXTS)
    for pattern, (found, message) in zip(patterns, answers, strict=True):
        options = re2.Options()
        options.log_errors = False
        try:
            compiled = re2.compile(pattern, options=options)
        except re2.error:
            assert found is None and message.startswith("bad regular expression"), f"RE2 refuses {pattern!r}: {message}"
            continue
        if found is None:
            assert "the browser cannot run" in message, f"{pattern!r}: RE2 takes it; the browser said {message!r}"
            continue
        assert found == [compiled.search(text) is not None for text in CLASS_TEXTS], f"{pattern!r}: RE2 and the browser differ"

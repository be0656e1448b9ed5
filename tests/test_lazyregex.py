"""LazyPattern (tiops.lazyregex): compiled on first use, then the compiled pattern itself."""

from __future__ import annotations

import re

from tiops.lazyregex import LazyPattern


def test_nothing_is_compiled_until_first_use() -> None:
    # An invalid expression only fails when used: proof that construction compiles nothing.
    broken = LazyPattern("(unclosed")
    try:
        broken.match("x")
    except re.error:
        pass
    else:  # pragma: no cover - the assertion below reports it
        raise AssertionError("the invalid expression was never compiled")


def test_every_method_answers_like_the_compiled_pattern() -> None:
    source = r"(?P<word>[a-z]+)(?P<digits>[0-9]*)"
    for method in ("match", "fullmatch", "search", "finditer", "sub"):
        lazy, compiled = LazyPattern(source, re.IGNORECASE), re.compile(source, re.IGNORECASE)
        for text in ("abc12", "  Abc 12 xy", "12", ""):
            if method == "sub":
                assert lazy.sub("<\\g<word>>", text) == compiled.sub("<\\g<word>>", text)
            elif method == "finditer":
                assert [m.span() for m in lazy.finditer(text, 1)] == [m.span() for m in compiled.finditer(text, 1)]
            else:
                mine, theirs = getattr(lazy, method)(text), getattr(compiled, method)(text)
                assert (mine and mine.groupdict()) == (theirs and theirs.groupdict()), (method, text)


def test_after_first_use_calls_go_to_the_compiled_pattern() -> None:
    lazy = LazyPattern("a+")
    assert lazy.search("baa") is not None
    # The instance now holds the compiled pattern's bound methods: no wrapper frame per call.
    assert isinstance(lazy.search.__self__, re.Pattern)
    assert lazy.search.__self__.pattern == "a+"
    assert isinstance(lazy.fullmatch.__self__, re.Pattern)

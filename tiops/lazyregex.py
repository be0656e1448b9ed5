"""Regular expressions compiled on first use, so importing a module does not pay for them.

Compiling the larger expressions (RFC 5322 addresses, STIX patterns, RFC 3986 URIs) costs
milliseconds each; a command that never meets such a value should not pay for it at start.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator


class LazyPattern:
    """Stands in for ``re.compile(source, flags)`` and compiles on the first call.

    The first call puts the compiled pattern's bound methods in the instance's own
    attributes, which take precedence over these class methods: later calls go straight
    to the compiled pattern with no extra Python frame.
    """

    def __init__(self, source: str, flags: int = 0) -> None:
        self.source = source
        self.flags = flags

    def compiled(self) -> re.Pattern[str]:
        pattern = re.compile(self.source, self.flags)
        self.__dict__.update(match=pattern.match, fullmatch=pattern.fullmatch, search=pattern.search,
                             finditer=pattern.finditer, sub=pattern.sub)
        return pattern

    def match(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self.compiled().match(string, pos, endpos)

    def fullmatch(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self.compiled().fullmatch(string, pos, endpos)

    def search(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self.compiled().search(string, pos, endpos)

    def finditer(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> Iterator[re.Match[str]]:
        return self.compiled().finditer(string, pos, endpos)

    def sub(self, repl: str | Callable[[re.Match[str]], str], string: str, count: int = 0) -> str:
        return self.compiled().sub(repl, string, count)

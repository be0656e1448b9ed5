"""Text from intel written into Markdown that GitHub renders (pull-request comments, step summaries).

Partner text and file names are shown as written, never as markup: CommonMark's backslash
escapes the punctuation that would make links and emphasis, HTML is escaped, and a word's
``@`` cannot mention anyone.
"""

from __future__ import annotations

import re

from tiops.render.names import printable

__all__ = ["markdown_code", "markdown_text"]

_MARKDOWN_PUNCTUATION = str.maketrans({c: "\\" + c for c in "\\[]*_~"})
# An @ that starts a word mentions someone on GitHub; one inside an email address does not.
_MENTION = re.compile(r"(?<!\w)@")


def markdown_text(text: str) -> str:
    """Markdown and HTML are both live in a comment: neutralise both.

    No link whose words hide its target (``[docs](https://evil…)``, escaped by CommonMark's
    backslash), no emphasis, and no GitHub mention or team ping (a zero-width space after a
    word's ``@`` keeps ``@org/team`` inert; an email address is left as it is). A ``|``
    is escaped so the text can sit in a table cell.
    """
    text = _MENTION.sub("@\u200b", text.translate(_MARKDOWN_PUNCTUATION))
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("`", "'").replace("\n", " "))


def markdown_code(text: str) -> str:
    """``text`` for a code span (inside backticks): nothing is markup there but the backtick that
    would end it, a line break, and, in a table cell, the ``|`` that would end the cell
    (GitHub Flavored Markdown, "Tables": a pipe inside a code span is escaped too)."""
    return printable(text).replace("`", "'").replace("|", "\\|")

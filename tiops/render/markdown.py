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
# "#26", "GH-26" and "owner/repo#26" link an issue and post a "mentioned this" event in its
# timeline, from a name a partner wrote (GitHub Docs, "Autolinked references and URLs").
_ISSUE_REFERENCE = re.compile(r"(#|(?<!\w)GH-)(?=\d)", re.IGNORECASE)


_LINE_ENDING = re.compile("\r\n|[\r\n\u2028\u2029\x85\x0b\x0c]")


def markdown_text(text: str) -> str:
    """Markdown and HTML are both live in a comment: neutralise both.

    No link whose words hide its target (``[docs](https://evil…)``, escaped by CommonMark's
    backslash), no emphasis, and no GitHub mention or team ping (a zero-width space after a
    word's ``@`` keeps ``@org/team`` inert; an email address is left as it is), and no link
    to an issue (``#26``, ``GH-26``: a zero-width space after the ``#`` or ``-``). A ``|``
    is escaped so the text can sit in a table cell.
    """
    # A line ending (CommonMark takes a lone CR for one too) would end the list item or table row
    # and let the text start a heading or a quote of its own: a space. Other controls and bidi
    # overrides are written out, as the CLI writes them (tiops.render.names.printable).
    text = printable(_LINE_ENDING.sub(" ", text))
    text = _MENTION.sub("@\u200b", text.translate(_MARKDOWN_PUNCTUATION))
    text = _ISSUE_REFERENCE.sub("\\1\u200b", text)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("`", "'"))


def markdown_code(text: str, *, in_table: bool = True) -> str:
    """``text`` as a whole code span, backticks included, showing it exactly as written.

    Inside a code span nothing is markup but a backtick run as long as the one that opened it
    (CommonMark 0.31, "Code spans"), so the span is opened with one backtick more than the
    longest run in the text, and padded with a space where the text starts or ends with one
    (a backtick renamed to an apostrophe named a file that does not exist). A line break
    would end a table row and is shown printable; in a table cell the ``|`` that would end
    the cell is escaped (GitHub Flavored Markdown, "Tables": a pipe inside a code span too).
    """
    shown = printable(text)
    if in_table:
        shown = shown.replace("|", "\\|")
    longest = max((len(run) for run in _BACKTICK_RUNS.findall(shown)), default=0)
    fence = "`" * (longest + 1)
    if shown.startswith("`") or shown.endswith("`") or (shown.startswith(" ") and shown.endswith(" ") and shown.strip()):
        shown = f" {shown} "  # one space each side is stripped when rendered
    return f"{fence}{shown}{fence}"


_BACKTICK_RUNS = re.compile("`+")

"""Paged reads from servers, checked before what the pages say is trusted.

A server that keeps saying there is more (TAXII's ``more``, Sentinel's ``nextLink``) while
its pages bring nothing it had not sent already, because its pages go round in a circle or
it gives no continuation and the first page is asked for again, would be asked forever
while what it sends piles up in memory. :class:`PagedRead` stops such a read with a clear
error; a continuation token itself may repeat (a server may keep one token for a whole
query and move a cursor behind it, as the OASIS reference TAXII server does).

:class:`TaxiiPages` also checks that each TAXII page is an envelope (TAXII 2.1 section 3.7;
a manifest, section 3.6, has the same shape): a JSON object whose ``objects`` is a list
and whose ``more`` is true or false. Both the TAXII import (tiops.importers.taxii) and the
TAXII store (tiops.stores.taxii) read pages through it; the Sentinel store
(tiops.stores.sentinel) through :class:`PagedRead`.
"""

from __future__ import annotations

from typing import Any

from tiops.errors import TiopsError
from tiops.yamlio import json_kind

__all__ = ["MAX_IDLE_PAGES", "PagedRead", "TaxiiPages"]

# Pages in a row with nothing not sent already, while the server says there are more.
MAX_IDLE_PAGES = 20


class PagedRead:
    """One paged read: what its pages brought so far, and whether it would ever end.

    ``url`` names the server in messages (already redacted); ``error`` is the exception
    raised, with the message and a hint.
    """

    def __init__(self, url: str, error: type[TiopsError] = TiopsError) -> None:
        self.url = url
        self.error = error
        self.seen: set[tuple[str, str]] = set()
        self.idle_in_a_row = 0

    def page(self, items: list[Any], more: bool) -> None:
        """Take one page's items; raise ``error`` when the server says there is more after
        :data:`MAX_IDLE_PAGES` pages in a row that brought no version it had not sent."""
        new = 0
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                # An object's version is its modified time; a TAXII manifest entry's is its version.
                version = (item["id"], str(item.get("modified", item.get("version"))))
                if version not in self.seen:
                    self.seen.add(version)
                    new += 1
        self.idle_in_a_row = 0 if new else self.idle_in_a_row + 1
        if more and self.idle_in_a_row >= MAX_IDLE_PAGES:
            raise self.error(f"the server at {self.url} sent {MAX_IDLE_PAGES} pages in a row with no object "
                             "it had not sent already, while saying there are more: the read would never end",
                             hint="Try again later, or ask the server's operator: its pages go round in a circle "
                                  "or bring nothing.")


class TaxiiPages(PagedRead):
    """The items of each page of one TAXII query, in the order the server sends the pages."""

    def _not_taxii(self, what: str) -> TiopsError:
        return self.error(f"the TAXII server at {self.url} sent an answer that is not TAXII 2.1: {what} "
                          "(section 3.7, envelope)")

    def items(self, page: Any) -> list[Any]:
        """The ``objects`` of ``page`` (an empty page may leave them out); raises ``error`` when
        the page is not an envelope or when the query would never end (TAXII 2.1 section 3.4)."""
        if not isinstance(page, dict):
            raise self._not_taxii(f"a page is a JSON {json_kind(page)}, not an envelope object")
        items = page.get("objects")
        if items is None:
            items = []
        if not isinstance(items, list):
            raise self._not_taxii(f"'objects' is a JSON {json_kind(items)}, not a list")
        more = page.get("more", False)
        if not isinstance(more, bool):
            raise self._not_taxii(f"'more' is a JSON {json_kind(more)}, not true or false")
        self.page(items, more)
        return items

"""The pages of a TAXII 2.1 endpoint, checked before what they say is trusted.

Both the TAXII import (tiops.importers.taxii) and the TAXII store (tiops.stores.taxii)
follow a server's pages with taxii2client's ``as_pages``, which asks for the next page
for as long as a page says ``more``. A page is an envelope (TAXII 2.1 section 3.7; a
manifest, section 3.6, has the same shape): a JSON object whose ``objects`` is a list
and whose ``more`` is true or false. :class:`TaxiiPages` refuses anything else with a
clear error, and stops a server that keeps saying there are more while its pages bring
nothing it had not sent already (its pages go round in a circle, or it gives no ``next``
token and taxii2client asks for the first page again), which would otherwise be asked
forever while what it sends piles up in memory. The ``next`` token itself may repeat: a
server may keep one token for the whole query and move a cursor behind it (the OASIS
reference server, medallion, does).
"""

from __future__ import annotations

from typing import Any

from tiops.errors import TiopsError
from tiops.yamlio import json_kind

__all__ = ["MAX_IDLE_PAGES", "TaxiiPages"]

# Pages in a row with nothing not sent already, while the server says there are more.
MAX_IDLE_PAGES = 20


class TaxiiPages:
    """The items of each page of one query, in the order the server sends the pages.

    ``url`` names the server in messages (already redacted); ``error`` is the exception
    raised, with the message and a hint.
    """

    def __init__(self, url: str, error: type[TiopsError] = TiopsError) -> None:
        self.url = url
        self.error = error
        self.seen: set[tuple[str, str]] = set()
        self.idle_in_a_row = 0

    def _not_taxii(self, what: str) -> TiopsError:
        return self.error(f"the TAXII server at {self.url} sent an answer that is not TAXII 2.1: {what} "
                          "(section 3.7, envelope)")

    def items(self, page: Any) -> list[Any]:
        """The ``objects`` of ``page`` (an empty page may leave them out); raises ``error`` when
        the page is not an envelope or when the query would never end."""
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
        new = 0
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                # An object's version is its modified time; a manifest entry's is its version.
                version = (item["id"], str(item.get("modified", item.get("version"))))
                if version not in self.seen:
                    self.seen.add(version)
                    new += 1
        self.idle_in_a_row = 0 if new else self.idle_in_a_row + 1
        if more and self.idle_in_a_row >= MAX_IDLE_PAGES:
            raise self.error(f"the TAXII server at {self.url} sent {MAX_IDLE_PAGES} pages in a row with no object "
                             "it had not sent already, while saying there are more: the query would never end "
                             "(TAXII 2.1 section 3.4)",
                             hint="Try again later, or ask the server's operator: its pages go round in a circle "
                                  "or bring nothing.")
        return items

"""What an RDAP answer is about, and whether that is the value it was asked for.

RFC 9083 sections 5.3 and 5.4: a domain object names its domain (``ldhName``), an IP
network object its range (``startAddress``, ``endAddress``). An answer about another
domain, or a range that does not hold the address asked for, is not that value's
registration: a misconfigured or hostile server would otherwise put another name's
registrar and dates on it.

The check runs twice: on an answer as it arrives (:mod:`tiops.enrich.rdap`), and on an
answer already in the lock (:mod:`tiops.enrich.run`), which keeps what each answer was
about (``ldh_name`` for a domain, ``network`` for a network). So an answer written by a
tiops that did not check is found from the lock alone, without asking anyone.

Imports neither requests nor the RDAP client: ``tiops enrich --check`` uses it too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from tiops.enrich.values import Kind

__all__ = ["answer_for_other", "locked_answer_for_other", "records_subject"]


def answer_for_other(document: Mapping[str, Any], kind: Kind, name: str) -> str | None:
    """What ``document`` says it is about, when that is not ``name`` (None when it is, or it does not say).

    A range that does not hold the address asked for (a block: its first address, as geo reads
    it) is about another network.
    """
    if kind == "domain":
        ldh = document.get("ldhName")
        if isinstance(ldh, str) and ldh.rstrip(".").lower() != name:
            # A name IDNA 2008 refuses (an emoji label, i❤.ws) stays as written and is asked so: the
            # registry's ldhName is its A-label (RFC 9083 section 3), which decodes to the name asked.
            if not name.isascii():
                try:
                    if ldh.rstrip(".").lower().encode("ascii").decode("idna").casefold() == name.casefold():
                        return None
                except (UnicodeError, ValueError):
                    pass
            return ldh
        return None
    start, end = document.get("startAddress"), document.get("endAddress")
    if not (isinstance(start, str) and isinstance(end, str)):
        return None
    try:
        low, high = ipaddress.ip_address(start), ipaddress.ip_address(end)
        asked = ipaddress.ip_network(name, strict=False)
    except ValueError:
        return None
    first = asked[0]  # a block: where it starts, as geo reads it
    if not (low.version == first.version == high.version and int(low) <= int(first) <= int(high)):
        return f"{start} - {end}"
    return None


def locked_answer_for_other(kind: Kind, value: str, entry: Mapping[str, Any]) -> str | None:
    """What the lock entry of ``value`` says its answer was about, when that is not what was asked
    (None when it is, or the entry does not say).

    The name asked is the entry's ``queried`` (a host name is asked for as its registered
    domain) or the value; the answer's subject is its ``ldh_name`` or ``network``, as
    :func:`tiops.enrich.rdap.parse_domain` and ``parse_network`` write them.
    """
    if kind == "domain":
        ldh = entry.get("ldh_name")
        if not isinstance(ldh, str):
            return None
        queried = entry.get("queried")
        return answer_for_other({"ldhName": ldh}, "domain", queried if isinstance(queried, str) else value)
    network = entry.get("network")
    if not isinstance(network, str):
        return None
    start, separator, end = network.partition(" - ")
    if not separator:
        return None
    return answer_for_other({"startAddress": start, "endAddress": end}, "ip", value)


def records_subject(kind: Kind, entry: Mapping[str, Any]) -> bool:
    """Whether the lock entry says what its answer was about, so :func:`locked_answer_for_other`
    can tell. An answer written before tiops kept a domain's ``ldh_name`` cannot."""
    return isinstance(entry.get("ldh_name" if kind == "domain" else "network"), str)

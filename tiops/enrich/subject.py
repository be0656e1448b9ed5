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

__all__ = ["answer_for_other", "answer_not_readable", "locked_answer_for_other", "records_subject"]

# RFC 9083 section 4.7: every object carries objectClassName; a domain lookup (RFC 9082 section 3.1.3)
# is answered by a domain object (section 5.3), an IP lookup (section 3.1.1) by an IP network (5.4).
_OBJECT_CLASS: dict[Kind, str] = {"domain": "domain", "ip": "ip network"}


def _addresses(start: Any, end: Any) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address,
                                              ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
    """A network's ``startAddress`` and ``endAddress`` (RFC 9083 section 5.4), when both are
    addresses of one version, the first not after the last; else None."""
    if not (isinstance(start, str) and isinstance(end, str)):
        return None
    try:
        low, high = ipaddress.ip_address(start.strip()), ipaddress.ip_address(end.strip())
    except ValueError:
        return None
    return (low, high) if low.version == high.version and int(low) <= int(high) else None


def answer_not_readable(document: Mapping[str, Any], kind: Kind) -> str | None:
    """Why ``document`` is no answer to a ``kind`` lookup at all (None when it is one).

    An object of another class (a domain object answering an IP query, an entity, ``{}``) says
    nothing about the value asked, and an IP network whose range cannot be read cannot be held
    to the address (RFC 9083 sections 4.7, 5.3, 5.4): locked as ``found``, either would put
    someone else's registration, or none, on the value, and a refresh would lose a good answer.
    """
    wanted = _OBJECT_CLASS[kind]
    written = document.get("objectClassName")
    if written != wanted:
        shown = repr(written[:40]) if isinstance(written, str) else "none"
        return (f"the answer is not an RDAP {wanted} object (objectClassName {shown}; "
                "RFC 9083 sections 4.7, 5.3, 5.4)")
    if kind == "ip" and _addresses(document.get("startAddress"), document.get("endAddress")) is None:
        return "the answer names no network range that can be read (startAddress, endAddress; RFC 9083 section 5.4)"
    return None


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
    addresses = _addresses(start, end)
    if addresses is None:
        return None  # says nothing it can be held to (answer_not_readable refuses such an answer)
    low, high = addresses
    try:
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
    if isinstance(entry.get("ldh_name"), str):
        return str(entry["ldh_name"])  # a domain's answer, locked for an address
    network = entry.get("network")
    if not isinstance(network, str):
        # A found answer to an IP lookup names its range (RFC 9083 section 5.4; answer_not_readable):
        # one that does not was about no network (a domain object, an entity, an empty object).
        return "no network" if entry.get("status") == "found" else None
    start, separator, end = network.partition(" - ")
    if not separator or _addresses(start, end) is None:
        return network  # not a range that can hold the address
    return answer_for_other({"startAddress": start, "endAddress": end}, "ip", value)


def records_subject(kind: Kind, entry: Mapping[str, Any]) -> bool:
    """Whether the lock entry says what its answer was about, so :func:`locked_answer_for_other`
    can tell. An answer written before tiops kept a domain's ``ldh_name`` cannot."""
    return isinstance(entry.get("ldh_name" if kind == "domain" else "network"), str)

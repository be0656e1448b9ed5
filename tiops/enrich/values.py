"""Which values intel asks to enrich: IPv4, IPv6, domain names and URL hosts.

Read through the observable model (tiops.observables), so patterns and SCOs are
covered the same way everywhere. Only comparisons that name a value count: equality
(``=``, ``IN``), and for an address ``ISSUBSET`` a network, the STIX way of writing "any
address of this block" (STIX 2.1 section 9.6.1), whose block is what is looked up. A value a
pattern says an observable is *not* names nothing to enrich.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Container, Iterable, Mapping
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

import idna

from tiops.observables import Observable, object_observables

__all__ = ["CANONICAL_IPV4", "ENRICHED_OBJECT_TYPES", "NOT_PLAIN_CANONICAL_LINE", "PLAIN_CANONICAL", "PLAIN_URL_HOST", "SIMPLE_VALUE_PATTERN", "EnrichValue",
           "Kind", "canonical_value", "ends_in_a_number", "enrich_values", "is_canonical", "object_enrich_values", "parse_ip"]

Kind = Literal["ip", "domain"]
# (kind, value): ("ip", "8.8.8.8"), ("ip", "198.51.100.0/24"), ("domain", "example.com")
EnrichValue = tuple[Kind, str]

_IP_TYPES: Final = frozenset({"ipv4-addr", "ipv6-addr"})


def parse_ip(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An address or CIDR block (STIX 2.1 sections 6.4, 6.5 allow both), or None."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None


# IPv4-mapped IPv6 addresses (RFC 4291 section 2.5.5.2): how a dual-stack socket writes an
# IPv4 peer, so logs and the feeds made from them carry "::ffff:203.0.113.7".
_IPV4_MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")
_MAPPED_PREFIX: Final = _IPV4_MAPPED.network_address.packed[:12]


def _ip_value(value: str) -> EnrichValue | None:
    # Most values are plain addresses: inet_pton/inet_ntop canonicalise them ~20x quicker
    # than ipaddress (RFC 5952 text for IPv6), which is kept for CIDR blocks.
    if "/" not in value:
        family = socket.AF_INET6 if ":" in value else socket.AF_INET
        try:
            packed = socket.inet_pton(family, value.strip())
        except (OSError, ValueError):
            return None
        if family == socket.AF_INET6 and packed[:12] == _MAPPED_PREFIX:
            # The IPv4 host it names is what has a location and a registry: it is looked up,
            # and locked, as that address (one value however a feed writes it).
            return "ip", socket.inet_ntop(socket.AF_INET, packed[12:])
        text = socket.inet_ntop(family, packed)
        if "." in text and family == socket.AF_INET6:
            # glibc and the BSDs write an address of ::/96 (the deprecated IPv4-compatible form,
            # RFC 4291 section 2.5.5.1) as ::8.8.8.8, musl as ::808:808: the RFC 5952 section 4 text,
            # all hex, is one key on every platform, and the one a /128 block of it is keyed by.
            text = str(ipaddress.IPv6Address(packed))
        return "ip", text
    network = parse_ip(value)
    if network is None:
        return None
    if network.version == 6 and network.prefixlen >= 96 and network.subnet_of(_IPV4_MAPPED):
        network = ipaddress.IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
    return "ip", network.with_prefixlen if network.num_addresses > 1 else str(network.network_address)


# Characters no host name has (RFC 1123 section 2.1 and what URLs wrap around a host).
_NOT_IN_A_NAME: Final = re.compile(r"[ /:@\[\]]")


def _domain(value: str) -> str | None:
    name = value.strip().lower()
    if not name.isascii():
        name = _a_labels(name)
    if name.endswith("."):
        name = name[:-1]  # the root's (RFC 1034 section 3.1); a dot before it ends an empty label
    while name.startswith(("*.", ".")):
        # A wildcard (RFC 4592) names every host under a domain, not a host: feeds write
        # "*.example.com" for "anything under example.com", which is what is looked up; and
        # ".example.com", as a cookie's domain is written (RFC 6265 section 5.2.3), the same.
        name = name[2:] if name.startswith("*.") else name[1:]
    if not name or "." not in name or ".." in name or name.endswith(".") or _NOT_IN_A_NAME.search(name):
        return None  # a label left empty ("a..example", "example.com..") names no host (RFC 1034 section 3.1)
    if len(name) > _MAX_NAME or any(len(label) > _MAX_LABEL for label in name.split(".")):
        # No such name can be in DNS (RFC 1035 section 2.3.4): asked for, a million-character name
        # was a 1 MB request, a 414, a failure locked as a 1 MB line and asked again every run.
        return None
    return name


# RFC 1035 section 2.3.4: 63 octets a label, 255 a name in the wire form (253 written out).
_MAX_LABEL: Final = 63
_MAX_NAME: Final = 253


def _a_labels(name: str) -> str:
    """An internationalised name with each label that is not ASCII as its A-label (RFC 5890
    section 2.3.2.1), the form DNS and registries hold: the IANA RDAP bootstrap registry keys
    its domains by A-labels (RFC 9224 section 4), and a name written both ways is one value.

    IDNA 2008 (RFC 5891) after the UTS 46 mapping browsers apply (nontransitional: "faß.de" is
    xn--fa-hia.de, not fass.de), by the idna package. Only the labels that are not ASCII are
    encoded, so a "_dmarc" label beside them stays. A name IDNA refuses stays as written.
    """
    try:
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
        return ".".join(label if label.isascii() else idna.alabel(label).decode("ascii")
                        for label in mapped.split("."))
    except (idna.IDNAError, UnicodeError, ValueError):
        return name


# The schemes whose URLs have a host a browser resolves (the WHATWG URL standard's special
# schemes): only there is a host that ends in a number read as an IPv4 address, and a backslash
# read as a slash (every one but file, whose host is read otherwise).
_SPECIAL_SCHEMES: Final = frozenset({"http", "https", "ws", "wss", "ftp", "file"})
_SLASH_SCHEMES: Final = _SPECIAL_SCHEMES - {"file"}

# scheme://host[:port] followed by a path, query, fragment or nothing: the shape of nearly every
# URL indicator. Its host is read by slicing; anything else (user info, IPv6 brackets, odd
# characters, a port of five digits or more, which may be out of range) goes through urlsplit,
# whose reading (RFC 3986 section 3.2.2) this agrees with.
PLAIN_URL_HOST: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([A-Za-z0-9._-]+)(?::[0-9]{0,4})?(?:[/?#]|$)")


def _url_hostname(value: str) -> str | None:
    plain = PLAIN_URL_HOST.match(value)
    if plain is not None:
        return plain[1].lower()
    value = value.strip()
    scheme, colon, rest = value.partition(":")
    if colon and scheme.lower() in _SLASH_SCHEMES:
        # The WHATWG URL standard reads a backslash as a slash in these schemes' URLs, and any run
        # of them after the scheme as the start of the host: http://evil.example\@good.example/
        # takes a browser to evil.example, where RFC 3986 reads good.example.
        value = f"{scheme}://{rest.replace(chr(92), '/').lstrip('/')}"
    try:
        parts = urlsplit(_userinfo_brackets_encoded(value))
        parts.port  # noqa: B018  # raises for a port that is no number up to 65535: no URL, no host contacted
    except ValueError:
        return None
    host = parts.hostname
    # An IPv6 address in brackets followed by a port or nothing (RFC 3986 section 3.2.2);
    # urlsplit also reads ::1 out of "[::1]evil.example" and v1.x out of "[v1.x]" (an
    # IPvFuture literal, which no browser contacts): neither is a host.
    if host and "[" in (host_and_port := parts.netloc.rpartition("@")[2]) and (
            _BRACKETED_HOST.fullmatch(host_and_port) is None or ":" not in host):
        return None
    return _decoded_host(host) if host and "%" in host else host


_BRACKETED_HOST: Final = re.compile(r"\[[^\]]*\](?::[0-9]*)?")


def _userinfo_brackets_encoded(value: str) -> str:
    """``value`` with the brackets of its user info percent-encoded, as the WHATWG URL standard
    encodes them (its userinfo percent-encode set holds "[" and "]"): to a browser
    ``http://us[er@evil.example/`` is evil.example, where urlsplit reads an unclosed IPv6 bracket
    and fails. The user info ends at the authority's last "@" (RFC 3986 section 3.2.1), as
    urlsplit's hostname takes it."""
    scheme, separator, rest = value.partition("://")
    if not separator or "@" not in rest:
        return value
    ends = [index for index in (rest.find(mark) for mark in "/?#") if index >= 0]
    end = min(ends, default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if not at or ("[" not in userinfo and "]" not in userinfo):
        return value
    return f"{scheme}://{userinfo.replace('[', '%5B').replace(']', '%5D')}@{host}{rest[end:]}"


# What no host holds once decoded (the WHATWG URL standard's forbidden domain code points).
_FORBIDDEN_IN_HOST: Final = re.compile(r"[\x00-\x20\x7f#%/:<>?@\[\\\]^|]")


def _decoded_host(host: str) -> str | None:
    """A percent-encoded host (RFC 3986 section 3.2.2) as the name a browser contacts: decoded, as
    the WHATWG URL standard decodes it before reading it; None where that standard finds no host
    (a decoded '/' or '@'). Bytes that are not UTF-8 leave the host as written."""
    try:
        decoded = unquote(host, errors="strict").lower()
    except UnicodeDecodeError:
        return host
    return None if _FORBIDDEN_IN_HOST.search(decoded) else decoded


# What an IPv4 address in a URL host may be written with: decimal, octal and 0x-hex parts.
_IPV4_NUMBER_FORMS: Final = re.compile(r"[0-9a-fx.]+")
# A dotted-decimal address written as inet_ntoa writes it (no leading zeros): canonical already.
CANONICAL_IPV4: Final = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])").fullmatch


def ends_in_a_number(host: str) -> bool:
    """The WHATWG URL standard's "ends in a number checker" (section 3.5, host parsing): whether
    a URL of a special scheme names an IPv4 address by ``host`` (lower case, ASCII), in whichever
    form: ``http://0x08080808/``, ``http://134744072/``, ``http://010.8.8.8/`` and
    ``http://8.8.2056/`` are all 8.8.8.8 to a browser."""
    last = host[:-1].rpartition(".")[2] if host.endswith(".") and len(host) > 1 else host.rpartition(".")[2]
    if last.isdigit() and last.isascii():
        return True
    return last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:])


def _url_ipv4(host: str) -> str | None:
    """The address a host that ends in a number names, as the WHATWG URL standard's IPv4
    parser reads it, or None where that parser fails (the URL then has no host at all).

    The parser follows inet_aton(3), which the C library provides (POSIX, "IPv4 dotted decimal
    notation" with its one- to four-part and octal and hex forms); the standard differs only in
    allowing one trailing dot and reading a bare "0x" part as 0, which are settled here first.
    """
    if host.endswith("."):
        host = host[:-1]
    if _IPV4_NUMBER_FORMS.fullmatch(host) is None:
        return None
    if "0x" in host:
        host = ".".join("0" if part == "0x" else part for part in host.split("."))
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None


def _url_host(value: str, known: Container[str] = ()) -> EnrichValue | None:
    host = _url_hostname(value)
    if not host:
        return None
    if ":" in host:
        # urlsplit already took the brackets off an IPv6 host (RFC 3986 section 3.2.2).
        return ("ip", host) if host in known else _ip_value(host)
    if host in known:
        return ("ip" if host.replace(".", "").isdigit() else "domain"), host
    if value.partition(":")[0].strip().lower() in _SPECIAL_SCHEMES:
        if not host.isascii():
            host = _a_labels(host)  # the standard maps a host to ASCII before this test: fullwidth digits are digits
        if ends_in_a_number(host):
            # An address however written, a trailing root's dot included ("1.1.1.1."); a host the
            # standard's IPv4 parser refuses ("1.2.3.09", "a.0x10") is no host, neither address nor name.
            address = _url_ipv4(host)
            return None if address is None else ("ip", address)
    elif host.replace(".", "").isdigit():
        # Another scheme's host is opaque to browsers: digits are an address only as written.
        return _ip_value(host[:-1] if host.endswith(".") else host)
    domain = _domain(host)
    return ("domain", domain) if domain else None


def _value_of(kind: str, value: str, known: Container[str] = ()) -> EnrichValue | None:
    if kind in _IP_TYPES:
        return ("ip", value) if value in known else _ip_value(value)
    if kind == "domain-name":
        # Read as _domain reads the name: without the spaces around it and the root's final dot
        # (RFC 1034 section 3.1), so "8.8.8.8." and "8.8.8.8 " are the address "8.8.8.8" is, not
        # a domain "8.8.8.8" asked of RDAP as a name and keyed beside the address's entry.
        bare = value.strip()
        bare = bare[:-1] if bare.endswith(".") else bare
        if bare[-1:].isdigit() or ":" in bare:
            # No top-level domain is all digits (RFC 3696 section 2), and no name holds a ':': such a
            # "name" is an address written where a name goes, looked up as the address (sharing one
            # lock entry with it, as the same text must) or, when it is none, not at all.
            address = _ip_value(bare)
            if address is not None or bare.rpartition(".")[2].isdigit():
                return address
        if value in known:
            return "domain", value
        domain = _domain(value)
        return ("domain", domain) if domain else None
    if kind == "url":
        return _url_host(value, known)
    return None


# A lower-case name with a dot inside, or a dotted-decimal IPv4 address (which inet_pton
# accepts only without leading zeros, so as inet_ntop writes it): canonical as it stands.
_PLAIN_CANONICAL_TEXT: Final = r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)+"
_PLAIN_CANONICAL: Final = re.compile(_PLAIN_CANONICAL_TEXT)
# Whether a value is such a name or address: its canonical form, if it has one, is itself.
PLAIN_CANONICAL: Final = _PLAIN_CANONICAL.fullmatch
# Each line of a text that is not such a name or address: over lock keys joined by line breaks,
# the few keys is_canonical must read one by one (tiops.enrich.lock).
NOT_PLAIN_CANONICAL_LINE: Final = re.compile(rf"^(?!(?:{_PLAIN_CANONICAL_TEXT})$).*", re.MULTILINE)


def is_canonical(value: str) -> bool:
    """Whether ``value`` is written as :func:`canonical_value` writes it (a lock key must be)."""
    return (_PLAIN_CANONICAL.fullmatch(value) is not None or _is_canonical_ipv4_block(value)
            or canonical_value(value) == value)


def _is_canonical_ipv4_block(value: str) -> bool:
    # ipaddress would take ten times as long: "a.b.c.d/n" with no host bits set, n written
    # without leading zeros and below 32 (a /32 is written as the plain address).
    address, _, prefix = value.partition("/")
    if not prefix.isdigit() or not prefix.isascii() or (prefix[0] == "0" and prefix != "0") or int(prefix) > 31:
        return False
    try:
        number = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
    except OSError:
        return False
    return number & ((1 << (32 - int(prefix))) - 1) == 0


def canonical_value(value: str) -> str | None:
    """The form a lock key of ``value`` takes (RFC 5952 text for IPv6, lower case for names), or None."""
    if ":" in value or "/" in value or value.replace(".", "").isdigit():
        item = _ip_value(value)
        if item is not None:
            return item[1]
    return _domain(value)


# The shape most indicators have, one equality test of one value ([ipv4-addr:value = '...']),
# read without the pattern lexer: compile runs this for every object (docs/enrich.md, Speed).
SIMPLE_VALUE_PATTERN: Final = re.compile(r"\[(ipv4-addr|ipv6-addr|domain-name|url):value = '([^'\\]*)'\]")
_ENRICHED_TYPES: Final = ("ipv4-addr", "ipv6-addr", "domain-name", "url:", "network-traffic:")
# Pattern paths that name the value of a referenced address or name: a network-traffic's
# src_ref and dst_ref are an ipv4-addr, ipv6-addr, mac-addr or domain-name (STIX 2.1 section
# 6.12), a domain-name's resolves_to_refs an ipv4-addr, ipv6-addr or domain-name (section 6.4).
# The STIX examples write them so ("[network-traffic:dst_ref.type = 'ipv4-addr' AND
# network-traffic:dst_ref.value = '203.0.113.33/32']"), and Sentinel shows them as
# NetworkSourceIP and NetworkDestinationIP.
_REFERENCE_PATHS: Final = frozenset({("network-traffic", "src_ref.value"), ("network-traffic", "dst_ref.value")})
_RESOLVES_TO: Final = re.compile(r"resolves_to_refs\[(?:\*|[0-9]+)\]\.value")
# The object types that can name a value to enrich: indicators by pattern, SCOs by value.
ENRICHED_OBJECT_TYPES: Final = frozenset({"indicator", "ipv4-addr", "ipv6-addr", "domain-name", "url"})


def object_enrich_values(obj: Mapping[str, Any], known: Container[str] = ()) -> tuple[EnrichValue, ...]:
    """The values one object names that enrichment looks up, in the object's order, no repeats.

    ``known`` holds values already in canonical form (the keys of a lock, which
    tiops.enrich.lock checks are canonical): one named exactly so is taken as it is,
    which spares compile canonicalising every value a second time.
    """
    stix_type = obj.get("type")
    if stix_type not in ENRICHED_OBJECT_TYPES:
        return ()
    if stix_type == "indicator":
        pattern = obj.get("pattern")
        if pattern.__class__ is not str:
            return ()
        simple = SIMPLE_VALUE_PATTERN.fullmatch(pattern)
        if simple is not None and obj.get("pattern_type", "stix") == "stix":
            item = _value_of(simple[1], simple[2], known)
            return (item,) if item is not None else ()
        if not any(name in pattern for name in _ENRICHED_TYPES):
            return ()
    found: dict[EnrichValue, None] = {}
    for observable in object_observables(obj):
        if observable.is_equality:
            path = observable.path
            if path == "value":
                item = _value_of(observable.object_type, observable.value, known)
            elif (observable.object_type, path) in _REFERENCE_PATHS or (
                    observable.object_type == "domain-name" and _RESOLVES_TO.fullmatch(path)):
                item = _referenced_value(observable.value, known)
            else:
                continue
        elif observable.operator == "ISSUBSET" and not observable.negated and _names_an_address(observable):
            # An address within a block: the block has the location and the registry entry.
            item = _value_of("ipv4-addr", observable.value, known)  # IPv6 too: _ip_value reads both
        else:
            continue
        if item is not None:
            found[item] = None
    return tuple(found)


def _names_an_address(observable: Observable) -> bool:
    """Whether the observable's path holds an IP address: an address object's value, or one a
    network-traffic reference names (_REFERENCE_PATHS; a MAC address or name never is a subset)."""
    return (observable.object_type in _IP_TYPES and observable.path == "value") or (
        (observable.object_type, observable.path) in _REFERENCE_PATHS)


def _referenced_value(value: str, known: Container[str]) -> EnrichValue | None:
    """The value a reference path names (_REFERENCE_PATHS), its type told by the value itself:
    an address or CIDR block, else a domain name; a MAC address is neither."""
    if ":" in value or "/" in value or value.replace(".", "").isdigit():
        item = _value_of("ipv4-addr", value, known)  # IPv6 too: _ip_value reads both
        if item is not None:
            return item
    return _value_of("domain-name", value, known)


def enrich_values(objects: Iterable[Mapping[str, Any]]) -> set[EnrichValue]:
    """Every value the objects name that enrichment looks up."""
    found: set[EnrichValue] = set()
    for obj in objects:
        found.update(object_enrich_values(obj))
    return found

"""Checks of cyber-observable values, one implementation for SCO properties and pattern literals.

A value is checked by where it sits in the STIX observable model: the SCO type and
the property path (``ipv4-addr`` / ``value``, ``file`` / ``hashes.SHA-256``). The
same key comes from an SCO property (:func:`tiops.observables.sco_observables` and
the walk in :mod:`tiops.validate.values`) and from a pattern comparison
(:func:`tiops.observables.pattern_observables`), so ``[ipv4-addr:value =
'999.1.1.1']`` and an ``ipv4-addr`` SCO with that value get the same finding.

Every check returns ``None`` for a good value or a :class:`ValueProblem` naming the
finding code and the rule broken, with its STIX 2.1 section or RFC. Checks run only
on values present. Common good values are accepted by one regular expression; the
checks that cost more (language tags, character sets) remember their answers.

This module imports nothing from tiops: warning lists and canonical forms build on it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Final

from tiops.lazyregex import LazyPattern

__all__ = [
    "HASH_RULES",
    "ValueProblem",
    "check_charset",
    "check_hash",
    "check_language_tag",
    "check_observable_value",
    "pattern_value_check",
    "rule_for",
    "value_check",
]


@dataclass(frozen=True, slots=True)
class ValueProblem:
    """Why a value breaks its property's rule: the finding code and a sentence with the section."""

    code: str
    reason: str


Check = Callable[[str], "ValueProblem | None"]

# --- IP addresses (STIX 2.1 sections 6.8 and 6.9) -------------------------------------

_PREFIX_RE: Final = LazyPattern(r"^(0|[1-9][0-9]{0,2})$")


def _ip(value: str, version: int) -> ValueProblem | None:
    section = "6.8" if version == 4 else "6.9"
    kind = f"IPv{version}"
    limit = 32 if version == 4 else 128
    address, slash, prefix = value.partition("/")
    if slash and (not _PREFIX_RE.match(prefix) or int(prefix) > limit):
        return ValueProblem("TI230", f"{value!r}: the CIDR suffix must be /0 to /{limit} (STIX 2.1 section {section})")
    if "%" in address:
        return ValueProblem("TI230", f"{value!r} carries a zone index; an {kind} value is an address or CIDR block (STIX 2.1 section {section})")
    try:
        # Python rejects leading zeros in IPv4 octets (ambiguous: octal or decimal).
        ipaddress.IPv4Address(address) if version == 4 else ipaddress.IPv6Address(address)
    except ValueError:
        return ValueProblem("TI230", f"{value!r} is not an {kind} address in CIDR notation (STIX 2.1 section {section})")
    return None


# The common case, accepted without building an address object: a dotted quad without
# leading zeros, with an optional /0-/32 suffix.
_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE: Final = LazyPattern(rf"^{_OCTET}(?:\.{_OCTET}){{3}}(?:/(?:3[0-2]|[12]?[0-9]))?$")


def _ipv4(value: str) -> ValueProblem | None:
    if _IPV4_RE.match(value):
        return None
    return _ip(value, 4)


def _ipv6(value: str) -> ValueProblem | None:
    return _ip(value, 6)


# --- Email addresses (STIX 2.1 section 6.5: RFC 5322 addr-spec) -------------------------
#
# RFC 5322 section 3.4.1 without the obsolete forms and comments, with RFC 6532's
# UTF-8 characters allowed where ASCII text is.
# Written as the ASCII characters left out ("specials", space, controls), which is the
# same set as atext plus every non-ASCII character, but compiles in a fraction of the time.
_ATEXT: Final = r'[^\x00-\x20\x7f"(),.:;<>@\[\\\]]'  # atext (RFC 5322 3.2.3) | UTF8-non-ascii
_DOT_ATOM: Final = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED: Final = r'"(?:[^\x00-\x08\x0a-\x1f"\\\x7f]|\\[\x21-\x7e \t])*"'  # qtext, WSP, UTF-8 | quoted-pair
_DOMAIN_LITERAL: Final = r"\[[\x21-\x5a\x5e-\x7e]*\]"
_ADDR_SPEC_RE: Final = LazyPattern(rf"^(?:{_DOT_ATOM}|{_QUOTED})@(?:{_DOT_ATOM}|{_DOMAIN_LITERAL})$")


def _email(value: str) -> ValueProblem | None:
    if _ADDR_SPEC_RE.match(value):
        return None
    if "<" in value and value.rstrip().endswith(">"):
        return ValueProblem("TI231", f"{value!r} is a mailbox with a display name; the value is the addr-spec alone "
                                     "(put the name in display_name; STIX 2.1 section 6.5, RFC 5322 section 3.4.1)")
    return ValueProblem("TI231", f"{value!r} is not an RFC 5322 addr-spec like jdoe@example.com (STIX 2.1 section 6.5)")


# --- Media types (RFC 6838 section 4.2) and character sets (RFC 2978) --------------------

_TOP_LEVEL_TYPES: Final = frozenset(
    {"application", "audio", "example", "font", "haptics", "image", "message", "model", "multipart", "text", "video"}
)
_RESTRICTED_NAME: Final = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]{0,126}"
_PARAMETER: Final = r"""\s*;\s*[A-Za-z0-9!#$&^_.+\-]+=(?:[A-Za-z0-9!#$%&'*+.^_`{|}~\-]+|"[^"]*")"""
_MEDIA_TYPE_RE: Final = LazyPattern(rf"^({_RESTRICTED_NAME})/{_RESTRICTED_NAME}(?:{_PARAMETER})*$")


def _media_type(value: str) -> ValueProblem | None:
    match = _MEDIA_TYPE_RE.match(value)
    if match is None:
        return ValueProblem("TI232", f"{value!r} is not a media type like application/zip (RFC 6838 section 4.2; STIX 2.1 sections 6.1, 6.7)")
    if match.group(1).lower() not in _TOP_LEVEL_TYPES:
        return ValueProblem("TI232", f"{value!r}: '{match.group(1)}' is not an IANA top-level media type "
                                     f"({', '.join(sorted(_TOP_LEVEL_TYPES))}; STIX 2.1 sections 6.1, 6.7)")
    return None


_CHARACTER_SETS_FILE: Final = "iana-character-sets.tsv"


@lru_cache(maxsize=1)
def _character_sets() -> dict[str, tuple[str, bool]]:
    """Every name and alias of the IANA Character Sets registry, lowercased: the name the
    registry prefers for it (its preferred MIME name, else its name), and whether it is that
    character set's name or preferred MIME name rather than an alias.

    Names compare without regard to case (RFC 2978 section 2.3). Read on the first *_enc
    value a build meets, so a repository without one never loads the table.
    """
    from importlib.resources import files

    table: dict[str, tuple[str, bool]] = {}
    text = files("tiops").joinpath("data", _CHARACTER_SETS_FILE).read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, preferred, aliases = line.split("\t")
        shown = preferred or name
        for alias in aliases.split():
            table.setdefault(alias.lower(), (shown, False))
        for own in (name, preferred):
            if own:
                table[own.lower()] = (shown, True)
    return table


@lru_cache(maxsize=1024)
def check_charset(value: str) -> ValueProblem | None:
    """A character set named as in the IANA registry (STIX 2.1 sections 6.3, 6.7: the *_enc
    properties MUST use "the corresponding name from the ... IANA character set registry")."""
    known = _character_sets().get(value.lower())
    if known is None:
        return ValueProblem("TI233", f"{value!r} is not a character set of the IANA registry; write its "
                                     "registry name, such as UTF-8 or windows-1252 (STIX 2.1 sections 6.3, 6.7)")
    preferred, is_name = known
    if not is_name:
        return ValueProblem("TI238", f"{value!r} is an alias in the IANA character set registry; the registry "
                                     f"names it {preferred} (STIX 2.1 sections 6.3, 6.7)")
    return None


# --- URLs (STIX 2.1 sections 6.15 and 6.1: RFC 3986) --------------------------------------


# The usual shape of a URL, a subset of RFC 3986's URI (section 3): scheme "://" reg-name
# host of unreserved characters (3.2.2), optional port (3.2.3), path-abempty (3.3), query
# (3.4) and fragment (3.5). What it accepts the full grammar accepts; anything else goes
# to rfc3986-validator, whose grammar costs tens of milliseconds to compile.
_URL_PCHAR: Final = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})"
_COMMON_URL_RE: Final = LazyPattern(
    rf"[A-Za-z][A-Za-z0-9+.-]*://[A-Za-z0-9._~-]*(?::[0-9]*)?(?:/{_URL_PCHAR}*)*"
    rf"(?:\?(?:{_URL_PCHAR}|[/?])*)?(?:#(?:{_URL_PCHAR}|[/?])*)?"
)


def _url(value: str) -> ValueProblem | None:
    if _COMMON_URL_RE.fullmatch(value) is not None:
        return None
    # rfc3986-validator compiles its grammar when imported: only once an unusual URL is met.
    from rfc3986_validator import validate_rfc3986

    if validate_rfc3986(value, rule="URI") is None:
        return ValueProblem("TI234", f"{value!r} is not an RFC 3986 URI with a scheme, like https://example.com/a "
                                     "(spaces and other unsafe characters are percent-encoded; STIX 2.1 section 6.15)")
    return None


# --- CPE 2.3 (STIX 2.1 section 6.14; NISTIR 7695 section 6.2, formatted string binding) ----

_CPE_AVSTRING: Final = r"""(?:(?:\?*|\*?)(?:[A-Za-z0-9\-._]|\\[\\*?!"#$%&'()+,/:;<=>@\[\]^`{|}~])+(?:\?*|\*?)|[*\-])"""
_CPE_LANGUAGE: Final = r"(?:[A-Za-z]{2,3}(?:-(?:[A-Za-z]{2}|[0-9]{3}))?|[*\-])"
_CPE_RE: Final = LazyPattern(
    rf"^cpe:2\.3:[aho*\-](?::{_CPE_AVSTRING}){{5}}:{_CPE_LANGUAGE}(?::{_CPE_AVSTRING}){{4}}$"
)


def _cpe(value: str) -> ValueProblem | None:
    if _CPE_RE.match(value):
        return None
    return ValueProblem("TI235", f"{value!r} is not a CPE 2.3 formatted string like "
                                 "cpe:2.3:a:vendor:product:1.0:*:*:*:*:*:*:* (NISTIR 7695 section 6.2; STIX 2.1 section 6.14)")


# --- Language tags (RFC 5646 section 2.1) ----------------------------------------------

_LANGTAG_RE: Final = LazyPattern(
    r"^(?:"
    r"(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})"  # language (with extlang)
    r"(?:-[A-Za-z]{4})?"  # script
    r"(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"  # region
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"  # variants
    r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"  # extensions
    r"(?:-[xX](?:-[A-Za-z0-9]{1,8})+)?"  # private use
    r"|[xX](?:-[A-Za-z0-9]{1,8})+"  # private use only
    r"|[iI]-[A-Za-z]{2,8}|[A-Za-z]{2,3}-[A-Za-z0-9]{2,8}-[A-Za-z0-9]{2,8}"  # grandfathered
    r")$"
)


@lru_cache(maxsize=1024)
def check_language_tag(value: str) -> ValueProblem | None:
    """An RFC 5646 language tag whose subtags are in the IANA registry (STIX 2.1 sections 3.2, 6.14, 7.1)."""
    if not _LANGTAG_RE.match(value):
        return _bad_language_tag(value)
    # The subtag registry costs a few tenths of a second to import: only when a tag is met.
    import langcodes

    if not langcodes.tag_is_valid(value):
        return _bad_language_tag(value)
    return None


def _bad_language_tag(value: str) -> ValueProblem:
    return ValueProblem("TI236", f"{value!r} is not an RFC 5646 language tag like en, de-CH or zh-Hant "
                                 "(STIX 2.1 section 3.2 lang; 6.14 languages; 7.1 contents)")


# --- Domain names (STIX 2.1 section 6.4: RFC 1034, each label RFC 5890) -------------------

# The usual shape: LDH labels (RFC 5890 section 2.3.1) of at most 63 characters, neither
# starting nor ending with a hyphen, and an optional final dot (an absolute name).
_LDH_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_COMMON_DOMAIN_RE: Final = LazyPattern(rf"^(?:{_LDH_LABEL}\.)*{_LDH_LABEL}\.?$")
# What else a label may hold and still be a name seen in DNS: underscores, which RFC 2181
# section 11 allows in labels and RFC 8552 uses for service names (_dmarc.example.com).
_ASCII_LABEL_RE: Final = LazyPattern(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?$")


def _domain_name(value: str) -> ValueProblem | None:
    """A domain name of labels DNS can carry (RFC 1034 section 3.1: at most 63 octets each,
    255 in all), each an LDH label, an underscore label or an IDNA label (RFC 5890).

    Internationalised names and underscores pass: feeds carry both. What fails is what no
    resolver can look up: an empty label, a hyphen at either end of a label, a space or
    other punctuation, an A-label that is not Punycode, a label or a name that is too long.
    """
    if len(value) <= 253 and "--" not in value and _COMMON_DOMAIN_RE.match(value):
        return None
    name = value[:-1] if value.endswith(".") else value
    length = -1  # the dots between labels
    for label in name.split("."):
        encoded, problem = _checked_label(label)
        if problem is not None:
            return ValueProblem("TI239", f"{value!r} is not a domain name: {problem} (STIX 2.1 section 6.4; "
                                         "RFC 1034 section 3.1, RFC 5890 section 2.3)")
        length += len(encoded) + 1
    if length > 253:
        return ValueProblem("TI239", f"{value!r} is not a domain name: {length} characters, more than 253 "
                                     "(STIX 2.1 section 6.4; RFC 1034 section 3.1)")
    return None


def _checked_label(label: str) -> tuple[str, str | None]:
    """One label as DNS carries it (its A-label when it is internationalised), and why it
    cannot be part of a domain name (None: it can)."""
    if not label:
        return label, "an empty label (two dots in a row, or a dot at the start)"
    if not label.isascii():
        from encodings import idna  # the IDNA ToASCII operation Python ships (RFC 3490)

        try:
            encoded = idna.ToASCII(label).decode("ascii")
        except UnicodeError as error:  # a character IDNA forbids, or too long once encoded
            return label, f"the label {label!r} has no IDNA A-label (RFC 5891: {error})"
        # Mapping may leave ASCII that breaks the rules below (an ideographic space becomes a space).
        return encoded, _checked_label(encoded)[1]
    if len(label) > 63:
        return label, f"a label of {len(label)} characters, more than 63"
    if label.startswith("-") or label.endswith("-"):
        return label, f"the label {label!r} starts or ends with a hyphen"
    if not _ASCII_LABEL_RE.match(label):
        wrong = next(ch for ch in label if not (ch.isalnum() or ch in "-_"))
        return label, f"the label {label!r} holds {wrong!r}"
    if label[:4].lower() == "xn--":
        try:
            label.encode("ascii").decode("idna")
        except UnicodeError:
            return label, f"the label {label!r} is not a valid A-label (its Punycode does not decode)"
    return label, None


# --- Hashes (STIX 2.1 section 2.7, hash-algorithm-ov section 10.6) ----------------------

_HEX_LENGTHS: Final = {"MD5": 32, "SHA-1": 40, "SHA-256": 64, "SHA-512": 128, "SHA3-256": 64, "SHA3-512": 128}
_HEX_RE: Final = LazyPattern(r"^[0-9A-Fa-f]+$")
# ssdeep: blocksize:hash:hash in base64 characters.
_SSDEEP_RE: Final = LazyPattern(r"^[0-9]{1,10}:[A-Za-z0-9/+]{1,128}:[A-Za-z0-9/+]{1,128}$")
# TLSH: 70 or 134 hex digits (128 or 256 buckets), optionally after the version prefix T1.
_TLSH_RE: Final = LazyPattern(r"^(?:T1)?(?:[0-9A-Fa-f]{70}|[0-9A-Fa-f]{134})$")

HASH_RULES: Final = {name: f"{length} hexadecimal digits" for name, length in _HEX_LENGTHS.items()} | {
    "SSDEEP": "blocksize:hash:hash in base64 characters",
    "TLSH": "70 hexadecimal digits, optionally after T1",
}


def check_hash(algorithm: str, value: str) -> ValueProblem | None:
    """A hash value of the length and alphabet of its algorithm (custom algorithms are not checked)."""
    length = _HEX_LENGTHS.get(algorithm)
    if length is not None:
        good = len(value) == length and _HEX_RE.match(value) is not None
    elif algorithm == "SSDEEP":
        good = _SSDEEP_RE.match(value) is not None
    elif algorithm == "TLSH":
        good = _TLSH_RE.match(value) is not None
    else:
        return None
    if good:
        return None
    return ValueProblem("TI237", f"{algorithm} value {value!r} is not {HASH_RULES[algorithm]} "
                                 "(STIX 2.1 section 2.7, hash-algorithm-ov section 10.6)")


# --- Windows registry keys (STIX 2.1 section 6.17) ------------------------------------

# The abbreviations of the registry hives; section 6.17: "the hive portion of the key MUST
# be fully expanded and not truncated; e.g., HKEY_LOCAL_MACHINE must be used instead of HKLM".
_HIVE_ABBREVIATIONS: Final = {"HKLM": "HKEY_LOCAL_MACHINE", "HKCU": "HKEY_CURRENT_USER", "HKCR": "HKEY_CLASSES_ROOT",
                              "HKU": "HKEY_USERS", "HKCC": "HKEY_CURRENT_CONFIG"}


def _registry_key(value: str) -> ValueProblem | None:
    written = value.partition("\\")[0]
    full = _HIVE_ABBREVIATIONS.get(written.upper())
    if full is not None:
        return ValueProblem("TI211", f"{value!r}: the hive is written in full, {full} and not {written} "
                                     "(STIX 2.1 section 6.17)")
    return None


# --- The table ----------------------------------------------------------------------

_EMAIL_REFS: Final = ("from_ref", "sender_ref", "to_refs", "cc_refs", "bcc_refs")

# (SCO type, property path without list indices) -> check. Paths are what
# tiops.observables produces (dots between steps), so pattern paths such as
# email-message:to_refs[*].value find the same rule once indices are removed.
_RULES: Final[dict[tuple[str, str], Check]] = {
    ("ipv4-addr", "value"): _ipv4,
    ("ipv6-addr", "value"): _ipv6,
    ("email-addr", "value"): _email,
    ("domain-name", "value"): _domain_name,
    **{("email-message", f"{ref}.value"): _email for ref in _EMAIL_REFS},
    ("artifact", "mime_type"): _media_type,
    ("file", "mime_type"): _media_type,
    ("file", "name_enc"): check_charset,
    ("directory", "path_enc"): check_charset,
    ("url", "value"): _url,
    ("artifact", "url"): _url,
    ("software", "cpe"): _cpe,
    ("software", "languages"): check_language_tag,
    ("windows-registry-key", "key"): _registry_key,
}

_INDEX_RE: Final = LazyPattern(r"\[[^\]]*\]")


def rule_for(sco_type: str, path: str) -> Check | None:
    """The check for a property path of an SCO type, or None when tiops has none for it."""
    if "[" in path:
        path = _INDEX_RE.sub("", path)
    return _RULES.get((sco_type, path))


@lru_cache(maxsize=4096)
def value_check(sco_type: str, path: str) -> Check | None:
    """The check for a value at ``path`` of an SCO of ``sco_type`` (hashes anywhere, by
    algorithm), or None when tiops has none for it. Remembered per pair: a repository's
    values sit at few distinct paths, and only the value itself differs."""
    check = rule_for(sco_type, path)
    if check is not None:
        return check
    head, dot, last = path.rpartition(".")
    if dot and (head == "hashes" or head.endswith(".hashes")) and last in HASH_RULES:
        return partial(check_hash, last)
    return None


_MAC_48: Final = LazyPattern(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


def _mac_address(value: str) -> ValueProblem | None:
    if _MAC_48.fullmatch(value):
        return None
    return ValueProblem("TI200", f"{value!r} is not a MAC-48 address written as six lower-case hexadecimal octets "
                                 "joined by colons, leading zeros included (STIX 2.1 section 6.10)")


# Checks of pattern values only: on the SCO itself the JSON schema already holds the value to them.
_PATTERN_ONLY: Final[dict[tuple[str, str], Check]] = {("mac-addr", "value"): _mac_address}


def pattern_value_check(sco_type: str, path: str) -> Check | None:
    """:func:`value_check`, for a value a pattern compares with (what no schema checks there)."""
    return value_check(sco_type, path) or _PATTERN_ONLY.get((sco_type, path))


def check_observable_value(sco_type: str, path: str, value: str) -> ValueProblem | None:
    """Check one value at ``path`` of an SCO of ``sco_type`` (hashes anywhere, by algorithm)."""
    check = value_check(sco_type, path)
    return None if check is None else check(value)

"""Observable value rules (tiops.values), each case taken from the rule's own text:
STIX 2.1 section 6 for the property, and the RFC or registry it names."""

from __future__ import annotations

import pytest

from tiops.observables import pattern_observables
from tiops.values import check_charset, check_hash, check_language_tag, check_observable_value

# (SCO type, property path, value, expected code or None)
CASES = [
    # 6.8: "one or more IPv4 addresses expressed using CIDR notation"
    ("ipv4-addr", "value", "198.51.100.3", None),
    ("ipv4-addr", "value", "198.51.100.0/24", None),
    ("ipv4-addr", "value", "0.0.0.0/0", None),
    ("ipv4-addr", "value", "999.999.999.999", "TI230"),
    ("ipv4-addr", "value", "198.51.100.0/33", "TI230"),
    ("ipv4-addr", "value", "198.51.100.0/", "TI230"),
    ("ipv4-addr", "value", "198.51.100.0/024", "TI230"),
    ("ipv4-addr", "value", "198.51.100.0/255.255.255.0", "TI230"),
    ("ipv4-addr", "value", "010.1.1.1", "TI230"),
    ("ipv4-addr", "value", "2001:db8::1", "TI230"),
    # 6.9: IPv6 in CIDR notation
    ("ipv6-addr", "value", "2001:db8::1", None),
    ("ipv6-addr", "value", "2001:db8::/32", None),
    ("ipv6-addr", "value", "2001:db8::/129", "TI230"),
    ("ipv6-addr", "value", "fe80::1%eth0", "TI230"),
    ("ipv6-addr", "value", "198.51.100.3", "TI230"),
    # 6.5: "The value of the email address. This MUST NOT include the display name." (RFC 5322 addr-spec)
    ("email-addr", "value", "jdoe@example.com", None),
    ("email-addr", "value", '"john doe"@example.com', None),
    ("email-addr", "value", "jdoe@[192.0.2.1]", None),
    ("email-addr", "value", "John Doe <jdoe@example.com>", "TI231"),
    ("email-addr", "value", "jdoe", "TI231"),
    ("email-addr", "value", "j..doe@example.com", "TI231"),
    ("email-message", "to_refs.value", "eve@example.com", None),
    ("email-message", "from_ref.value", "@example.com", "TI231"),
    # 6.1/6.7: mime_type "SHOULD/MUST be a valid IANA media type" (RFC 6838 type/subtype)
    ("artifact", "mime_type", "application/zip", None),
    ("file", "mime_type", "text/plain; charset=utf-8", None),
    ("file", "mime_type", "application/vnd.ms-excel", None),
    ("artifact", "mime_type", "zip", "TI232"),
    ("file", "mime_type", "executable/pe", "TI232"),
    # 6.3/6.7: *_enc "MUST be specified using the corresponding name from the IANA character set registry"
    ("file", "name_enc", "windows-1252", None),
    ("directory", "path_enc", "UTF-16LE", None),
    ("file", "name_enc", "utf 8", "TI233"),
    ("file", "name_enc", "utf-9", "TI233"),  # well formed, but in no registry
    ("file", "name_enc", "not-a-charset", "TI233"),
    ("file", "name_enc", "utf8", "TI233"),  # Python's codecs know it; the registry does not
    ("file", "name_enc", "utf-8", None),  # names compare without regard to case (RFC 2978 section 2.3)
    ("file", "name_enc", "ISO_8859-1:1987", None),  # a registry Name, with a colon
    ("file", "name_enc", "Extended_UNIX_Code_Packed_Format_for_Japanese", None),  # 45 characters, registered
    ("file", "name_enc", "latin1", "TI238"),  # an alias of ISO-8859-1
    ("directory", "path_enc", "csUTF8", "TI238"),
    # 6.4: "MUST conform to [RFC1034], and each domain and sub-domain ... MUST conform to [RFC5890]"
    ("domain-name", "value", "www.example.com", None),
    ("domain-name", "value", "example.com.", None),  # an absolute name
    ("domain-name", "value", "_dmarc.example.com", None),  # an underscore label (RFC 8552)
    ("domain-name", "value", "bücher.example", None),  # a U-label
    ("domain-name", "value", "xn--bcher-kva.example", None),  # its A-label
    ("domain-name", "value", "3322.org", None),
    ("domain-name", "value", "-bad-.example.com", "TI239"),
    ("domain-name", "value", "bad-.example.com", "TI239"),
    ("domain-name", "value", "www..example.com", "TI239"),
    ("domain-name", "value", ".example.com", "TI239"),
    ("domain-name", "value", "domain autuo.xicp.net", "TI239"),  # as an OASIS example has it
    ("domain-name", "value", "*.example.com", "TI239"),
    ("domain-name", "value", "http://example.com/", "TI239"),
    ("domain-name", "value", "a" * 64 + ".example.com", "TI239"),
    ("domain-name", "value", ".".join(["a" * 63] * 4), "TI239"),  # 255 characters
    ("domain-name", "value", ".".join(["a" * 63] * 3 + ["a" * 61]), None),  # 253
    ("domain-name", "value", "xn--zz.example", "TI239"),  # not Punycode
    ("domain-name", "value", "bad\u3000x.example", "TI239"),  # an ideographic space, mapped to a space
    ("domain-name", "value", "ü" * 70 + ".example", "TI239"),  # over 63 once encoded
    ("domain-name", "value", "", "TI239"),
    # 6.15: "The value of this property MUST conform to [RFC3986]"
    ("url", "value", "https://example.com/path?q=1#frag", None),
    ("url", "value", "ftp://198.51.100.3/a%20b", None),
    ("url", "value", "example.com/path", "TI234"),
    ("url", "value", "http://example.com/a path", "TI234"),
    ("artifact", "url", "https://example.com/sample.bin", None),
    # 6.14: cpe "MUST be a CPE v2.3 entry from the official NVD CPE Dictionary" (formatted string)
    ("software", "cpe", "cpe:2.3:a:microsoft:word:2000:*:*:*:*:*:*:*", None),
    ("software", "cpe", r"cpe:2.3:a:acme:tool\!:1.0:*:*:en-us:*:*:*:*", None),
    ("software", "cpe", "cpe:/a:microsoft:word:2000", "TI235"),
    ("software", "cpe", "cpe:2.3:a:microsoft:word", "TI235"),
    # 6.14: languages "MUST be a language code conformant to [RFC5646]"
    ("software", "languages", "en", None),
    ("software", "languages", "zh-Hant-TW", None),
    ("software", "languages", "english", "TI236"),
    ("software", "languages", "en_US", "TI236"),
    # 2.7: hashes; hash-algorithm-ov: the algorithms' output sizes and alphabets
    ("file", "hashes.MD5", "d41d8cd98f00b204e9800998ecf8427e", None),
    ("file", "hashes.SHA-1", "da39a3ee5e6b4b0d3255bfef95601890afd80709", None),
    ("file", "hashes.SHA-256", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", None),
    ("file", "hashes.MD5", "d41d8cd98f00b204e9800998ecf8427", "TI237"),
    ("file", "hashes.SHA-1", "da39a3ee5e6b4b0d3255bfef95601890afd8070g", "TI237"),
    ("file", "hashes.SSDEEP", "3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C", None),
    ("file", "hashes.SSDEEP", "not an ssdeep", "TI237"),
    ("file", "hashes.x-custom", "anything at all", None),
    ("file", "extensions.windows-pebinary-ext.sections.hashes.SHA-256", "abc", "TI237"),
    # No rule: not checked.
    ("mutex", "name", "anything", None),
]


@pytest.mark.parametrize(("sco_type", "path", "value", "expected"), CASES, ids=lambda c: str(c)[:40])
def test_value_rule(sco_type: str, path: str, value: str, expected: str | None) -> None:
    problem = check_observable_value(sco_type, path, value)
    assert (problem.code if problem else None) == expected, problem
    if problem is not None:
        assert "section" in problem.reason  # every reason cites where the rule comes from


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.mark.parametrize(("sco_type", "path", "value", "expected"),
                         [c for c in CASES if "." not in c[1] or c[1].startswith("hashes.")], ids=lambda c: str(c)[:40])
def test_pattern_literal_reads_as_the_same_value(sco_type: str, path: str, value: str, expected: str | None) -> None:
    """A pattern comparison reaches the same rule with the same unescaped value."""
    steps = ".".join(f"'{step}'" if "-" in step else step for step in path.split("."))
    (observable,) = pattern_observables(f"[{sco_type}:{steps} = {_literal(value)}]")
    problem = check_observable_value(observable.object_type, observable.path, observable.value)
    assert (problem.code if problem else None) == expected


def test_pattern_list_index_finds_the_rule_of_the_list_property() -> None:
    (observable,) = pattern_observables("[email-message:to_refs[*].value = 'Eve <eve@example.com>']")
    problem = check_observable_value(observable.object_type, observable.path, observable.value)
    assert problem is not None and problem.code == "TI231"


def test_language_tag_and_charset_and_hash_are_usable_alone() -> None:
    assert check_language_tag("de-CH") is None
    assert check_language_tag("xx-YY-zz") is not None  # well-formed, but no such subtags in the registry
    assert check_charset("ISO-8859-1") is None
    assert check_hash("TLSH", "T1" + "A" * 70) is None
    assert check_hash("TLSH", "A" * 69) is not None


def test_common_url_shape_accepts_only_what_rfc3986_accepts() -> None:
    # URLs of the usual shape skip rfc3986-validator (whose grammar is slow to compile), so
    # that shape must stay inside RFC 3986's URI: random strings over the characters that
    # matter, each one the shape accepts is checked against the full grammar.
    import random

    from rfc3986_validator import validate_rfc3986

    from tiops.values import _COMMON_URL_RE

    rng = random.Random(19)
    alphabet = "aZ09._~!$&'()*+,;=:@-%/?#[] \"<>\\^`{|}\n\t\x7fé"
    pieces = ["://", ":", "//", "/", "?", "#", "%41", "%4", "%zz", "@", "[::1]", ":8080", "example.com"]
    accepted = 0
    for _ in range(20_000):
        parts = [rng.choice(pieces) if rng.random() < 0.5 else rng.choice(alphabet) for _ in range(rng.randint(1, 12))]
        value = rng.choice(["http://", "https://", "s3://", "a+b-c.d://", ""]) + "".join(parts)
        if _COMMON_URL_RE.fullmatch(value) is not None:
            accepted += 1
            assert validate_rfc3986(value, rule="URI") is not None, value
    assert accepted > 1_000  # the shape is exercised, not just rejected


@pytest.mark.parametrize("value", ["https://example.com/a?b=c&d=%20#top", "http://198.51.100.3:8080/", "s3://bucket"])
def test_common_urls_are_accepted_without_the_full_grammar(value: str) -> None:
    from tiops.values import _COMMON_URL_RE

    assert _COMMON_URL_RE.fullmatch(value) is not None
    assert check_observable_value("url", "value", value) is None


def test_email_character_classes_are_the_rfc_sets() -> None:
    # The addr-spec expression writes atext and qtext as their ASCII complement, which
    # compiles faster; over every code point they must equal the sets as RFC 5322 3.2.3
    # and 3.2.4 (with RFC 6532's UTF-8) spell them.
    import re

    from tiops.values import _ATEXT, _QUOTED

    spelled_atext = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]")
    spelled_qtext_or_space = re.compile(r"[\x21\x23-\x5b\x5d-\x7e \t\u0080-\U0010ffff]")
    atext = re.compile(_ATEXT)
    qtext_or_space = re.compile(_QUOTED[4:_QUOTED.index("]") + 1])
    assert qtext_or_space.pattern.startswith("[^")
    for code in range(0x110000):
        char = chr(code)
        assert bool(atext.fullmatch(char)) == bool(spelled_atext.fullmatch(char)), hex(code)
        assert bool(qtext_or_space.fullmatch(char)) == bool(spelled_qtext_or_space.fullmatch(char)), hex(code)


def test_a_mac_address_a_pattern_compares_with_is_checked_as_the_sco_value_is() -> None:
    from tiops.load import IntelObject
    from tiops.validate.objects import check_object

    def codes(pattern: str) -> list[str]:
        obj = IntelObject(data={"type": "indicator", "spec_version": "2.1", "id": "indicator--11111111-1111-4111-8111-111111111111",
                                "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z",
                                "pattern": pattern, "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z"}, file="x")
        return [f.code for f in check_object(obj) if f.severity.name == "ERROR"]

    assert codes("[mac-addr:value = '00-11-22-33-44-5G']") == ["TI200"]
    assert codes("[mac-addr:value = 'D2:FB:49:24:37:18']") == ["TI200"]  # lower case, section 6.10
    assert codes("[mac-addr:value = 'd2:fb:49:24:37:18']") == []
    assert codes("[mac-addr:value = 'd2:fb:49:24:37:18' OR ipv4-addr:value = '198.51.100.1']") == []
    assert codes("[mac-addr:value IN ('d2:fb:49:24:37:18', 'nonsense')]") == ["TI200"]

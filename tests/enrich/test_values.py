"""Which values enrichment looks up: IPs, domains and URL hosts, from patterns and SCOs."""

from __future__ import annotations

from tiops.enrich.values import enrich_values, object_enrich_values


def test_pattern_values_of_every_kind_unescaped_and_normalised() -> None:
    pattern = ("[ipv4-addr:value = '203.0.113.7' OR ipv6-addr:value = '2001:DB8::1' OR "
               "domain-name:value = 'Evil.Example.COM.' OR url:value = 'https://login.example.net:8443/a?b' OR "
               "url:value = 'http://[2001:db8::5]/x' OR ipv4-addr:value = '198.51.100.0/24' OR "
               "url:value = 'http://198.51.100.9:8080/x' OR file:name = '8.8.8.8']")
    assert object_enrich_values({"type": "indicator", "pattern": pattern, "pattern_type": "stix"}) == (
        ("ip", "203.0.113.7"), ("ip", "2001:db8::1"), ("domain", "evil.example.com"),
        ("domain", "login.example.net"), ("ip", "2001:db8::5"), ("ip", "198.51.100.0/24"),
        ("ip", "198.51.100.9"))


def test_negated_and_non_equality_comparisons_name_nothing_to_enrich() -> None:
    pattern = "[ipv4-addr:value != '8.8.8.8' AND domain-name:value NOT = 'a.example' AND url:value LIKE 'http://%']"
    assert object_enrich_values({"type": "indicator", "pattern": pattern}) == ()
    assert object_enrich_values({"type": "indicator", "pattern": "[ipv4-addr:value IN ('1.2.3.4', '5.6.7.8')]"}) == (
        ("ip", "1.2.3.4"), ("ip", "5.6.7.8"))


def test_an_address_within_a_network_names_the_network() -> None:
    # "[ipv4-addr:value ISSUBSET '198.51.100.0/24']" is STIX's "any address of this block"
    # (section 9.6.1): the block is looked up, as "= '198.51.100.0/24'" would be.
    def values(pattern: str) -> tuple[tuple[str, str], ...]:
        return object_enrich_values({"type": "indicator", "pattern": pattern, "pattern_type": "stix"})

    assert values("[ipv4-addr:value ISSUBSET '198.51.100.0/24']") == (("ip", "198.51.100.0/24"),)
    assert values("[ipv6-addr:value ISSUBSET '2001:DB8::/32']") == (("ip", "2001:db8::/32"),)
    assert values("[ipv4-addr:value ISSUBSET '203.0.113.7/32']") == (("ip", "203.0.113.7"),)
    assert values("[network-traffic:dst_ref.value ISSUBSET '::ffff:198.51.100.0/120']") == (("ip", "198.51.100.0/24"),)
    # Negated, the other way round, or on something that is not an address: nothing.
    assert values("[ipv4-addr:value NOT ISSUBSET '198.51.100.0/24']") == ()
    assert values("[ipv4-addr:value ISSUPERSET '198.51.100.7']") == ()
    assert values("[domain-name:value ISSUBSET '198.51.100.0/24']") == ()
    assert values("[domain-name:resolves_to_refs[*].value ISSUBSET '198.51.100.0/24']") == ()
    assert values("[ipv4-addr:value ISSUBSET 'not a network']") == ()


def test_addresses_and_names_a_pattern_reaches_through_a_reference() -> None:
    # network-traffic src_ref/dst_ref (STIX 2.1 section 6.12) and domain-name resolves_to_refs
    # (section 6.4) name an address or a domain name; the value tells which.
    def values(pattern: str) -> tuple[tuple[str, str], ...]:
        return object_enrich_values({"type": "indicator", "pattern": pattern, "pattern_type": "stix"})

    assert values("[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '203.0.113.33/32']"
                  ) == (("ip", "203.0.113.33"),)  # the example of the STIX specification
    assert values("[network-traffic:src_ref.value = '2001:DB8::1'] AND [network-traffic:dst_port = 443]") == (
        ("ip", "2001:db8::1"),)
    assert values("[network-traffic:dst_ref.value = 'C2.Example.NET']") == (("domain", "c2.example.net"),)
    assert values("[domain-name:resolves_to_refs[*].value = '198.51.100.3' OR "
                  "domain-name:resolves_to_refs[0].value = 'cdn.example']") == (
        ("ip", "198.51.100.3"), ("domain", "cdn.example"))
    assert values("[network-traffic:dst_ref.value = '00:11:22:33:44:55']") == ()  # a MAC address
    assert values("[network-traffic:dst_ref.value != '198.51.100.3']") == ()
    assert values("[network-traffic:dst_port = 443] AND [email-message:from_ref.value = 'a@b.example']") == ()


def test_an_address_written_as_a_name_with_the_roots_dot_or_spaces_is_the_address() -> None:
    # "8.8.8.8." and "8.8.8.8 " were the domain "8.8.8.8": no GeoLocation, an RDAP domain query for
    # a name no registry holds, and a whois key shared with the address's own entry.
    for written in ["8.8.8.8.", "8.8.8.8 ", " 8.8.8.8", "8.8.8.8\t", "8.8.8.0/24 "]:
        expected = (("ip", "8.8.8.0/24" if "/" in written else "8.8.8.8"),)
        assert object_enrich_values({"type": "domain-name", "value": written}) == expected, repr(written)
        for pattern in [f"[domain-name:value = '{written}']", f"[network-traffic:dst_ref.value = '{written}']",
                        f"[domain-name:resolves_to_refs[*].value = '{written}']"]:
            obj = {"type": "indicator", "pattern": pattern, "pattern_type": "stix"}
            assert object_enrich_values(obj) == expected, pattern
    # A name that ends in a number and is no address names nothing, with its root's dot too (RFC 3696
    # section 2: no top-level domain is all digits); a name that ends in a letter keeps its kind.
    for written in ["example.123.", "example.123 ", "1.2.3.4.5.", "8.8.8.256."]:
        assert object_enrich_values({"type": "domain-name", "value": written}) == (), repr(written)
    # Nor does one with an empty label before the root's dot (tiops validate refuses it, TI239).
    for kind, written in [("domain-name", "8.8.8.8.."), ("domain-name", "example.com.."),
                          ("url", "http://8.8.8.8../"), ("url", "http://example.com../x")]:
        assert object_enrich_values({"type": kind, "value": written}) == (), repr(written)
    assert object_enrich_values({"type": "domain-name", "value": "A1.Example1. "}) == (("domain", "a1.example1"),)


def test_scos_and_other_objects() -> None:
    objects = [
        {"type": "ipv4-addr", "value": "8.8.8.8"},
        {"type": "domain-name", "value": "example.org"},
        {"type": "url", "value": "https://example.org/path"},
        {"type": "malware", "name": "8.8.4.4"},
        {"type": "indicator", "pattern": "[ipv4-addr:value = '1.1.1.1']", "pattern_type": "sigma"},
        {"type": "ipv4-addr", "value": "not an address"},
        {"type": "domain-name", "value": "localhost"},
    ]
    assert enrich_values(objects) == {("ip", "8.8.8.8"), ("domain", "example.org")}


def test_the_single_comparison_shortcut_agrees_with_the_pattern_lexer() -> None:
    literals = {"ipv4-addr": ["8.8.8.8", "198.51.100.0/24", "1.2.3"], "ipv6-addr": ["2001:DB8:0:0::1", "::1"],
                "domain-name": ["Example.COM", "x"], "url": ["https://a.example:8/p", "http://[2001:db8::1]/", "nope"]}
    for kind, values in literals.items():
        for value in values:
            simple = {"type": "indicator", "pattern": f"[{kind}:value = '{value}']"}
            lexed = {"type": "indicator", "pattern": f"[{kind}:value  =  '{value}']"}  # not the shortcut's shape
            assert object_enrich_values(simple) == object_enrich_values(lexed), value


URLS = [
    "https://login.example.net:8443/a?b", "HTTP://Mixed.Example.COM/Path", "http://a.example", "http://a.example:/x",
    "http://a.example:abc/x", "http://user:pw@host.example/", "http://[2001:db8::5]:80/x", "ftp://files.example/#frag",
    "http://under_score.example?q", "https://198.51.100.9:8080/x", "http://trailing.example./", " http://space.example/",
    "http://tab.exa\tmple/", "mailto:someone@example.org", "//no-scheme.example/", "http://xn--bcher-kva.example/",
    "http://bad host.example/", "1http://digit.example/", "http://a.example%2F/", "javascript://a.example/%0a",
]


def test_url_hosts_read_by_slicing_agree_with_urlsplit() -> None:
    from urllib.parse import urlsplit

    from tiops.enrich.values import _decoded_host, _url_hostname

    for url in URLS:
        try:
            parts = urlsplit(url.strip())
            _ = parts.port  # raises for a port that is no number up to 65535: such a URL names no host
            expected = parts.hostname
        except ValueError:
            expected = None
        if expected and "%" in expected:  # what a browser contacts (below)
            expected = _decoded_host(expected)
        assert _url_hostname(url) == expected, url


def test_values_named_as_the_lock_has_them_are_taken_as_written() -> None:
    objects = [{"type": "indicator", "pattern": f"[{kind}:value = '{value}']", "pattern_type": "stix"}
               for kind, value in [("ipv4-addr", "8.8.8.8"), ("ipv6-addr", "2001:DB8::1"), ("ipv6-addr", "2001:db8::1"),
                                   ("domain-name", "Example.COM"), ("domain-name", "example.com"),
                                   ("url", "https://Example.com/x"), ("url", "http://[2001:db8::1]/"),
                                   ("ipv4-addr", "198.51.100.0/24"), ("ipv4-addr", "1.2.3")]]
    objects.append({"type": "indicator", "pattern": "[url:value = 'https://example.com/a' OR "
                                                   "ipv4-addr:value = '8.8.8.8']"})
    known = {"8.8.8.8", "2001:db8::1", "example.com", "198.51.100.0/24"}
    for obj in objects:
        # The lock's keys are canonical, so taking a key-shaped value as written changes nothing.
        assert object_enrich_values(obj, known) == object_enrich_values(obj), obj


def test_canonical_value_is_how_the_lock_writes_a_value() -> None:
    from tiops.enrich.values import canonical_value

    assert canonical_value("8.8.8.8") == "8.8.8.8"
    assert canonical_value("2001:DB8:0::1") == "2001:db8::1"
    assert canonical_value("198.51.100.7/24") == "198.51.100.0/24"
    assert canonical_value("Example.COM.") == "example.com"
    assert canonical_value("not a name") is None


def test_internationalised_names_are_looked_up_by_their_a_labels() -> None:
    from tiops.enrich.values import canonical_value, is_canonical

    # One name written as U-labels, A-labels, in capitals, with a full stop of another script,
    # in a URL or as an SCO is one value, the one DNS and the RDAP bootstrap registry know
    # (RFC 5890, RFC 9224 section 4).
    named = [{"type": "indicator", "pattern": f"[{kind}:value = '{value}']", "pattern_type": "stix"}
             for kind, value in [("domain-name", "bücher.example"), ("domain-name", "BÜCHER.Example."),
                                 ("domain-name", "xn--bcher-kva.example"), ("domain-name", "bücher。example"),
                                 ("url", "https://bücher.example/login")]]
    named.append({"type": "domain-name", "value": "Bücher.example"})
    for obj in named:
        assert object_enrich_values(obj) == (("domain", "xn--bcher-kva.example"),), obj
    assert canonical_value("\u0430pple.com") == "xn--pple-43d.com"  # a homograph, its first letter Cyrillic
    assert canonical_value("пример.рф") == "xn--e1afmkfd.xn--p1ai"  # an internationalised TLD too
    assert canonical_value("faß.de") == "xn--fa-hia.de"  # IDNA 2008, as browsers resolve it; not fass.de
    assert canonical_value("_dmarc.bücher.example") == "_dmarc.xn--bcher-kva.example"  # ASCII labels stay
    assert canonical_value("☃.net") == "☃.net"  # IDNA 2008 refuses it: left as written
    assert not is_canonical("bücher.example") and is_canonical("xn--bcher-kva.example")


def test_ipv4_mapped_addresses_and_wildcard_names_are_the_host_and_domain_they_name() -> None:
    from tiops.enrich.values import canonical_value, is_canonical

    # A dual-stack socket logs an IPv4 peer as ::ffff:a.b.c.d (RFC 4291 section 2.5.5.2): it is
    # the IPv4 host that has a location and a registry, and one value however a feed writes it.
    written = ["[ipv6-addr:value = '::ffff:203.0.113.7']", "[ipv6-addr:value = '::FFFF:CB00:7107']",
               "[url:value = 'http://[::ffff:203.0.113.7]:8080/x']", "[ipv4-addr:value = '203.0.113.7']",
               "[network-traffic:dst_ref.value = '::ffff:203.0.113.7']"]
    for pattern in written:
        obj = {"type": "indicator", "pattern": pattern, "pattern_type": "stix"}
        assert object_enrich_values(obj) == (("ip", "203.0.113.7"),), pattern
    assert object_enrich_values({"type": "ipv6-addr", "value": "::ffff:198.51.100.9"}) == (("ip", "198.51.100.9"),)
    assert canonical_value("::ffff:198.51.100.0/120") == "198.51.100.0/24"
    assert canonical_value("::ffff:0:0/95") == "::fffe:0:0/95"  # wider than the mapped block: IPv6 still
    assert canonical_value("2001:db8::ffff:1.2.3.4") == "2001:db8::ffff:102:304"  # not the mapped prefix
    assert canonical_value("::1") == "::1"
    assert not is_canonical("::ffff:203.0.113.7")  # a lock keyed so is TI150, rewritten by tiops enrich
    # A wildcard (RFC 4592) is every host under a domain: that domain is looked up.
    assert object_enrich_values({"type": "domain-name", "value": "*.Evil.Example"}) == (("domain", "evil.example"),)
    assert canonical_value("*.*.Evil.Example") == "evil.example"  # a lock key stays what it is
    assert canonical_value("*.com") is None and canonical_value("*") is None
    assert not is_canonical("*.evil.example")


def test_an_address_of_the_ipv4_compatible_block_is_one_canonical_key_however_written() -> None:
    from tiops.enrich.values import canonical_value, is_canonical

    # ::/96 (IPv4-compatible, RFC 4291 section 2.5.5.1): glibc's inet_ntop wrote ::8.8.8.8 for the
    # address and ipaddress ::808:808 for its /128 block, so one address was two lock entries and
    # tiops validate called the key enrich had just written not canonical (TI150).
    for written in ["::808:808", "::8.8.8.8", "0:0:0:0:0:0:808:808", "::808:808/128", "::8.8.8.8/128"]:
        for obj in ({"type": "ipv6-addr", "value": written},
                    {"type": "indicator", "pattern": f"[ipv6-addr:value = '{written}']", "pattern_type": "stix"},
                    {"type": "indicator", "pattern": f"[ipv6-addr:value IN ('{written}', '2001:db8::1')]",
                     "pattern_type": "stix"}):
            assert object_enrich_values(obj)[0] == ("ip", "::808:808"), (written, obj)
    for key in ["::808:808", "::ffff:1", "::1:2", "::102:304"]:  # as RFC 5952 section 4 writes them
        assert canonical_value(key) == key and is_canonical(key), key
    assert not is_canonical("::8.8.8.8") and not is_canonical("::0.1.0.2")  # TI150, rewritten by tiops enrich
    assert object_enrich_values({"type": "url", "value": "http://[::8.8.8.8]:8080/"}) == (("ip", "::808:808"),)


def test_the_quick_canonical_test_agrees_with_canonical_value() -> None:
    from tiops.enrich.values import canonical_value, is_canonical

    for value in ["8.8.8.8", "08.8.8.8", "1.2.3", "999.1.1.1", "198.51.100.0/24", "198.51.100.7/24", "198.51.100.0/024",
                  "198.51.100.0/32", "0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x",
                  "2001:db8::/32", "2001:DB8::/32", "2001:db8::1", "example.com", "Example.com", "example.com.",
                  ".example.com", "a_b.example", "ex ample.com", "localhost", "", "xn--bcher-kva.example", "bücher.example",
                  "::ffff:1.2.3.4", "::ffff:0102:0304", "::ffff:1.2.3.0/120", "*.example.com", "*.*.example.com",
                  "a..b.example", ".example.com", "example..com"]:
        assert is_canonical(value) == (canonical_value(value) == value), value


def test_a_percent_encoded_url_host_and_an_address_with_the_roots_dot_are_the_hosts_browsers_contact() -> None:
    def values(url: str) -> set[tuple[str, str]]:
        return set(object_enrich_values({"type": "url", "value": url}))

    # RFC 3986 section 3.2.2 lets a host be percent-encoded; the WHATWG URL standard decodes it.
    assert values("http://%77oodgrove-securelogin.net/login") == {("domain", "woodgrove-securelogin.net")}
    assert values("http://WOODGROVE%2Dsecurelogin.NET/") == {("domain", "woodgrove-securelogin.net")}
    assert values("http://1.1.1.1./") == {("ip", "1.1.1.1")}
    assert values("http://8.8.8.8:8080/") == {("ip", "8.8.8.8")}
    assert values("http://%ff%fe.example/") == {("domain", "%ff%fe.example")}  # not UTF-8: left as written
    assert values("http://a.example%2F@evil.example/") == {("domain", "evil.example")}  # userinfo, not the host
    assert values("http://a.example%2Fb/") == set()  # a '/' in a host: no host at all


def test_a_url_host_that_ends_in_a_number_is_the_ipv4_address_a_browser_contacts() -> None:
    def values(url: str) -> tuple[tuple[str, str], ...]:
        return object_enrich_values({"type": "url", "value": url})

    # The WHATWG URL standard reads such a host with its IPv4 parser (one to four parts, each
    # decimal, octal with a leading 0, or hex with 0x): phishing and malware URLs hide addresses so.
    for written in ["0x08080808", "134744072", "010.8.8.8", "8.8.2056", "8.526344", "0x8.0x8.0x8.0x8",
                    "0X08080808", "8.8.8.8.", "\uff10x08080808", "\uff18.\uff18.\uff18.\uff18"]:
        assert values(f"http://{written}/a") == (("ip", "8.8.8.8"),), written
        assert values(f"HTTPS://{written}:8443/a") == (("ip", "8.8.8.8"),), written
    assert values("http://0x/") == (("ip", "0.0.0.0"),)  # a bare 0x part is 0 to the standard
    # Where that parser fails the URL has no host: neither an address nor a name to look up.
    for refused in ["1.2.3.09", "08.8.8.8", "256.1.1.1", "1.2.3.256", "4294967296", "1..2.3", "a.0x10",
                    "example.123", "1.2.3.4.5"]:
        assert values(f"http://{refused}/") == (), refused
    # A name whose last label is no number stays a name; another scheme's host is opaque.
    assert values("http://a.b.c0x1/") == (("domain", "a.b.c0x1"),)
    assert values("http://0xg.example/") == (("domain", "0xg.example"),)
    assert values("tcp://0x08080808:80") == ()
    assert values("tcp://8.8.8.8:80") == (("ip", "8.8.8.8"),)
    # A pattern names the same host the same way, through the shortcut or the lexer.
    for pattern in ["[url:value = 'http://0x08080808/']", "[url:value  =  'http://0x08080808/']"]:
        assert object_enrich_values({"type": "indicator", "pattern": pattern, "pattern_type": "stix"}) == (
            ("ip", "8.8.8.8"),)


def test_a_url_is_read_as_a_browser_reads_it_where_rfc_3986_reads_it_otherwise() -> None:
    def values(url: str) -> tuple[tuple[str, str], ...]:
        return object_enrich_values({"type": "url", "value": url})

    # WHATWG URL: in http(s), ws(s) and ftp URLs a backslash is a slash, and any run of them after
    # the scheme starts the host. RFC 3986 would read good.example, the user info's host.
    assert values("http://evil.example\\@good.example/") == (("domain", "evil.example"),)
    assert values("https:\\\\evil.example\\login") == (("domain", "evil.example"),)
    assert values("http:/\\/evil.example/") == (("domain", "evil.example"),)
    assert values("http:evil.example/x") == (("domain", "evil.example"),)
    assert values("tcp://evil.example\\@good.example/") == (("domain", "good.example"),)  # not a special scheme
    # A port that is no number up to 65535 makes no URL: nothing is contacted, nothing looked up.
    for url in ["http://a.example:abc/x", "http://a.example:70000/", "http://a.example:80x/", "http://8.8.8.8:8:80/"]:
        assert values(url) == (), url
    assert values("http://a.example:65535/") == (("domain", "a.example"),)
    # Brackets hold an IPv6 address and nothing else: what urlsplit reads out of more is no host.
    assert values("http://[2001:db8::1]:8080/") == (("ip", "2001:db8::1"),)
    for url in ["http://[::1]evil.example/", "https://[v1.x]/", "http://[2001:db8::1]x:80/"]:
        assert values(url) == (), url
    # In the user info brackets are characters like any other (WHATWG's userinfo percent-encode
    # set): the host is what follows the last '@', where urlsplit saw an unclosed IPv6 bracket.
    assert values("http://us[er@evil.example/") == (("domain", "evil.example"),)
    assert values("http://a]b:p[w@0x08080808/x") == (("ip", "8.8.8.8"),)
    assert values("http://[::1]@evil.example/") == (("domain", "evil.example"),)
    assert values("http://u@[2001:db8::1]:80/") == (("ip", "2001:db8::1"),)
    assert values("http://x[@y.example]/") == ()  # the bracket after the '@' is the host's


def test_a_name_with_a_leading_dot_is_its_domain_and_one_with_an_empty_label_is_none() -> None:
    def values(kind: str, value: str) -> tuple[tuple[str, str], ...]:
        return object_enrich_values({"type": kind, "value": value})

    # ".example.com" is written for "example.com and what is under it", as a wildcard is.
    assert values("domain-name", ".dot.example.com") == (("domain", "dot.example.com"),)
    assert values("url", "http://.dot.example.com/") == (("domain", "dot.example.com"),)
    assert values("domain-name", ".*.example.com") == (("domain", "example.com"),)
    # An empty label inside names no host (RFC 1034 section 3.1): nothing to ask a registry.
    assert values("domain-name", "a..example.com") == ()
    assert values("url", "http://a..example.com/") == ()


def test_a_name_longer_than_dns_allows_names_nothing() -> None:
    def values(kind: str, value: str) -> tuple[tuple[str, str], ...]:
        return object_enrich_values({"type": kind, "value": value})

    # RFC 1035 section 2.3.4: a label of 64 octets, or a name over 253 characters, is in no DNS zone.
    assert values("domain-name", "a" * 63 + ".example") == (("domain", "a" * 63 + ".example"),)
    assert values("domain-name", "a" * 64 + ".example") == ()
    assert values("domain-name", ".".join(["abcdefghi"] * 26) + ".example") == ()  # 267 characters
    assert values("url", "http://" + "x" * 1_000_000 + ".example/") == ()

"""What an RDAP answer is about, checked on an answer and on a lock entry alike (RFC 9083 5.3, 5.4)."""

from __future__ import annotations

import pytest

from tiops.enrich.subject import answer_for_other, locked_answer_for_other, records_subject
from tiops.enrich.values import Kind


@pytest.mark.parametrize(("kind", "value", "entry", "other"), [
    # A network's range, as parse_network writes it, must hold the address (a block: its first).
    ("ip", "8.8.8.8", {"network": "8.8.8.0 - 8.8.8.255"}, None),
    ("ip", "8.8.4.4", {"network": "8.8.8.0 - 8.8.8.255"}, "8.8.8.0 - 8.8.8.255"),
    ("ip", "8.8.8.0/23", {"network": "8.8.8.0 - 8.8.8.255"}, None),
    ("ip", "2001:db8::1", {"network": "8.8.8.0 - 8.8.8.255"}, "8.8.8.0 - 8.8.8.255"),
    # A range that cannot be read holds no address (RFC 9083 section 5.4): not about the value.
    ("ip", "8.8.4.4", {"network": "a range"}, "a range"),
    ("ip", "8.8.4.4", {"network": "not-an-ip - 8.8.8.255", "status": "found"}, "not-an-ip - 8.8.8.255"),
    # A found answer to an IP lookup that names no network (a domain object, {}) was about none;
    # a failure or not-found names none and says nothing.
    ("ip", "8.8.4.4", {"network_name": "GOGL", "status": "found"}, "no network"),
    ("ip", "8.8.4.4", {"status": "found"}, "no network"),
    ("ip", "8.8.4.4", {"status": "not-found"}, None),
    ("ip", "8.8.4.4", {"status": "failed", "error": "x"}, None),
    # A domain's answer locked for an address.
    ("ip", "8.8.8.8", {"status": "found", "ldh_name": "evil.com", "network": "8.8.8.0 - 8.8.8.255"}, "evil.com"),
    # A domain's ldh_name must be the name asked: its queried name, or the value itself.
    ("domain", "woodgrove.example", {"ldh_name": "woodgrove.example"}, None),
    ("domain", "www.woodgrove.example", {"ldh_name": "woodgrove.example", "queried": "woodgrove.example"}, None),
    ("domain", "www.woodgrove.example", {"ldh_name": "google.com", "queried": "woodgrove.example"}, "google.com"),
    ("domain", "woodgrove.example", {"ldh_name": "google.com"}, "google.com"),
    ("domain", "i\u2764.ws", {"ldh_name": "xn--i-7iq.ws"}, None),  # IDNA refuses the name: its A-label decodes to it
    ("domain", "woodgrove.example", {"registrar": "Example Registrar"}, None),  # written before ldh_name was kept
])
def test_a_lock_entry_is_held_to_what_its_answer_was_about(kind: Kind, value: str, entry: dict[str, str],
                                                            other: str | None) -> None:
    assert locked_answer_for_other(kind, value, entry) == other


def test_an_entry_that_says_what_it_was_about_can_be_checked() -> None:
    assert records_subject("domain", {"ldh_name": "woodgrove.example"})
    assert not records_subject("domain", {"registrar": "Example Registrar"})
    assert records_subject("ip", {"network": "8.8.8.0 - 8.8.8.255"})
    assert not records_subject("ip", {"network_name": "GOGL"})


def test_the_answer_and_its_lock_entry_are_judged_alike() -> None:
    document = {"ldhName": "GOOGLE.COM.", "startAddress": "8.8.8.0", "endAddress": "8.8.8.255"}
    assert answer_for_other(document, "domain", "woodgrove.example") == "GOOGLE.COM."
    assert answer_for_other(document, "domain", "google.com") is None
    assert answer_for_other(document, "ip", "8.8.4.4") == locked_answer_for_other(
        "ip", "8.8.4.4", {"network": "8.8.8.0 - 8.8.8.255"})


@pytest.mark.parametrize(("kind", "document", "said"), [
    # RFC 9083 section 4.7: objectClassName is required; the class must fit the lookup (5.3, 5.4).
    ("ip", {"objectClassName": "domain", "ldhName": "evil.com"}, "not an RDAP ip network object"),
    ("domain", {"objectClassName": "ip network", "startAddress": "8.8.8.0", "endAddress": "8.8.8.255"},
     "not an RDAP domain object"),
    ("domain", {}, "objectClassName none"),
    ("domain", {"objectClassName": "entity"}, "objectClassName 'entity'"),
    ("ip", {"objectClassName": "ip network", "startAddress": "not-an-ip", "endAddress": "8.8.8.255"},
     "no network range"),
    ("ip", {"objectClassName": "ip network"}, "no network range"),
    ("ip", {"objectClassName": "ip network", "startAddress": "8.8.8.255", "endAddress": "8.8.8.0"}, "no network range"),
    ("ip", {"objectClassName": "ip network", "startAddress": "8.8.8.0", "endAddress": "2001:db8::"},
     "no network range"),
])
def test_an_answer_of_another_class_or_without_a_range_is_no_answer(kind: Kind, document: dict[str, str],
                                                                    said: str) -> None:
    from tiops.enrich.subject import answer_not_readable

    problem = answer_not_readable(document, kind)
    assert problem is not None and said in problem


def test_answers_of_the_right_class_are_readable() -> None:
    from tiops.enrich.subject import answer_not_readable

    assert answer_not_readable({"objectClassName": "domain", "ldhName": "example.com"}, "domain") is None
    assert answer_not_readable({"objectClassName": "ip network", "startAddress": "8.8.8.0",
                                "endAddress": "8.8.8.255"}, "ip") is None

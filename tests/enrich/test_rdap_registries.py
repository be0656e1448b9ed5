"""RDAP answers shaped as real registries write them, served by a real server on 127.0.0.1.

The documents (tests/data/enrich/registries/) follow ARIN, RIPE NCC, APNIC, Verisign and an
ICANN-accredited registrar: entities nested in entities, jCard ``adr`` as a label or a structured
value, several e-mail addresses with ``pref``, upper-case property names, RFC 9537 redaction,
EPP-style status values, event dates with offsets and fractions.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from click.testing import CliRunner
from quiet_http import serving

from tiops.cli import main
from tiops.enrich.rdap import RdapClient, RdapSettings, parse_domain

DATA = Path(__file__).resolve().parent.parent / "data" / "enrich" / "registries"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _documents() -> tuple[dict[str, Any], list[tuple[Any, dict[str, Any]]]]:
    domains: dict[str, Any] = {}
    networks: list[tuple[Any, dict[str, Any]]] = []
    for path in sorted(DATA.glob("*.json")):
        _, kind, subject = path.stem.split("-", 2)
        document = json.loads(path.read_text(encoding="utf-8"))
        if kind == "domain":
            domains[subject] = document
        else:
            start, _, prefix = subject.replace("_", ":").rpartition("-")
            networks.append((ipaddress.ip_network(f"{start}/{prefix}"), document))
    return domains, networks


@pytest.fixture(scope="module")
def registries() -> Iterator[str]:
    """One server answering as the registries do (each document as a registry wrote it), and the
    RFC 9224 bootstrap files naming it."""
    domains, networks = _documents()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = unquote(self.path)
            base = [f"http://127.0.0.1:{self.server.server_address[1]}/rdap/"]
            status, body = 404, {"errorCode": 404, "title": "Not Found"}
            if path in ("/dns.json", "/ipv4.json", "/ipv6.json"):
                entries = {"/dns.json": ["com"], "/ipv4.json": ["0.0.0.0/0"], "/ipv6.json": ["::/0"]}[path]
                status, body = 200, {"version": "1.0", "services": [[entries, base]]}
            elif path.startswith("/rdap/domain/") and path[13:].lower() in domains:
                status, body = 200, domains[path[13:].lower()]
            elif path.startswith("/rdap/ip/"):
                wanted = ipaddress.ip_network(path[9:], strict=False)
                for network, document in networks:
                    if wanted.version == network.version and wanted.subnet_of(network):
                        status, body = 200, document
                        break
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/rdap+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with serving(Handler) as url:
        yield url


def _lookup(url: str, kind: str, value: str) -> dict[str, Any]:
    client = RdapClient(RdapSettings(bootstrap=url, requests_per_minute=6000.0, timeout=5.0, max_retries=1),
                        sleep=lambda seconds: None, now=lambda: NOW)
    entry = client.lookup(kind, value)  # type: ignore[arg-type]
    assert entry["status"] == "found", entry
    return {key: entry[key] for key in sorted(entry) if key not in ("server", "retrieved", "status")}


def test_an_arin_network_with_its_abuse_contact_inside_the_registrant(registries: str) -> None:
    assert _lookup(registries, "ip", "8.8.8.8") == {
        "abuse_email": "network-abuse@google.com", "handle": "NET-8-8-8-0-2", "network": "8.8.8.0 - 8.8.8.255",
        "network_name": "GOGL", "rdap_status": ["active"],
        "registered": "2023-12-28T22:24:33Z", "updated": "2023-12-28T22:24:56Z",  # -05:00 applied
        "registrant_country": "US",  # the label's last line, "United States", as its ISO 3166-1 code
        "registrant_organization": "Google LLC",
    }


def test_a_network_range_is_locked_in_rfc_5952_text_however_the_registry_writes_it(registries: str) -> None:
    # ARIN writes IPv6 ranges uncompressed and in upper case; the lock writes every address one way.
    entry = _lookup(registries, "ip", "2001:4860:4860::8888")
    assert entry["network"] == "2001:4860:: - 2001:4860:ffff:ffff:ffff:ffff:ffff:ffff"


def test_a_ripe_network_with_a_status_in_mixed_case(registries: str) -> None:
    entry = _lookup(registries, "ip", "193.0.0.1")
    assert entry["rdap_status"] == ["active"]  # "Active": RFC 9083 section 10.2.2 registers "active"
    assert (entry["country_code"], entry["registrant_country"]) == ("NL", "NL")  # "NETHERLANDS" in the label
    assert entry["abuse_email"] == "abuse@ripe.net"


def test_the_preferred_abuse_mailbox_and_no_street_for_a_country(registries: str) -> None:
    entry = _lookup(registries, "ip", "1.1.1.1")
    # APNIC's abuse entity lists its help desk first and the abuse mailbox with PREF 1 (RFC 6350 section 5.3).
    assert entry["abuse_email"] == "abuse@apnic.net"
    # The registrant's label is one line, "6 Cordelia St": a street, not a country.
    assert "registrant_country" not in entry
    assert entry["registrant_organization"] == "APNIC Research and Development"


def test_a_verisign_answer_with_its_name_in_upper_case(registries: str) -> None:
    assert _lookup(registries, "domain", "google.com") == {
        "abuse_email": "abusecomplaints@markmonitor.com", "expires": "2028-09-14T04:00:00Z", "ldh_name": "google.com",
        "rdap_status": ["client delete prohibited", "client transfer prohibited", "client update prohibited",
                        "server delete prohibited", "server transfer prohibited", "server update prohibited"],
        "registered": "1997-09-15T04:00:00Z", "registrar": "MarkMonitor Inc.", "updated": "2019-09-09T15:39:04Z",
    }


def test_a_registrar_answer_with_redacted_fields_upper_case_names_and_epp_status(registries: str) -> None:
    assert _lookup(registries, "domain", "login.woodgrove-payroll.com") == {
        "abuse_email": "abuse@namecheap.com",  # ["EMAIL", ...] inside the registrar
        "expires": "2027-11-20T08:15:30Z",
        "ldh_name": "woodgrove-payroll.com", "queried": "woodgrove-payroll.com",
        # "Client Transfer Prohibited" and EPP's "clientUpdateProhibited" (RFC 8056 section 2)
        "rdap_status": ["active", "client transfer prohibited", "client update prohibited"],
        "registered": "2026-11-20T08:15:30.123Z",  # 10:15:30.123+02:00
        "registrant_country": "IS",  # the cc parameter, written "is"
        # no registrant_organization: "REDACTED FOR PRIVACY" is RFC 9537's replacement value, and fn is empty
        "registrar": "NameCheap, Inc.",  # ["FN", ...]
        "updated": "2026-11-21T00:00:00.5Z",
    }


@pytest.mark.parametrize(("written", "locked"), [
    ("active", "active"), ("Active", "active"), ("ok", "active"), ("linked", "associated"),
    ("clientHold", "client hold"), ("serverTransferProhibited", "server transfer prohibited"),
    ("pendingDelete", "pending delete"), ("CLIENT  DELETE PROHIBITED", "client delete prohibited"),
    ("redemption period", "redemption period"),
])
def test_status_values_are_rdap_s_registered_values(written: str, locked: str) -> None:
    assert parse_domain({"status": [written, locked]})["rdap_status"] == [locked]


def test_a_structured_org_gives_its_organisation_name_and_a_redacted_one_none() -> None:
    def registrant(*properties: list[Any]) -> dict[str, Any]:
        return {"entities": [{"roles": ["Registrant"], "vcardArray": ["vcard", [["version", {}, "text", "4.0"],
                                                                                 *properties]]}]}

    org = ["org", {}, "text", ["Contoso Ltd.", "Security Operations"]]
    assert parse_domain(registrant(org))["registrant_organization"] == "Contoso Ltd."
    redacted = ["org", {}, "text", "REDACTED FOR PRIVACY"]
    assert "registrant_organization" not in parse_domain(registrant(redacted, ["fn", {}, "text", ""]))
    assert "registrant_organization" not in parse_domain(registrant(["fn", {}, "text", "Redacted for Privacy Purposes"]))


def test_the_lock_the_bundle_and_a_rule_see_the_registries_answers(tmp_path: Path, registries: str) -> None:
    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    (root / "rules" / "ingestion").mkdir(parents=True)
    (root / "tiops.yaml").write_text(
        f"enrichment:\n  rdap:\n    bootstrap: {registries}\n    requests_per_minute: 6000\n    max_retries: 1\n",
        encoding="utf-8")
    (root / "intel" / "indicator.yaml").write_text(
        'type: indicator\nspec_version: "2.1"\nid: indicator--00000000-0000-4000-8000-000000000001\n'
        "created: 2026-12-01T00:00:00.000Z\nmodified: 2026-12-01T00:00:00.000Z\nname: payroll phish\n"
        "pattern: \"[domain-name:value = 'WWW.Woodgrove-Payroll.com.'] OR "
        "[network-traffic:dst_ref.value = '2001:4860:4860:0:0:0:0:8888']\"\n"
        "pattern_type: stix\nvalid_from: 2026-12-01T00:00:00Z\n", encoding="utf-8")
    (root / "rules" / "ingestion" / "status.yaml").write_text(
        "- name: Tag transfer-locked domains\n  description: A status rule as RFC 9083 names the status.\n"
        "  order: 10\n  when: {field: whois.rdap_status, op: contains, value: client update prohibited}\n"
        "  actions:\n    - {add_tags: [update-locked]}\n", encoding="utf-8")
    assert CliRunner().invoke(main, ["-C", str(root), "enrich"]).exit_code == 0
    result = CliRunner().invoke(main, ["-C", str(root), "compile", "-o", str(tmp_path / "bundle.json")])
    assert result.exit_code == 0, result.output
    objects = json.loads((tmp_path / "bundle.json").read_text(encoding="utf-8"))["objects"]
    indicator = next(item for item in objects if item["type"] == "indicator")
    assert "update-locked" in indicator["labels"]
    extension = next(value for value in indicator["extensions"].values() if "whois" in value)
    whois = {entry["value"]: entry for entry in extension["whois"]}
    assert whois["www.woodgrove-payroll.com"]["age_days"] == 10
    assert "registrant_organization" not in whois["www.woodgrove-payroll.com"]
    assert whois["2001:4860:4860::8888"]["network"] == "2001:4860:: - 2001:4860:ffff:ffff:ffff:ffff:ffff:ffff"


def test_a_registrant_who_is_a_person_has_no_organisation() -> None:
    def registrant(*properties: list[Any]) -> dict[str, Any]:
        return {"entities": [{"roles": ["registrant"], "vcardArray": ["vcard", [["version", {}, "text", "4.0"],
                                                                                 *properties]]}]}

    # A ccTLD that publishes its registrants: the fn of an individual is a person's name (RFC 6350 section 6.1.4).
    person = registrant(["fn", {}, "text", "Jane Doe"], ["kind", {}, "text", "individual"],
                        ["adr", {"cc": "DE"}, "text", ["", "", "", "", "", "", ""]])
    assert parse_domain(person) == {"registrant_country": "DE"}
    employed = registrant(["fn", {}, "text", "Jane Doe"], ["kind", {}, "text", "individual"], ["org", {}, "text", "Contoso"])
    assert parse_domain(employed)["registrant_organization"] == "Contoso"
    assert parse_domain(registrant(["fn", {}, "text", "Contoso"], ["kind", {}, "text", "org"]))["registrant_organization"] == "Contoso"


@pytest.mark.parametrize(("address", "country"), [
    ({"cc": "us"}, "US"),  # RFC 8605's code, in upper case
    ({"label": "1 Main St\nUNITED STATES"}, "US"),  # ARIN's label
    ({"label": "Amsterdam\nNetherlands"}, "NL"),
    ({}, "KR"),  # the country component (below): ISO's own short name, "Korea, Republic of"
    ({"label": "Den Haag\nThe Netherlands"}, "The Netherlands"),  # no ISO name: as written
    ({"label": "London\nUK"}, "UK"),  # two letters ISO does not assign: as written, in upper case
])
def test_a_registrant_country_is_locked_as_its_iso_code_however_the_registry_writes_it(
        address: dict[str, str], country: str) -> None:
    # Locked as written, "UNITED STATES" from one registry and "US" from another were two values,
    # and a rule on whois.registrant_country = US missed the first.
    component = ["", "", "", "", "", "", "Korea, Republic of" if not address else ""]
    card = {"entities": [{"roles": ["registrant"], "vcardArray": ["vcard", [
        ["version", {}, "text", "4.0"], ["org", {}, "text", "Contoso"], ["adr", address, "text", component]]]}]}
    assert parse_domain(card)["registrant_country"] == country

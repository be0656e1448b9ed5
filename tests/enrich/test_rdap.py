"""The RDAP client against a real RDAP server on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from quiet_http import serving
from rdap_server import RdapServer, start_rdap_server

from enrich.helpers import write_repo
from tiops.enrich.lock import read_lock
from tiops.enrich.rdap import (
    MAX_ANSWER_BYTES,
    MAX_BOOTSTRAP_BYTES,
    RdapClient,
    RdapSettings,
    parse_domain,
    parse_network,
    rdap_settings,
)
from tiops.enrich.run import enrich_repo

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _client(server: RdapServer, sleeps: list[float], **settings: object) -> RdapClient:
    options = {"bootstrap": server.url, "requests_per_minute": 6000.0, "timeout": 5.0, "max_retries": 3, **settings}
    return RdapClient(RdapSettings(**options), sleep=sleeps.append, now=lambda: NOW)  # type: ignore[arg-type]


def test_domain_found_with_registrar_dates_status_registrant_and_abuse(rdap_server: RdapServer) -> None:
    entry = _client(rdap_server, []).lookup("domain", "woodgrove-securelogin.net")
    assert entry == {
        "status": "found", "server": rdap_server.url + "rdap/", "retrieved": "2026-03-01T12:00:00Z",
        "registrar": "Example Registrar, Inc.", "registered": "2025-02-20T08:15:00Z",
        "expires": "2026-02-20T08:15:00Z", "updated": "2025-02-21T10:00:00Z",
        "rdap_status": ["active", "client transfer prohibited"],
        "registrant_organization": "Privacy Shield LLC", "registrant_country": "IS",
        "abuse_email": "abuse@registrar.example",
        "ldh_name": "woodgrove-securelogin.net",  # what the answer is about, as the lock keeps it
    }


def test_ip_network_found_with_network_and_abuse_contact(rdap_server: RdapServer) -> None:
    entry = _client(rdap_server, []).lookup("ip", "8.8.8.8")
    assert entry["status"] == "found"
    assert entry["network"] == "8.8.8.0 - 8.8.8.255"
    assert (entry["network_name"], entry["handle"]) == ("GOGL", "NET-8-8-8-0-2")
    assert entry["abuse_email"] == "network-abuse@google.com"
    assert entry["registrant_organization"] == "Google LLC"
    assert entry["registrant_country"] == "US"  # the label's "United States", as its ISO 3166-1 code
    assert entry["registered"] == "2023-12-28T22:24:33Z"  # offset dates become UTC


def test_a_host_name_is_asked_for_by_its_registered_domain_once(rdap_server: RdapServer) -> None:
    # Registries answer for registered names only: the Public Suffix List tells which part of a
    # host name that is, so a deep phishing host costs one request, not one per label.
    client = _client(rdap_server, [])
    assert client.lookup("domain", "unknown.net")["status"] == "not-found"
    found = client.lookup("domain", "www.cdn.woodgrove-statements.net")
    assert (found["status"], found["queried"]) == ("found", "woodgrove-statements.net")
    gone = client.lookup("domain", "login.account.verify.gone-woodgrove.net")
    assert (gone["status"], "queried" in gone) == ("not-found", False)
    paths = [p for p, _ in rdap_server.rdap_requests()]
    assert paths == ["/rdap/domain/unknown.net", "/rdap/domain/woodgrove-statements.net",
                     "/rdap/domain/gone-woodgrove.net"]
    assert client.lookup("domain", "nowhere.invalid")["error"] == "no RDAP server in the bootstrap registry"


def test_host_names_under_one_registered_domain_ask_for_it_once(rdap_server: RdapServer) -> None:
    client = _client(rdap_server, [], max_retries=0)
    hosts = ["a.woodgrove-statements.net", "b.c.woodgrove-statements.net", "woodgrove-statements.net"]
    entries = [client.lookup("domain", host) for host in hosts]
    assert [e["status"] for e in entries] == ["found"] * 3
    assert entries[0]["registrar"] == entries[2]["registrar"] and "queried" not in entries[2]
    assert [e.get("queried") for e in entries[:2]] == ["woodgrove-statements.net"] * 2
    assert [client.lookup("domain", host)["status"] for host in ("x.gone.net", "y.gone.net")] == ["not-found"] * 2
    assert [p for p, _ in rdap_server.rdap_requests()] == ["/rdap/domain/woodgrove-statements.net",
                                                            "/rdap/domain/gone.net"]
    # A failure is not kept: the next name under the same domain asks again.
    rdap_server.rate_limit(1, retry_after="0")
    assert client.lookup("domain", "p.woodgrove-securelogin.net")["status"] == "failed"
    assert client.lookup("domain", "q.woodgrove-securelogin.net")["status"] == "found"
    assert [p for p, _ in rdap_server.rdap_requests()][-2:] == ["/rdap/domain/woodgrove-securelogin.net"] * 2


def test_registered_domains_under_public_suffixes_of_several_labels() -> None:
    document = {"objectClassName": "domain", "ldhName": "EXAMPLE.CO.UK",
                "events": [{"eventAction": "registration", "eventDate": "2024-01-02T03:04:05Z"}]}
    server = start_rdap_server(extra_domains={"example.co.uk": document, "github.io": {**document, "ldhName": "github.io"}})
    try:
        client = _client(server, [], base_url=server.url + "rdap/")
        found = client.lookup("domain", "login.secure.example.co.uk")
        assert (found["status"], found["queried"], found["registered"]) == (
            "found", "example.co.uk", "2024-01-02T03:04:05Z")
        # A private suffix (a hosting service's) is not a registry's: github.io is registered under io.
        assert client.lookup("domain", "attacker.github.io")["queried"] == "github.io"
        # A public suffix named on its own is asked for as it is; an unknown top-level domain is one label.
        assert client.lookup("domain", "co.uk")["status"] == "not-found"
        assert client.lookup("domain", "a.b.woodgrove.internal")["status"] == "not-found"
        assert [p for p, _ in server.rdap_requests()] == [
            "/rdap/domain/example.co.uk", "/rdap/domain/github.io", "/rdap/domain/co.uk",
            "/rdap/domain/woodgrove.internal"]
    finally:
        server.stop()


def test_an_answer_about_another_name_or_range_is_a_failure_not_that_names_result() -> None:
    # A misconfigured or hostile server answering for another domain (or a network that does not
    # hold the address) must not put that registration on the value asked for (RFC 9083 5.3, 5.4).
    other = {"objectClassName": "domain", "ldhName": "GOOGLE.COM",
             "events": [{"eventAction": "registration", "eventDate": "1997-09-15T04:00:00Z"}]}
    same = {"objectClassName": "domain", "ldhName": "Example.NET.",
            "events": [{"eventAction": "registration", "eventDate": "2024-01-02T03:04:05Z"}]}
    server = start_rdap_server(extra_domains={"3322.org": other, "example.net": same})
    try:
        client = _client(server, [], base_url=server.url + "rdap/")
        wrong = client.lookup("domain", "js001.3322.org")
        assert wrong["status"] == "failed" and "GOOGLE.COM" in wrong["error"] and "registered" not in wrong
        # What the answer was about, and what was asked: an earlier answer is weighed against it (run).
        assert (wrong["ldh_name"], wrong["queried"]) == ("google.com", "3322.org")
        assert client.lookup("domain", "www.example.net")["registered"] == "2024-01-02T03:04:05Z"
        # ip-8.8.8.0-24.json answers for 8.8.8.0 - 8.8.8.255: an address inside it is found; the server
        # answers for the /24 too when asked for 8.8.8.7, which it holds.
        assert client.lookup("ip", "8.8.8.7")["status"] == "found"
    finally:
        server.stop()
    from tiops.enrich.subject import answer_for_other as _answers_for_other
    network = {"startAddress": "8.8.8.0", "endAddress": "8.8.8.255"}
    assert _answers_for_other(network, "ip", "8.8.4.4") == "8.8.8.0 - 8.8.8.255"
    assert _answers_for_other(network, "ip", "2001:db8::1") == "8.8.8.0 - 8.8.8.255"
    assert _answers_for_other(network, "ip", "8.8.8.0/23") is None  # a block wider than the answer: its first address
    assert _answers_for_other({"startAddress": "x", "endAddress": 3}, "ip", "8.8.4.4") is None  # says nothing usable
    assert _answers_for_other({"ldhName": 7}, "domain", "a.example") is None


# --- fractions of a second and offsets (RFC 3339, RFC 9083 section 4.5) ----------------------


def test_event_dates_keep_their_fraction_of_a_second_and_their_instant(rdap_server: RdapServer) -> None:
    # domain-woodgrove-invoices.net.json: registered 2025-02-01T19:00:00.5-05:00, half a second after
    # midnight UTC. Cut to the second, it was midnight, and an indicator valid from 2025-03-04 saw a
    # domain 30 days old where it is 29 days, 23:59:59.5 (tests/enrich/test_compile_enriched.py).
    entry = _client(rdap_server, []).lookup("domain", "woodgrove-invoices.net")
    assert entry["registered"] == "2025-02-02T00:00:00.5Z"  # the offset applied, the fraction kept
    assert entry["expires"] == "2026-02-02T00:00:00.25Z"  # trailing zeros dropped: one instant, one text
    assert entry["updated"] == "2025-02-03T10:00:00.000000001Z"  # past the microsecond, datetime's last digit


@pytest.mark.parametrize(("written", "locked"), [
    ("2025-02-02T00:00:00Z", "2025-02-02T00:00:00Z"),
    ("2025-02-02T00:00:00.000Z", "2025-02-02T00:00:00Z"),
    ("2025-02-02T00:00:00.5Z", "2025-02-02T00:00:00.5Z"),
    ("2025-02-02T00:00:00.500000Z", "2025-02-02T00:00:00.5Z"),
    ("2025-02-02t01:00:00,125+01:00", "2025-02-02T00:00:00.125Z"),  # RFC 3339 5.6: lower-case t and z
    ("2025-02-01T22:30:00.123456789-01:30", "2025-02-02T00:00:00.123456789Z"),
    ("2025-02-02T05:45:00.0000001+05:45", "2025-02-02T00:00:00.0000001Z"),
])
def test_one_instant_is_one_text_in_the_lock(written: str, locked: str) -> None:
    document = {"events": [{"eventAction": "registration", "eventDate": written}]}
    assert parse_domain(document)["registered"] == locked


# --- redirects (RFC 7480 section 5.2) ------------------------------------------------------

_PHISH = "/rdap/domain/woodgrove-securelogin.net"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_followed_and_the_entry_names_the_server_that_answered(
        rdap_server: RdapServer, rdap_target: RdapServer, status: int) -> None:
    # A registry sends the client to the registrar's server, which sends it on with a relative URL.
    rdap_server.redirect(_PHISH, rdap_target.url + _PHISH[1:], status)
    rdap_target.redirect(_PHISH, "/rdap/domain/WOODGROVE-SECURELOGIN.NET", 308)
    entry = _client(rdap_server, []).lookup("domain", "woodgrove-securelogin.net")
    assert (entry["status"], entry["registrar"]) == ("found", "Example Registrar, Inc.")
    assert entry["server"] == rdap_target.url + "rdap/domain/WOODGROVE-SECURELOGIN.NET"
    assert entry["redirected_from"] == rdap_server.url + "rdap/"
    assert rdap_server.rdap_requests() == [(_PHISH, status)]
    assert rdap_target.rdap_requests() == [(_PHISH, 308), ("/rdap/domain/WOODGROVE-SECURELOGIN.NET", 200)]


def test_an_answer_without_a_redirect_names_the_server_as_ever(rdap_server: RdapServer) -> None:
    entry = _client(rdap_server, []).lookup("domain", "woodgrove-securelogin.net")
    assert entry["server"] == rdap_server.url + "rdap/" and "redirected_from" not in entry


def test_the_server_a_redirect_reaches_is_paced_as_that_server(tmp_path: Path, rdap_server: RdapServer,
                                                               rdap_target: RdapServer) -> None:
    # .net is the registry's (rdap_server), .com the registrar's own (rdap_target); the registry sends
    # the client to the registrar. Its next request to the registrar, however it gets there, waits.
    folder = tmp_path / "bootstrap"
    folder.mkdir()
    (folder / "dns.json").write_text(json.dumps({"services": [[["net"], [rdap_server.url + "rdap/"]],
                                                              [["com"], [rdap_target.url + "rdap/"]]]}), encoding="utf-8")
    rdap_server.redirect(_PHISH, rdap_target.url + _PHISH[1:])
    sleeps: list[float] = []
    moment = [0.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        moment[0] += seconds

    client = RdapClient(RdapSettings(bootstrap=str(folder), requests_per_minute=60), sleep=sleep,
                        clock=lambda: moment[0], now=lambda: NOW)
    assert client.lookup("domain", "woodgrove-securelogin.net")["status"] == "found"
    assert client.lookup("domain", "woodgrove-payroll.com")["status"] == "not-found"
    assert sleeps == [1.0]  # the registrar's second request, one second after its first (60 a minute)
    assert [p for p, _ in rdap_target.rdap_requests()] == [_PHISH, "/rdap/domain/woodgrove-payroll.com"]


def test_a_rate_limited_redirect_target_is_retried_itself_as_it_asks(rdap_server: RdapServer,
                                                                     rdap_target: RdapServer) -> None:
    rdap_server.redirect(_PHISH, rdap_target.url + _PHISH[1:])
    rdap_target.rate_limit(1, retry_after="7")
    sleeps: list[float] = []
    entry = _client(rdap_server, sleeps).lookup("domain", "woodgrove-securelogin.net")
    assert entry["status"] == "found" and entry["server"] == rdap_target.url + _PHISH[1:]
    assert 7.0 in sleeps  # the target's Retry-After
    # The target is asked again; the server that redirected is not (it answered).
    assert rdap_server.rdap_requests() == [(_PHISH, 302)]
    assert rdap_target.rdap_requests() == [(_PHISH, 429), (_PHISH, 200)]


def test_a_redirect_target_that_keeps_refusing_is_the_failure_it_names(rdap_server: RdapServer,
                                                                       rdap_target: RdapServer) -> None:
    rdap_server.redirect(_PHISH, rdap_target.url + _PHISH[1:])
    rdap_target.rate_limit(100, retry_after="0")
    entry = _client(rdap_server, [], max_retries=1).lookup("domain", "woodgrove-securelogin.net")
    assert entry["status"] == "failed" and "HTTP 429" in entry["error"] and "gave up after 1 retries" in entry["error"]
    assert (entry["server"], entry["redirected_from"]) == (rdap_target.url + _PHISH[1:], rdap_server.url + "rdap/")
    assert len(rdap_server.rdap_requests()) == 1 and len(rdap_target.rdap_requests()) == 2


def test_a_redirect_loop_is_a_failure_asked_once(rdap_server: RdapServer, rdap_target: RdapServer) -> None:
    rdap_server.redirect(_PHISH, rdap_target.url + _PHISH[1:])
    rdap_target.redirect(_PHISH, rdap_server.url + _PHISH[1:], 307)
    client = _client(rdap_server, [])
    entry = client.lookup("domain", "woodgrove-securelogin.net")
    assert entry["status"] == "failed" and "a redirect loop" in entry["error"] and "RFC 9110" in entry["error"]
    assert entry["server"] == rdap_target.url + _PHISH[1:]  # the server whose redirect closed the loop
    assert client.requests == 2  # not retried: a loop is no passing trouble


def test_more_redirects_than_max_is_a_failure(rdap_server: RdapServer) -> None:
    from tiops.enrich.rdap import MAX_REDIRECTS

    # Each a URL of its own, so no loop: the first asked, then hop=1 ... hop=MAX_REDIRECTS.
    urls = [_PHISH, *(f"{_PHISH}?hop={n}" for n in range(1, MAX_REDIRECTS + 1))]
    for here, there in itertools.pairwise(urls):
        rdap_server.redirect(here, there)
    # MAX_REDIRECTS redirects are followed...
    rdap_server.redirect(urls[MAX_REDIRECTS - 1], "/rdap/domain/WOODGROVE-SECURELOGIN.NET")
    client = _client(rdap_server, [])
    assert client.lookup("domain", "woodgrove-securelogin.net")["status"] == "found"
    assert client.requests == MAX_REDIRECTS + 1
    # ... one more is not.
    rdap_server.redirect(urls[MAX_REDIRECTS - 1], urls[MAX_REDIRECTS])
    rdap_server.redirect(urls[MAX_REDIRECTS], "/rdap/domain/WOODGROVE-SECURELOGIN.NET")
    client = _client(rdap_server, [])
    entry = client.lookup("domain", "woodgrove-securelogin.net")
    assert entry["status"] == "failed" and f"more than {MAX_REDIRECTS} times" in entry["error"]
    assert client.requests == MAX_REDIRECTS + 1
    assert "hop=" not in entry["server"]  # a redirect's query is not locked (it may carry a token)


@pytest.mark.parametrize(("location", "said"), [
    ("ftp://127.0.0.1/rdap/domain/woodgrove-securelogin.net", "to a ftp: URL"),
    ("file:///etc/passwd", "to a file: URL"),
    ("javascript:alert(1)", "to a javascript: URL"),
    ("http:///rdap/domain/woodgrove-securelogin.net", "without a host"),
    ("http://127.0.0.1:99999/rdap/", "cannot be read"),
])
def test_a_redirect_to_anything_but_an_http_url_is_refused(rdap_server: RdapServer, location: str, said: str) -> None:
    rdap_server.redirect(_PHISH, location)
    client = _client(rdap_server, [])
    entry = client.lookup("domain", "woodgrove-securelogin.net")
    assert entry["status"] == "failed" and said in entry["error"] and "not followed" in entry["error"], entry
    assert client.requests == 1  # refused, not retried
    assert entry["server"] == rdap_server.url + "rdap/" and "redirected_from" not in entry


def test_credentials_go_only_to_the_origin_they_were_configured_for(rdap_server: RdapServer,
                                                                    rdap_target: RdapServer) -> None:
    from tiops.redact import register_url_login

    secret = "S3cretPW-redirect"
    port = rdap_server.url.rsplit(":", 1)[1].rstrip("/")
    base_url = f"http://alice:{secret}@127.0.0.1:{port}/rdap/"
    register_url_login(base_url)  # as rdap_settings does
    # Same origin first (another path on the configured server), then a registrar elsewhere, whose
    # Location even offers credentials of its own: none are sent.
    rdap_server.redirect(_PHISH, "/rdap/domain/WOODGROVE-SECURELOGIN.NET")
    target = rdap_target.url.replace("http://", "http://mallory:handed-out@")
    rdap_server.redirect("/rdap/domain/WOODGROVE-SECURELOGIN.NET", target + _PHISH[1:])
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {secret}"  # a caller's session with a header of its own
    client = RdapClient(RdapSettings(base_url=base_url, requests_per_minute=6000, max_retries=0),
                        session=session, sleep=lambda s: None, now=lambda: NOW)
    entry = client.lookup("domain", "woodgrove-securelogin.net")
    assert entry["status"] == "found"
    sent = [authorization for _, authorization in rdap_server.authorizations]
    assert len(sent) == 2 and all(a is not None and a.startswith("Basic ") for a in sent)  # the configured origin
    assert rdap_target.authorizations == [(_PHISH, None)]  # another origin: nothing at all
    assert entry["server"] == rdap_target.url + _PHISH[1:] and entry["redirected_from"] == f"http://127.0.0.1:{port}/rdap/"
    assert secret not in json.dumps(entry) and "handed-out" not in json.dumps(entry) and "alice" not in json.dumps(entry)
    # A server that echoes the secret in the path it redirects to: the lock names the hop masked.
    rdap_server.redirect(_PHISH, f"/rdap/domain/{secret}/x")
    echoed = RdapClient(RdapSettings(base_url=base_url, requests_per_minute=6000, max_retries=0),
                        sleep=lambda s: None, now=lambda: NOW).lookup("domain", "woodgrove-securelogin.net")
    assert echoed["status"] == "not-found" and echoed["server"].endswith("/rdap/domain/***/x")
    assert secret not in json.dumps(echoed)


def test_rate_limited_requests_wait_as_the_server_asks_then_succeed(rdap_server: RdapServer) -> None:
    rdap_server.rate_limit(2, retry_after="7")
    sleeps: list[float] = []
    entry = _client(rdap_server, sleeps).lookup("domain", "woodgrove-statements.net")
    assert entry["status"] == "found"
    assert [s for s in rdap_server.rdap_requests()] == [("/rdap/domain/woodgrove-statements.net", 429)] * 2 + [
        ("/rdap/domain/woodgrove-statements.net", 200)]
    assert [s for s in sleeps if s >= 1] == [7.0, 7.0]  # Retry-After wins over the backoff


def test_a_server_that_keeps_refusing_is_recorded_as_failed_not_raised(rdap_server: RdapServer) -> None:
    rdap_server.rate_limit(100, retry_after="not-a-number")
    sleeps: list[float] = []
    entry = _client(rdap_server, sleeps, max_retries=2).lookup("domain", "woodgrove-statements.net")
    assert entry["status"] == "failed"
    assert "HTTP 429" in entry["error"] and "gave up after 2 retries" in entry["error"]
    assert [s for s in sleeps if s >= 0.5] == [0.5, 1.0]  # exponential backoff without Retry-After
    down = _client(rdap_server, [], base_url="http://127.0.0.1:9/", max_retries=1).lookup("ip", "8.8.8.8")
    assert down["status"] == "failed" and "ConnectionError" in down["error"]


@pytest.mark.parametrize(("retry_after", "waited"), [("86400", None), ("inf", 0.5), ("1e3", 0.5), ("-3", 0.5),
                                                    ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0)])
def test_a_retry_after_is_read_never_trusted(rdap_server: RdapServer, retry_after: str, waited: float | None) -> None:
    # A day is not waited for: the value is recorded as failed and the run goes on. What is not
    # delay-seconds or an HTTP-date is backed off from as without the header; a past date asks no wait.
    rdap_server.rate_limit(1, retry_after=retry_after)
    sleeps: list[float] = []
    entry = _client(rdap_server, sleeps).lookup("domain", "woodgrove-statements.net")
    if waited is None:
        assert entry["status"] == "failed" and "asked to wait 1 days" in entry["error"], entry
        assert all(s < 300 for s in sleeps)
    else:
        assert entry["status"] == "found"
        assert waited in sleeps and all(s < 300 for s in sleeps)


def test_requests_to_one_server_are_paced(rdap_server: RdapServer) -> None:
    sleeps: list[float] = []
    moment = [0.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        moment[0] += seconds

    client = RdapClient(RdapSettings(bootstrap=rdap_server.url, requests_per_minute=60), sleep=sleep,
                        clock=lambda: moment[0], now=lambda: NOW)
    for name in ("a.net", "b.net", "c.net"):
        client.lookup("domain", name)
    assert sleeps == [1.0, 1.0]  # one second apart at 60 a minute


def test_bootstrap_from_a_folder_and_settings_from_tiops_yaml(tmp_path: Path, rdap_server: RdapServer) -> None:
    folder = tmp_path / "bootstrap"
    folder.mkdir()
    (folder / "dns.json").write_text(json.dumps({"services": [[["net"], [rdap_server.url + "rdap"]]]}), encoding="utf-8")
    settings = rdap_settings(tmp_path, {"bootstrap": "bootstrap", "requests_per_minute": 600})
    assert settings.bootstrap == str(folder) and settings.requests_per_minute == 600
    client = RdapClient(settings, sleep=lambda s: None, now=lambda: NOW)
    assert client.lookup("domain", "woodgrove-statements.net")["status"] == "found"
    # No ipv4.json in that folder: nobody was asked, so it is a failure the next run retries, not a
    # not-found that stays locked; a registry that has the file but lists no server is not-found.
    entry = client.lookup("ip", "8.8.8.8")
    assert entry["status"] == "failed" and entry["error"].endswith("has no ipv4.json")
    assert client.lookup("domain", "example.org")["status"] == "not-found"
    (folder / "ipv4.json").write_text(json.dumps({"services": [[["8.0.0.0/8"], [rdap_server.url + "rdap"]]]}),
                                      encoding="utf-8")
    client = RdapClient(settings, sleep=lambda s: None, now=lambda: NOW)
    assert client.lookup("ip", "8.8.8.8")["status"] == "found"
    assert client.lookup("ip", "9.9.9.9")["status"] == "not-found"
    assert client.lookup("ip", "2001:4860::8888")["error"].endswith("has no ipv6.json")


def test_an_unreachable_bootstrap_registry_fails_each_value_once_asked(rdap_server: RdapServer) -> None:
    client = RdapClient(RdapSettings(bootstrap="http://127.0.0.1:9/", timeout=2), sleep=lambda s: None, now=lambda: NOW)
    first, second = client.lookup("domain", "a.net"), client.lookup("ip", "8.8.8.8")
    assert first["status"] == second["status"] == "failed"
    assert "cannot read the RDAP bootstrap registry dns.json from http://127.0.0.1:9/" in first["error"]
    assert client.requests == 0 and second["error"] == first["error"]


@pytest.fixture
def endless_bootstrap() -> Iterator[str]:
    """The URL of a server on 127.0.0.1 whose bootstrap files never end: no Content-Length, bytes
    until the client hangs up (a broken proxy or a hostile registry)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the body ends when the connection does

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            chunk, total = b"[" + b" " * (1 << 16), 0
            try:
                while total < 4 * MAX_BOOTSTRAP_BYTES:
                    self.wfile.write(chunk)
                    total += len(chunk)
            except OSError:
                pass  # the client stopped reading

    with serving(Handler) as url:
        yield url


def test_a_bootstrap_file_without_end_is_refused_at_its_bound(endless_bootstrap: str) -> None:
    url = endless_bootstrap
    client = RdapClient(RdapSettings(bootstrap=url, timeout=5), sleep=lambda s: None, now=lambda: NOW)
    entry = client.lookup("domain", "a.net")
    assert entry["status"] == "failed"
    assert f"cannot read the RDAP bootstrap registry dns.json from {url}" in entry["error"]
    assert f"larger than {MAX_BOOTSTRAP_BYTES} bytes" in entry["error"]
    assert client.requests == 0


# --- broken and hostile answers ------------------------------------------------------------

_RFC9083_MEMBERS = ["events", "eventAction", "eventDate", "entities", "roles", "vcardArray", "status", "name",
                    "handle", "country", "startAddress", "endAddress", "registration", "expiration",
                    "last changed", "registrar", "registrant", "abuse", "fn", "org", "email", "adr", "cc", "label"]
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.sampled_from(_RFC9083_MEMBERS)
    | st.text(max_size=8) | st.sampled_from(["2025-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00",
                                            "9999-12-31T23:59:59-14:00", "2025-02-30T00:00:00Z", " \n "]),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(_RFC9083_MEMBERS) | st.text(max_size=4), children, max_size=6),
    max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_RFC9083_MEMBERS), _json_values, max_size=8))
def test_any_json_object_gives_string_fields_and_never_an_error(document: dict[str, object]) -> None:
    for parse in (parse_domain, parse_network):
        fields = parse(document)
        for name, value in fields.items():
            if name == "rdap_status":
                assert isinstance(value, list) and all(isinstance(item, str) for item in value)
            else:
                assert isinstance(value, str) and value, (name, value)


def test_members_of_the_wrong_type_are_left_out_and_the_rest_is_read() -> None:
    server = start_rdap_server(extra_domains={"broken-answer.net": {
        "objectClassName": "domain",
        "events": [{"eventAction": "registration", "eventDate": "0001-01-01T00:00:00+14:00"},
                   {"eventAction": "expiration", "eventDate": "2027-01-01T00:00:00Z"}, 7],
        "entities": [{"roles": "registrar", "vcardArray": ["vcard", [["fn", {}, "text", "Not A Registrar Role"]]]},
                     {"roles": ["registrant"], "vcardArray": ["vcard", [["adr", {"label": "  \n "}, "text", ""]]]},
                     {"roles": ["abuse"], "entities": 5, "vcardArray": ["vcard", [["email", {}, "text", "abuse@example.net"]]]}],
        "status": "active",
    }})
    try:
        entry = _client(server, []).lookup("domain", "broken-answer.net")
    finally:
        server.stop()
    assert entry == {"status": "found", "server": server.url + "rdap/", "retrieved": "2026-03-01T12:00:00Z",
                     "expires": "2027-01-01T00:00:00Z", "abuse_email": "abuse@example.net"}


def test_an_answer_too_large_is_recorded_as_failed() -> None:
    server = start_rdap_server(extra_domains={"huge-answer.net": {
        "objectClassName": "domain", "remarks": [{"description": ["x" * (MAX_ANSWER_BYTES + 10)]}]}})
    try:
        entry = _client(server, [], max_retries=0).lookup("domain", "huge-answer.net")
    finally:
        server.stop()
    assert entry["status"] == "failed"
    assert f"larger than {MAX_ANSWER_BYTES} bytes" in entry["error"]


def test_a_bootstrap_url_without_a_host_names_no_server(tmp_path: Path, rdap_server: RdapServer) -> None:
    folder = tmp_path / "bootstrap"
    folder.mkdir()
    (folder / "dns.json").write_text(json.dumps({"services": [
        [["nohost"], ["http:///rdap/"]], [["badport"], ["https://[::1/rdap/", rdap_server.url + "rdap"]],
        [["net"], [rdap_server.url + "rdap"]]]}), encoding="utf-8")
    client = RdapClient(rdap_settings(tmp_path, {"bootstrap": "bootstrap"}), sleep=lambda s: None, now=lambda: NOW)
    entry = client.lookup("domain", "example.nohost")
    assert entry["status"] == "not-found" and client.requests == 0  # nothing asked, nothing retried
    assert client.lookup("domain", "woodgrove-statements.badport")["server"] == rdap_server.url + "rdap/"
    assert client.lookup("domain", "woodgrove-statements.net")["status"] == "found"


def test_an_answer_for_a_name_idna_refuses_is_its_a_label() -> None:
    from tiops.enrich.subject import answer_for_other as _answers_for_other

    # An emoji label (IDNA 2008 refuses it) is asked as written; the registry names its A-label.
    assert _answers_for_other({"ldhName": "xn--i-7iq.ws"}, "domain", "i\u2764.ws") is None
    assert _answers_for_other({"ldhName": "xn--i-7iq.ws"}, "domain", "other.ws") == "xn--i-7iq.ws"


def test_a_bootstrap_registry_s_error_is_named_by_its_status_not_the_server_s_text() -> None:
    # requests' message quoted the reason phrase and the URL a redirect ended at: the server's own
    # text, which went into the lock (committed) as sent, echoes and escape sequences included.
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if not self.path.startswith("/echoed"):
                self.send_response(302)
                self.send_header("Location", f"/echoed?got=server-said-{self.headers.get('Authorization', '')[6:]}")
            else:
                self.send_response(500, "Echo server-said \x1b[2J")
            self.send_header("Content-Length", "0")
            self.end_headers()

    with serving(Handler) as url:
        client = RdapClient(rdap_settings(Path("."), {"bootstrap": url.replace("//", "//u:rdap-pw-4471@")}),
                            sleep=lambda s: None, now=lambda: NOW)
        entry = client.lookup("domain", "a.net")
    assert entry["status"] == "failed"
    assert entry["error"] == f"cannot read the RDAP bootstrap registry dns.json from {url}: HTTP 500 Internal Server Error"


def test_a_redirect_from_https_to_http_is_refused_and_the_other_way_followed() -> None:
    from tiops.enrich.rdap import _redirect_target

    target, refused = _redirect_target("https://rdap.example/rdap/domain/x.example", "http://rdap.other/domain/x")
    assert target == "" and refused is not None and "from https to http" in refused
    assert _redirect_target("https://rdap.example/rdap/domain/x.example", "https://rdap.other/domain/x") \
        == ("https://rdap.other/domain/x", None)
    assert _redirect_target("http://rdap.example/rdap/domain/x.example", "https://rdap.other/domain/x") \
        == ("https://rdap.other/domain/x", None)
    assert _redirect_target("https://rdap.example/rdap/domain/x.example", "/domain/X.EXAMPLE") \
        == ("https://rdap.example/domain/X.EXAMPLE", None)


def test_a_public_server_may_not_send_the_lookup_to_an_internal_address() -> None:
    from tiops.enrich.rdap import _is_internal

    for url in ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8080/", "http://[::1]/", "http://10.0.0.5/",
                "https://localhost/rdap/", "http://api.localhost./", "http://[fd00::1]/"):
        assert _is_internal(url), url
    for url in ("https://rdap.verisign.com/com/v1/", "https://8.8.8.8/", "https://[2001:4860:4860::8888]/"):
        assert not _is_internal(url), url


def test_a_redirect_from_a_public_server_to_an_internal_one_is_refused(rdap_server: RdapServer,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import tiops.enrich.rdap as rdap

    # The test server listens on 127.0.0.1: read as public but for one path, the redirect there is the case.
    monkeypatch.setattr(rdap, "_is_internal", lambda url: "/internal/" in url)
    rdap_server.redirect(_PHISH, "/internal/domain/WOODGROVE-SECURELOGIN.NET")
    client = _client(rdap_server, [])
    entry = client.lookup("domain", "woodgrove-securelogin.net")
    assert entry["status"] == "failed" and "not globally reachable" in entry["error"], entry
    assert client.requests == 1


# --- Locations requests cannot read, registry URLs with bad ports, drips, answers of another class --


@pytest.mark.parametrize("location", [
    "http://[::1", "http://[", "//[::1", "http://]",  # requests: ValueError Invalid IPv6 URL
    "http://127.0.0.1:18766:1/",  # requests: ValueError, a port that is no number (should_strip_auth)
    "http://a..b/",  # urllib3: LocationParseError when asked
    "http://127.0.0.1/caf\xe9",  # a Latin-1 byte: requests' UnicodeDecodeError (to_native_string)
])
def test_a_location_that_cannot_be_read_is_a_failure_not_a_crash(rdap_server: RdapServer, location: str) -> None:
    rdap_server.redirect(_PHISH, location)  # BaseHTTPRequestHandler writes the header as Latin-1 bytes
    client = _client(rdap_server, [])
    entry = client.lookup("domain", "woodgrove-securelogin.net")
    assert entry["status"] == "failed" and "redirected (HTTP 302) to a URL that cannot be read" in entry["error"], entry
    assert client.requests == 1 and "redirected_from" not in entry
    # The run carries on: the next value is asked and found.
    assert client.lookup("domain", "woodgrove-statements.net")["status"] == "found"


def test_a_bootstrap_server_url_with_a_port_out_of_range_is_left_out(tmp_path: Path, rdap_server: RdapServer) -> None:
    folder = tmp_path / "bootstrap"
    folder.mkdir()
    (folder / "dns.json").write_text(json.dumps({"services": [
        [["example"], ["https://rdap.example:99999/"]], [["net"], ["http://127.0.0.1:18765:1/", rdap_server.url + "rdap"]]]}),
        encoding="utf-8")
    (folder / "ipv6.json").write_text(json.dumps({"services": [[["::/0"], ["http://127.0.0.1:18765:1/"]]]}),
                                      encoding="utf-8")
    client = RdapClient(rdap_settings(tmp_path, {"bootstrap": "bootstrap"}), sleep=lambda s: None, now=lambda: NOW)
    assert client.lookup("domain", "a.example")["status"] == "not-found"  # as if the service listed no server
    assert client.lookup("ip", "2606:4700::1")["status"] == "not-found"
    assert client.lookup("domain", "woodgrove-statements.net")["status"] == "found"  # the service's other URL
    assert client.requests == 1


@pytest.fixture
def dripping_server() -> Iterator[str]:
    """The URL of a server on 127.0.0.1 that answers every request one byte at a time, 20 a second,
    of a declared 100000: each wait for a byte is well inside any timeout, the whole never is."""
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100000):
                    if stop.wait(0.05):
                        return
                    self.wfile.write(b" ")
                    self.wfile.flush()
            except OSError:
                pass  # the client hung up

    with serving(Handler) as url:
        try:
            yield url
        finally:
            stop.set()  # before the server closes: it waits for the dripping request to end


def test_an_answer_that_drips_in_fails_at_its_deadline(dripping_server: str) -> None:
    from tiops.enrich.rdap import DEADLINE_TIMEOUTS

    client = _client_for(dripping_server, base_url=dripping_server + "rdap/", timeout=0.5, max_retries=3)
    started = time.monotonic()
    entry = client.lookup("domain", "example.net")
    took = time.monotonic() - started
    assert entry["status"] == "failed" and f"did not arrive within {DEADLINE_TIMEOUTS * 0.5:g} s" in entry["error"]
    assert took < DEADLINE_TIMEOUTS * 0.5 + 2 and client.requests == 1  # not retried: it would drip again


def test_a_bootstrap_file_that_drips_in_fails_at_its_deadline(dripping_server: str) -> None:
    client = _client_for(dripping_server, timeout=0.5)
    started = time.monotonic()
    entry = client.lookup("domain", "example.net")
    assert entry["status"] == "failed" and "cannot read the RDAP bootstrap registry" in entry["error"]
    assert "did not arrive within 2 s" in entry["error"] and time.monotonic() - started < 3 * (2 + 2)


def _client_for(url: str, **settings: object) -> RdapClient:
    options = {"bootstrap": url, "requests_per_minute": 6000.0, "timeout": 5.0, "max_retries": 0, **settings}
    return RdapClient(RdapSettings(**options), sleep=lambda s: None, now=lambda: NOW)  # type: ignore[arg-type]


EVIL = {"objectClassName": "domain", "ldhName": "evil.com",
        "entities": [{"roles": ["registrar"], "vcardArray": ["vcard", [["fn", {}, "text", "Evil Registrar"]]]}]}


@pytest.mark.parametrize(("kind", "value", "document", "said"), [
    ("ip", "8.8.8.8", EVIL, "not an RDAP ip network object"),
    ("domain", "woodgrove.net", {"objectClassName": "ip network", "startAddress": "8.8.8.0", "endAddress": "8.8.8.255"},
     "not an RDAP domain object"),
    ("ip", "8.8.8.8", {"objectClassName": "ip network", "startAddress": "not-an-ip", "endAddress": "8.8.8.255"},
     "no network range"),
    ("domain", "woodgrove.net", {}, "objectClassName none"),
    ("domain", "woodgrove.net", {"objectClassName": "entity"}, "objectClassName 'entity'"),
])
def test_an_answer_that_is_not_about_the_kind_asked_is_failed(kind: str, value: str, document: dict[str, object],
                                                              said: str) -> None:
    server = start_rdap_server(extra_domains={"woodgrove.net": document})
    server.networks.insert(0, (ipaddress.ip_network("0.0.0.0/0"), document))
    try:
        entry = _client(server, [], base_url=server.url + "rdap/").lookup(kind, value)  # type: ignore[arg-type]
    finally:
        server.stop()
    assert entry["status"] == "failed" and said in entry["error"], entry
    assert "registrar" not in entry and "network" not in entry


# An API key in a URL's query, under a name redact() has no pattern for.
_KEY = "Q7rK2mVx9pLw"


def test_a_base_url_with_a_query_keeps_it_after_the_lookup_path(rdap_server: RdapServer) -> None:
    # RFC 9082 section 3.1 appends the query's segments to the base URL's path (RFC 3986 section
    # 3.4: the query follows the path). Appended to the whole URL they became part of the key,
    # the server was asked for its root, and every value was locked not-found, never asked again.
    client = _client(rdap_server, [], base_url=f"{rdap_server.url}rdap/?key={_KEY}")
    entry = client.lookup("domain", "woodgrove-securelogin.net")
    assert entry["status"] == "found" and entry["server"] == rdap_server.url + "rdap/"
    assert client.lookup("ip", "8.8.8.8")["status"] == "found"
    assert [p for p, _ in rdap_server.rdap_requests()] == [
        f"/rdap/domain/woodgrove-securelogin.net?key={_KEY}", f"/rdap/ip/8.8.8.8?key={_KEY}"]


def test_a_redirect_from_a_base_url_with_a_query_locks_no_query(rdap_server: RdapServer, rdap_target: RdapServer) -> None:
    # redirected_from names the server first asked as server does: without the query (the key).
    rdap_server.redirect(f"/rdap/domain/woodgrove-securelogin.net?key={_KEY}",
                         rdap_target.url + "rdap/domain/woodgrove-securelogin.net")
    entry = _client(rdap_server, [], base_url=f"{rdap_server.url}rdap/?key={_KEY}").lookup(
        "domain", "woodgrove-securelogin.net")
    assert entry["status"] == "found" and entry["redirected_from"] == rdap_server.url + "rdap/"
    assert _KEY not in json.dumps(entry)


def test_a_bootstrap_url_with_a_query_is_read_and_never_quoted(rdap_server: RdapServer) -> None:
    client = _client(rdap_server, [], bootstrap=f"{rdap_server.url}?key={_KEY}")
    assert client.lookup("domain", "woodgrove-securelogin.net")["status"] == "found"
    assert (f"/dns.json?key={_KEY}", 200) in rdap_server.requests
    # Unreachable: the failure the lock keeps names the registry without the query, and says the
    # kind of error rather than requests' text (the URL asked, and the system's errno wording).
    down = _client_for(f"http://127.0.0.1:9/?key={_KEY}", timeout=2).lookup("domain", "a.net")
    assert down["status"] == "failed" and _KEY not in down["error"]
    assert down["error"] == "cannot read the RDAP bootstrap registry dns.json from http://127.0.0.1:9/: ConnectionError"


def _thin_registry_answer(name: str, link: str | None) -> dict[str, object]:
    """A thin registry's answer (Verisign's shape): the registration and its registrar, no registrant,
    and the registrar's own answer linked as RFC 9083 section 4.2 "related"."""
    links: list[dict[str, str]] = [{"value": f"https://registry.example/domain/{name}", "rel": "self",
                                    "href": f"https://registry.example/domain/{name}", "type": "application/rdap+json"}]
    if link is not None:
        links.append({"value": f"https://registry.example/domain/{name}", "rel": "related", "href": link,
                      "type": "application/rdap+json"})
    return {"objectClassName": "domain", "ldhName": name.upper(), "links": links, "status": ["client transfer prohibited"],
            "events": [{"eventAction": "registration", "eventDate": "2024-05-01T00:00:00Z"}],
            "entities": [{"objectClassName": "entity", "roles": ["registrar"], "vcardArray": [
                "vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "Example Registrar, Inc."]]]}]}


def _registrar_answer(name: str) -> dict[str, object]:
    return {"objectClassName": "domain", "ldhName": name, "status": ["active"],
            "events": [{"eventAction": "registration", "eventDate": "1999-01-01T00:00:00Z"}],  # the registry's wins
            "entities": [
                {"objectClassName": "entity", "roles": ["registrant"], "vcardArray": ["vcard", [
                    ["version", {}, "text", "4.0"], ["org", {}, "text", "Fabrikam Holdings"],
                    ["adr", {"cc": "ca"}, "text", ["", "", "", "", "", "", ""]]]]},
                {"objectClassName": "entity", "roles": ["abuse"], "vcardArray": ["vcard", [
                    ["version", {}, "text", "4.0"], ["email", {}, "text", "abuse@registrar.example"]]]}]}


def test_a_thin_registry_s_registrant_comes_from_the_registrar_it_links_to(
        rdap_server: RdapServer, rdap_target: RdapServer) -> None:
    # .com and .net: the registry answers with the registration and links to the registrar's answer,
    # which alone holds the registrant. Without following it, no .com domain had a registrant country.
    link = f"{rdap_target.url}rdap/domain/FABRIKAM-THIN.NET"
    rdap_server.domains["fabrikam-thin.net"] = _thin_registry_answer("fabrikam-thin.net", link)
    rdap_target.domains["fabrikam-thin.net"] = _registrar_answer("fabrikam-thin.net")
    client = _client(rdap_server, [])
    entry = client.lookup("domain", "www.fabrikam-thin.net")
    assert entry["status"] == "found" and entry["server"] == rdap_server.url + "rdap/"
    assert (entry["registrant_organization"], entry["registrant_country"]) == ("Fabrikam Holdings", "CA")
    assert entry["abuse_email"] == "abuse@registrar.example"
    assert entry["registrant_server"] == link  # who said it, for tiops explain
    assert entry["registered"] == "2024-05-01T00:00:00Z" and entry["rdap_status"] == ["client transfer prohibited"]
    assert entry["registrar"] == "Example Registrar, Inc."
    # Asked once for every host name under the domain, the registrar included.
    assert client.lookup("domain", "login.fabrikam-thin.net")["registrant_country"] == "CA"
    assert [path for path, _ in rdap_target.rdap_requests()] == ["/rdap/domain/FABRIKAM-THIN.NET"]
    assert rdap_target.authorizations[-1][1] is None  # the configured server's credentials stay with it


def test_a_registrar_that_does_not_answer_leaves_the_registry_s_answer_found(
        rdap_server: RdapServer, rdap_target: RdapServer) -> None:
    rdap_server.domains["fabrikam-gone.net"] = _thin_registry_answer(
        "fabrikam-gone.net", f"{rdap_target.url}rdap/domain/fabrikam-gone.net")  # the registrar knows no such name
    entry = _client(rdap_server, []).lookup("domain", "fabrikam-gone.net")
    assert entry["status"] == "found" and entry["registrar"] == "Example Registrar, Inc."
    assert "registrant_country" not in entry and "registrant_server" not in entry
    assert entry["registrant_error"] == (f"the registrar's RDAP server {rdap_target.url}rdap/domain/fabrikam-gone.net "
                                         "does not know fabrikam-gone.net")
    # A registry that names the registrant itself (a thick one) is not sent to the registrar.
    thick = _thin_registry_answer("fabrikam-thick.net", f"{rdap_target.url}rdap/domain/fabrikam-thick.net")
    thick["entities"] = [*thick["entities"], *_registrar_answer("x")["entities"]]  # type: ignore[misc]
    rdap_server.domains["fabrikam-thick.net"] = thick
    assert _client(rdap_server, []).lookup("domain", "fabrikam-thick.net")["registrant_country"] == "CA"
    assert not any("fabrikam-thick" in path for path, _ in rdap_target.rdap_requests())


@pytest.mark.parametrize(("link", "taken"), [
    ({"rel": "related", "type": "application/rdap+json", "href": "https://rdap.registrar.example/domain/Example.COM"}, True),
    ({"rel": "Related", "type": "application/rdap+json; charset=utf-8", "href": "https://r.example/rdap/domain/example.com."}, True),
    ({"rel": "related", "type": "text/html", "href": "https://r.example/domain/example.com"}, False),  # a web page
    ({"rel": "related", "href": "https://r.example/domain/example.com"}, False),  # no type: not said to be RDAP
    ({"rel": "self", "type": "application/rdap+json", "href": "https://r.example/domain/example.com"}, False),
    ({"rel": "related", "type": "application/rdap+json", "href": "https://r.example/domain/other.com"}, False),
    ({"rel": "related", "type": "application/rdap+json", "href": "ftp://r.example/domain/example.com"}, False),
    ({"rel": "related", "type": "application/rdap+json", "href": "https://r.example/entity/example.com"}, False),
])
def test_only_a_related_rdap_link_to_the_same_domain_is_the_registrar_s(link: dict[str, str], taken: bool) -> None:
    from tiops.enrich.rdap import registrar_link

    assert (registrar_link({"links": [link]}, "example.com") is not None) is taken


def test_a_refresh_while_the_registrar_is_down_keeps_the_registrant_it_gave_before(
        tmp_path: Path, rdap_server: RdapServer, rdap_target: RdapServer) -> None:
    link = f"{rdap_target.url}rdap/domain/fabrikam-thin.net"
    rdap_server.domains["fabrikam-thin.net"] = _thin_registry_answer("fabrikam-thin.net", link)
    rdap_target.domains["fabrikam-thin.net"] = _registrar_answer("fabrikam-thin.net")
    root = write_repo(tmp_path / "repo", rdap_server.url, ["thin"],
                      extra={"thin": "[domain-name:value = 'fabrikam-thin.net']"})
    enrich_repo(root, offline=False)
    assert read_lock(root / "intel", root)[0].whois["fabrikam-thin.net"]["registrant_country"] == "CA"
    del rdap_target.domains["fabrikam-thin.net"]  # the registrar no longer answers; the registry still does
    enrich_repo(root, offline=False, refresh=timedelta(0))
    entry = read_lock(root / "intel", root)[0].whois["fabrikam-thin.net"]
    # An outage of the registrar, like a failed lookup, does not turn a known registrant into none.
    assert (entry["status"], entry["registrant_organization"], entry["registrant_country"]) == (
        "found", "Fabrikam Holdings", "CA")
    assert entry["registrant_server"] == link and "registrant_error" not in entry

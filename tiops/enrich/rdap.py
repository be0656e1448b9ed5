"""RDAP, the modern WHOIS (RFC 7480-7484, RFC 9083), for domains and IP networks.

Servers come from the IANA bootstrap registry (RFC 9224: ``dns.json``,
``ipv4.json``, ``ipv6.json``), read from a URL or a local folder, or one RDAP
base URL from tiops.yaml serves everything. Requests are paced per server and
retried with backoff and Retry-After by the same code the stores use
(:class:`tiops.stores.sentinel.RequestPacer`, :func:`tiops.apply._retrying`,
:func:`tiops.stores.remote.http_failure`). A lookup never raises for an answer it
did not get: the result says ``failed`` and why.

A server may send the client to another server (RFC 7480 section 5.2: a registry to a
registrar, a bootstrap redirector to a registry). Redirects are followed here, hop by hop,
not by requests: each hop's server is paced and retried as its own, credentials go only to
the origin they were configured for, and the lock names the server that answered.

Plain HTTP (requests) rather than an RDAP client library: whoisit fetches the
bootstrap from IANA itself and has no per-server pacing hook, and RDAP's JSON is
small enough to read directly (docs/enrich.md).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NamedTuple
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

import orjson
import requests
import urllib3
from requests.auth import AuthBase, HTTPBasicAuth
from requests.utils import get_auth_from_url

from tiops.apply import _retrying
from tiops.config import credentials_problem
from tiops.enrich.subject import answer_for_other, answer_not_readable
from tiops.enrich.values import Kind, parse_ip
from tiops.errors import UsageError
from tiops.redact import public_url, redact, register_url_login
from tiops.stores import StoreError, TransientStoreError
from tiops.stores.remote import http_failure, status_phrase
from tiops.stores.sentinel import RequestPacer

__all__ = ["DEFAULT_BOOTSTRAP", "MAX_REDIRECTS", "Bootstrap", "RdapClient", "RdapSettings", "load_bootstrap",
           "rdap_settings"]

DEFAULT_BOOTSTRAP: Final = "https://data.iana.org/rdap/"
_ACCEPT: Final = "application/rdap+json, application/json"
# An RDAP answer is a few kilobytes (a registry's with many notices and entities some
# hundreds); a larger one is a broken or hostile server, refused before it fills memory.
MAX_ANSWER_BYTES: Final = 4 << 20
# IANA's bootstrap files are some kilobytes to a few hundred (dns.json names every TLD's server);
# one larger than this is not a registry, and is refused before it fills memory.
MAX_BOOTSTRAP_BYTES: Final = 16 << 20
# RFC 7480 section 5.2: a server that knows the answer is elsewhere returns 301, 302, 303 or 307
# with the URL in Location; 308 is the permanent 307 (RFC 9110 section 15.4.9). Every request is a GET.
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# RFC 9110 section 15.4: a client detects and stops cyclical redirections. Real chains are one or two
# hops (a bootstrap redirector to a registry, a registry to a registrar); a longer one is a loop that
# never repeats a URL exactly, or a server keeping the client busy.
MAX_REDIRECTS: Final = 5
# The timeout bounds connecting and each wait for the next bytes (requests' read timeout), not the
# whole answer: a server that sends one byte a second keeps one request going for days. An answer
# (or a bootstrap file) must have arrived whole within this many times the timeout of its request
# being sent: 60 s with the default timeout of 15 s. A real answer takes well under a second.
DEADLINE_TIMEOUTS: Final = 4


@dataclass(frozen=True)
class RdapSettings:
    """tiops.yaml ``enrichment.rdap``."""

    bootstrap: str = DEFAULT_BOOTSTRAP  # a URL or a folder holding dns.json, ipv4.json, ipv6.json
    base_url: str | None = None  # one server for every query, instead of the bootstrap
    requests_per_minute: float = 30.0  # per server
    timeout: float = 15.0
    max_retries: int = 4
    bootstrap_as_named: str = ""  # the bootstrap as tiops.yaml names it (a folder relative to it)

    @property
    def bootstrap_shown(self) -> str:
        """The bootstrap as messages and the lock name it: as tiops.yaml does, without credentials (nor
        a URL's query, which may carry an API key, as the lock's ``server`` never does)."""
        named = self.bootstrap_as_named or self.bootstrap
        return _shown(named) if "://" in named else named


def rdap_settings(root: Path, raw: dict[str, Any]) -> RdapSettings:
    bootstrap = shown = str(raw.get("bootstrap", DEFAULT_BOOTSTRAP))
    if "://" not in bootstrap:
        bootstrap = str((root / bootstrap).resolve())
    base_url = str(raw["base_url"]) if raw.get("base_url") else None
    for key, url in (("bootstrap", bootstrap), ("base_url", base_url)):
        if url and "://" in url:
            register_url_login(url)  # sent as HTTP Basic credentials; never shown
            if (problem := credentials_problem(url)) is not None:
                raise UsageError(f"enrichment.rdap.{key}: {problem}",
                                 hint="Percent-encode the password's '@' as %40, '/' as %2F, '?' as %3F and '#' as %23 "
                                      "(RFC 3986 section 3.2.1).")
    return RdapSettings(
        bootstrap=bootstrap,
        bootstrap_as_named=shown,
        base_url=base_url,
        requests_per_minute=float(raw.get("requests_per_minute", 30)),
        timeout=float(raw.get("timeout", 15)),
        max_retries=int(raw.get("max_retries", 4)),
    )


@dataclass
class Bootstrap:
    """The IANA bootstrap registry: which RDAP server answers for a TLD or an IP block."""

    domains: dict[str, str] = field(default_factory=dict)  # tld (or longer suffix) -> base URL
    networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = field(default_factory=list)
    missing: frozenset[str] = frozenset()  # of dns.json, ipv4.json, ipv6.json: those the registry lacks
    # Those that could not be read (a broken file, a server error), with why: only the values
    # that need one fail for it.
    unreadable: dict[str, str] = field(default_factory=dict)

    def file_for(self, kind: Kind, value: str) -> str:
        """The bootstrap file (RFC 9224 sections 4 and 5) that names the servers for ``value``."""
        if kind == "domain":
            return "dns.json"
        network = parse_ip(value)
        return "ipv6.json" if network is not None and network.version == 6 else "ipv4.json"

    def server_for(self, kind: Kind, value: str) -> str | None:
        if kind == "domain":
            labels = value.split(".")
            for start in range(len(labels)):
                server = self.domains.get(".".join(labels[start:]))
                if server:
                    return server
            return None
        network = parse_ip(value)
        best: tuple[int, str] | None = None
        for block, server in self.networks:
            if (network is not None and block.version == network.version
                    and network.subnet_of(block)  # type: ignore[arg-type]
                    and (best is None or block.prefixlen > best[0])):
                best = (block.prefixlen, server)
        return best[1] if best else None


def _has_host(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises for a port that is no number up to 65535 (RFC 3986 section 3.2.3)
        return bool(parts.hostname)
    except ValueError:  # an unclosed IPv6 bracket, a port that is no number or out of range
        return False


def _pick(urls: list[Any]) -> str | None:
    # RFC 9224 section 4: prefer an https URL when a service lists several; RDAP runs over HTTP(S) only.
    # A URL with no host ('http:///rdap/') names no server: left out like a non-HTTP one.
    text = [u for u in urls if isinstance(u, str) and _has_host(u)]
    chosen = next((u for u in text if u.startswith("https:")), next((u for u in text if u.startswith("http:")), None))
    return None if chosen is None else chosen if chosen.endswith("/") else chosen + "/"


def _services(document: Any) -> Iterator[tuple[list[str], str]]:
    services = document.get("services") if isinstance(document, dict) else None
    for service in services if isinstance(services, list) else ():
        if isinstance(service, list) and len(service) == 2 and isinstance(service[0], list) and isinstance(service[1], list):
            server = _pick(service[1])
            if server:
                yield [str(entry) for entry in service[0]], server


_BOOTSTRAP_HINT: Final = ("Set enrichment.rdap.bootstrap (a URL or folder) or enrichment.rdap.base_url in tiops.yaml, "
                           "or run 'tiops enrich --offline'.")


def load_bootstrap(settings: RdapSettings, session: requests.Session) -> Bootstrap:
    """Read ``dns.json``, ``ipv4.json`` and ``ipv6.json`` from the bootstrap URL or folder."""
    bootstrap = Bootstrap()
    documents: dict[str, Any] = {}
    for name in ("dns.json", "ipv4.json", "ipv6.json"):
        try:
            documents[name] = _bootstrap_file(settings, session, name)
        except UsageError as error:
            bootstrap.unreadable[name] = error.message
            documents[name] = None
    if len(bootstrap.unreadable) == len(documents):
        # Nothing to read at all (the server is down, the URL wrong): said once, and every value fails so.
        raise UsageError(next(iter(bootstrap.unreadable.values())), hint=_BOOTSTRAP_HINT)
    if not bootstrap.unreadable and all(document is None for document in documents.values()):
        # A registry may leave a file out, not all three: this is a wrong folder or URL, and every
        # value would otherwise be recorded as one no registry knows (not-found, never asked again).
        raise UsageError(f"the RDAP bootstrap registry {settings.bootstrap_shown} holds none of dns.json, ipv4.json, "
                         "ipv6.json (RFC 9224)",
                         hint=_BOOTSTRAP_HINT)
    bootstrap.missing = frozenset(name for name, document in documents.items()
                                  if document is None and name not in bootstrap.unreadable)
    for name, document in documents.items():
        for entries, server in _services(document):
            for entry in entries:
                if name == "dns.json":
                    bootstrap.domains[entry.lower().strip(".")] = server
                else:
                    try:
                        bootstrap.networks.append((ipaddress.ip_network(entry, strict=False), server))
                    except ValueError:
                        continue
    return bootstrap


def _bootstrap_file(settings: RdapSettings, session: requests.Session, name: str) -> Any:
    where = settings.bootstrap
    try:
        if "://" in where:
            deadline = time.monotonic() + DEADLINE_TIMEOUTS * settings.timeout
            with session.get(_below(where, name), timeout=settings.timeout, stream=True) as response:
                if response.status_code == 404:
                    return None
                response.raise_for_status()
                document = orjson.loads(_bounded_body(response, f"bootstrap {name}", MAX_BOOTSTRAP_BYTES,
                                                      deadline=deadline, timeout=settings.timeout))
        else:
            path = Path(where) / name
            if not path.is_file():
                return None
            document = orjson.loads(path.read_bytes())
        if not isinstance(document, dict) or not isinstance(document.get("services"), list):
            # Read as an empty registry, every value under it would be locked not-found, never asked again.
            raise ValueError("not an RDAP bootstrap registry: no \"services\" list (RFC 9224 section 3)")
        return document
    except requests.HTTPError as error:
        # requests' own message quotes the server's reason phrase and the URL it ended at (a redirect's
        # Location): the server's text, which can echo the credentials in a form no pattern knows.
        # The status is said with its standard phrase, as every other HTTP failure (http_failure).
        status = error.response.status_code if error.response is not None else 0
        raise UsageError(f"cannot read the RDAP bootstrap registry {name} from {settings.bootstrap_shown}: "
                         f"HTTP {status} {status_phrase(status)}".strip(),
                         hint=_BOOTSTRAP_HINT) from None
    except requests.RequestException as error:
        # Named by its kind, as an RDAP lookup's is (RdapClient._ask): requests' text quotes the URL asked,
        # its query too (where an API key goes, in a name no pattern of redact knows), and the system's
        # errno text, which differs between the machines of a team sharing the lock.
        raise UsageError(f"cannot read the RDAP bootstrap registry {name} from {settings.bootstrap_shown}: "
                         f"{type(error).__name__}", hint=_BOOTSTRAP_HINT) from None
    except (ValueError, OSError, StoreError) as error:
        raise UsageError(f"cannot read the RDAP bootstrap registry {name} from {settings.bootstrap_shown}: "
                         f"{redact(str(error))}",
                         hint=_BOOTSTRAP_HINT) from None


@dataclass(frozen=True)
class _Answer:
    """What asking one server for one name came to, redirects followed."""

    document: dict[str, Any] | None  # the RDAP object; None: not found (HTTP 404), or no usable answer
    origin: dict[str, str]  # "server" and, after a redirect, "redirected_from": as the lock names them
    error: str | None = None  # why there is no usable answer
    subject: dict[str, str] = field(default_factory=dict)  # an answer about another name: what it was about


class _ForeignAnswer(StoreError):
    """An answer about another domain or network than the one asked (tiops.enrich.subject)."""

    def __init__(self, message: str, subject: dict[str, str]) -> None:
        super().__init__(message)
        self.subject = subject


class _Redirect(NamedTuple):
    status: int
    location: str


class _NoCredentials(AuthBase):
    """No credentials at all: neither the configured server's nor an Authorization header the
    session carries. For a hop to another origin (RFC 6454 section 4: scheme, host and port) than
    the configured server's, which must not receive what was configured for that server."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


class RdapClient:
    """Looks values up over RDAP; every answer, good or bad, becomes a lock entry."""

    def __init__(self, settings: RdapSettings, *, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        self.session.headers["Accept"] = _ACCEPT
        self._sleep, self._clock, self._now = sleep, clock, now
        self._pacers: dict[str, RequestPacer] = {}
        self._bootstrap: Bootstrap | None = None
        self._bootstrap_error: UsageError | None = None
        # What each server said of each name asked for in this run (None: not found), and who
        # answered: the host names of a feed share registered domains, each of which is asked for
        # once (registered_domain).
        self._answers: dict[tuple[str, Kind, str], tuple[dict[str, Any] | None, dict[str, str]]] = {}
        self.requests = 0

    def _server(self, kind: Kind, value: str) -> str | None:
        if self.settings.base_url:
            return _below(self.settings.base_url, "")
        if self._bootstrap_error is not None:
            raise self._bootstrap_error
        if self._bootstrap is None:
            try:
                self._bootstrap = load_bootstrap(self.settings, self.session)
            except UsageError as error:
                self._bootstrap_error = error  # asked once per run, not once per value
                raise
        return self._bootstrap.server_for(kind, value)

    def lookup(self, kind: Kind, value: str) -> dict[str, Any]:
        """The lock entry for ``value``: found, not-found or failed, with the time it was retrieved.

        ``server`` names the server that answered (after a redirect, the URL it answered at, and
        ``redirected_from`` the server first asked). An answer about another name or network is
        failed, and says what it was about (``ldh_name`` or ``network``, with the ``queried`` name),
        so an earlier answer in the lock can be weighed against it (tiops.enrich.run).
        """
        retrieved = self._now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            server = self._server(kind, value)
        except UsageError as error:
            # No registry, no server: recorded like any failure, retried by the next run.
            return {"status": "failed", "retrieved": retrieved, "error": redact(error.message)}
        if server is None:
            registry = self._bootstrap.file_for(kind, value) if self._bootstrap is not None else ""
            if self._bootstrap is not None and registry in self._bootstrap.unreadable:
                return {"status": "failed", "retrieved": retrieved, "error": redact(self._bootstrap.unreadable[registry])}
            if self._bootstrap is not None and registry in self._bootstrap.missing:
                # Nobody was asked: failed, so the next run asks again once the registry has the file.
                return {"status": "failed", "retrieved": retrieved,
                        "error": f"the RDAP bootstrap registry {self.settings.bootstrap_shown} has no {registry}"}
            return {"status": "not-found", "retrieved": retrieved, "error": "no RDAP server in the bootstrap registry"}
        name = registered_domain(value) if kind == "domain" else value
        asked = (server, kind, name)
        queried = {"queried": name} if name != value else {}
        if asked in self._answers:
            found, origin = self._answers[asked]
        else:
            answer = self._get(server, kind, name)
            if answer.error is not None:  # not kept: the next value under this name asks again
                return {"status": "failed", **answer.origin, "retrieved": retrieved, "error": answer.error,
                        **({**answer.subject, **queried} if answer.subject else {})}
            document = answer.document
            found = None if document is None else parse_domain(document) if kind == "domain" else parse_network(document)
            if found is not None and document is not None and kind == "domain":
                found = self._with_registrant(document, found, name, server)
            origin = answer.origin
            self._answers[asked] = (found, origin)
        if found is None:
            return {"status": "not-found", **origin, "retrieved": retrieved}
        return {"status": "found", **origin, "retrieved": retrieved, **found, **queried}

    def _with_registrant(self, document: dict[str, Any], found: dict[str, Any], name: str,
                         server: str) -> dict[str, Any]:
        """``found`` (a registry's answer about the domain ``name``) with the registrant the
        registrar's own RDAP server publishes, when the registry's answer names none.

        A thin registry (Verisign for .com and .net) holds the registration, not the registrant:
        its answer links to the sponsoring registrar's answer for the same domain (RFC 9083 section
        4.2, ``rel: related``, ``type: application/rdap+json``, as ICANN's gTLD RDAP profile has
        registries write it). That answer is asked once, as any server is (paced, retried, its
        redirects followed, no credentials: it is not the server configured), and only what the
        registry left out is taken from it: the registrant's organisation and country, and an abuse
        address. The registry stays the source of the dates and status. ``registrant_server``
        names who answered; a lookup that fails keeps the registry's answer and says why in
        ``registrant_error`` (a later ``--refresh`` asks again).
        """
        wanted = ("registrant_organization", "registrant_country")
        if all(key in found for key in wanted):
            return found
        link = registrar_link(document, name)
        if link is None:
            return found
        if _is_internal(link) and not _is_internal(server):
            # As for a redirect: a public registry does not send tiops to CI's neighbours.
            return {**found, "registrant_error": f"the registrar link {_shown(link)} names an address that is not "
                                                 "globally reachable; not followed"}
        answer = self._get(link, "domain", name, first=_without_userinfo(link))
        if answer.error is not None:
            return {**found, "registrant_error": answer.error}
        if answer.document is None:
            return {**found, "registrant_error": f"the registrar's RDAP server {_shown(link)} does not know {name}"}
        registrar = parse_domain(answer.document)
        taken = {key: registrar[key] for key in (*wanted, "abuse_email") if key in registrar and key not in found}
        return {**found, **taken, "registrant_server": answer.origin["server"]}

    def _get(self, server: str, kind: Kind, name: str, *, first: str | None = None) -> _Answer:
        """What ``server`` says of ``name``, following redirects hop by hop (RFC 7480 section 5.2).

        Each hop is one server asked as any other: paced by its own pacer, retried on its own
        429/503 and Retry-After, so a registrar reached through a registry is paced as the
        registrar. A redirect loop, more than MAX_REDIRECTS hops, or a redirect to anything but an
        http(s) URL with a host ends the lookup as failed. Never raises for an answer not had.
        ``first``: the URL to ask first, when it is not the server's own for ``name`` (a link).
        """
        first = first or _below(server, ("domain/" if kind == "domain" else "ip/") + quote(name, safe="/:"))
        url = _without_userinfo(first)
        home = _origin(url)
        configured = get_auth_from_url(first)  # user:password in tiops.yaml's URL, sent as HTTP Basic (RFC 7617)
        credentials: AuthBase | None = HTTPBasicAuth(*configured) if any(configured) else None
        # The base URL asked, without credentials, query or fragment: a configured URL's query or
        # fragment may be what is left of a password (credentials_problem), and is not the server.
        origin = {"server": _shown(server)}
        seen = {_hop_key(url)}
        for hop in range(MAX_REDIRECTS + 1):
            host = urlsplit(url).netloc  # paced and named by host and port, never by credentials
            # Credentials go to the origin they were configured for, never to where it redirects.
            auth = credentials if _origin(url) == home else _NoCredentials()
            try:
                outcome = self._ask(url, host, kind, name, auth)
            except _ForeignAnswer as error:
                return _Answer(None, origin, redact(error.message), error.subject)
            except StoreError as error:
                return _Answer(None, origin, redact(error.message))
            if not isinstance(outcome, _Redirect):
                return _Answer(outcome, origin)
            target, refused = _redirect_target(url, outcome.location)
            if refused is None and hop == MAX_REDIRECTS:
                refused = f"more than {MAX_REDIRECTS} times; not followed further (RFC 9110 section 15.4)"
            elif refused is None and _hop_key(target) in seen:
                refused = f"back to {_shown(target)}: a redirect loop, not followed (RFC 9110 section 15.4)"
            elif refused is None and _is_internal(target) and not _is_internal(first):
                refused = (f"to {_shown(target)}, an address that is not globally reachable, from a server that is; "
                           "not followed")
            if refused is not None:
                return _Answer(None, origin, redact(f"RDAP {host}: redirected (HTTP {outcome.status}) {refused}"))
            seen.add(_hop_key(target))
            url = target
            origin = {"server": _shown(url), "redirected_from": _shown(server)}
        raise AssertionError("unreachable")

    def _ask(self, url: str, host: str, kind: Kind, name: str,
             auth: AuthBase | None) -> dict[str, Any] | _Redirect | None:
        """One hop: the RDAP JSON, None for 404, or where the server sends the client.

        Requests to ``host`` are paced by its own pacer and retried with backoff and its own
        Retry-After; raises StoreError when it gives up.
        """
        server = host.lower()  # RDAP.example.net and rdap.example.net are one server, paced as one
        pacer = self._pacers.get(server)
        if pacer is None:
            pacer = self._pacers[server] = RequestPacer(self.settings.requests_per_minute, clock=self._clock,
                                                        sleep=self._sleep)

        def attempt() -> dict[str, Any] | _Redirect | None:
            pacer.wait()
            self.requests += 1
            locations: list[str] = []
            deadline = time.monotonic() + DEADLINE_TIMEOUTS * self.settings.timeout
            try:
                # Not followed by requests, which would ask the next server unpaced, retry a 429 there
                # from the first server, and leave no trace of who answered (_get follows them).
                with self.session.get(url, timeout=self.settings.timeout, stream=True, allow_redirects=False,
                                      auth=auth, hooks={"response": _take_location(locations)}) as response:
                    if response.status_code in _REDIRECTS and locations and locations[0]:
                        return _Redirect(response.status_code, locations[0])
                    if response.status_code == 404:
                        return None
                    if response.status_code != 200:
                        raise http_failure(f"RDAP {host}", response.status_code, response.headers.get("Retry-After"),
                                           response.reason)
                    body = _bounded_body(response, host, deadline=deadline, timeout=self.settings.timeout)
            except requests.RequestException as error:
                raise TransientStoreError(f"RDAP {host}: {type(error).__name__}") from None
            except (ValueError, urllib3.exceptions.HTTPError) as error:
                # A URL urllib3 cannot connect to ("a..b", an empty label): no retry makes it one.
                raise StoreError(f"RDAP {host}: the URL cannot be read ({type(error).__name__})") from None
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise StoreError(f"RDAP {host}: the answer is not JSON") from None
            if not isinstance(document, dict):
                raise StoreError(f"RDAP {host}: the answer is not an RDAP object")
            if (problem := answer_not_readable(document, kind)) is not None:
                raise StoreError(f"RDAP {host}: {problem}")
            if (other := answer_for_other(document, kind, name)) is not None:
                subject = {"ldh_name": other.rstrip(".").lower()} if kind == "domain" else {"network": other}
                raise _ForeignAnswer(f"RDAP {host}: the answer is for {other[:200]}, not {name}", subject)
            return document

        return _retrying(attempt, self._sleep, self.settings.max_retries)


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _take_location(locations: list[str]) -> Callable[..., requests.Response]:
    """A response hook that takes a redirect's Location out of the response, into ``locations``.

    requests reads a Location itself even with allow_redirects=False (Session.send prepares the
    next request for Response.next): it decodes it as UTF-8, parses it and compares its port,
    and raises ValueError or UnicodeDecodeError for one it cannot read ("http://[::1", a port
    "1:2", a Latin-1 byte), and reads the redirect's whole body unbounded. Response hooks run
    before that, so the header is gone when it looks; :func:`_redirect_target` reads it instead,
    and refuses what cannot be read (RFC 9110 section 10.2.2: Location is a URI-reference).
    """

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        if response.status_code in _REDIRECTS and "Location" in response.headers:
            locations.append(response.headers.pop("Location"))
        return response

    return hook


def _hop_key(url: str) -> tuple[str, str, int | None, str, str]:
    """``url`` as a redirect loop is told by: scheme, host and port as they compare, path and query."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(scheme), parts.path or "/", parts.query


def _origin(url: str) -> tuple[str, str, int | None]:
    """The origin of ``url`` (RFC 6454 section 4): scheme, host and port."""
    scheme, host, port, _, _ = _hop_key(url)
    return scheme, host, port


def _below(base: str, path: str) -> str:
    """The URL of ``path`` under the base URL ``base``: RFC 9224 section 4 has a base URL end in "/" and
    RFC 9082 section 3.1 appends the query's segments (``domain/NAME``, ``ip/ADDRESS``) to it, as a
    bootstrap folder's URL gets ``dns.json``. They go into the base's path: a base with a query
    (``https://rdap.example/?apikey=KEY``, RFC 3986 section 3.4) keeps it after them, rather than
    have them appended to the key, a server asked for its root and every value locked not-found."""
    parts = urlsplit(base)
    folder = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, folder + path, parts.query, ""))


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _shown(url: str) -> str:
    """A hop's URL as the lock and messages name it: no credentials, query or fragment (a redirect's
    query may carry a token the server handed out), and no secret a server may echo in its path."""
    parts = urlsplit(public_url(url))
    return redact(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))


def _redirect_target(url: str, location: str) -> tuple[str, str | None]:
    """Where a Location header sends the client from ``url``, and why that is not followed (None: it is)."""
    unreadable = "", "to a URL that cannot be read; not followed"
    try:
        location = location.encode("latin-1").decode("utf-8")  # a header's bytes, as requests reads them
    except UnicodeEncodeError:
        pass  # not a header's bytes: taken as it is
    except UnicodeDecodeError:
        return unreadable  # RFC 3986 section 2: a URI is ASCII; UTF-8 is the most a server may mean
    location = location.strip()
    try:
        # RFC 7480 section 5.2 asks for a complete URL; RFC 9110 section 10.2.2 resolves a relative one
        # against the request's URL. One with a scheme is taken as it is (RFC 3986 section 5.2.2, strict):
        # urljoin would read "http:///path" as a path on the same host.
        target = location if urlsplit(location).scheme else urljoin(url, location)
        parts = urlsplit(target)
        parts.port  # noqa: B018  # raises for a port that is no number up to 65535
    except ValueError:
        return unreadable
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        return "", f"to a {_PRINTABLE.sub('?', parts.scheme[:20])}: URL; not followed: RDAP runs over HTTP(S) only (RFC 7480 section 3)"
    if not parts.hostname:
        return "", "to a URL without a host; not followed"
    if ":" not in parts.hostname and "" in parts.hostname.rstrip(".").split("."):
        return unreadable  # "a..b": RFC 3986 section 3.2.2 reg-name labels are not empty (RFC 1035 2.3.1)
    followed = urlunsplit((parts.scheme.lower(), parts.netloc.rpartition("@")[2], parts.path or "/", parts.query, ""))
    try:
        requests.Request("GET", followed).prepare()  # what requests would refuse when asked to go there
    except (requests.RequestException, ValueError, urllib3.exceptions.HTTPError):
        return unreadable
    if urlsplit(url).scheme.lower() == "https" and parts.scheme.lower() == "http":
        # RFC 7481 section 3.1: RDAP's answers are protected by HTTPS; a server's redirect does not get
        # to take that away for the rest of the lookup (the answer, and what the lock then says).
        return "", "from https to http; not followed: the answer would come without TLS (RFC 7481 section 3.1)"
    # Never credentials a server hands out (they would go out as HTTP Basic), never a fragment (not sent).
    return followed, None


_PRINTABLE: Final = re.compile(r"[^A-Za-z0-9+.-]")


def _is_internal(url: str) -> bool:
    """Whether ``url`` names a host that is not globally reachable: loopback, private, link-local
    (the 169.254.169.254 of cloud metadata services) or another special-purpose address (RFC 6890),
    or ``localhost`` (RFC 6761 section 6.3). A public RDAP server that redirects there would have
    tiops, run in CI beside such services, ask them on its behalf; a configured server that is
    itself internal (a mirror, a test server) may send it to its neighbours. A name is not resolved.
    """
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def _bounded_body(response: requests.Response, host: str, limit: int = MAX_ANSWER_BYTES, *,
                  deadline: float | None = None, timeout: float = 0.0) -> bytes:
    """The body of ``response``, read up to ``limit`` bytes and until ``deadline`` (time.monotonic);
    StoreError beyond either."""
    too_large = StoreError(f"RDAP {host}: the answer is larger than {limit} bytes")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    parts: list[bytes] = []
    size = 0
    raw = response.raw
    while True:
        if deadline is not None and time.monotonic() > deadline:
            # Not retried: a server dripping its answer would drip it again, for as long again.
            raise StoreError(f"RDAP {host}: the answer did not arrive within {DEADLINE_TIMEOUTS * timeout:g} s "
                             f"({DEADLINE_TIMEOUTS} times the timeout of {timeout:g} s); {size} bytes had come")
        try:
            # read1: what one read of the connection gives (one byte of a drip, not a 64 KiB chunk
            # waited for), so the deadline is looked at between the server's writes.
            part = raw.read1(1 << 16, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise TransientStoreError(f"RDAP {host}: the answer was cut short ({type(error).__name__})") from None
        if not part:
            return b"".join(parts)
        size += len(part)
        if size > limit:
            raise too_large
        parts.append(part)


def registered_domain(name: str) -> str:
    """The name a registry holds for a host name: its public suffix and one label more
    (www.cdn.example.co.uk -> example.co.uk), by the ICANN section of the Public Suffix List.

    An RDAP server answers for registered names only (RFC 9082 section 3.1.3 asks for a
    domain name, and a registry's is what was registered), so a deep host name is asked
    for once, as its registered domain, not once per label on the way up: registries pace
    their clients, and phishing host names run to many labels. The private section (a
    hosting service's suffixes such as github.io) is left out: attacker.github.io is
    registered as github.io. A public suffix named on its own is asked for as it is, and
    a top-level domain the list does not know counts as one label (woodgrove.internal).
    The list is the publicsuffixlist package's, a maintained copy released as the list changes.
    """
    return _public_suffixes().privatesuffix(name) or name


@functools.cache
def _public_suffixes() -> Any:
    from publicsuffixlist import PublicSuffixList  # about 50 ms to load: only a run that asks RDAP

    return PublicSuffixList(only_icann=True)


# --- RFC 9083 responses --------------------------------------------------------------------
# What a server sends is read, never trusted: a member of another JSON type than RFC 9083
# gives it (an array where an array is due, a string where a string is) is left out, so a
# broken or hostile answer gives fewer fields, never an error that stops the run.


def _array(document: dict[str, Any], member: str) -> list[Any]:
    """``document[member]`` when it is a JSON array (RFC 9083 events, entities, roles, status); else empty."""
    value = document.get(member)
    return value if isinstance(value, list) else []


# RFC 3339 section 5.6: time-secfrac is "." 1*DIGIT, of any length; datetime keeps six digits.
_SECOND_FRACTION: Final = re.compile(r"T\d\d:\d\d:\d\d[.,](\d+)")


def _timestamp(text: Any) -> str | None:
    """An RFC 9083 section 4.5 eventDate (RFC 3339) as the lock writes moments: the same instant in
    UTC, its fraction of a second kept exactly and written without trailing zeros (none when it is
    zero), so one instant is always one text, however the server wrote it (an offset, ".500").

    A registration at 00:00:00.5 is half a second after midnight: cut to the second, a derived
    ``whois.age_days`` could count one day more than there is (tiops.enrich.attach).
    """
    if not isinstance(text, str):
        return None
    written = text.strip().upper()  # RFC 3339 section 5.6: "T" and "Z" may be written in lower case
    try:
        moment = datetime.fromisoformat(written.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        offset = moment.utcoffset()
        utc = moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a date, or year 1 or 9999 moved past the calendar's end by its offset
        return None
    fraction = f"{utc.microsecond:06d}".rstrip("0")
    digits = _SECOND_FRACTION.search(written)
    if digits is not None and (offset is None or offset.microseconds == 0) and fraction == digits[1][:6].rstrip("0"):
        # An offset of whole seconds moves no digit of the fraction: the server's digits past the
        # sixth, which datetime drops, are the instant's too.
        fraction = digits[1].rstrip("0")
    return utc.replace(microsecond=0, tzinfo=None).isoformat() + (f".{fraction}" if fraction else "") + "Z"


def _events(document: dict[str, Any]) -> dict[str, str]:
    # RFC 9083 section 4.5: events carry eventAction and eventDate. The actions are the registered
    # values of section 10.2.3, in lower case; a server writing "Registration" means the same event.
    names = {"registration": "registered", "expiration": "expires", "last changed": "updated"}
    found: dict[str, str] = {}
    for event in _array(document, "events"):
        action = event.get("eventAction") if isinstance(event, dict) else None
        action = " ".join(action.lower().split()) if isinstance(action, str) else None
        if action in names and (moment := _timestamp(event.get("eventDate"))):
            found[names[action]] = moment
    return found


# RFC 9537 section 3.3 "Redaction by Replacement Value": a registry that may not publish a
# registrant's data puts a placeholder where the value goes; ICANN's Registration Data Policy
# writes "REDACTED FOR PRIVACY" (also "REDACTED", "Data Redacted"). It is no organisation: locked
# as one, a rule on whois.registrant_organization would judge every private registration alike.
_REDACTED: Final = re.compile(r"\bredacted\b", re.IGNORECASE)


def _preference(parameters: Any) -> int:
    """The PREF of a jCard property (RFC 6350 section 5.3): 1 is the most preferred, 100 the least;
    a property without one comes after every property with one."""
    pref = parameters.get("pref") if isinstance(parameters, dict) else None
    if isinstance(pref, list) and pref:  # RFC 7095 section 3.4: a multi-valued parameter is an array
        pref = pref[0]
    text = str(pref).strip() if isinstance(pref, (str, int)) and not isinstance(pref, bool) else ""
    return int(text) if text.isdigit() and 1 <= int(text) <= 100 else 101


def _text(value: Any) -> str | None:
    """A jCard property's text: a string, or the first component of a structured value (RFC 7095
    section 3.3.1.3; ORG is its organisation name and then its units, RFC 6350 section 6.6.4)."""
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, str) or not value.strip() or _REDACTED.search(value):
        return None  # RFC 9537 section 3.2: redaction by an empty value; 3.3: by a placeholder
    return value.strip()


def _label_country(label: str) -> str | None:
    """The country of a label-only address (RFC 6350 section 6.3.1 LABEL; RFC 7095 section
    3.3.1.3): its last line, as ARIN and the RIRs write the country name there. A label of one
    line, or whose last line holds a digit (a street, a post code), names no country: the label is
    free text, and locked as the country, "6 Cordelia St" would be matched by rules as one."""
    lines = [line.strip() for line in label.strip().splitlines() if line.strip()]
    if len(lines) < 2 or any(character.isdigit() for character in lines[-1]) or _REDACTED.search(lines[-1]):
        return None
    return lines[-1]


def _country(parameters: Any, value: Any) -> str | None:
    """The country of a jCard ``adr`` (RFC 7095 section 3.3.1.3): its ``cc`` parameter (RFC 8605
    section 3.1, an ISO 3166 code), else the address's country name component (the 7th, RFC 6350
    section 6.3.1), else a label's last line. A two-letter code is written in upper case, and a
    name ISO 3166-1 knows is written as its code (:func:`_iso_country`)."""
    code = parameters.get("cc") if isinstance(parameters, dict) else None
    country = _text(code) if isinstance(code, str) else None
    if country is None and isinstance(value, list) and len(value) >= 7:
        country = _text(value[6])
    if country is None and isinstance(parameters, dict) and isinstance(parameters.get("label"), str):
        country = _label_country(parameters["label"])
    if country is None:
        return None
    if len(country) == 2 and country.isalpha():
        return country.upper()
    return _iso_country(country) or country


def _iso_country(name: str) -> str | None:
    """The ISO 3166-1 alpha-2 code of a country ``name`` (its ISO short, official or common name, or
    its alpha-3 code, in any case: the maintained ISO 3166 tables of pycountry), or None.

    Registries write the country either way: RFC 8605's ``cc`` code, or the address's country name
    ("UNITED STATES", "Korea, Republic of"). Locked as written, a rule on
    ``whois.registrant_country = US`` missed every registrant whose registry wrote the name.
    A name ISO does not hold ("The Netherlands", "UK") stays as written.
    """
    import pycountry  # only a lookup that found a registrant's address needs the tables

    if name.isdigit():
        return None  # ISO's numeric codes: an address's country is no number
    try:
        country = pycountry.countries.lookup(name)
    except LookupError:
        return None
    code = getattr(country, "alpha_2", None)
    return code if isinstance(code, str) else None


def _vcard(entity: dict[str, Any]) -> dict[str, str]:
    """fn, org, kind, email and country of a jCard (RFC 7095), as RFC 9083 section 5.1 carries it.

    Property and parameter names are compared in lower case: RFC 7095 section 3.3.1.1 asks for
    them so, and a vCard's names are case-insensitive (RFC 6350 section 3.3), so a server writing
    "FN" or "EMAIL" means the same property. Of several, the one of the lowest PREF (RFC 6350
    section 5.3), then the first, is taken: an abuse team's mailbox before its help desk.
    """
    found: dict[str, tuple[int, str]] = {}
    card = entity.get("vcardArray")
    if not (isinstance(card, list) and len(card) == 2 and isinstance(card[1], list)):
        return {}
    for item in card[1]:
        if not (isinstance(item, list) and len(item) >= 4 and isinstance(item[0], str)):
            continue
        name, parameters, value = item[0].lower(), item[1], item[3]
        if isinstance(parameters, dict):
            parameters = {str(key).lower(): parameter for key, parameter in parameters.items()}
        text = _text(value) if name in ("fn", "org", "email", "kind") else _country(parameters, value) if name == "adr" else None
        key = "country" if name == "adr" else name
        if text is not None and (key not in found or _preference(parameters) < found[key][0]):
            found[key] = (_preference(parameters), text)
    return {key: text for key, (_, text) in found.items()}


def _roles(entity: dict[str, Any]) -> frozenset[str]:
    # RFC 9083 section 10.2.4: the registered roles are lower case; "Abuse" means the abuse role.
    return frozenset(" ".join(role.lower().split()) for role in _array(entity, "roles") if isinstance(role, str))


def _entities(document: dict[str, Any]) -> Iterator[tuple[frozenset[str], dict[str, str]]]:
    for entity in _array(document, "entities"):
        if isinstance(entity, dict):
            yield _roles(entity), _vcard(entity)
            yield from _entities(entity)  # an abuse contact sits inside the registrar entity


def _contacts(document: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for roles, card in _entities(document):
        if "registrar" in roles and (name := card.get("fn") or card.get("org")):
            found.setdefault("registrar", name)
        if "registrant" in roles:
            # A card's fn is the organisation's name when the card is an organisation's (ARIN, the RIRs:
            # kind "org"); a registrant of kind "individual" (RFC 6350 section 6.1.4) is a person, whose
            # name is no organisation and personal data the bundle would carry to every consumer.
            person = card.get("kind", "").lower() == "individual"
            if organisation := card.get("org") or (None if person else card.get("fn")):
                found.setdefault("registrant_organization", organisation)
            if country := card.get("country"):
                found.setdefault("registrant_country", country)
        if "abuse" in roles and (email := card.get("email")):
            found.setdefault("abuse_email", email)
    return found


# RFC 8056 section 2 maps EPP statuses to RDAP's (RFC 9083 section 10.2.2): "clientHold" is
# "client hold"; these two are named otherwise.
_EPP_STATUS: Final = {"ok": "active", "linked": "associated"}
_CAMEL: Final = re.compile(r"(?<=[a-z])(?=[A-Z])")


def _status_value(text: str) -> str:
    """A status as RFC 9083 section 10.2.2 registers it: lower case words. Servers write
    "Active" or the EPP form "clientTransferProhibited" (RFC 5731 section 2.3) too; kept as
    written, a rule on whois.rdap_status would miss them and one status would be two."""
    words = " ".join(_CAMEL.sub(" ", text).split()).lower()
    return _EPP_STATUS.get(words, words)


def _status(document: dict[str, Any]) -> dict[str, list[str]]:
    status = {_status_value(s) for s in _array(document, "status") if isinstance(s, str) and s.strip()}
    return {"rdap_status": sorted(status)} if status else {}


def _ldh_name(document: dict[str, Any]) -> dict[str, str]:
    # What the answer is about (RFC 9083 section 5.3), kept so the lock alone shows it is about the
    # name asked (tiops.enrich.subject): lower case, without the root's final dot.
    name = document.get("ldhName")
    name = name.rstrip(".").lower() if isinstance(name, str) else ""
    return {"ldh_name": name} if name else {}


def registrar_link(document: dict[str, Any], name: str) -> str | None:
    """The registrar's RDAP URL for the domain ``name`` that a registry's answer links to, or None.

    RFC 9083 section 4.2 links; a thin registry writes the registrar's answer as ``rel: related``
    with ``type: application/rdap+json``. Only an http(s) URL of that domain is taken (its path
    ends in ``domain/NAME``, in any case): another related link (a web page, the registry's own
    answer, another domain) says nothing of this registrant.
    """
    wanted = name.rstrip(".").lower()
    for link in _array(document, "links"):
        if not isinstance(link, dict):
            continue
        relation, media, href = link.get("rel"), link.get("type"), link.get("href")
        if not (isinstance(relation, str) and relation.strip().lower() == "related" and isinstance(media, str)
                and media.partition(";")[0].strip().lower() == "application/rdap+json" and isinstance(href, str)):
            continue
        try:
            parts = urlsplit(href.strip())
        except ValueError:
            continue
        segments = unquote(parts.path).rstrip("/").split("/")
        if (parts.scheme.lower() in ("http", "https") and parts.hostname and len(segments) >= 2
                and segments[-2].lower() == "domain" and segments[-1].rstrip(".").lower() == wanted):
            return href.strip()
    return None


def parse_domain(document: dict[str, Any]) -> dict[str, Any]:
    """The lock fields of an RDAP domain object (RFC 9083 section 5.3)."""
    return {**_events(document), **_contacts(document), **_status(document), **_ldh_name(document)}


def parse_network(document: dict[str, Any]) -> dict[str, Any]:
    """The lock fields of an RDAP IP network object (RFC 9083 section 5.4)."""
    found: dict[str, Any] = {**_events(document), **_contacts(document), **_status(document)}
    for source, target in (("name", "network_name"), ("handle", "handle"), ("country", "country_code")):
        value = document.get(source)
        if isinstance(value, str) and value:
            found[target] = value
    start, end = document.get("startAddress"), document.get("endAddress")
    if isinstance(start, str) and isinstance(end, str):
        # RFC 5952 section 4 text, as every address in the lock: ARIN writes
        # "2001:4860:0000:0000:0000:0000:0000:0000", upper case too; one range is one text. One that
        # cannot be read is kept as written: the check of what the answer is about names it.
        with contextlib.suppress(ValueError):
            start, end = str(ipaddress.ip_address(start.strip())), str(ipaddress.ip_address(end.strip()))
        found["network"] = f"{start} - {end}"
    return found

"""A real RDAP server on 127.0.0.1 for the enrichment tests.

It serves RFC 9083 JSON for the domains and IP networks in tests/data/enrich/rdap/
(``domain-NAME.json``, ``ip-START-PREFIX.json``), 404 for anything else, the RFC 9224
bootstrap files (dns.json, ipv4.json, ipv6.json) pointing at itself, and, when told,
429 with Retry-After to the next N requests, or a redirect (301/302/303/307/308 with a
Location, RFC 7480 section 5.2) for a path: to another of these servers, back to itself,
or in a loop. Every request is counted (its path with its query), with the Authorization header
it carried; a query does not change the answer.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from quiet_http import QuietHTTPServer

DATA = Path(__file__).resolve().parent / "data" / "enrich" / "rdap"


@dataclass
class RdapServer:
    httpd: ThreadingHTTPServer
    thread: threading.Thread
    domains: dict[str, dict[str, Any]]
    networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, dict[str, Any]]]
    requests: list[tuple[str, int]] = field(default_factory=list)
    authorizations: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization header)
    redirects: dict[str, tuple[int, str]] = field(default_factory=dict)  # RDAP path -> (status, Location)
    limited: int = 0  # the next N RDAP requests get 429
    retry_after: str = "1"
    delay: float = 0.0  # seconds to wait before each RDAP answer
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def rate_limit(self, count: int, retry_after: str = "1") -> None:
        with self.lock:
            self.limited, self.retry_after = count, retry_after

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Answer ``path`` (``/rdap/domain/NAME``) with ``status`` and ``Location: location`` from now on."""
        with self.lock:
            self.redirects[path] = (status, location)

    def rdap_requests(self) -> list[tuple[str, int]]:
        with self.lock:
            return [r for r in self.requests if r[0].startswith("/rdap/")]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _load() -> tuple[dict[str, dict[str, Any]], list[tuple[Any, dict[str, Any]]]]:
    domains, networks = {}, []
    for path in sorted(DATA.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        kind, _, rest = path.stem.partition("-")
        if kind == "domain":
            domains[rest.lower()] = document
        else:
            start, _, prefix = rest.rpartition("-")
            networks.append((ipaddress.ip_network(f"{start}/{prefix}"), document))
    return domains, networks


def start_rdap_server(extra_domains: dict[str, dict[str, Any]] | None = None) -> RdapServer:
    domains, networks = _load()
    domains.update(extra_domains or {})
    server: RdapServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/rdap+json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = unquote(self.path)
            status, body, headers = self._answer(path)
            with server.lock:
                server.requests.append((path, status))
                server.authorizations.append((path, self.headers.get("Authorization")))
            self._send(status, body, headers)

        def _answer(self, path: str) -> tuple[int, Any, dict[str, str]]:
            base = [server.url + "rdap/"]
            # Routed by the path alone: a base URL's query (an API key) follows the lookup's segments.
            route = path.partition("?")[0]
            if route == "/dns.json":
                return 200, {"version": "1.0", "services": [[["net", "com", "test"], ["ftp://ignored.example/", *base]]]}, {}
            if route == "/ipv4.json":
                return 200, {"version": "1.0", "services": [[["0.0.0.0/0"], base]]}, {}
            if route == "/ipv6.json":
                return 200, {"version": "1.0", "services": [[["::/0"], base]]}, {}
            if not path.startswith("/rdap/"):
                return 404, {"errorCode": 404, "title": "Not Found"}, {}
            if server.delay:
                time.sleep(server.delay)
            with server.lock:
                if server.limited > 0:
                    server.limited -= 1
                    return 429, {"errorCode": 429, "title": "Too Many Requests"}, {"Retry-After": server.retry_after}
                if path in server.redirects:
                    status, location = server.redirects[path]
                    return status, None, {"Location": location}
            kind, _, name = route[len("/rdap/"):].partition("/")
            if kind == "domain" and name.lower() in domains:
                return 200, domains[name.lower()], {}
            if kind == "ip":
                try:
                    wanted = ipaddress.ip_network(name, strict=False)
                except ValueError:
                    return 400, {"errorCode": 400, "title": "Bad Request"}, {}
                for network, document in networks:
                    if wanted.version == network.version and wanted.subnet_of(network):  # type: ignore[arg-type]
                        return 200, document, {}
            return 404, {"errorCode": 404, "title": "Not Found"}, {}

    httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    server = RdapServer(httpd, thread, domains, networks)
    thread.start()
    return server

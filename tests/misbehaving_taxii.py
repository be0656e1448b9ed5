"""A TAXII 2.1 server that misbehaves, on 127.0.0.1, for the tests of what tiops does then.

The OASIS reference server (tests/taxii_server.py) always answers well. This one answers
each objects or manifest request with whatever the test's ``page`` function returns, as
JSON with TAXII's media type: pages that go round in a circle, that never end, or that are
not envelopes at all. Every request is counted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from quiet_http import QuietHTTPServer

COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
# (endpoint: "objects" or "manifest", request number from 1, query) -> the JSON answer
Page = Callable[[str, int, dict[str, list[str]]], Any]


@dataclass
class Answer:
    """What a page function may return instead of the JSON alone: a status and a delay too."""

    body: Any
    status: int = 200
    delay: float = 0.0
    content_type: str = "application/taxii+json;version=2.1"  # a str body is then sent as it is
    raw: bytes | None = None  # sent as it is instead of the body: JSON no library writes (a name twice)


class Server:
    def __init__(self, page: Page) -> None:
        self.requests = 0
        served = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                served.requests += 1
                parts = urlsplit(self.path)
                endpoint = parts.path.rstrip("/").rsplit("/", 1)[-1]
                if endpoint in ("objects", "manifest"):
                    body = page(endpoint, served.requests, parse_qs(parts.query))
                else:  # the collection itself
                    body = {"id": COLLECTION, "title": "feed", "can_read": True, "can_write": True}
                status, content_type = 200, "application/taxii+json;version=2.1"
                data = None
                if isinstance(body, Answer):  # an HTTP status of the test's choosing, or a slow answer
                    if body.delay:
                        time.sleep(body.delay)
                    status, content_type = body.status, body.content_type
                    if "json" not in content_type and isinstance(body.body, str):
                        data = body.body.encode()  # a web page, say
                    data = body.raw if body.raw is not None else data
                    body = body.body
                data = json.dumps(body).encode() if data is None else data
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def api_root(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/api/"

    @property
    def collection_url(self) -> str:
        return f"{self.api_root}collections/{COLLECTION}/"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

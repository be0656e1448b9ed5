"""A local stand-in for Microsoft Sentinel that enforces the documented API contract.

The live service cannot be reached from tests, so this server (``http.server`` in
a thread on 127.0.0.1) implements exactly what Microsoft documents for the STIX
objects upload API and the threat intelligence query API, and no more:

* every request must carry ``Authorization: Bearer <token>`` (else 401);
* ``POST /workspaces/{id}/threat-intelligence-stix-objects:upload`` takes
  ``{"sourcesystem": str, "stixobjects": [...]}`` with 1 to 100 objects (else 400);
* at most ``limit`` requests per ``window`` seconds (100 a minute by default,
  sliding window); excess is answered 429 with Retry-After;
* a 200 answer lists per-record errors ``{"recordIndex", "errorMessages"}`` for
  objects whose id is in :meth:`SentinelContract.reject`; the others are stored;
* a re-upload with ``revoked: true`` revokes (the object's new current version);
* ``POST .../queryIndicators`` answers ``{"value": [...], "nextLink": ...}``,
  ``pageSize`` objects a page, the current version of each object.

Test hooks: ``reject({id: reason})``, ``fail_next(status, count, retry_after)``,
``uploads`` (every version accepted, in order), ``throttled`` (429s answered).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from quiet_http import QuietHTTPServer

WORKSPACE = "0f3c1d2e-5b6a-4c7d-8e9f-101112131415"
TOKEN = "contract-bearer-token-3f9a7c"
MAX_OBJECTS = 100


@dataclass
class SentinelContract:
    limit: int = 100
    window: float = 60.0
    token: str = TOKEN
    base_url: str = ""
    current: dict[str, dict[str, Any]] = field(default_factory=dict)
    uploads: list[tuple[str, str, bool]] = field(default_factory=list)
    throttled: int = 0
    requests: int = 0
    _rejects: dict[str, str] = field(default_factory=dict)
    # Ids that make the server refuse the whole upload (400) naming them per record, as the API
    # does for a request it cannot take at all.
    _refuse_whole: dict[str, str] = field(default_factory=dict)
    _faults: list[tuple[int, float | None]] = field(default_factory=list)
    _times: deque[float] = field(default_factory=deque)
    _mutex: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    # When set, the query endpoint answers with what it returns for the page's skip token
    # instead of the stored objects: a server that misbehaves.
    query_answer: Callable[[int], Any] | None = None

    @property
    def upload_url(self) -> str:
        return f"{self.base_url}/workspaces/{WORKSPACE}/threat-intelligence-stix-objects:upload?api-version=2024-02-01-preview"

    @property
    def query_url(self) -> str:
        return (f"{self.base_url}/workspaces/{WORKSPACE}/providers/Microsoft.SecurityInsights/threatIntelligence/main"
                f"/queryIndicators?api-version=2024-03-01")

    def reject(self, reasons: dict[str, str]) -> None:
        with self._mutex:
            self._rejects = dict(reasons)

    def refuse_whole(self, reasons: dict[str, str]) -> None:
        with self._mutex:
            self._refuse_whole = dict(reasons)

    def fail_next(self, status: int, count: int, retry_after: float | None = None) -> None:
        with self._mutex:
            self._faults = [(status, retry_after)] * count

    def versions(self) -> list[tuple[str, str]]:
        with self._mutex:
            return sorted({(i, v) for i, v, _ in self.uploads})

    def start(self) -> SentinelContract:
        contract = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, headers, body = contract.handle(self.path, self.headers.get("Authorization"),
                                                        self.rfile.read(length))
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, path: str, authorization: str | None, raw: bytes) -> tuple[int, dict[str, str], Any]:
        with self._mutex:
            self.requests += 1
            if authorization != f"Bearer {self.token}":
                return 401, {}, {"error": {"code": "Unauthorized", "message": "invalid bearer token"}}
            now = time.monotonic()
            while self._times and self._times[0] <= now - self.window:
                self._times.popleft()
            if len(self._times) >= self.limit:
                self.throttled += 1
                wait = self._times[0] + self.window - now
                return 429, {"Retry-After": f"{wait:.3f}"}, {"error": {"code": "TooManyRequests"}}
            self._times.append(now)
            if self._faults:
                status, retry_after = self._faults.pop(0)
                headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
                return status, headers, {"error": {"code": "Fault"}}
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return 400, {}, {"error": {"code": "BadRequest", "message": "body is not JSON"}}
            route = urlsplit(path)
            if route.path.endswith("/threat-intelligence-stix-objects:upload"):
                return self._upload(body)
            if route.path.endswith("/threatIntelligence/main/queryIndicators"):
                skip = int(parse_qs(route.query).get("$skipToken", ["0"])[0])
                return self._query(body, skip)
            return 404, {}, {"error": {"code": "NotFound"}}

    def _upload(self, body: Any) -> tuple[int, dict[str, str], Any]:
        if not isinstance(body, dict) or not isinstance(body.get("sourcesystem"), str) \
                or not isinstance(body.get("stixobjects"), list):
            return 400, {}, {"error": {"code": "BadRequest", "message": "sourcesystem and stixobjects are required"}}
        objects: list[dict[str, Any]] = body["stixobjects"]
        if not 1 <= len(objects) <= MAX_OBJECTS:
            return 400, {}, {"error": {"code": "BadRequest", "message": f"1 to {MAX_OBJECTS} objects per request"}}
        refused = [{"recordIndex": index, "errorMessages": [self._refuse_whole[str(obj.get("id"))]]}
                   for index, obj in enumerate(objects) if str(obj.get("id")) in self._refuse_whole]
        if refused:
            return 400, {}, {"errors": refused}
        errors = []
        for index, obj in enumerate(objects):
            reason = self._rejects.get(str(obj.get("id")))
            if reason is not None:
                errors.append({"recordIndex": index, "errorMessages": [reason]})
                continue
            stored = self.current.get(obj["id"])
            if stored is None or str(obj.get("modified", "")) >= str(stored.get("modified", "")):
                self.current[obj["id"]] = obj
            self.uploads.append((obj["id"], str(obj.get("modified", "")), bool(obj.get("revoked", False))))
        return 200, {}, {"errors": errors} if errors else {}

    def _query(self, body: Any, skip: int) -> tuple[int, dict[str, str], Any]:
        if self.query_answer is not None:
            return 200, {}, self.query_answer(skip)
        size = body.get("pageSize", 100) if isinstance(body, dict) else 100
        ordered = [self.current[i] for i in sorted(self.current)]
        page = ordered[skip:skip + size]
        answer: dict[str, Any] = {"value": page}
        if skip + size < len(ordered):
            answer["nextLink"] = f"{self.query_url}&$skipToken={skip + size}"
        return 200, {}, answer

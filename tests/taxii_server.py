"""A throw-away TAXII 2.1 server for tests: OASIS's reference server ``medallion``.

:func:`start_taxii_server` runs medallion (memory backend, a temporary data file,
HTTP basic auth) in a subprocess on 127.0.0.1 on a free port, waits until it
answers and returns a :class:`TaxiiServer`; ``stop()`` ends it. The subprocess
runs this file as a script, which adds two test hooks on top of medallion:

* ``server.reject({id: reason})``: objects with those ids are refused in a POST's
  status (``failures``) with that reason; the rest of the POST is stored.
* ``server.fail_next(status, count, retry_after)``: the next ``count`` requests
  are answered with ``status`` (e.g. 429 or 500) and an optional Retry-After.

Both are read from files in the server's work directory on each request, so a
test changes them while the server runs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

API_ROOT = "tiops"
COLLECTION_ID = "6c7e1a2e-4b0c-4d9f-9a57-1f0a6a1d5c01"
USERS = {"publisher": "correct horse battery staple"}
MEDIA_TYPE = "application/stix+json;version=2.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TaxiiServer:
    base_url: str
    workdir: Path
    process: subprocess.Popen[bytes]
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))

    @property
    def api_root_url(self) -> str:
        return f"{self.base_url}/{API_ROOT}/"

    @property
    def collection_url(self) -> str:
        return f"{self.api_root_url}collections/{COLLECTION_ID}/"

    @property
    def auth(self) -> tuple[str, str]:
        return next(iter(self.users.items()))

    def reject(self, reasons: dict[str, str]) -> None:
        (self.workdir / "reject.json").write_text(json.dumps(reasons), encoding="utf-8")

    def fail_next(self, status: int, count: int, retry_after: float | None = None) -> None:
        fault = {"status": status, "count": count, "retry_after": retry_after}
        (self.workdir / "fault.json").write_text(json.dumps(fault), encoding="utf-8")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def data_file(objects: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """medallion's memory-backend data: one API root with one read/write collection."""
    manifest = [
        {"id": o["id"], "date_added": "2025-01-01T00:00:00.000Z",
         "version": o.get("modified") or o.get("created") or "2025-01-01T00:00:00.000Z", "media_type": MEDIA_TYPE}
        for o in objects
    ]
    return {
        "/discovery": {"title": "tiops test server", "api_roots": []},
        API_ROOT: {
            "information": {"title": "tiops test root", "versions": [MEDIA_TYPE], "max_content_length": 104857600},
            "status": [],
            "collections": [{
                "id": COLLECTION_ID, "title": "published intel", "can_read": True, "can_write": True,
                "media_types": [MEDIA_TYPE], "objects": list(objects), "manifest": manifest,
            }],
        },
    }


def start_taxii_server(
    workdir: Path, objects: Sequence[dict[str, Any]] = (), *, users: dict[str, str] | None = None,
    max_page_size: int = 1000,
) -> TaxiiServer:
    """Start medallion on 127.0.0.1 with ``objects`` in its collection and wait until it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    users = dict(users or USERS)
    port = _free_port()
    data_path = workdir / "data.json"
    data = data_file(objects)
    data["/discovery"]["api_roots"] = [f"http://127.0.0.1:{port}/{API_ROOT}/"]
    data["/discovery"]["default"] = f"http://127.0.0.1:{port}/{API_ROOT}/"
    data_path.write_text(json.dumps(data), encoding="utf-8")
    config = {
        "backend": {"module": "__main__", "module_class": "HookedMemoryBackend", "filename": str(data_path),
                    "workdir": str(workdir)},
        "users": users,
        "taxii": {"max_page_size": max_page_size},
    }
    (workdir / "config.json").write_text(json.dumps(config), encoding="utf-8")
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, __file__, str(workdir / "config.json"), str(port)], stdout=log, stderr=subprocess.STDOUT,
    )
    server = TaxiiServer(f"http://127.0.0.1:{port}", workdir, process, users)
    deadline = time.monotonic() + 30
    while True:
        try:
            answer = requests.get(f"{server.base_url}/taxii2/", auth=server.auth, timeout=2,
                                  headers={"Accept": "application/taxii+json;version=2.1"})
            if answer.status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"medallion did not start: {(workdir / 'server.log').read_text(errors='replace')}")
        time.sleep(0.1)


def _serve(config_path: str, port: int) -> None:  # pragma: no cover - runs in the server subprocess
    import logging

    from flask import Response
    from medallion import application_instance, register_blueprints, set_config
    from medallion.backends.memory_backend import MemoryBackend

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    configuration = json.loads(Path(config_path).read_text(encoding="utf-8"))
    workdir = Path(configuration["backend"]["workdir"])

    def read(name: str) -> Any:
        path = workdir / name
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    class HookedMemoryBackend(MemoryBackend):  # type: ignore[misc]
        def add_objects(self, api_root: str, collection_id: str, objs: dict[str, Any], request_time: Any) -> Any:
            reasons: dict[str, str] = read("reject.json") or {}
            refused = [o for o in objs["objects"] if o.get("id") in reasons]
            objs = {**objs, "objects": [o for o in objs["objects"] if o.get("id") not in reasons]}
            status = super().add_objects(api_root, collection_id, objs, request_time)
            for obj in refused:
                status["failures"] = [*status.get("failures", []), {
                    "id": obj["id"], "version": obj.get("modified", ""), "message": reasons[obj["id"]]}]
                status["failure_count"] = status.get("failure_count", 0) + 1
                status["total_count"] = status.get("total_count", 0) + 1
            return status

    sys.modules["__main__"].HookedMemoryBackend = HookedMemoryBackend  # type: ignore[attr-defined]

    @application_instance.before_request
    def injected_fault() -> Response | None:
        fault = read("fault.json")
        if not fault or fault["count"] <= 0:
            return None
        fault["count"] -= 1
        (workdir / "fault.json").write_text(json.dumps(fault), encoding="utf-8")
        headers = {} if fault.get("retry_after") is None else {"Retry-After": str(fault["retry_after"])}
        return Response("injected fault", status=fault["status"], headers=headers)

    set_config(application_instance, "users", configuration)
    set_config(application_instance, "taxii", configuration)
    set_config(application_instance, "backend", configuration)
    register_blueprints(application_instance)
    application_instance.run(host="127.0.0.1", port=port, threaded=False)


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))

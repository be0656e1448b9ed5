"""An HTTP server for tests that keeps quiet when a client hangs up.

tiops gives up on a slow or hostile answer by closing the connection, which the tests make
happen on purpose. The server's request thread then meets a BrokenPipeError, and the standard
library prints its traceback to sys.stderr: from a thread that can outlive its test, into the
output another test's command is capturing at that moment (click's CliRunner swaps sys.stderr).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A :class:`QuietHTTPServer` of ``handler`` on 127.0.0.1, in a thread, for the block: its base URL."""
    server = QuietHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()

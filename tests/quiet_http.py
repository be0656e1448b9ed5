"""An HTTP server for tests that keeps quiet when a client hangs up.

tiops gives up on a slow or hostile answer by closing the connection, which the tests make
happen on purpose. The server's request thread then meets a BrokenPipeError, and the standard
library prints its traceback to sys.stderr: from a thread that can outlive its test, into the
output another test's command is capturing at that moment (click's CliRunner swaps sys.stderr).
"""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class QuietHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

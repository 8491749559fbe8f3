"""
HTTP plumbing: a ``ThreadingHTTPServer`` (a daemon accept thread, one thread per connection) whose handler reads
one request, asks the application for a :class:`~.wire.Response`, and writes it or drops the connection.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_ringout.testing.emulator.wire import Action, Response, api_error

if TYPE_CHECKING:
    from email.message import Message

MAX_BODY = 1 << 20


class App(Protocol):
    """What the server serves: one answer per request, and whether to print errors."""

    verbose: bool

    def handle(self, method: str, raw_path: str, headers: Message, body: bytes) -> Response:
        """Answer one request."""
        ...


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer tuned for tests: reusable port, big backlog, daemon threads, quiet errors."""

    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], app: App) -> None:
        """Bind at once so that the port is known (and taken) when the emulator's start() returns."""
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects and shutdown races are normal here: print nothing unless verbose."""
        if self.app.verbose:
            super().handle_error(request, client_address)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        """Remember open client connections (close() shuts them down)."""
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def serve_in_thread(self) -> threading.Thread:
        """Serve in a started daemon thread."""
        thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"ringcentral-emulator-{self.server_address[1]}",
            daemon=True,
        )
        thread.start()
        return thread

    def close(self) -> None:
        """Stop serving, free the port and shut down open keep-alive connections."""
        self.shutdown()
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Server6(Server):
    """The same server on IPv6."""

    address_family = socket.AF_INET6


def bind(host: str, port: int, app: App) -> Server:
    """A server bound to ``host``:``port`` (0 picks a free port), IPv6 when ``host`` is an IPv6 address."""
    server_class = _Server6 if ":" in host else Server
    return server_class((host, port), app)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, lets the application answer it, and writes (or drops) the answer. Keep-alive capable."""

    protocol_version = "HTTP/1.1"
    server_version = "RingCentralEmulator/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120
    server: Server

    def setup(self) -> None:
        """Track the connection so that stop() can close it."""
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        """Untrack the connection."""
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def version_string(self) -> str:
        """The Server header."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log line unless the emulator is verbose."""
        if self.server.app.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        """Dispatch."""
        self._serve()

    def do_POST(self) -> None:
        """Dispatch."""
        self._serve()

    def do_DELETE(self) -> None:
        """Dispatch."""
        self._serve()

    def do_PUT(self) -> None:
        """Dispatch (answered 404: no such operation)."""
        self._serve()

    def do_PATCH(self) -> None:
        """Dispatch (answered 404: no such operation)."""
        self._serve()

    def _read_chunked(self) -> bytes | None:
        """A chunked request body; None when it is malformed or too large."""
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _read_body(self) -> bytes | None:
        """The request body (Content-Length or chunked); None when it cannot be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _answer(self) -> Response:
        """The application's answer, or a 400/500 that says why there is none."""
        body = self._read_body()
        if body is None:
            self.close_connection = True
            return api_error(400, "CMN-101", "Request body cannot be read")
        try:
            return self.server.app.handle(self.command, self.path, self.headers, body)
        except Exception as exc:  # an emulator bug: answer it visibly instead of dropping the connection
            if self.server.app.verbose:
                traceback.print_exc()
            return api_error(500, "EMU-500", f"emulator error: {type(exc).__name__}: {exc}")

    def _close_unanswered(self, action: Action) -> None:
        """Close the connection without an answer: abortively (RST) for a reset, where the OS allows it."""
        self.close_connection = True
        try:
            if action is Action.RESET:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _serve(self) -> None:
        """Answer one request."""
        response = self._answer()
        if response.action is not Action.SEND:
            self._close_unanswered(response.action)
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 204:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body and response.status != 204:
            self.wfile.write(response.body)

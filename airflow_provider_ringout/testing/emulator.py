"""
A local RingCentral emulator: a real HTTP server on loopback that speaks the RingOut and OAuth endpoints.

It exists so that the hook, operator, sensor and trigger can be tested end to end, over real sockets, against
the behaviour RingCentral documents: the JWT grant with HTTP Basic client auth, the five-session cap, token
expiry and revocation, RingOut status timelines, best-effort DELETE, rate-limit groups with penalties that
restart, and injected faults (429, 5xx, dropped connections, slow and malformed answers).

The server (``ThreadingHTTPServer``: a daemon accept thread, one thread per connection) shares one lock; only the
standard library is used. A control plane under ``/_emulator/`` (no auth, not recorded) lets a test in another
process drive an emulator started by the CLI:

- ``GET health``, ``GET requests``, ``GET tokens``, ``GET sessions``
- ``POST script`` ``{"to_number": "+1..."|null, "outcome": "busy", "after": 1, "talk": 30, "linger": 5}`` (or
  ``"from_number"`` instead of ``"to_number"``: how the person on the first leg answers)
- ``POST faults`` ``{"fault": "503", "method": "POST", "path": "ring-out-create", "times": 1, ...params}``
- ``POST status`` ``{"id": "...", "callStatus": ..., "callerStatus": ..., "calleeStatus": ...}``
- ``POST reset``, ``POST restart``, ``POST revoke-tokens``, ``POST reject-jwt`` ``{"rejected": true}``
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import math
import re
import secrets
import socket
import struct
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field, replace
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_ringout import JWT_FIELD

if TYPE_CHECKING:
    from collections.abc import Mapping
    from email.message import Message

__all__ = [
    "TEST_ACCOUNT_ID",
    "TEST_CLIENT_ID",
    "TEST_CLIENT_SECRET",
    "TEST_EXTENSION_ID",
    "TEST_JWT",
    "CallScript",
    "Outcome",
    "RecordedRequest",
    "RingCentralEmulator",
    "SessionInfo",
]

TEST_CLIENT_ID = "emulator-client-id"
TEST_CLIENT_SECRET = "emulator-client-secret-7d1f0c9b5a3e"
TEST_ACCOUNT_ID = "37439510"
TEST_EXTENSION_ID = "256440016"

JWT_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
UNKNOWN_CALL_STATUS = "SomethingNew2027"
REFRESH_TOKEN_TTL = 604800


def _b64url(data: bytes) -> str:
    """Base64url without padding, as JWT segments are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _make_test_jwt() -> str:
    """A syntactically valid (but unsigned) JWT credential; deterministic so it can be a constant."""
    header = {"alg": "RS256", "typ": "JWT"}
    payload = {
        "iss": "https://platform.ringcentral.com",
        "sub": TEST_EXTENSION_ID,
        "aud": "https://platform.ringcentral.com/restapi/oauth/token",
        "iat": 1700000000,
        "exp": 4102444800,  # 2100-01-01: never expires during a test run
        "jti": "emulator-test-jwt",
    }
    segments = [
        _b64url(json.dumps(header, separators=(",", ":")).encode()),
        _b64url(json.dumps(payload, separators=(",", ":")).encode()),
        _b64url(b"emulator-fake-signature-not-verifiable"),
    ]
    return ".".join(segments)


TEST_JWT = _make_test_jwt()


class Outcome(str, Enum):
    """How a scripted RingOut call unfolds (see :class:`CallScript`)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    NEVER_ANSWERS = "never_answers"
    CONNECTS_THEN_FINISHES = "connects_then_finishes"
    SESSION_DISAPPEARS = "session_disappears"
    FIRST_LEG_UP = "first_leg_up"
    UNKNOWN_STATUS = "unknown_status"
    VOICEMAIL = "voicemail"  # a machine answers: it connects like a person, but never presses 1 on a prompt


@dataclass(frozen=True)
class CallScript:
    """
    The timeline of one RingOut session, in seconds since the POST that created it.

    ``after`` is when the scripted event happens (answer, failure, disappearance), ``talk`` how long a connected
    call stays ``Success`` before ``Finished``, ``linger`` how long a finished or failed session stays readable
    before GET answers 404. ``outcome`` may be given as a string.
    """

    outcome: Outcome = Outcome.ANSWERED
    after: float = 1.0
    talk: float = 30.0
    linger: float = 5.0

    def __post_init__(self) -> None:
        """Accept ``outcome`` as a plain string and refuse negative durations."""
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        for name in ("after", "talk", "linger"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"CallScript.{name} must be a number >= 0, got {value!r}")


Status = tuple[str, str, str]
_IP = "InProgress"
_OK = "Success"
_FIN = "Finished"
_ALL_IN_PROGRESS: Status = (_IP, _IP, _IP)
_FAILURES: dict[Outcome, Status] = {
    Outcome.BUSY: ("CannotReach", _OK, "Busy"),
    Outcome.NO_ANSWER: ("NoAnswer", "NoAnswer", _IP),
    Outcome.REJECTED: ("CannotReach", "Rejected", _IP),
}
_CONNECTING = (Outcome.ANSWERED, Outcome.CONNECTS_THEN_FINISHES, Outcome.UNKNOWN_STATUS, Outcome.VOICEMAIL)


def scripted_status(script: CallScript, elapsed: float) -> Status | None:
    """(callStatus, callerStatus, calleeStatus) of a session ``elapsed`` seconds old, or None once it is gone."""
    after, outcome = script.after, script.outcome
    if outcome in _CONNECTING:
        if elapsed < after:
            if outcome is Outcome.UNKNOWN_STATUS:
                return (UNKNOWN_CALL_STATUS, _IP, _IP)
            return _ALL_IN_PROGRESS if elapsed < after / 2 else (_IP, _OK, _IP)
        if elapsed < after + script.talk:
            return (_OK, _OK, _OK)
        if elapsed < after + script.talk + script.linger:
            return (_FIN, _FIN, _FIN)
        return None
    if outcome is Outcome.NEVER_ANSWERS:
        return _ALL_IN_PROGRESS
    if outcome is Outcome.SESSION_DISAPPEARS:
        return _ALL_IN_PROGRESS if elapsed < after else None
    if outcome is Outcome.FIRST_LEG_UP:
        return _ALL_IN_PROGRESS if elapsed < after else (_IP, _OK, _IP)
    if elapsed < after:
        return _ALL_IN_PROGRESS
    if elapsed < after + script.linger:
        return _FAILURES[outcome]
    return None


@dataclass
class RecordedRequest:
    """
    One request the emulator answered (control-plane requests are not recorded).

    ``status`` is the HTTP status sent; 0 when an injected ``reset`` closed the connection instead. With
    ``drop_after_processing`` it is the status that was computed but never sent. ``time`` is ``time.monotonic()``
    at arrival.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any | None
    kind: str
    status: int
    time: float
    rate_group: str | None
    form: dict[str, str] | None = None
    fault: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, served by ``GET /_emulator/requests``."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "kind": self.kind,
            "status": self.status,
            "json": self.json,
            "form": self.form,
            "body": self.body.decode("utf-8", "replace"),
            "time": self.time,
            "rate_group": self.rate_group,
            "fault": self.fault,
        }


@dataclass(frozen=True)
class SessionInfo:
    """A snapshot of one RingOut session; ``status`` is None once it is gone (GET answers 404)."""

    id: str
    from_number: str | None
    to_number: str
    outcome: Outcome
    created: float
    status: dict[str, str] | None
    cancelled: bool
    play_prompt: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, served by ``GET /_emulator/sessions``."""
        return {
            "id": self.id,
            "from": self.from_number,
            "to": self.to_number,
            "outcome": self.outcome.value,
            "created": self.created,
            "status": self.status,
            "cancelled": self.cancelled,
            "play_prompt": self.play_prompt,
        }


@dataclass
class _RingOut:
    """Server-side state of one RingOut session."""

    id: str
    created: float
    script: CallScript
    from_number: str | None
    to_number: str
    play_prompt: bool
    override: Status | None = None
    cancelled: bool = False

    def status(self, now: float) -> Status | None:
        """Current statuses, or None when the session no longer exists."""
        if self.cancelled:
            return None
        if self.override is not None:
            return self.override
        return scripted_status(self.script, now - self.created)


@dataclass
class _OAuthSession:
    """One login: the current token pair; refreshing rotates it, revoking or eviction ends the session."""

    id: str
    client_id: str
    access_token: str
    refresh_token: str
    issued: float
    endpoint_id: str
    active: bool = True


@dataclass
class _Fault:
    """An injected fault waiting for the next ``remaining`` matching requests."""

    name: str
    method: str | None
    kinds: frozenset[str]
    remaining: int
    params: dict[str, Any]


@dataclass
class _Bucket:
    """Sliding-window rate state of one (client, group)."""

    times: deque[float] = field(default_factory=deque)
    penalty_until: float = 0.0


@dataclass
class _Response:
    """What the handler sends; ``action`` "reset"/"drop" closes the connection without sending it."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "send"


_REQUEST_KINDS = ("token", "revoke", "ring-out-create", "ring-out-get", "ring-out-delete", "other")
_KIND_METHOD = {
    "token": "POST",
    "revoke": "POST",
    "ring-out-create": "POST",
    "ring-out-get": "GET",
    "ring-out-delete": "DELETE",
}
_KIND_ALIASES: dict[str, frozenset[str]] = {
    "any": frozenset(_REQUEST_KINDS),
    "ring-out": frozenset({"ring-out-create"}),
    "ring-out-status": frozenset({"ring-out-get", "ring-out-delete"}),
    **{kind: frozenset({kind}) for kind in _REQUEST_KINDS},
}
_RATE_GROUPS = {
    "token": "Auth",
    "revoke": "Auth",
    "ring-out-create": "Heavy",
    "ring-out-delete": "Heavy",
    "ring-out-get": "Light",
}
FAULTS = frozenset(
    {
        "429",
        "503",
        "500",
        "reset",
        "drop_after_processing",
        "slow",
        "malformed_json",
        "html",
        "401",
        "deep_json",
        "huge_body",
        "redirect",
    }
)
_TOKEN_ERRORS = {
    "OAU-213": "Token not found",
    "OAU-128": "Access token expired",
    "OAU-129": "Access token corrupted",
    "OAU-149": "Invalid token",
}
_E164 = re.compile(r"\+[1-9]\d{1,14}")
_RING_OUT_PATH = re.compile(r"/restapi/v1\.0/account/(~|\d+)/extension/(~|\d+)/ring-out(?:/([^/]+))?/?")
_MAX_BODY = 1 << 20
_HTML_502 = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


def _json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Response:
    """A JSON response with the exact Content-Type RingCentral sends."""
    out = {"Content-Type": "application/json"}
    if headers:
        out.update(headers)
    return _Response(status, json.dumps(payload).encode(), out)


def _api_error(
    status: int, code: str, message: str, *, top_code: str | None = None, parameter: str | None = None
) -> _Response:
    """A RingCentral API error body: top-level ``errorCode``/``message`` plus the ``errors`` list."""
    error: dict[str, str] = {"errorCode": code, "message": message}
    if parameter is not None:
        error["parameterName"] = parameter
    return _json_response(status, {"errorCode": top_code or code, "message": message, "errors": [error]})


def _oauth_error(status: int, error: str, code: str, message: str, parameter: str | None = None) -> _Response:
    """A token-endpoint error body: the RFC 6749 ``error`` field plus RingCentral's ``errors`` list."""
    detail: dict[str, str] = {"errorCode": code, "message": message}
    if parameter is not None:
        detail["parameterName"] = parameter
    return _json_response(status, {"error": error, "error_description": message, "errors": [detail]})


def _token_invalid(code: str = "OAU-213") -> _Response:
    """401 for a missing, unknown, revoked, evicted or expired access token."""
    message = _TOKEN_ERRORS.get(code, "Token not found")
    return _api_error(401, code, message, top_code="TokenInvalid")


def _not_found(parameter: str = "ringoutId") -> _Response:
    """404 for a RingOut session that does not exist (any more)."""
    return _api_error(404, "CMN-102", f"Resource for parameter [{parameter}] is not found", parameter=parameter)


def _invalid_parameter(parameter: str) -> _Response:
    """400 CMN-101 naming the bad parameter, as RingCentral does for a malformed phone number."""
    return _api_error(400, "CMN-101", f"Parameter [{parameter}] value is invalid", parameter=parameter)


def _temporarily_unavailable(status: int) -> _Response:
    """5xx with CMN-201, what RingCentral answers while a service is down."""
    return _api_error(status, "CMN-201", "Service Temporary Unavailable")


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer tuned for tests: reusable port, big backlog, daemon threads, quiet errors."""

    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], emulator: RingCentralEmulator) -> None:
        """Bind at once so that the port is known (and taken) when start() returns."""
        self.emulator = emulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects and shutdown races are normal here: print nothing unless verbose."""
        if self.emulator.verbose:
            super().handle_error(request, client_address)


class _Server6(_Server):
    """The same server on IPv6."""

    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, lets the emulator answer it, and writes (or drops) the answer. Keep-alive capable."""

    protocol_version = "HTTP/1.1"
    server_version = "RingCentralEmulator/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120
    server: _Server

    def setup(self) -> None:
        """Track the connection so that stop() can close it."""
        super().setup()
        self.server.emulator._track(self.connection, add=True)

    def finish(self) -> None:
        """Untrack the connection."""
        try:
            super().finish()
        finally:
            self.server.emulator._track(self.connection, add=False)

    def version_string(self) -> str:
        """The Server header."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log line unless the emulator is verbose."""
        if self.server.emulator.verbose:
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

    def _read_body(self) -> bytes | None:
        """The request body (Content-Length or chunked); None when it cannot be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
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
                if total > _MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > _MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        """Answer one request."""
        body = self._read_body()
        if body is None:
            self.close_connection = True
            response = _api_error(400, "CMN-101", "Request body cannot be read")
        else:
            try:
                response = self.server.emulator._handle(self.command, self.path, self.headers, body)
            except Exception as exc:  # an emulator bug: answer it visibly instead of dropping the connection
                if self.server.emulator.verbose:
                    traceback.print_exc()
                response = _api_error(500, "EMU-500", f"emulator error: {type(exc).__name__}: {exc}")
        if response.action != "send":
            self.close_connection = True
            try:
                if response.action == "reset":
                    # Abortive close: the peer gets a RST rather than an orderly FIN where the OS allows it.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 204:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body and response.status != 204:
            self.wfile.write(response.body)


class RingCentralEmulator:
    """
    A RingCentral platform stand-in on ``http://host:port`` (see the module docstring).

    Use it as a context manager or call start()/stop(). Script calls with :meth:`script`, break things with
    :meth:`inject`, and inspect what clients sent through :attr:`requests` and :meth:`count`.
    """

    DEFAULT_RATE_LIMITS: ClassVar[dict[str, int]] = {"Light": 50, "Medium": 40, "Heavy": 10, "Auth": 5}

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        client_id: str = TEST_CLIENT_ID,
        client_secret: str = TEST_CLIENT_SECRET,
        jwt: str = TEST_JWT,
        token_ttl: float = 3600,
        scope: str = "ReadAccounts RingOut",
        default_script: CallScript = CallScript(),
        rate_limits: dict[str, int] | None = None,
        rate_window: float = 60.0,
        rate_penalty: float | None = None,
        max_sessions: int = 5,
        max_recorded: int = 100_000,
        verbose: bool = False,
    ) -> None:
        """
        Configure; nothing listens until start(). ``rate_limits=None`` turns rate limiting off.

        ``host`` is where to listen; empty means 127.0.0.1 (never every interface).
        """
        if rate_window <= 0:
            raise ValueError("rate_window must be > 0")
        if max_sessions < 1:
            raise ValueError("max_sessions must be >= 1")
        # "" would bind every interface (and expose the unauthenticated control plane): loopback instead.
        self.host = host or "127.0.0.1"
        self.client_id = client_id
        self.client_secret = client_secret
        self.jwt = jwt
        self.token_ttl = token_ttl
        self.scope = scope
        self.rate_limits = dict(rate_limits) if rate_limits is not None else None
        self.rate_window = rate_window
        self.rate_penalty = rate_window if rate_penalty is None else rate_penalty
        self.max_sessions = max_sessions
        self.verbose = verbose
        self._initial_script = default_script
        self._port = port
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._records: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self._counts: dict[tuple[str, str, int], int] = {}
        self._default_script = default_script
        self._scripts: dict[str, CallScript] = {}
        self._caller_scripts: dict[str, CallScript] = {}
        self._faults: list[_Fault] = []
        self._ringouts: dict[str, _RingOut] = {}
        self._oauth_by_token: dict[str, _OAuthSession] = {}
        self._oauth_sessions: dict[str, list[_OAuthSession]] = {}
        self._issued_tokens: list[str] = []
        self._jwt_rejected = False
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._evictions = 0

    # ----------------------------------------------------------------------------------------- lifecycle

    def start(self) -> RingCentralEmulator:
        """Bind and serve in a daemon thread; returns self. A stopped emulator restarts on the same port."""
        with self._lock:
            if self._server is not None:
                return self
            server_class = _Server6 if ":" in self.host else _Server
            server = server_class((self.host, self._port), self)
            self._port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"ringcentral-emulator-{self._port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, free the port and close open keep-alive connections. State is kept."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            connections = list(self._connections)
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> RingCentralEmulator:
        """Start."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop."""
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port (known once started, or when a fixed port was given)."""
        if self._port == 0:
            raise RuntimeError("the emulator picks its port when started: call start() first")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``: what goes into the connection's host field."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def connection_json(self, **overrides: Any) -> str:
        """JSON for ``AIRFLOW_CONN_RINGCENTRAL_DEFAULT``; overrides replace top-level keys, ``extra`` merges."""
        conn: dict[str, Any] = {
            "conn_type": "ringcentral",
            "host": self.url,
            "login": self.client_id,
            "password": self.client_secret,
            "extra": {JWT_FIELD: self.jwt},
        }
        extra = overrides.pop("extra", None)
        conn.update(overrides)
        if extra is not None:
            if isinstance(extra, str):
                extra = json.loads(extra)
            conn["extra"] = {**conn["extra"], **extra}
        return json.dumps(conn)

    # ------------------------------------------------------------------------------------ test controls

    def script(self, to_number: str | None, script: CallScript | Outcome | str, **kw: Any) -> None:
        """Script calls to ``to_number`` (None: the default for every other number). ``kw`` sets after/talk/linger."""
        if isinstance(script, CallScript):
            resolved = replace(script, **kw) if kw else script
        else:
            resolved = CallScript(outcome=Outcome(script), **kw)
        with self._lock:
            if to_number is None:
                self._default_script = resolved
            else:
                self._scripts[to_number] = resolved

    def script_caller(self, from_number: str, script: CallScript | Outcome | str, **kw: Any) -> None:
        """
        Script calls whose first leg (``from``) is ``from_number``: how that person answers, whatever ``to`` is.

        It wins over :meth:`script`. With ``playPrompt``, ANSWERED means the person answers and presses 1 (the
        call connects at ``after``); VOICEMAIL means a voicemail answers the first leg at ``after`` and never
        presses 1, so the call stays InProgress with that leg up (DELETE cannot stop it, as at RingCentral).
        """
        resolved = (
            replace(script, **kw) if isinstance(script, CallScript) else CallScript(outcome=Outcome(script), **kw)
        )
        with self._lock:
            self._caller_scripts[from_number] = resolved

    def inject(
        self, fault: str, *, method: str | None = None, path: str = "any", times: int = 1, **params: Any
    ) -> None:
        """
        Make the next ``times`` requests matching ``method`` and ``path`` fail with ``fault``.

        ``path`` is a request kind: "token", "revoke", "ring-out-create" (alias "ring-out"), "ring-out-get",
        "ring-out-delete", "ring-out-status" (get or delete) or "any". Params: ``retry_after`` for "429" (None
        omits the header), ``delay`` for "slow", ``error_code`` for "401".
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {sorted(FAULTS)}")
        if path not in _KIND_ALIASES:
            raise ValueError(f"unknown path kind {path!r}; choose from {sorted(_KIND_ALIASES)}")
        if times < 1:
            raise ValueError("times must be >= 1")
        kinds = _KIND_ALIASES[path]
        verb = method.upper() if method else None
        if verb and path != "any" and all(_KIND_METHOD.get(k, verb) != verb for k in kinds):
            raise ValueError(f"no {path!r} request uses method {verb}")
        with self._lock:
            self._faults.append(_Fault(fault, verb, kinds, times, dict(params)))

    def set_status(self, ringout_id: str, call: str, caller: str, callee: str) -> None:
        """Force a session's three statuses from now on (any strings, for robustness tests)."""
        with self._lock:
            session = self._ringouts.get(str(ringout_id))
            if session is None:
                raise KeyError(ringout_id)
            session.cancelled = False
            session.override = (call, caller, callee)

    def revoke_all_tokens(self) -> None:
        """Invalidate every issued token: API calls with them now get 401 OAU-213."""
        with self._lock:
            for sessions in self._oauth_sessions.values():
                for session in sessions:
                    session.active = False
            self._oauth_sessions.clear()

    def reject_jwt(self, rejected: bool = True) -> None:
        """While on, the JWT grant fails with invalid_grant (the credential was revoked); issued tokens stay valid."""
        with self._lock:
            self._jwt_rejected = rejected

    def restart(self) -> None:
        """Forget every RingOut session and token, as a restarted server would; scripts, faults and the record stay."""
        with self._lock:
            self._ringouts.clear()
            self._oauth_by_token.clear()
            self._oauth_sessions.clear()

    def reset(self) -> None:
        """Back to the freshly-constructed state: record, scripts, faults, sessions, tokens, rate state, JWT flag."""
        with self._lock:
            self.restart()
            self._records.clear()
            self._counts.clear()
            self._default_script = self._initial_script
            self._scripts.clear()
            self._caller_scripts.clear()
            self._faults.clear()
            self._issued_tokens.clear()
            self._jwt_rejected = False
            self._buckets.clear()
            self._evictions = 0

    # ------------------------------------------------------------------------------------- inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded requests, oldest first (the most recent ``max_recorded`` only)."""
        with self._lock:
            return list(self._records)

    def count(self, method: str | None = None, kind: str | None = None, status: int | None = None) -> int:
        """How many requests matched; ``kind`` is a RecordedRequest kind or an alias accepted by inject()."""
        kinds = _KIND_ALIASES.get(kind) if kind is not None else None
        if kinds is None and kind is not None:
            raise ValueError(f"unknown kind {kind!r}; choose from {sorted(_KIND_ALIASES)}")
        verb = method.upper() if method else None
        with self._lock:
            return sum(
                n
                for (m, k, s), n in self._counts.items()
                if (verb is None or m == verb) and (kinds is None or k in kinds) and (status is None or s == status)
            )

    @classmethod
    def with_real_limits(cls, **settings: Any) -> RingCentralEmulator:
        """
        An emulator throttling as RingCentral does: Auth 5, Heavy 10, Light 50 (Medium 40) a minute per credential,
        a 60 s penalty restarted by every request made during it, truthful ``X-Rate-Limit-*`` headers, and at
        most 5 OAuth sessions per credential (the oldest evicted). ``settings`` override the rest.
        """
        settings.setdefault("rate_limits", dict(cls.DEFAULT_RATE_LIMITS))
        settings.setdefault("rate_window", 60.0)
        settings.setdefault("rate_penalty", 60.0)
        settings.setdefault("max_sessions", 5)
        return cls(**settings)

    @property
    def evictions(self) -> int:
        """OAuth sessions ended because a newer login passed the session cap (since the last reset)."""
        with self._lock:
            return self._evictions

    @property
    def issued_tokens(self) -> list[str]:
        """Every access and refresh token issued (since the last reset), so tests can look for leaks in logs."""
        with self._lock:
            return list(self._issued_tokens)

    @property
    def sessions(self) -> dict[str, SessionInfo]:
        """Every RingOut session created since the last restart, by id, with its current status (None: gone)."""
        now = time.monotonic()
        with self._lock:
            return {rid: self._session_info(s, now) for rid, s in self._ringouts.items()}

    def session_status(self, ringout_id: str) -> dict[str, str] | None:
        """The status a GET would return now for ``ringout_id``, or None when it would answer 404."""
        with self._lock:
            session = self._ringouts.get(str(ringout_id))
            status = session.status(time.monotonic()) if session else None
        return _status_dict(status) if status else None

    # ---------------------------------------------------------------------------------------- internals

    @staticmethod
    def _session_info(session: _RingOut, now: float) -> SessionInfo:
        status = session.status(now)
        return SessionInfo(
            id=session.id,
            from_number=session.from_number,
            to_number=session.to_number,
            outcome=session.script.outcome,
            created=session.created,
            status=_status_dict(status) if status else None,
            cancelled=session.cancelled,
            play_prompt=session.play_prompt,
        )

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        """Remember open client connections (stop() closes them)."""
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _handle(self, method: str, raw_path: str, headers: Message, body: bytes) -> _Response:
        """Answer one request: control plane, or fault, rate limit, auth and the emulated endpoint."""
        arrived = time.monotonic()
        parts = urlsplit(raw_path)
        path = parts.path
        query = dict(parse_qsl(parts.query))
        if path.startswith("/_emulator/") or path == "/_emulator":
            if not self._local_host_header(headers.get("Host")):
                # A web page that rebinds its DNS name to 127.0.0.1 still sends its own name: refuse it.
                return _json_response(
                    403, {"error": "the control plane answers only Host: localhost or a loopback address"}
                )
            return self._admin(method, path, body)
        kind, match = self._route(method, path)
        group = _RATE_GROUPS.get(kind)
        content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
        record = RecordedRequest(
            method=method,
            path=path,
            query=query,
            headers=dict(headers.items()),
            body=body,
            json=_try_json(body) if content_type != "application/x-www-form-urlencoded" else None,
            kind=kind,
            status=0,
            time=arrived,
            rate_group=group,
            form=_try_form(body) if content_type == "application/x-www-form-urlencoded" else None,
        )
        fault = self._take_fault(method, kind)
        record.fault = fault.name if fault else None
        response: _Response | None = None
        if fault is not None:
            if fault.name == "slow":
                time.sleep(float(fault.params.get("delay", 3)))
            elif fault.name != "drop_after_processing":
                response = _fault_response(fault)
        if response is None:
            response = self._rate_limited_process(method, kind, match, headers, query, record)
            if fault is not None and fault.name == "drop_after_processing":
                response.action = "drop"
        record.status = response.status if response.action != "reset" else 0
        with self._lock:
            self._records.append(record)
            key = (method, kind, record.status)
            self._counts[key] = self._counts.get(key, 0) + 1
        return response

    def _local_host_header(self, host: str | None) -> bool:
        """Whether a request's ``Host`` names this emulator by a loopback name or address (or its bind address)."""
        if not host:
            return False
        try:
            name = urlsplit(f"//{host}").hostname or ""
        except ValueError:
            return False
        if name in ("localhost", self.host.lower()):
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    @staticmethod
    def _route(method: str, path: str) -> tuple[str, re.Match[str] | None]:
        """The request kind and, for RingOut paths, the path match."""
        if path == "/restapi/oauth/token":
            return ("token" if method == "POST" else "other"), None
        if path == "/restapi/oauth/revoke":
            return ("revoke" if method == "POST" else "other"), None
        match = _RING_OUT_PATH.fullmatch(path)
        if match is None:
            return "other", None
        if match.group(3) is None:
            return ("ring-out-create" if method == "POST" else "other"), match
        if method == "GET":
            return "ring-out-get", match
        if method == "DELETE":
            return "ring-out-delete", match
        return "other", match

    def _take_fault(self, method: str, kind: str) -> _Fault | None:
        """Consume one use of the first injected fault matching this request."""
        with self._lock:
            for fault in self._faults:
                if kind in fault.kinds and (fault.method is None or fault.method == method):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _rate_key(self, kind: str, headers: Message) -> str:
        """Whose budget a request spends: the Basic-auth client on the token endpoint, else the app's client."""
        if kind in ("token", "revoke"):
            client = _basic_credentials(headers.get("Authorization"))
            return client[0] if client else "anonymous"
        return self.client_id

    def _rate_limited_process(
        self,
        method: str,
        kind: str,
        match: re.Match[str] | None,
        headers: Message,
        query: dict[str, str],
        record: RecordedRequest,
    ) -> _Response:
        """Apply the rate limit of the request's group, then process it; rate headers go on every answer."""
        group = _RATE_GROUPS.get(kind)
        limit = self.rate_limits.get(group) if (self.rate_limits is not None and group) else None
        rate_headers: dict[str, str] = {}
        if group is not None and limit is not None:
            now = time.monotonic()
            window = self.rate_window
            with self._lock:
                bucket = self._buckets.setdefault((self._rate_key(kind, headers), group), _Bucket())
                limited = now < bucket.penalty_until
                if not limited:
                    while bucket.times and bucket.times[0] <= now - window:
                        bucket.times.popleft()
                    limited = len(bucket.times) >= limit
                if limited:
                    bucket.penalty_until = now + self.rate_penalty  # every request in the penalty restarts it
                    remaining = 0
                else:
                    bucket.times.append(now)
                    remaining = limit - len(bucket.times)
            rate_headers = {
                "X-Rate-Limit-Group": group,
                "X-Rate-Limit-Limit": str(limit),
                "X-Rate-Limit-Remaining": str(remaining),
                "X-Rate-Limit-Window": str(max(1, math.ceil(window))),
            }
            if limited:
                response = _api_error(429, "CMN-301", "Request rate exceeded")
                response.headers.update(rate_headers)
                response.headers["Retry-After"] = str(max(1, math.ceil(self.rate_penalty)))
                return response
        response = self._process(method, kind, match, headers, query, record)
        response.headers.update(rate_headers)
        response.headers.setdefault("RCRequestId", secrets.token_hex(12))
        return response

    def _process(
        self,
        method: str,
        kind: str,
        match: re.Match[str] | None,
        headers: Message,
        query: dict[str, str],
        record: RecordedRequest,
    ) -> _Response:
        """The endpoint itself."""
        if kind == "token":
            return self._token(headers, record.form or {})
        if kind == "revoke":
            return self._revoke(headers, {**query, **(record.form or {})})
        if kind == "other" or match is None:
            return _api_error(404, "CMN-102", "Resource for parameter [path] is not found", parameter="path")
        denied = self._authorize(headers)
        if denied is not None:
            return denied
        account, extension, ringout_id = match.group(1), match.group(2), match.group(3)
        if kind == "ring-out-create":
            return self._create(account, extension, record.json)
        if kind == "ring-out-get":
            return self._get(account, extension, ringout_id)
        return self._delete(ringout_id)

    # --------------------------------------------------------------------------------------- OAuth

    def _client_auth(self, headers: Message) -> _Response | None:
        """Check HTTP Basic client authentication; None when it is right."""
        client = _basic_credentials(headers.get("Authorization"))
        if client is None:
            return _oauth_error(401, "invalid_client", "OAU-123", "Client authentication is required")
        if not (
            secrets.compare_digest(client[0], self.client_id) and secrets.compare_digest(client[1], self.client_secret)
        ):
            return _oauth_error(401, "invalid_client", "OAU-123", "Invalid client credentials")
        return None

    def _token(self, headers: Message, form: dict[str, str]) -> _Response:
        """POST /restapi/oauth/token: the JWT grant (and refresh_token rotation)."""
        denied = self._client_auth(headers)
        if denied is not None:
            return denied
        grant_type = form.get("grant_type")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "OAU-101", "Parameter [grant_type] is missing", "grant_type")
        now = time.monotonic()
        if grant_type == JWT_GRANT_TYPE:
            assertion = form.get("assertion")
            if not assertion:
                return _oauth_error(400, "invalid_request", "OAU-101", "Parameter [assertion] is missing", "assertion")
            with self._lock:
                if self._jwt_rejected or not secrets.compare_digest(assertion, self.jwt):
                    return _oauth_error(400, "invalid_grant", "OAU-140", "Invalid resource owner credentials")
                session = self._open_session(now, form.get("endpoint_id") or secrets.token_urlsafe(16))
                return self._token_info(session)
        if grant_type == "refresh_token":
            refresh = form.get("refresh_token", "")
            with self._lock:
                current = self._oauth_by_token.get(refresh)
                if current is None or not current.active or current.refresh_token != refresh:
                    return _oauth_error(400, "invalid_grant", "OAU-211", "Token is revoked or not found")
                self._issue(current, now)
                return self._token_info(current)
        return _oauth_error(400, "unsupported_grant_type", "OAU-250", "Unsupported grant type")

    def _open_session(self, now: float, endpoint_id: str) -> _OAuthSession:
        """A new login; the oldest session of the client is evicted past ``max_sessions``. Call with the lock."""
        session = _OAuthSession(
            id=secrets.token_urlsafe(12),
            client_id=self.client_id,
            access_token="",
            refresh_token="",
            issued=now,
            endpoint_id=endpoint_id,
        )
        self._issue(session, now)
        sessions = self._oauth_sessions.setdefault(self.client_id, [])
        sessions.append(session)
        while len(sessions) > self.max_sessions:
            sessions.pop(0).active = False
            self._evictions += 1
        return session

    def _issue(self, session: _OAuthSession, now: float) -> None:
        """Give the session a fresh token pair; the previous pair stops working. Call with the lock."""
        session.access_token = secrets.token_urlsafe(32)
        session.refresh_token = secrets.token_urlsafe(32)
        session.issued = now
        self._oauth_by_token[session.access_token] = session
        self._oauth_by_token[session.refresh_token] = session
        self._issued_tokens += [session.access_token, session.refresh_token]

    def _token_info(self, session: _OAuthSession) -> _Response:
        """The TokenInfo body."""
        return _json_response(
            200,
            {
                "access_token": session.access_token,
                "token_type": "bearer",
                "expires_in": max(1, math.ceil(self.token_ttl)),
                "refresh_token": session.refresh_token,
                "refresh_token_expires_in": REFRESH_TOKEN_TTL,
                "scope": self.scope,
                "owner_id": TEST_EXTENSION_ID,
                "endpoint_id": session.endpoint_id,
                "session_id": session.id,
            },
            {"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _revoke(self, headers: Message, params: dict[str, str]) -> _Response:
        """POST /restapi/oauth/revoke: end the whole session of the token; unknown tokens are fine (RFC 7009)."""
        denied = self._client_auth(headers)
        if denied is not None:
            return denied
        token = params.get("token")
        if not token:
            return _oauth_error(400, "invalid_request", "OAU-101", "Parameter [token] is missing", "token")
        with self._lock:
            session = self._oauth_by_token.get(token)
            if session is not None and session.active:
                session.active = False
                sessions = self._oauth_sessions.get(session.client_id, [])
                if session in sessions:
                    sessions.remove(session)
        return _Response(200)

    def _authorize(self, headers: Message) -> _Response | None:
        """Check the bearer token and the RingOut permission; None when the call may proceed."""
        auth = headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _token_invalid()
        token = token.strip()
        with self._lock:
            session = self._oauth_by_token.get(token)
            if session is None or not session.active or session.access_token != token:
                return _token_invalid()
            if time.monotonic() - session.issued >= self.token_ttl:
                return _token_invalid("OAU-128")
        if "RingOut" not in self.scope.split():
            message = "In order to call this API endpoint, application needs to have [RingOut] permission"
            return _api_error(403, "CMN-401", message, top_code="InsufficientPermissions")
        return None

    # ------------------------------------------------------------------------------------- RingOut

    def _status_body(self, session: _RingOut, account: str, extension: str, status: Status) -> _Response:
        """The GetRingOutStatusResponse body; ``uri`` names the real account and extension ids, as RingCentral does."""
        account = TEST_ACCOUNT_ID if account == "~" else account
        extension = TEST_EXTENSION_ID if extension == "~" else extension
        uri = f"{self.url}/restapi/v1.0/account/{account}/extension/{extension}/ring-out/{session.id}"
        return _json_response(200, {"id": session.id, "uri": uri, "status": _status_dict(status)})

    def _create(self, account: str, extension: str, payload: Any) -> _Response:
        """POST .../ring-out: validate the MakeRingOutRequest and start a scripted session."""
        if not isinstance(payload, dict):
            return _invalid_parameter("body")
        sender = payload.get("from")
        if not isinstance(sender, dict):
            return _invalid_parameter("from.phoneNumber")
        from_number = sender.get("phoneNumber")
        forwarding_id = sender.get("forwardingNumberId")
        if from_number is None and isinstance(forwarding_id, str) and forwarding_id.strip():
            pass  # a forwarding number id may replace the phone number (spec)
        elif not isinstance(from_number, str) or not _E164.fullmatch(from_number):
            return _invalid_parameter("from.phoneNumber")
        recipient = payload.get("to")
        to_number = recipient.get("phoneNumber") if isinstance(recipient, dict) else None
        if not isinstance(to_number, str) or not _E164.fullmatch(to_number):
            return _invalid_parameter("to.phoneNumber")
        caller_id = payload.get("callerId")
        if caller_id is not None:
            shown = caller_id.get("phoneNumber") if isinstance(caller_id, dict) else caller_id
            if shown is not None and (not isinstance(shown, str) or not _E164.fullmatch(shown)):
                return _invalid_parameter("callerId.phoneNumber")
        play_prompt = payload.get("playPrompt", False)
        if not isinstance(play_prompt, bool):
            return _invalid_parameter("playPrompt")
        country = payload.get("country")
        if country is not None and not (isinstance(country, dict) and isinstance(country.get("id", ""), str)):
            return _invalid_parameter("country.id")
        now = time.monotonic()
        with self._lock:
            caller_script = self._caller_scripts.get(from_number) if isinstance(from_number, str) else None
            script = caller_script or self._scripts.get(to_number, self._default_script)
            if caller_script is not None:
                if play_prompt and script.outcome is Outcome.VOICEMAIL:
                    script = replace(script, outcome=Outcome.FIRST_LEG_UP)
            elif play_prompt and script.outcome in _CONNECTING and script.outcome is not Outcome.UNKNOWN_STATUS:
                # Unattended, nobody presses 1 on the first leg: the second leg is never dialled.
                script = replace(script, outcome=Outcome.FIRST_LEG_UP, after=script.after / 2)
            ringout_id = self._new_ringout_id()
            session = _RingOut(
                id=ringout_id,
                created=now,
                script=script,
                from_number=from_number if isinstance(from_number, str) else None,
                to_number=to_number,
                play_prompt=play_prompt,
            )
            self._ringouts[ringout_id] = session
            status = session.status(now) or _ALL_IN_PROGRESS
        return self._status_body(session, account, extension, status)

    def _new_ringout_id(self) -> str:
        """A fresh numeric-looking id (9 to 12 digits), unique in this emulator. Call with the lock."""
        while True:
            ringout_id = str(secrets.randbelow(10**12 - 10**8) + 10**8)
            if ringout_id not in self._ringouts:
                return ringout_id

    def _get(self, account: str, extension: str, ringout_id: str) -> _Response:
        """GET .../ring-out/{id}: the scripted status now, or 404 once the session is gone."""
        with self._lock:
            session = self._ringouts.get(ringout_id)
            status = session.status(time.monotonic()) if session else None
        if session is None or status is None:
            return _not_found()
        return self._status_body(session, account, extension, status)

    def _delete(self, ringout_id: str) -> _Response:
        """DELETE .../ring-out/{id}: stops the call only before the first leg is up and before it connected."""
        with self._lock:
            session = self._ringouts.get(ringout_id)
            status = session.status(time.monotonic()) if session else None
            if session is None or status is None:
                return _not_found()
            call, caller, _ = status
            if caller != _OK and call not in (_OK, _FIN):
                session.cancelled = True
        return _Response(204)

    # --------------------------------------------------------------------------------- control plane

    def _admin(self, method: str, path: str, body: bytes) -> _Response:
        """The ``/_emulator/`` control plane (not recorded, not rate limited, never faulted)."""
        route = path[len("/_emulator") :].strip("/")
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return _json_response(400, {"error": "body is not JSON"})
        if not isinstance(payload, dict):
            return _json_response(400, {"error": "body must be a JSON object"})
        try:
            result = self._admin_action(method, route, payload)
        except (KeyError, TypeError, ValueError) as exc:
            return _json_response(400, {"error": f"{type(exc).__name__}: {exc}"})
        if result is None:
            return _json_response(404, {"error": f"no control endpoint {method} {path}"})
        return _json_response(200, result)

    def _admin_action(self, method: str, route: str, payload: dict[str, Any]) -> Any:
        """Run one control-plane action; None for an unknown route."""
        if method == "GET":
            if route in ("", "health"):
                return {"ok": True, "url": self.url}
            if route == "requests":
                return [r.as_dict() for r in self.requests]
            if route == "tokens":
                return self.issued_tokens
            if route == "sessions":
                return {rid: info.as_dict() for rid, info in self.sessions.items()}
            return None
        if method != "POST":
            return None
        if route == "script":
            to_number = payload.pop("to_number", None)
            caller = payload.pop("from_number", None)
            outcome = payload.pop("outcome", Outcome.ANSWERED.value)
            if caller is not None:
                self.script_caller(str(caller), outcome, **payload)
            else:
                self.script(to_number, outcome, **payload)
        elif route == "faults":
            fault = payload.pop("fault")
            self.inject(str(fault), **payload)
        elif route == "reset":
            self.reset()
        elif route == "restart":
            self.restart()
        elif route == "revoke-tokens":
            self.revoke_all_tokens()
        elif route == "reject-jwt":
            self.reject_jwt(bool(payload.get("rejected", True)))
        elif route == "status":
            self.set_status(str(payload["id"]), payload["callStatus"], payload["callerStatus"], payload["calleeStatus"])
        else:
            return None
        return {"ok": True}


def _status_dict(status: Status) -> dict[str, str]:
    """The RingOutStatusInfo object."""
    return {"callStatus": status[0], "callerStatus": status[1], "calleeStatus": status[2]}


def _fault_response(fault: _Fault) -> _Response:
    """The answer of a fault that stops the request before it is processed."""
    name = fault.name
    if name == "429":
        response = _api_error(429, "CMN-301", "Request rate exceeded")
        retry_after = fault.params.get("retry_after", 1)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response
    if name in ("503", "500"):
        return _temporarily_unavailable(int(name))
    if name == "reset":
        return _Response(0, action="reset")
    if name == "malformed_json":
        return _Response(200, b'{"id": "12', {"Content-Type": "application/json"})
    if name == "html":
        return _Response(502, _HTML_502, {"Content-Type": "text/html"})
    if name == "401":
        return _token_invalid(str(fault.params.get("error_code", "OAU-213")))
    if name == "deep_json":
        return _Response(int(fault.params.get("status", 200)), b"[" * 100_000, {"Content-Type": "application/json"})
    if name == "huge_body":
        pad = "x" * int(fault.params.get("size", 2 << 20))
        body = json.dumps({"id": "1", "status": {"callStatus": "Success"}, "pad": pad}).encode()
        return _Response(200, body, {"Content-Type": "application/json"})
    if name == "redirect":
        return _Response(
            int(fault.params.get("status", 307)), b"", {"Location": str(fault.params.get("location", "/moved"))}
        )
    raise AssertionError(f"fault {name!r} has no canned response")  # pragma: no cover


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(client_id, client_secret) from an HTTP Basic Authorization header, or None."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _try_json(body: bytes) -> Any | None:
    """The parsed JSON body, or None."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _try_form(body: bytes) -> dict[str, str] | None:
    """The parsed form body, or None."""
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return None

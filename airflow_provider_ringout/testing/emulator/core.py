"""
:class:`RingCentralEmulator`: settings, lifecycle, the public test API, and the request pipeline that hands each
request to the collaborator owning its job (calls, call log, OAuth, throttling, faults, record, control plane).
Each endpoint of the hook's table (``hooks/endpoints.py``) has one handler here (:meth:`_endpoint_handlers`); its
route, rate group and permission come from the table.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_ringout import JWT_FIELD
from airflow_provider_ringout.hooks.endpoints import Endpoint
from airflow_provider_ringout.testing.emulator import httpd
from airflow_provider_ringout.testing.emulator.calllog import DEFAULT_CALL_LOG_DELAY, CallLog
from airflow_provider_ringout.testing.emulator.calls import CallDesk, CallScript, Outcome, SessionInfo
from airflow_provider_ringout.testing.emulator.control import ControlPlane, is_control_path
from airflow_provider_ringout.testing.emulator.faults import Fault, FaultPlan
from airflow_provider_ringout.testing.emulator.identity import TEST_CLIENT_ID, TEST_CLIENT_SECRET, TEST_JWT
from airflow_provider_ringout.testing.emulator.oauth import OAuthServer
from airflow_provider_ringout.testing.emulator.record import RecordedRequest, RequestLog
from airflow_provider_ringout.testing.emulator.routes import OTHER, route
from airflow_provider_ringout.testing.emulator.throttling import REAL_RATE_LIMITS, RateLimiter
from airflow_provider_ringout.testing.emulator.wire import Action, Response, not_found, try_form, try_json

if TYPE_CHECKING:
    from collections.abc import Callable
    from email.message import Message

    # An endpoint's handler: the request's headers, its record and its path parameters -> the answer.
    Handler = Callable[[Message, RecordedRequest, dict[str, str]], Response]

_FORM = "application/x-www-form-urlencoded"
_DEFAULT_SCRIPT = CallScript()


class RingCentralEmulator:
    """
    A RingCentral platform stand-in on ``http://host:port`` (see the package docstring).

    Use it as a context manager or call start()/stop(). Script calls with :meth:`script`, break things with
    :meth:`inject`, and inspect what clients sent through :attr:`requests` and :meth:`count`. The settings
    (``jwt``, ``token_ttl``, ``rate_limits``, ...) are plain attributes, read at every request. :attr:`call_log`
    holds the call-log records (``call_log.records()``; ``call_log.delay`` is ``call_log_delay``, changeable).
    """

    DEFAULT_RATE_LIMITS: ClassVar[dict[str, int]] = dict(REAL_RATE_LIMITS)

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        client_id: str = TEST_CLIENT_ID,
        client_secret: str = TEST_CLIENT_SECRET,
        jwt: str = TEST_JWT,
        token_ttl: float = 3600,
        scope: str = "ReadAccounts RingOut ReadCallLog",
        default_script: CallScript = _DEFAULT_SCRIPT,
        rate_limits: dict[str, int] | None = None,
        rate_window: float = 60.0,
        rate_penalty: float | None = None,
        max_sessions: int = 5,
        max_recorded: int = 100_000,
        verbose: bool = False,
        call_log_delay: float = DEFAULT_CALL_LOG_DELAY,
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
        self._port = port
        self._lock = threading.RLock()  # one lock for all state, shared with every collaborator
        self._server: httpd.Server | None = None
        self._thread: threading.Thread | None = None
        self._calls = CallDesk(self, self._lock, default_script)
        self.call_log = CallLog(self, self._lock, self._calls.on_create, call_log_delay)
        self._oauth = OAuthServer(self, self._lock)
        self._limiter = RateLimiter(self, self._lock)
        self._faults = FaultPlan(self._lock)
        self._log = RequestLog(self._lock, max_recorded)
        self._control = ControlPlane(self)
        self._handlers = self._endpoint_handlers()
        unhandled = [endpoint.value for endpoint in Endpoint if endpoint not in self._handlers]
        if unhandled:  # a row added to the endpoint table needs its handler here
            raise NotImplementedError(f"the emulator has no handler for endpoint(s) {', '.join(unhandled)}")

    def _endpoint_handlers(self) -> dict[Endpoint, Handler]:
        """The emulator's side of the endpoint table: one handler a row (bearer and permission checks come first)."""
        calls, oauth, call_log = self._calls, self._oauth, self.call_log
        return {
            Endpoint.TOKEN: lambda headers, record, _: oauth.token(headers, record.form or {}),
            Endpoint.REVOKE: lambda headers, record, _: oauth.revoke(headers, {**record.query, **(record.form or {})}),
            Endpoint.RING_OUT_CREATE: lambda _, record, p: calls.create(p["accountId"], p["extensionId"], record.json),
            Endpoint.RING_OUT_GET: lambda _, __, p: calls.get(p["accountId"], p["extensionId"], p["ringoutId"]),
            Endpoint.RING_OUT_DELETE: lambda _, __, p: calls.delete(p["ringoutId"]),
            Endpoint.CALL_LOG: lambda _, record, p: call_log.answer(Endpoint.CALL_LOG, p, record.query),
            Endpoint.CALL_LOG_SYNC: lambda _, record, p: call_log.answer(Endpoint.CALL_LOG_SYNC, p, record.query),
        }

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

    # ----------------------------------------------------------------------------------------- lifecycle

    def start(self) -> RingCentralEmulator:
        """Bind and serve in a daemon thread; returns self. A stopped emulator restarts on the same port."""
        with self._lock:
            if self._server is not None:
                return self
            server = httpd.bind(self.host, self._port, self)
            self._port = server.server_address[1]
            self._server = server
            self._thread = server.serve_in_thread()
        return self

    def stop(self) -> None:
        """Stop serving, free the port and close open keep-alive connections. State is kept."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.close()
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
        """Script calls to ``to_number`` (None: the default for every other number). ``kw`` sets CallScript fields."""
        self._calls.script(to_number, CallScript.of(script, **kw))

    def script_caller(self, from_number: str, script: CallScript | Outcome | str, **kw: Any) -> None:
        """
        Script calls whose first leg (``from``) is ``from_number``: how that person answers, whatever ``to`` is.

        It wins over :meth:`script`. With ``playPrompt``, ANSWERED means the person answers and presses 1 (the
        call connects at ``after``); VOICEMAIL means a voicemail answers the first leg at ``after`` and never
        presses 1, so the call stays InProgress with that leg up (DELETE cannot stop it, as at RingCentral).
        """
        self._calls.script_caller(from_number, CallScript.of(script, **kw))

    def inject(
        self, fault: str, *, method: str | None = None, path: str = "any", times: int = 1, **params: Any
    ) -> None:
        """
        Make the next ``times`` requests matching ``method`` and ``path`` fail with ``fault``.

        ``path`` is a request kind (an endpoint's name: "token", "revoke", "ring-out-create" (alias "ring-out"),
        "ring-out-get", "ring-out-delete", "call-log", "call-log-sync"), "ring-out-status" (get or delete) or "any".
        Params: ``retry_after`` for "429" (None
        omits the header), ``delay`` for "slow", ``error_code`` for "401".
        """
        self._faults.inject(fault, method=method, path=path, times=times, params=params)

    def set_status(self, ringout_id: str, call: str, caller: str, callee: str) -> None:
        """Force a session's three statuses from now on (any strings, for robustness tests)."""
        self._calls.set_status(ringout_id, call, caller, callee)

    def revoke_all_tokens(self) -> None:
        """Invalidate every issued token: API calls with them now get 401 OAU-213."""
        self._oauth.revoke_all_tokens()

    def reject_jwt(self, rejected: bool = True) -> None:
        """While on, the JWT grant fails with invalid_grant (the credential was revoked); issued tokens stay valid."""
        self._oauth.reject_jwt(rejected)

    def restart(self) -> None:
        """Forget every RingOut session and token, as a restarted server would; scripts, faults and the record stay."""
        with self._lock:
            self._calls.forget_sessions()
            self._oauth.forget_sessions()

    def reset(self) -> None:
        """Back to the freshly-constructed state: record, scripts, faults, sessions, tokens, rate state, JWT flag."""
        with self._lock:
            self._calls.reset()
            self.call_log.reset()
            self._oauth.reset()
            self._log.clear()
            self._faults.clear()
            self._limiter.reset()

    # ------------------------------------------------------------------------------------- inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded requests, oldest first (the most recent ``max_recorded`` only)."""
        return self._log.requests()

    def count(self, method: str | None = None, kind: str | None = None, status: int | None = None) -> int:
        """How many requests matched; ``kind`` is a RecordedRequest kind or an alias accepted by inject()."""
        return self._log.count(method, kind, status)

    @property
    def evictions(self) -> int:
        """OAuth sessions ended because a newer login passed the session cap (since the last reset)."""
        return self._oauth.evictions

    @property
    def issued_tokens(self) -> list[str]:
        """Every access and refresh token issued (since the last reset), so tests can look for leaks in logs."""
        return self._oauth.issued_tokens

    @property
    def sessions(self) -> dict[str, SessionInfo]:
        """Every RingOut session created since the last restart, by id, with its current status (None: gone)."""
        return self._calls.sessions()

    def session_status(self, ringout_id: str) -> dict[str, str] | None:
        """The status a GET would return now for ``ringout_id``, or None when it would answer 404."""
        return self._calls.session_status(ringout_id)

    # ------------------------------------------------------------------------------- request pipeline

    def handle(self, method: str, raw_path: str, headers: Message, body: bytes) -> Response:
        """Answer one request: control plane, or fault, rate limit, auth and the emulated endpoint; record it."""
        parts = urlsplit(raw_path)
        if is_control_path(parts.path):
            return self._control.answer(method, parts.path, headers.get("Host"), body)
        endpoint, params = route(method, parts.path)
        record = self._record_of(method, endpoint, parts.path, dict(parse_qsl(parts.query)), headers, body)
        fault = self._faults.take(method, record.kind)
        record.fault = fault.name if fault else None
        if fault is not None and fault.stops_request:
            response = fault.response()
        else:
            if fault is not None and fault.fault is Fault.SLOW:
                time.sleep(float(fault.params.get("delay", 3)))
            response = self._throttled(headers, record, endpoint, params)
            if fault is not None and fault.fault is Fault.DROP_AFTER_PROCESSING:
                response.action = Action.DROP
        record.status = response.status if response.action is not Action.RESET else 0
        self._log.add(record)
        return response

    @staticmethod
    def _record_of(
        method: str, endpoint: Endpoint | None, path: str, query: dict[str, str], headers: Message, body: bytes
    ) -> RecordedRequest:
        """The record of an arriving request (its status and fault are filled in once answered)."""
        is_form = headers.get("Content-Type", "").split(";")[0].strip().lower() == _FORM
        return RecordedRequest(
            method=method,
            path=path,
            query=query,
            headers=dict(headers.items()),
            body=body,
            json=None if is_form else try_json(body),
            kind=endpoint.value if endpoint is not None else OTHER,
            status=0,
            time=time.monotonic(),
            rate_group=endpoint.group if endpoint is not None else None,
            form=try_form(body) if is_form else None,
        )

    def _throttled(
        self, headers: Message, record: RecordedRequest, endpoint: Endpoint | None, params: dict[str, str]
    ) -> Response:
        """Apply the rate limit of the request's group, then process it; rate headers go on every answer."""
        verdict = self._limiter.admit(endpoint, headers)
        if verdict.refusal is not None:
            return verdict.refusal
        response = self._process(headers, record, endpoint, params)
        response.headers.update(verdict.headers)
        response.headers.setdefault("RCRequestId", secrets.token_hex(12))
        return response

    def _process(
        self, headers: Message, record: RecordedRequest, endpoint: Endpoint | None, params: dict[str, str]
    ) -> Response:
        """The endpoint itself, after the bearer token and the row's permission are checked (API calls only)."""
        if endpoint is None:
            return not_found("path")
        if not endpoint.is_login:
            denied = self._oauth.authorize(headers, endpoint.permission)
            if denied is not None:
                return denied
        return self._handlers[endpoint](headers, record, params)

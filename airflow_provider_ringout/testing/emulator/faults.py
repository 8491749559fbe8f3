"""Injected faults: the next N matching requests get a 429, a 5xx, a dropped connection, a slow or broken answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout.testing.emulator.routes import KIND_METHOD, kinds_of
from airflow_provider_ringout.testing.emulator.wire import (
    Action,
    Response,
    rate_exceeded,
    temporarily_unavailable,
    token_invalid,
)

if TYPE_CHECKING:
    import threading


class Fault(str, Enum):
    """The faults :meth:`FaultPlan.inject` accepts, by the names tests pass."""

    TOO_MANY = "429"
    UNAVAILABLE = "503"
    SERVER_ERROR = "500"
    RESET = "reset"
    DROP_AFTER_PROCESSING = "drop_after_processing"
    SLOW = "slow"
    MALFORMED_JSON = "malformed_json"
    HTML = "html"
    UNAUTHORIZED = "401"
    DEEP_JSON = "deep_json"
    HUGE_BODY = "huge_body"
    REDIRECT = "redirect"


FAULTS = frozenset(fault.value for fault in Fault)
_HTML_502 = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
_JSON = {"Content-Type": "application/json"}


@dataclass
class PendingFault:
    """An injected fault waiting for the next ``remaining`` matching requests."""

    fault: Fault
    method: str | None
    kinds: frozenset[str]
    remaining: int
    params: dict[str, Any]

    @property
    def name(self) -> str:
        """The fault's name, as recorded on the request it hit."""
        return self.fault.value

    @property
    def stops_request(self) -> bool:
        """Whether it answers instead of the endpoint ("slow" delays it, "drop_after_processing" loses its answer)."""
        return self.fault not in (Fault.SLOW, Fault.DROP_AFTER_PROCESSING)

    def response(self) -> Response:
        """The canned answer of a fault that stops the request before it is processed."""
        fault, params = self.fault, self.params
        if fault is Fault.TOO_MANY:
            response = rate_exceeded()
            retry_after = params.get("retry_after", 1)
            if retry_after is not None:
                response.headers["Retry-After"] = str(retry_after)
            return response
        if fault in (Fault.UNAVAILABLE, Fault.SERVER_ERROR):
            return temporarily_unavailable(int(fault.value))
        if fault is Fault.RESET:
            return Response(0, action=Action.RESET)
        if fault is Fault.MALFORMED_JSON:
            return Response(200, b'{"id": "12', dict(_JSON))
        if fault is Fault.HTML:
            return Response(502, _HTML_502, {"Content-Type": "text/html"})
        if fault is Fault.UNAUTHORIZED:
            return token_invalid(str(params.get("error_code", "OAU-213")))
        if fault is Fault.DEEP_JSON:
            return Response(int(params.get("status", 200)), b"[" * 100_000, dict(_JSON))
        if fault is Fault.HUGE_BODY:
            pad = "x" * int(params.get("size", 2 << 20))
            body = json.dumps({"id": "1", "status": {"callStatus": "Success"}, "pad": pad}).encode()
            return Response(200, body, dict(_JSON))
        if fault is Fault.REDIRECT:
            return Response(int(params.get("status", 307)), b"", {"Location": str(params.get("location", "/moved"))})
        raise AssertionError(f"fault {fault.value!r} has no canned response")  # pragma: no cover


class FaultPlan:
    """The faults waiting for requests, first injected first used; uses the emulator's lock."""

    def __init__(self, lock: threading.RLock) -> None:
        """No faults."""
        self._lock = lock
        self._pending: list[PendingFault] = []

    def inject(self, fault: str, *, method: str | None, path: str, times: int, params: dict[str, Any]) -> None:
        """Queue ``fault`` for the next ``times`` requests of kind ``path`` (and ``method``); ValueError if impossible."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {sorted(FAULTS)}")
        kinds = kinds_of(path)
        if times < 1:
            raise ValueError("times must be >= 1")
        verb = method.upper() if method else None
        if verb and path != "any" and all(KIND_METHOD.get(k, verb) != verb for k in kinds):
            raise ValueError(f"no {path!r} request uses method {verb}")
        with self._lock:
            self._pending.append(PendingFault(Fault(fault), verb, kinds, times, dict(params)))

    def take(self, method: str, kind: str) -> PendingFault | None:
        """Consume one use of the first injected fault matching this request."""
        with self._lock:
            for pending in self._pending:
                if kind in pending.kinds and (pending.method is None or pending.method == method):
                    pending.remaining -= 1
                    if pending.remaining <= 0:
                        self._pending.remove(pending)
                    return pending
        return None

    def clear(self) -> None:
        """Drop every waiting fault."""
        with self._lock:
            self._pending.clear()

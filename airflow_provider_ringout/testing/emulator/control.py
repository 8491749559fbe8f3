"""
The control plane under ``/_emulator/``: lets a test in another process drive an emulator started by the CLI.

It has no auth, so it answers only requests whose ``Host`` names a loopback address (a web page that rebinds its
DNS name to 127.0.0.1 still sends its own name) and the emulator binds loopback unless told otherwise. Its
requests are not recorded, rate limited or faulted.
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from airflow_provider_ringout.testing.emulator.calls import Outcome
from airflow_provider_ringout.testing.emulator.wire import Response, json_response

if TYPE_CHECKING:
    from airflow_provider_ringout.testing.emulator.calllog import CallLog
    from airflow_provider_ringout.testing.emulator.calls import SessionInfo
    from airflow_provider_ringout.testing.emulator.record import RecordedRequest

PREFIX = "/_emulator"


class Driven(Protocol):
    """What the control plane drives: the emulator's public test API (``core.RingCentralEmulator``, never imported)."""

    host: str
    call_log: CallLog

    @property
    def url(self) -> str: ...
    @property
    def requests(self) -> list[RecordedRequest]: ...
    @property
    def issued_tokens(self) -> list[str]: ...
    @property
    def sessions(self) -> dict[str, SessionInfo]: ...
    def script(self, to_number: str | None, script: Any, **kw: Any) -> None: ...
    def script_caller(self, from_number: str, script: Any, **kw: Any) -> None: ...
    def inject(self, fault: str, **kw: Any) -> None: ...
    def set_status(self, ringout_id: str, call: str, caller: str, callee: str) -> None: ...
    def reset(self) -> None: ...
    def restart(self) -> None: ...
    def revoke_all_tokens(self) -> None: ...
    def reject_jwt(self, rejected: bool = True) -> None: ...


def is_control_path(path: str) -> bool:
    """Whether a request path belongs to the control plane."""
    return path.startswith(PREFIX + "/") or path == PREFIX


def is_local_host(host: str | None, bind_host: str) -> bool:
    """Whether a request's ``Host`` names the emulator by a loopback name or address (or its bind address)."""
    if not host:
        return False
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return False
    if name in ("localhost", bind_host.lower()):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class ControlPlane:
    """Maps ``/_emulator/`` requests onto the emulator's public methods and properties."""

    def __init__(self, emulator: Driven) -> None:
        """Drive ``emulator``."""
        self._emulator = emulator

    def answer(self, method: str, path: str, host: str | None, body: bytes) -> Response:
        """Answer one control-plane request (``host`` is its Host header)."""
        if not is_local_host(host, self._emulator.host):
            return json_response(403, {"error": "the control plane answers only Host: localhost or a loopback address"})
        route = path[len(PREFIX) :].strip("/")
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return json_response(400, {"error": "body is not JSON"})
        if not isinstance(payload, dict):
            return json_response(400, {"error": "body must be a JSON object"})
        verbs = {"GET": lambda: self._read(route), "POST": lambda: self._act(route, payload)}
        try:
            result = verbs[method]() if method in verbs else None
        except (KeyError, TypeError, ValueError) as exc:
            return json_response(400, {"error": f"{type(exc).__name__}: {exc}"})
        if result is None:
            return json_response(404, {"error": f"no control endpoint {method} {path}"})
        return json_response(200, result)

    def _read(self, route: str) -> Any:
        """A GET: the emulator's state as JSON-friendly data; None for an unknown route."""
        emulator = self._emulator
        if route in ("", "health"):
            return {"ok": True, "url": emulator.url}
        if route == "requests":
            return [r.as_dict() for r in emulator.requests]
        if route == "tokens":
            return emulator.issued_tokens
        if route == "sessions":
            return {rid: info.as_dict() for rid, info in emulator.sessions.items()}
        if route == "call-log":
            return emulator.call_log.records()
        return None

    def _act(self, route: str, payload: dict[str, Any]) -> dict[str, bool] | None:
        """A POST: run one action; None for an unknown route."""
        emulator = self._emulator
        if route == "script":
            to_number = payload.pop("to_number", None)
            caller = payload.pop("from_number", None)
            outcome = payload.pop("outcome", Outcome.ANSWERED.value)
            if caller is not None:
                emulator.script_caller(str(caller), outcome, **payload)
            else:
                emulator.script(to_number, outcome, **payload)
        elif route == "faults":
            fault = payload.pop("fault")
            emulator.inject(str(fault), **payload)
        elif route == "reset":
            emulator.reset()
        elif route == "restart":
            emulator.restart()
        elif route == "revoke-tokens":
            emulator.revoke_all_tokens()
        elif route == "reject-jwt":
            emulator.reject_jwt(bool(payload.get("rejected", True)))
        elif route == "status":
            emulator.set_status(
                str(payload["id"]), payload["callStatus"], payload["callerStatus"], payload["calleeStatus"]
            )
        else:
            return None
        return {"ok": True}

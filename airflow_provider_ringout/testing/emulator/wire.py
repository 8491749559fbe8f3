"""
What goes over the wire: the response the HTTP layer sends, RingCentral's error bodies, and body parsing.

Every job of the emulator answers with a :class:`Response` built here, so that error bodies have one shape.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from collections.abc import Mapping

_TOKEN_ERRORS = {
    "OAU-213": "Token not found",
    "OAU-128": "Access token expired",
    "OAU-129": "Access token corrupted",
    "OAU-149": "Invalid token",
}


class Action(str, Enum):
    """What the HTTP layer does with a response: send it, or close the connection without sending it."""

    SEND = "send"
    RESET = "reset"  # abortive close (RST) before anything was processed
    DROP = "drop"  # processed, then the connection closes without an answer


@dataclass
class Response:
    """What the handler sends, unless ``action`` closes the connection instead."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    action: Action = Action.SEND


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response with the exact Content-Type RingCentral sends."""
    out = {"Content-Type": "application/json"}
    if headers:
        out.update(headers)
    return Response(status, json.dumps(payload).encode(), out)


def _error_detail(code: str, message: str, parameter: str | None) -> dict[str, str]:
    """One entry of RingCentral's ``errors`` list."""
    detail = {"errorCode": code, "message": message}
    if parameter is not None:
        detail["parameterName"] = parameter
    return detail


def api_error(
    status: int, code: str, message: str, *, top_code: str | None = None, parameter: str | None = None
) -> Response:
    """A RingCentral API error body: top-level ``errorCode``/``message`` plus the ``errors`` list."""
    error = _error_detail(code, message, parameter)
    return json_response(status, {"errorCode": top_code or code, "message": message, "errors": [error]})


def oauth_error(status: int, error: str, code: str, message: str, parameter: str | None = None) -> Response:
    """A token-endpoint error body: the RFC 6749 ``error`` field plus RingCentral's ``errors`` list."""
    detail = _error_detail(code, message, parameter)
    return json_response(status, {"error": error, "error_description": message, "errors": [detail]})


def token_invalid(code: str = "OAU-213") -> Response:
    """401 for a missing, unknown, revoked, evicted or expired access token."""
    message = _TOKEN_ERRORS.get(code, "Token not found")
    return api_error(401, code, message, top_code="TokenInvalid")


def not_found(parameter: str = "ringoutId") -> Response:
    """404 for a RingOut session (or path) that does not exist (any more)."""
    return api_error(404, "CMN-102", f"Resource for parameter [{parameter}] is not found", parameter=parameter)


def invalid_parameter(parameter: str) -> Response:
    """400 CMN-101 naming the bad parameter, as RingCentral does for a malformed phone number."""
    return api_error(400, "CMN-101", f"Parameter [{parameter}] value is invalid", parameter=parameter)


def rate_exceeded() -> Response:
    """429 CMN-301, what RingCentral answers past a rate limit."""
    return api_error(429, "CMN-301", "Request rate exceeded")


def temporarily_unavailable(status: int) -> Response:
    """5xx with CMN-201, what RingCentral answers while a service is down."""
    return api_error(status, "CMN-201", "Service Temporary Unavailable")


def basic_credentials(header: str | None) -> tuple[str, str] | None:
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


def try_json(body: bytes) -> Any | None:
    """The parsed JSON body, or None."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def try_form(body: bytes) -> dict[str, str] | None:
    """The parsed form body, or None."""
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return None

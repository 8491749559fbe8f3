"""
OAuth as RingCentral runs it: the JWT grant with HTTP Basic client auth, refresh-token rotation, revocation,
bearer checks on API calls, and the cap on parallel sessions per credential (the oldest is evicted).
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from airflow_provider_ringout.testing.emulator.identity import JWT_GRANT_TYPE, REFRESH_TOKEN_TTL, TEST_EXTENSION_ID
from airflow_provider_ringout.testing.emulator.wire import (
    Response,
    api_error,
    basic_credentials,
    json_response,
    oauth_error,
    token_invalid,
)

if TYPE_CHECKING:
    import threading
    from email.message import Message


class OAuthSettings(Protocol):
    """The emulator settings the OAuth server reads on every request (tests may change them at any time)."""

    client_id: str
    client_secret: str
    jwt: str
    token_ttl: float
    scope: str
    max_sessions: int


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


def _missing(parameter: str) -> Response:
    """400 invalid_request for a missing form parameter."""
    return oauth_error(400, "invalid_request", "OAU-101", f"Parameter [{parameter}] is missing", parameter)


class OAuthServer:
    """The token and revoke endpoints and the bearer check; every token and session it issued. Uses the emulator's lock."""

    def __init__(self, settings: OAuthSettings, lock: threading.RLock) -> None:
        """No sessions yet; ``settings`` is read at each request."""
        self._settings = settings
        self._lock = lock
        self._by_token: dict[str, _OAuthSession] = {}
        self._sessions: dict[str, list[_OAuthSession]] = {}
        self._issued_tokens: list[str] = []
        self._jwt_rejected = False
        self._evictions = 0

    # ---------------------------------------------------------------------------------------- controls

    def revoke_all_tokens(self) -> None:
        """Invalidate every issued token: API calls with them now get 401 OAU-213."""
        with self._lock:
            for sessions in self._sessions.values():
                for session in sessions:
                    session.active = False
            self._sessions.clear()

    def reject_jwt(self, rejected: bool) -> None:
        """While on, the JWT grant fails with invalid_grant; issued tokens stay valid."""
        with self._lock:
            self._jwt_rejected = rejected

    def forget_sessions(self) -> None:
        """Forget every token and session, as a restarted server would; the list of issued tokens stays."""
        with self._lock:
            self._by_token.clear()
            self._sessions.clear()

    def reset(self) -> None:
        """Back to the start: no sessions, no issued tokens, no evictions, the JWT accepted."""
        with self._lock:
            self.forget_sessions()
            self._issued_tokens.clear()
            self._jwt_rejected = False
            self._evictions = 0

    @property
    def evictions(self) -> int:
        """Sessions ended because a newer login passed the session cap."""
        with self._lock:
            return self._evictions

    @property
    def issued_tokens(self) -> list[str]:
        """Every access and refresh token issued."""
        with self._lock:
            return list(self._issued_tokens)

    # --------------------------------------------------------------------------------------- endpoints

    def token(self, headers: Message, form: dict[str, str]) -> Response:
        """POST /restapi/oauth/token: the JWT grant (and refresh_token rotation)."""
        refused = self._refusal(headers, form, "grant_type")
        if refused is not None:
            return refused
        grant_type = form["grant_type"]
        if grant_type == JWT_GRANT_TYPE:
            return self._jwt_grant(form)
        if grant_type == "refresh_token":
            return self._refresh(form.get("refresh_token", ""))
        return oauth_error(400, "unsupported_grant_type", "OAU-250", "Unsupported grant type")

    def revoke(self, headers: Message, params: dict[str, str]) -> Response:
        """POST /restapi/oauth/revoke: end the whole session of the token; unknown tokens are fine (RFC 7009)."""
        refused = self._refusal(headers, params, "token")
        if refused is not None:
            return refused
        token = params["token"]
        with self._lock:
            session = self._by_token.get(token)
            if session is not None and session.active:
                session.active = False
                sessions = self._sessions.get(session.client_id, [])
                if session in sessions:
                    sessions.remove(session)
        return Response(200)

    def authorize(self, headers: Message, permission: str | None) -> Response | None:
        """Check the bearer token and the app ``permission`` the endpoint needs; None when the call may proceed."""
        auth = headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return token_invalid()
        token = token.strip()
        with self._lock:
            session = self._by_token.get(token)
            if session is None or not session.active or session.access_token != token:
                return token_invalid()
            if time.monotonic() - session.issued >= self._settings.token_ttl:
                return token_invalid("OAU-128")
        if permission is not None and permission not in self._settings.scope.split():
            message = f"In order to call this API endpoint, application needs to have [{permission}] permission"
            return api_error(403, "CMN-401", message, top_code="InsufficientPermissions")
        return None

    # ---------------------------------------------------------------------------------------- internals

    def _refusal(self, headers: Message, params: dict[str, str], required: str) -> Response | None:
        """401 unless the client authenticates, else 400 if parameter ``required`` is missing; None when all is right."""
        denied = self._client_auth(headers)
        if denied is None and not params.get(required):
            return _missing(required)
        return denied

    def _client_auth(self, headers: Message) -> Response | None:
        """Check HTTP Basic client authentication; None when it is right."""
        client = basic_credentials(headers.get("Authorization"))
        if client is None:
            return oauth_error(401, "invalid_client", "OAU-123", "Client authentication is required")
        settings = self._settings
        if not (
            secrets.compare_digest(client[0], settings.client_id)
            and secrets.compare_digest(client[1], settings.client_secret)
        ):
            return oauth_error(401, "invalid_client", "OAU-123", "Invalid client credentials")
        return None

    def _jwt_grant(self, form: dict[str, str]) -> Response:
        """The JWT bearer grant: a new session, unless the assertion is wrong or rejected."""
        assertion = form.get("assertion")
        if not assertion:
            return _missing("assertion")
        with self._lock:
            if self._jwt_rejected or not secrets.compare_digest(assertion, self._settings.jwt):
                return oauth_error(400, "invalid_grant", "OAU-140", "Invalid resource owner credentials")
            session = self._open_session(form.get("endpoint_id") or secrets.token_urlsafe(16))
            return self._token_info(session)

    def _refresh(self, refresh: str) -> Response:
        """The refresh_token grant: rotate the session's token pair."""
        with self._lock:
            current = self._by_token.get(refresh)
            if current is None or not current.active or current.refresh_token != refresh:
                return oauth_error(400, "invalid_grant", "OAU-211", "Token is revoked or not found")
            self._issue(current)
            return self._token_info(current)

    def _open_session(self, endpoint_id: str) -> _OAuthSession:
        """A new login; the oldest session of the client is evicted past ``max_sessions``. Call with the lock."""
        client_id = self._settings.client_id
        session = _OAuthSession(
            id=secrets.token_urlsafe(12),
            client_id=client_id,
            access_token="",
            refresh_token="",
            issued=0.0,
            endpoint_id=endpoint_id,
        )
        self._issue(session)
        sessions = self._sessions.setdefault(client_id, [])
        sessions.append(session)
        while len(sessions) > self._settings.max_sessions:
            sessions.pop(0).active = False
            self._evictions += 1
        return session

    def _issue(self, session: _OAuthSession) -> None:
        """Give the session a fresh token pair; the previous pair stops working. Call with the lock."""
        session.access_token = secrets.token_urlsafe(32)
        session.refresh_token = secrets.token_urlsafe(32)
        session.issued = time.monotonic()
        self._by_token[session.access_token] = session
        self._by_token[session.refresh_token] = session
        self._issued_tokens += [session.access_token, session.refresh_token]

    def _token_info(self, session: _OAuthSession) -> Response:
        """The TokenInfo body."""
        return json_response(
            200,
            {
                "access_token": session.access_token,
                "token_type": "bearer",
                "expires_in": max(1, math.ceil(self._settings.token_ttl)),
                "refresh_token": session.refresh_token,
                "refresh_token_expires_in": REFRESH_TOKEN_TTL,
                "scope": self._settings.scope,
                "owner_id": TEST_EXTENSION_ID,
                "endpoint_id": session.endpoint_id,
                "session_id": session.id,
            },
            {"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

"""
OAuth for the hook: the JWT bearer grant (RFC 7523) through requests-oauthlib, and bearer auth for sessions.

Also the oauthlib quirks: it logs token bodies at DEBUG (filtered out here), ships no client for a ready-made
JWT assertion (one is built here), and refuses http:// outright (allowed here for loopback only, the emulator).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from airflow_provider_ringout import PRODUCTION_SERVER_URL
from airflow_provider_ringout._wait_end import bounded_timeout
from airflow_provider_ringout.exceptions import RingCentralAPIError, RingCentralAuthError
from airflow_provider_ringout.hooks._connection import is_loopback
from airflow_provider_ringout.hooks._http import guard_response, loads_json
from airflow_provider_ringout.hooks.endpoints import Endpoint
from airflow_provider_ringout.state.tokens import Token

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_ringout.hooks._connection import RingCentralCredentials

TOKEN_PATH = Endpoint.TOKEN.path()
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REQUIRED_SCOPE = Endpoint.RING_OUT_CREATE.permission or ""  # what test_connection checks the token's scope for
# 401 codes that mean "this access token is no good": renew once and retry.
TOKEN_ERROR_CODES = frozenset({"oau-213", "tokeninvalid", "oau-128", "oau-129", "oau-149", "tokenexpired"})


class _DropSecretDebugRecords(logging.Filter):
    """requests-oauthlib logs token request bodies and token responses at DEBUG: keep those out of task logs."""

    _leaky = (
        "Supplying headers",
        "Request body was",
        "Response headers were",
        "Obtained token",
        "Request headers were",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(str(record.msg).startswith(prefix) for prefix in self._leaky)


# Installed once, on import (a logger accepts a filter before the library that logs to it is imported).
logging.getLogger("requests_oauthlib.oauth2_session").addFilter(_DropSecretDebugRecords())

# Guards OAUTHLIB_INSECURE_TRANSPORT, which is process-wide, while a loopback exchange runs.
_env_guard = threading.RLock()


@contextlib.contextmanager
def _loopback_http_allowed(url: str) -> Iterator[None]:
    """oauthlib refuses http:// outright; let it through only for loopback URLs, which we already vetted."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not is_loopback(parts.hostname or ""):
        yield
        return
    with _env_guard:
        previous = os.environ.get("OAUTHLIB_INSECURE_TRANSPORT")
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
            else:
                os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = previous


def _jwt_bearer_client(client_id: str) -> Any:
    """An oauthlib client for RFC 7523's JWT bearer grant (oauthlib ships none for a ready-made assertion)."""
    from oauthlib.oauth2 import BackendApplicationClient

    client = BackendApplicationClient(client_id)
    client.grant_type = JWT_GRANT
    return client


class TokenExchange:
    """
    The JWT bearer grant of one credential: each :meth:`send` POSTs it once through requests-oauthlib.

    :param credentials: the connection (client ID and secret in HTTP Basic, the JWT as the assertion).
    :param user_agent: the hook's User-Agent.
    :param mask: registers a secret with the log masker (the access and refresh tokens of every answer).
    """

    def __init__(
        self, credentials: RingCentralCredentials, user_agent: str, mask: Callable[[str | None], None]
    ) -> None:
        from requests_oauthlib import OAuth2Session

        self.credentials = credentials
        self.url = credentials.server_url + TOKEN_PATH
        self._mask = mask
        self._oauth = OAuth2Session(client=_jwt_bearer_client(credentials.client_id))
        self._oauth.headers["User-Agent"] = user_agent
        self._oauth.hooks["response"].append(guard_response)
        self._oauth.register_compliance_hook("access_token_response", self._check_answer)
        self._answer: requests.Response | None = None
        self._fields: dict[str, Any] = {}

    def _check_answer(self, response: requests.Response) -> requests.Response:
        """
        requests-oauthlib's hook for the token answer, before oauthlib parses it: mask the tokens, keep the answer.

        Any other answer than a 200 raises requests' ``HTTPError`` with it, so oauthlib never parses a body
        that is not a token; a 200 that is not a JSON object is not RingCentral.
        """
        self._answer = response
        body: Any = None
        with contextlib.suppress(ValueError):
            body = loads_json(response.text)
        if isinstance(body, dict):
            self._mask(body.get("access_token"))
            self._mask(body.get("refresh_token"))
        if response.status_code != 200:
            raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
        if not isinstance(body, dict):
            raise RingCentralAuthError(
                "the token answer was not a JSON object; is the server URL right?",
                method=Endpoint.TOKEN.method,
                path=TOKEN_PATH,
            )
        return response

    def send(self) -> requests.Response:
        """
        POST the grant once.

        :return: RingCentral's answer, whatever its status: a 200 carries a token (see :meth:`token`); any
            other status is for the caller to retry or raise.
        :raises RingCentralAuthError: a 200 whose token oauthlib cannot use.
        :raises requests.RequestException: the request failed before an answer came.
        """
        from oauthlib.oauth2 import OAuth2Error

        creds = self.credentials
        try:
            with _loopback_http_allowed(self.url):
                self._fields = self._oauth.fetch_token(
                    self.url,
                    auth=requests.auth.HTTPBasicAuth(creds.client_id, creds.client_secret),
                    include_client_id=False,
                    assertion=creds.jwt,
                    timeout=bounded_timeout(creds.request_timeout, before_send=True),  # a slow login
                )
        except requests.HTTPError as exc:  # an error answer: its status and body say what to do
            if exc.response is None:  # pragma: no cover (raised by _check_answer, always with the answer)
                raise
            return exc.response
        except OAuth2Error as exc:
            raise RingCentralAuthError(
                f"the token answer was not usable ({exc.error})", method=Endpoint.TOKEN.method, path=TOKEN_PATH
            ) from None
        assert self._answer is not None
        return self._answer

    def token(self, started: float) -> Token:
        """The token of the last 200 (``started``: when the exchange began, the start of its lifetime)."""
        fields = self._fields
        scope = fields.get("scope") or ""
        return Token(
            access_token=str(fields["access_token"]),
            expires_at=started + float(fields.get("expires_in") or 3600),
            issued_at=started,
            scope=" ".join(scope) if isinstance(scope, list) else str(scope),
            owner_id=None if fields.get("owner_id") is None else str(fields.get("owner_id")),
            session_id=None if fields.get("session_id") is None else str(fields.get("session_id")),
        )


class BearerAuth(requests.auth.AuthBase):
    """
    Adds an access token to each request, so ``get_conn()`` sessions renew by themselves.

    :param token: returns a fresh access token (the hook's shared token cache).
    """

    def __init__(self, token: Callable[[], Token]) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token().access_token}"
        return request


def explain_login_failure(exc: RingCentralAPIError, server: str) -> str:
    """A failed token exchange in words a user can act on (the Test button's message)."""
    if exc.has_code("invalid_client", "OAU-123", "OAU-122"):
        return (
            f"RingCentral rejected the client ID or client secret ({', '.join(exc.error_codes)}). "
            "Check the connection's Client ID and Client secret against the app's credentials."
        )
    if exc.has_code("invalid_grant", "OAU-140", "OAU-141", "OAU-142"):
        return (
            f"RingCentral rejected the JWT ({', '.join(exc.error_codes)}): it may be expired, revoked, or made "
            "for another app or environment. Create a new JWT credential for this app and paste it in the JWT field."
        )
    if exc.has_code("unauthorized_client", "unsupported_grant_type", "OAU-250", "OAU-251"):
        return (
            f"The app is not allowed to use the JWT auth flow ({', '.join(exc.error_codes)}). Set the app's "
            "auth type to 'JWT auth flow' (server-to-server) in the RingCentral developer console."
        )
    if exc.status_code == 429:
        return (
            "RingCentral is rate limiting logins for this user and app (Auth group, about 5 a minute). "
            "Wait a minute and test again."
        )
    if exc.status_code is None:
        return exc.api_message[:1].upper() + exc.api_message[1:] + "."
    if not exc.error_codes:
        return (
            f"The server at {server} did not answer like RingCentral (HTTP {exc.status_code}): "
            f"{exc.api_message} Check the Server URL (production is {PRODUCTION_SERVER_URL})."
        )
    return f"Connection test failed: {exc}"

"""
RingCentralHook: everything that talks to RingCentral.

OAuth 2.0 JWT grant (through requests-oauthlib), one token per credential shared host-wide, rate-limit pacing,
retries with ``Retry-After`` (urllib3's ``Retry`` decides), error parsing, and the RingOut calls themselves.
Operators, sensors, triggers and notifiers use this hook and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import requests
from airflow.providers.common.compat.sdk import BaseHook
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ProtocolError
from urllib3.response import HTTPResponse
from urllib3.util.retry import Retry

from airflow_provider_ringout import JWT_FIELD, PRODUCTION_SERVER_URL, __version__
from airflow_provider_ringout.exceptions import (
    RingCentralAPIError,
    RingCentralAuthError,
    RingCentralConfigError,
    RingCentralRateLimitError,
    RingOutUnconfirmedError,
)
from airflow_provider_ringout.hooks._shared_state import (
    URGENT_LOCK_WAIT,
    RatePacer,
    StateDir,
    Token,
    TokenCache,
    bounded_waits,
    default_cache_dir,
    urgent,
)
from airflow_provider_ringout.hooks._transport import (
    RedirectRefused,
    ResponseTooLarge,
    arequest_limited,
    client_for_running_loop,
    guard_response,
    loads_json,
    retry_after,
)
from airflow_provider_ringout.phone import is_ascii_digits, mask_phone_number, validate_e164
from airflow_provider_ringout.status import (
    CancelOutcome,
    RingOutState,
    RingOutStatus,
    RingOutWatch,
    cancel_outcome,
    classify,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    import httpx

    from airflow_provider_ringout.hooks._redis_state import RedisRatePacer, RedisTokenCache

TOKEN_PATH = "/restapi/oauth/token"  # noqa: S105 (a URL path, not a secret)
RINGOUT_PATH = "/restapi/v1.0/account/~/extension/~/ring-out"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REQUIRED_SCOPE = "RingOut"
# 401 codes that mean "this access token is no good": renew once and retry.
TOKEN_ERROR_CODES = frozenset({"oau-213", "tokeninvalid", "oau-128", "oau-129", "oau-149", "tokenexpired"})
LEGACY_JWT_FIELD = "jwt"  # the JWT's extra key before JWT_FIELD: still read, with a warning (Airflow shows it)
# RingCentral's RingOut ids are digit strings; accept any plain path segment made of safe characters, no dots.
_RINGOUT_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RingCentralCredentials:
    """A ``ringcentral`` connection, checked and normalised. ``repr`` never shows the secrets."""

    conn_id: str
    server_url: str
    client_id: str
    client_secret: str
    jwt: str
    from_number: str | None = None
    request_timeout: float = 30.0

    def __repr__(self) -> str:
        return f"RingCentralCredentials(conn_id={self.conn_id!r}, server_url={self.server_url!r})"

    @property
    def cache_key(self) -> str:
        """Identifies the credential (server, client, JWT) without revealing it: tokens are shared only within it."""
        jwt_hash = hashlib.sha256(self.jwt.encode()).hexdigest()
        raw = f"{self.server_url}\n{self.client_id}\n{jwt_hash}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def normalize_server_url(host: str | None, port: int | None = None, *, conn_id: str = "ringcentral_default") -> str:
    """
    Turn the connection's host (and port) into a base URL such as ``https://platform.ringcentral.com``.

    Empty means production; no scheme means https; plain http is allowed only to loopback (the emulator),
    so credentials never travel in clear text.
    """
    where = f"Connection {conn_id!r}, field host (Server URL)"
    raw = (host or "").strip()
    if not raw:
        return PRODUCTION_SERVER_URL
    if "://" not in raw:
        raw = f"https://{raw}"
    shown = _without_userinfo(raw)  # a password written into the URL is never echoed
    try:
        parts = urlsplit(raw)
        url_port = parts.port
    except ValueError as exc:
        detail = _without_userinfo(str(exc)) if shown == raw else "see the host field"
        raise RingCentralConfigError(f"{where}: {shown!r} is not a valid URL ({detail}).") from None
    if parts.scheme not in ("https", "http"):
        raise RingCentralConfigError(
            f"{where}: scheme {parts.scheme!r} is not supported; use https://, e.g. {PRODUCTION_SERVER_URL}."
        )
    if not parts.hostname:
        raise RingCentralConfigError(f"{where}: {shown!r} has no host name; e.g. {PRODUCTION_SERVER_URL}.")
    if parts.username or parts.password:
        raise RingCentralConfigError(f"{where}: put the client ID and secret in login/password, not in the URL.")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise RingCentralConfigError(
            f"{where}: give only the server, without path or query (e.g. {PRODUCTION_SERVER_URL}); "
            f"the provider builds the API paths itself."
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise RingCentralConfigError(
            f"{where}: plain http:// is refused for {parts.hostname!r} because credentials would travel in clear "
            f"text; use https:// (http:// is allowed only to loopback, for the local emulator)."
        )
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    final_port = url_port or port
    if final_port:
        netloc = f"{netloc}:{final_port}"
    return f"{parts.scheme}://{netloc}"


_USERINFO = re.compile(r"(//|^)[^/?#@\s]*@")


def _without_userinfo(text: str) -> str:
    """``text`` with any ``user:password@`` part of a URL replaced by ``***@``."""
    return _USERINFO.sub(r"\1***@", text)


def _looks_like_jwt(value: str) -> bool:
    parts = value.split(".")
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
    return len(parts) == 3 and all(parts[:2]) and all(set(p) <= alphabet for p in parts)


def _extra_field(extra: Mapping[str, Any], name: str) -> Any:
    """Read an extra field saved either plainly or with the UI's ``extra__ringcentral__`` prefix."""
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(f"extra__ringcentral__{name}")
    return None if value == "" else value


def _read_jwt(extra: Mapping[str, Any], conn_id: str) -> tuple[str, str]:
    """
    The JWT and the extra key it was read from: ``jwt_token``, else the legacy ``jwt`` (either with the prefix).

    Airflow hides an extra's value by its key's name; ``token`` is such a name, ``jwt`` is not, so a JWT under
    ``jwt`` is shown to everyone who may read connections: say so (once per process) while still reading it.
    """
    legacy = _extra_field(extra, LEGACY_JWT_FIELD)
    if legacy is not None:
        _warn_legacy_jwt_key(conn_id)
    value = _extra_field(extra, JWT_FIELD)
    if value is not None or legacy is None:
        return str(value or "").strip(), JWT_FIELD
    return str(legacy).strip(), LEGACY_JWT_FIELD


def _warn_legacy_jwt_key(conn_id: str) -> None:
    global _legacy_jwt_warned
    with _legacy_jwt_lock:
        if _legacy_jwt_warned:
            return
        _legacy_jwt_warned = True
    log.warning(
        "Connection %r keeps the JWT under the extra key '%s', which Airflow does not hide: everyone who may read "
        "connections sees it in the REST API and the UI. Move it to the key '%s' (paste the JWT into the "
        "connection's JWT field, or rename the key in the extra JSON or URI) and delete '%s'; if others could read "
        "it, create a new JWT.",
        conn_id,
        LEGACY_JWT_FIELD,
        JWT_FIELD,
        LEGACY_JWT_FIELD,
    )


_legacy_jwt_warned = False
_legacy_jwt_lock = threading.Lock()


def _mask(secret: str | None) -> None:
    """Register a secret with Airflow's masker (and, through it, with the process that writes the logs)."""
    if secret:
        from airflow.providers.common.compat.sdk import mask_secret

        mask_secret(secret)


def _mask_in_process(secret: str | None) -> None:
    """
    Register a secret with this process's masker only.

    Triggers before Airflow 3.3 must not message the triggerer's supervisor from a worker thread (its comms
    belong to the event loop and a message from elsewhere breaks them); the trigger runner masks its own logs.
    """
    if secret:
        from airflow.sdk.execution_time.secrets_masker import _secrets_masker

        _secrets_masker().add_mask(secret)


def parse_connection(conn: Any, *, mask: Callable[[str | None], None] = _mask) -> RingCentralCredentials:
    """Check a ``ringcentral`` connection field by field; each problem names the field and the fix."""
    conn_id = getattr(conn, "conn_id", None) or "ringcentral_default"
    raw_extra = getattr(conn, "extra", None)
    extra: Any = {}
    if raw_extra:
        try:
            extra = json.loads(raw_extra) if isinstance(raw_extra, str) else raw_extra
        except ValueError:
            raise RingCentralConfigError(
                f"Connection {conn_id!r}: field extra is not valid JSON; it must be a JSON object such as "
                '{"jwt_token": "eyJ...", "from_number": "+14155550100"}.'
            ) from None
    if not isinstance(extra, dict):
        raise RingCentralConfigError(
            f"Connection {conn_id!r}: field extra must be a JSON object such as "
            f'{{"jwt_token": "eyJ..."}}; got a JSON {type(extra).__name__}.'
        )
    client_id = (conn.login or "").strip()
    client_secret = conn.password or ""
    jwt, jwt_field = _read_jwt(extra, conn_id)
    # Register secrets before anything can log them.
    mask(client_secret)
    mask(jwt)
    if not client_id:
        raise RingCentralConfigError(
            f"Connection {conn_id!r}: field login (Client ID) is empty; set it to your RingCentral app's client ID."
        )
    if not client_secret:
        raise RingCentralConfigError(
            f"Connection {conn_id!r}: field password (Client secret) is empty; set it to your app's client secret."
        )
    if not jwt:
        raise RingCentralConfigError(
            f"Connection {conn_id!r}: extra field {jwt_field!r} is empty; create a JWT credential in the "
            "RingCentral developer console and store it in the connection's JWT field."
        )
    if not _looks_like_jwt(jwt):
        raise RingCentralConfigError(
            f"Connection {conn_id!r}: extra field {jwt_field!r} is not a JWT (expected three base64url parts "
            "separated by dots, 'eyJ...'); paste the JWT credential itself, not its name or id."
        )
    from_number = validate_e164(
        _extra_field(extra, "from_number"),
        f"Connection {conn_id!r}, extra field 'from_number'",
        required=False,
    )
    timeout_raw = _extra_field(extra, "request_timeout")
    try:
        request_timeout = float(timeout_raw) if timeout_raw is not None else 30.0
    except (TypeError, ValueError):
        request_timeout = -1.0
    if not 0 < request_timeout <= 600:
        raise RingCentralConfigError(
            f"Connection {conn_id!r}: extra field 'request_timeout' must be a number of seconds in (0, 600]."
        )
    return RingCentralCredentials(
        conn_id=conn_id,
        server_url=normalize_server_url(conn.host, conn.port, conn_id=conn_id),
        client_id=client_id,
        client_secret=client_secret,
        jwt=jwt,
        from_number=from_number,
        request_timeout=request_timeout,
    )


def parse_error_body(text: str, content_type: str = "") -> tuple[list[str], str]:
    """
    Error codes and a message from any RingCentral error body (``errors[]``, top-level ``errorCode``, OAuth ``error``).

    Bodies that are not JSON (a proxy's HTML page) give no code and a short description instead.
    """
    try:
        data = loads_json(text) if text else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        kind = (content_type or "").split(";")[0].strip() or "no content type"
        return [], f"the server answered with a non-RingCentral body ({kind}); is the server URL right?"
    codes: list[str] = []
    messages: list[str] = []
    for key in ("error", "errorCode"):
        if isinstance(data.get(key), str):
            codes.append(data[key])
    errors = data.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict):
                if isinstance(item.get("errorCode"), str):
                    codes.append(item["errorCode"])
                if isinstance(item.get("message"), str):
                    param = item.get("parameterName")
                    messages.append(f"{item['message']} (parameter {param})" if param else item["message"])
    for key in ("error_description", "message"):
        if not messages and isinstance(data.get(key), str):
            messages.append(data[key])
    unique_codes = list(dict.fromkeys(codes))
    return unique_codes, "; ".join(dict.fromkeys(messages)) or "no error message given"


def _jwt_bearer_client(client_id: str) -> Any:
    """An oauthlib client for RFC 7523's JWT bearer grant (oauthlib ships none for a ready-made assertion)."""
    from oauthlib.oauth2 import BackendApplicationClient

    client = BackendApplicationClient(client_id)
    client.grant_type = JWT_GRANT
    return client


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


_oauthlib_filter_installed = False


@contextlib.contextmanager
def _loopback_http_allowed(url: str) -> Iterator[None]:
    """oauthlib refuses http:// outright; let it through only for loopback URLs, which we already vetted."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not _is_loopback(parts.hostname or ""):
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


_env_guard = threading.RLock()


class _TokenResponseError(Exception):
    def __init__(self, response: requests.Response) -> None:
        self.response = response


class _BearerAuth(requests.auth.AuthBase):
    """Adds the shared access token to each request, so ``get_conn()`` sessions renew by themselves."""

    def __init__(self, hook: RingCentralHook) -> None:
        self.hook = hook

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.hook._token().access_token}"
        return request


_CANCEL_WORDS = {
    CancelOutcome.STOPPED: "the call was stopped before it connected",
    CancelOutcome.NOTHING_TO_STOP: "the session was already gone, nothing to stop",
    CancelOutcome.CONNECTED: "NOT stopped: the call had already connected, and a RingOut cancel cannot hang it up",
    CancelOutcome.FIRST_LEG_UP: "NOT stopped: the first leg was already answered, and RingCentral no longer "
    "lets a cancel stop the call",
}


class RingCentralHook(BaseHook):
    """
    Talks to RingCentral for one ``ringcentral`` connection: token, pacing, retries, errors, RingOut calls.

    :param ringcentral_conn_id: the Airflow connection to use.
    :param max_attempts: how many times a request may be sent in all when RingCentral answers 429 or 5xx, or
        the connection fails before the request was sent.
    :param token_cache_dir: folder of the host-wide token cache and pacer state; default
        ``[ringcentral] token_cache_dir``.
    """

    conn_name_attr = "ringcentral_conn_id"
    default_conn_name = "ringcentral_default"
    conn_type = "ringcentral"
    hook_name = "RingCentral"

    # RingCentral's rate-limit (throttling) group of each call we make.
    GROUP_AUTH: ClassVar[str] = "Auth"
    GROUP_HEAVY: ClassVar[str] = "Heavy"
    GROUP_LIGHT: ClassVar[str] = "Light"

    def __init__(
        self,
        ringcentral_conn_id: str = default_conn_name,
        *,
        max_attempts: int = 5,
        backoff_factor: float = 1.0,
        token_cache_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ringcentral_conn_id = ringcentral_conn_id
        self.max_attempts = max(1, int(max_attempts))
        self.backoff_factor = backoff_factor
        self._token_cache_dir = Path(token_cache_dir) if token_cache_dir else None
        self._mask: Callable[[str | None], None] = _mask

    # --- connection and UI ---------------------------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form layout for Airflow cores older than 3.2, which do not read ``conn-fields`` from provider info."""
        from airflow_provider_ringout import get_provider_info

        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """JWT and default From number widgets for Airflow cores older than 3.2."""
        from airflow_provider_ringout.version_compat import AIRFLOW_V_3_2_PLUS

        if AIRFLOW_V_3_2_PLUS:  # the declarative conn-fields are used instead
            return {}
        try:
            from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
            from flask_babel import lazy_gettext
            from wtforms import PasswordField, StringField
        except ImportError:  # no FAB UI installed: nothing can render these widgets anyway
            return {}

        return {
            JWT_FIELD: PasswordField(lazy_gettext("JWT"), widget=BS3PasswordFieldWidget()),
            "from_number": StringField(lazy_gettext("Default From number"), widget=BS3TextFieldWidget()),
        }

    @cached_property
    def credentials(self) -> RingCentralCredentials:
        """The connection, checked; secrets are registered with the masker as soon as they are read."""
        return parse_connection(self.get_connection(self.ringcentral_conn_id))

    async def _acredentials(self) -> RingCentralCredentials:
        """The same, read the async way (for triggers)."""
        if "credentials" not in self.__dict__:
            from asgiref.sync import sync_to_async

            from airflow_provider_ringout.version_compat import AIRFLOW_V_3_3_PLUS

            if not AIRFLOW_V_3_3_PLUS:
                self._mask = _mask_in_process
            conn = await sync_to_async(self.get_connection)(self.ringcentral_conn_id)
            self.__dict__["credentials"] = parse_connection(conn, mask=self._mask)
        return self.credentials

    @cached_property
    def _state(self) -> StateDir:
        return StateDir(self._token_cache_dir or default_cache_dir())

    @cached_property
    def _shared(self) -> tuple[TokenCache | RedisTokenCache, RatePacer | RedisRatePacer]:
        """Token cache and pacer on ``[ringcentral] shared_state`` (host files or Redis); the token sealed at rest."""
        from airflow_provider_ringout.hooks._backend import shared_state

        return shared_state(self._state, self.credentials)

    @cached_property
    def _tokens(self) -> TokenCache | RedisTokenCache:
        return self._shared[0]

    @cached_property
    def _pacer(self) -> RatePacer | RedisRatePacer:
        return self._shared[1]

    @cached_property
    def user_agent(self) -> str:
        return f"airflow-provider-ringout/{__version__} python-requests/{requests.__version__}"

    def get_conn(self) -> requests.Session:
        """An authorised ``requests`` session: each request carries the shared access token, renewed as needed."""
        session = self._new_session()
        session.auth = _BearerAuth(self)
        return session

    @cached_property
    def _session(self) -> requests.Session:
        return self._new_session()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update({"User-Agent": self.user_agent, "Accept": "application/json"})
        session.hooks["response"].append(guard_response)
        return session

    # --- OAuth ---------------------------------------------------------------------------------------

    def _token(self, *, invalid: str | None = None) -> Token:
        token = self._tokens.get(self._login, invalid=invalid)
        self._mask(token.access_token)
        return token

    def _login(self, *, wait_on_rate_limit: bool = True, attempts: int | None = None) -> Token:
        """Exchange the JWT for an access token (JWT bearer grant, client credentials in HTTP Basic)."""
        global _oauthlib_filter_installed
        from requests_oauthlib import OAuth2Session

        if not _oauthlib_filter_installed:
            logging.getLogger("requests_oauthlib.oauth2_session").addFilter(_DropSecretDebugRecords())
            _oauthlib_filter_installed = True
        creds = self.credentials
        oauth = OAuth2Session(client=_jwt_bearer_client(creds.client_id))
        oauth.headers["User-Agent"] = self.user_agent
        oauth.hooks["response"].append(guard_response)

        def reject_errors(response: requests.Response) -> requests.Response:
            body: Any = None
            with contextlib.suppress(ValueError):
                body = loads_json(response.text)
            if isinstance(body, dict):
                self._mask(body.get("access_token"))
                self._mask(body.get("refresh_token"))
            if response.status_code != 200:
                raise _TokenResponseError(response)
            if not isinstance(body, dict):
                raise RingCentralAuthError(
                    "the token answer was not a JSON object; is the server URL right?", method="POST", path=TOKEN_PATH
                )
            return response

        oauth.register_compliance_hook("access_token_response", reject_errors)
        url = creds.server_url + TOKEN_PATH
        received: dict[str, Any] = {}

        def send() -> requests.Response:
            from oauthlib.oauth2 import OAuth2Error

            try:
                with _loopback_http_allowed(url):
                    received.update(
                        oauth.fetch_token(
                            url,
                            auth=requests.auth.HTTPBasicAuth(creds.client_id, creds.client_secret),
                            include_client_id=False,
                            assertion=creds.jwt,
                            timeout=creds.request_timeout,
                        )
                    )
            except _TokenResponseError as exc:
                return exc.response
            except OAuth2Error as exc:
                raise RingCentralAuthError(
                    f"the token answer was not usable ({exc.error})",
                    method="POST",
                    path=TOKEN_PATH,
                ) from None
            response = requests.Response()
            response.status_code = 200
            return response

        started = time.time()
        response = self._send(
            "POST", TOKEN_PATH, self.GROUP_AUTH, send, idempotent=True, wait=wait_on_rate_limit, attempts=attempts
        )
        if response.status_code != 200:
            self._raise_for_response(response, "POST", TOKEN_PATH, auth=True)
        expires_in = float(received.get("expires_in") or 3600)
        token = Token(
            access_token=str(received["access_token"]),
            expires_at=started + expires_in,
            issued_at=started,
            scope=" ".join(scope) if isinstance(scope := received.get("scope") or "", list) else str(scope),
            owner_id=None if received.get("owner_id") is None else str(received.get("owner_id")),
            session_id=None if received.get("session_id") is None else str(received.get("session_id")),
        )
        self.log.info("Obtained a RingCentral access token for connection %r.", creds.conn_id)
        return token

    # --- sending, pacing, retrying -------------------------------------------------------------------

    def _retry_policy(self, method: str, attempts: int | None = None, *, idempotent: bool = True) -> Retry:
        """
        urllib3's Retry decides: POST ring-out only after 429 (the one answer RingCentral guarantees was not
        processed; a 503 from a gateway may come after the call was placed); requests safe to repeat (the token
        POST, GET, DELETE) after 429 and any 5xx.
        """
        statuses = (429, 500, 502, 503, 504) if idempotent else (429,)
        retries = (attempts or self.max_attempts) - 1
        return Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            allowed_methods=frozenset({"GET", "DELETE", "POST"}),
            status_forcelist=statuses,
            backoff_factor=self.backoff_factor,
            backoff_max=60,
            respect_retry_after_header=True,
            raise_on_status=False,
        )

    def _next_attempt(
        self,
        retry: Retry,
        method: str,
        url: str,
        *,
        response: HTTPResponse | None = None,
        error: Exception | None = None,
    ) -> tuple[Retry, float] | None:
        """Ask the policy whether to try again and how long to wait first; None: give up."""
        try:
            retry = retry.increment(method, url, response=response, error=error)
        except MaxRetryError:
            return None
        if response is not None and response.status == 429:
            return retry, retry_after(response.headers)
        return retry, retry.get_backoff_time()

    def _wait_turn(self, group: str, *, wait: bool = True) -> None:
        """Block until this host may send in ``group`` (never during a 429 penalty), then claim the slot."""
        deadline = time.monotonic() + URGENT_LOCK_WAIT
        while (delay := self._pacer.reserve(group)) > 0:
            if not wait or (urgent() and time.monotonic() + delay > deadline):
                raise RingCentralRateLimitError(
                    f"RingCentral's {group} rate limit is in force for another {delay:.0f} s",
                    status_code=429,
                )
            if delay > 1:
                self.log.info("Waiting %.1f s for RingCentral's %s rate limit before sending.", delay, group)
            time.sleep(min(delay, 10.0))

    def _send(
        self,
        method: str,
        path: str,
        group: str,
        send: Callable[[], requests.Response],
        *,
        idempotent: bool,
        wait: bool = True,
        attempts: int | None = None,
    ) -> requests.Response:
        """
        Send through the pacer with retries (``attempts`` sends at most, default ``max_attempts``); returns the last response (maybe an error for the caller to raise).

        A request that is not idempotent (POST ring-out) is resent only after an answer that says it was not
        processed (429) or a failure to connect; after a 5xx, a timeout or a dropped connection it may already
        ring, so :class:`RingOutUnconfirmedError` is raised instead.
        """
        url = self.credentials.server_url + path
        attempts = attempts or self.max_attempts
        retry = self._retry_policy(method, attempts, idempotent=idempotent)
        while True:
            self._wait_turn(group, wait=wait)
            try:
                response = send()
            except RedirectRefused as exc:
                raise self._redirect_error(str(exc), method, path) from None
            except requests.RequestException as exc:
                connect_failed = isinstance(exc, requests.ConnectTimeout) or (
                    isinstance(exc, requests.ConnectionError) and "NewConnectionError" in repr(exc)
                )
                if not idempotent and not connect_failed:
                    raise RingOutUnconfirmedError(
                        f"no answer ({type(exc).__name__}); the call may have been placed, so it is not sent again. "
                        "Check the phone or RingCentral's call log before retrying",
                        method=method,
                        path=path,
                    ) from None
                error = ConnectTimeoutError() if connect_failed else ProtocolError(type(exc).__name__)
                decision = self._next_attempt(retry, method, url, error=error)
                if decision is None:
                    raise RingCentralAPIError(
                        f"could not reach {self.credentials.server_url} ({type(exc).__name__}) after "
                        f"{attempts} attempt(s); check the connection's Server URL and the network",
                        method=method,
                        path=path,
                    ) from None
                retry, delay = decision
                self.log.warning("%s %s failed (%s); retrying in %.1f s.", method, path, type(exc).__name__, delay)
                time.sleep(delay)
                continue
            decision = self._after_response(retry, method, url, group, response.status_code, response.headers, wait)
            if decision is None:
                return response
            retry, delay = decision
            self.log.warning("%s %s answered %s; retrying in %.1f s.", method, path, response.status_code, delay)
            if response.status_code != 429:  # a 429's wait is enforced host-wide by the pacer
                time.sleep(delay)

    def _after_response(
        self,
        retry: Retry,
        method: str,
        url: str,
        group: str,
        status: int,
        headers: Mapping[str, str],
        wait: bool,
    ) -> tuple[Retry, float] | None:
        """Feed the pacer, then decide whether this answer is retried (None: it is final)."""
        if status != 429:
            self._pacer.observe(group, headers)
            if status not in (retry.status_forcelist or ()):
                return None
        # urllib3 raises on a Retry-After it cannot parse: hand it the value we read (or none at all).
        clean = {k: v for k, v in headers.items() if k.lower() != "retry-after"}
        if status == 429:
            clean["Retry-After"] = f"{retry_after(headers):.0f}"
        raw = HTTPResponse(body=b"", headers=clean, status=status, preload_content=False)
        decision = self._next_attempt(retry, method, url, response=raw) if wait or status != 429 else None
        if status == 429:
            self._pacer.observe(group, headers, penalty=retry_after(headers))
        return decision

    def _redirect_error(self, what: str, method: str, path: str) -> RingCentralAPIError:
        return (RingCentralAuthError if path == TOKEN_PATH else RingCentralAPIError)(
            f"answered with a redirect ({what}), which is not followed: it would send the request (and "
            f"credentials) elsewhere. Check the connection's Server URL ({self.credentials.server_url})",
            method=method,
            path=path,
        )

    def _raise_for_response(self, response: requests.Response, method: str, path: str, *, auth: bool = False) -> None:
        codes, message = parse_error_body(response.text, response.headers.get("Content-Type", ""))
        message = self._scrub(message)
        status = response.status_code
        if status == 429:
            raise RingCentralRateLimitError(
                f"rate limited by RingCentral after {self.max_attempts} attempts (nothing was processed): {message}",
                status_code=status,
                error_codes=codes,
                method=method,
                path=path,
            )
        cls = RingCentralAuthError if auth or status == 401 else RingCentralAPIError
        if status == 403 and any(c.lower() in ("cmn-401", "insufficientpermissions") for c in codes):
            message += "; add the 'RingOut' permission to the app in the RingCentral developer console"
        raise cls(message, status_code=status, error_codes=codes, method=method, path=path)

    def _scrub(self, text: str) -> str:
        """Belt and braces: no secret of ours in any message, even if a server echoed one."""
        if "credentials" in self.__dict__:
            for secret in (self.credentials.client_secret, self.credentials.jwt):
                if secret:
                    text = text.replace(secret, "***")
        token = self._tokens.peek() if "credentials" in self.__dict__ else None
        if token:
            text = text.replace(token.access_token, "***")
        return text

    def _api(
        self, method: str, path: str, *, group: str, json_body: dict[str, Any] | None = None
    ) -> requests.Response | None:
        """
        One authorised API request; renews the token once on a 401 token error. Returns None for 404.

        Every error answer is raised as a specific exception.
        """
        url = self.credentials.server_url + path
        timeout = self.credentials.request_timeout
        refused: str | None = None
        for _ in range(2):
            token = self._token(invalid=refused)
            headers = {"Authorization": f"Bearer {token.access_token}"}

            def send(headers: dict[str, str] = headers) -> requests.Response:
                return self._session.request(method, url, json=json_body, headers=headers, timeout=timeout)

            response = self._send(method, path, group, send, idempotent=method != "POST")
            if response.status_code == 401 and refused is None and self._is_token_error(response):
                self.log.warning("RingCentral refused the access token (%s); renewing it once.", response.status_code)
                refused = token.access_token
                continue
            if response.status_code == 404 and method != "POST":
                return None
            if method == "POST" and response.status_code >= 500:
                raise RingOutUnconfirmedError(
                    f"answered {response.status_code}; the call may have been placed, so it is not sent again",
                    status_code=response.status_code,
                    method=method,
                    path=path,
                )
            if response.status_code >= 400:
                self._raise_for_response(response, method, path)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _is_token_error(response: requests.Response | httpx.Response) -> bool:
        codes, _ = parse_error_body(response.text, response.headers.get("Content-Type", ""))
        return any(code.lower() in TOKEN_ERROR_CODES for code in codes) or not codes

    def _status_body(self, response: requests.Response | httpx.Response, method: str, path: str) -> dict[str, Any]:
        """The JSON status body with ``id`` as a string, or a clear error if the answer is not one."""
        try:
            body = loads_json(response.text)
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("id") in (None, ""):
            cls = RingOutUnconfirmedError if method == "POST" else RingCentralAPIError
            hint = "; the call may have been placed, so it is not sent again" if method == "POST" else ""
            raise cls(
                f"answered {response.status_code} with a body that is not a RingOut status{hint}",
                status_code=response.status_code,
                method=method,
                path=path,
            )
        body["id"] = str(body["id"])
        return body

    # --- RingOut -------------------------------------------------------------------------------------

    @staticmethod
    def _ringout_path(ringout_id: Any) -> str:
        if ringout_id is None or not str(ringout_id).strip():
            raise RingCentralConfigError(
                "ringout_id is empty; pass the id returned by RingOutOperator or place_ringout."
            )
        text = str(ringout_id).strip()
        if "{{" in text or "{%" in text:
            raise RingCentralConfigError(f"ringout_id {text!r} looks like an unrendered template.")
        if not _RINGOUT_ID.fullmatch(text):
            # Only a plain path segment: '..' or '/' would address other resources of the extension.
            raise RingCentralConfigError(
                f"ringout_id {text[:40]!r} is not a RingOut id: RingCentral's ids are digits (letters, '-' and '_' "
                "are also accepted); pass the id returned by RingOutOperator or place_ringout."
            )
        return f"{RINGOUT_PATH}/{text}"

    @staticmethod
    def validate_ringout_id(ringout_id: Any) -> str:
        """
        Check a RingOut id as every request does, before any is sent.

        :param ringout_id: the id returned by RingOutOperator or :meth:`place_ringout`.
        :return: the id, stripped.
        :raises RingCentralConfigError: empty, an unrendered template, or not a plain RingOut id.
        """
        return RingCentralHook._ringout_path(ringout_id).removeprefix(f"{RINGOUT_PATH}/")

    def build_ringout_request(
        self,
        *,
        to_number: str,
        from_number: str | None = None,
        caller_id: str | None = None,
        play_prompt: bool = False,
        country_id: str | int | None = None,
    ) -> dict[str, Any]:
        """Validate the numbers and build the POST body; raises before anything is sent."""
        to_number = validate_e164(to_number, "to_number")  # type: ignore[assignment]
        if from_number in (None, ""):
            from_number = self.credentials.from_number
            if not from_number:
                raise RingCentralConfigError(
                    "from_number is required: pass from_number (the phone rung first, E.164 such as +14155550100) "
                    f"or set the extra field 'from_number' of connection {self.ringcentral_conn_id!r}."
                )
        from_number = validate_e164(from_number, "from_number")
        caller_id = validate_e164(caller_id, "caller_id", required=False)
        if not isinstance(play_prompt, bool):
            raise RingCentralConfigError(f"play_prompt must be True or False; got {play_prompt!r}.")
        body: dict[str, Any] = {
            "from": {"phoneNumber": from_number},
            "to": {"phoneNumber": to_number},
            "playPrompt": play_prompt,
        }
        if caller_id:
            body["callerId"] = {"phoneNumber": caller_id}
        if country_id not in (None, ""):
            if not is_ascii_digits(str(country_id)):
                raise RingCentralConfigError(
                    f"country_id must be RingCentral's numeric country id; got {country_id!r}."
                )
            body["country"] = {"id": str(country_id)}
        return body

    def place_ringout(
        self,
        *,
        to_number: str,
        from_number: str | None = None,
        caller_id: str | None = None,
        play_prompt: bool = False,
        country_id: str | int | None = None,
    ) -> dict[str, Any]:
        """
        Place a two-legged call: ring ``from_number`` (default: the connection's), then connect it to ``to_number``.

        Returns RingCentral's status body, with ``id`` always a string. Never sent twice blindly.
        """
        body = self.build_ringout_request(
            to_number=to_number,
            from_number=from_number,
            caller_id=caller_id,
            play_prompt=play_prompt,
            country_id=country_id,
        )
        response = self._api("POST", RINGOUT_PATH, group=self.GROUP_HEAVY, json_body=body)
        assert response is not None
        result = self._status_body(response, "POST", RINGOUT_PATH)
        self.log.info(
            "Placed RingOut %s from %s to %s.",
            result["id"],
            mask_phone_number(body["from"]["phoneNumber"]),
            mask_phone_number(body["to"]["phoneNumber"]),
        )
        return result

    def get_ringout(self, ringout_id: str) -> dict[str, Any]:
        """The RingOut status body. Raises :class:`RingCentralAPIError` with status 404 once the session is gone."""
        path = self._ringout_path(ringout_id)
        response = self._api("GET", path, group=self.GROUP_LIGHT)
        if response is None:
            raise RingCentralAPIError(
                "the RingOut session no longer exists",
                status_code=404,
                error_codes=["CMN-102"],
                method="GET",
                path=path,
            )
        return self._status_body(response, "GET", path)

    def get_status(self, ringout_id: str) -> RingOutStatus:
        """What the call's status means now (a gone session reads as ``gone``, not as an error)."""
        path = self._ringout_path(ringout_id)
        for attempt in range(self.max_attempts):
            response = self._api("GET", path, group=self.GROUP_LIGHT)
            status = self._read_status(response, path, attempt)
            if status is not None:
                return status
            time.sleep(self.backoff_factor * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def observe(self, watch: RingOutWatch) -> RingOutState:
        """Read the call's status into ``watch`` (logging it when it changed) and return what it resolves to."""
        previous = watch.last
        status = self.get_status(watch.ringout_id)
        state = watch.observe(status)
        if status != previous:
            self.log.info("RingOut %s status: %s", watch.ringout_id, status.describe())
        return state

    def wait_for_ringout(self, watch: RingOutWatch, *, timeout: float, poll_interval: float) -> RingOutState:
        """
        Poll until the call connects or fails, or ``timeout`` seconds pass (then it returns ``PENDING``).

        A session that disappears resolves through ``watch``: connected if it was seen connected, else failed.
        """
        deadline = time.monotonic() + timeout
        while (state := self.observe(watch)) is RingOutState.PENDING:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(poll_interval, remaining))
        return state

    def _read_status(
        self, response: requests.Response | httpx.Response | None, path: str, attempt: int
    ) -> RingOutStatus | None:
        """Classify a status answer; None asks for another read (a garbled 200 from a proxy is transient)."""
        if response is None:
            return classify(None)
        try:
            return classify(self._status_body(response, "GET", path))
        except RingCentralAPIError:
            if attempt + 1 >= self.max_attempts:
                raise
            self.log.warning("GET %s answered %s with an unreadable body; reading again.", path, response.status_code)
            return None

    def cancel_ringout(self, ringout_id: str) -> bool:
        """
        Ask RingCentral to cancel the call. True: the DELETE was accepted; False: the session was already gone.

        RingCentral only stops a call before its first leg is up; read the status afterwards to know.
        """
        path = self._ringout_path(ringout_id)
        accepted = self._api("DELETE", path, group=self.GROUP_HEAVY) is not None
        self.log.info("Cancel of RingOut %s %s.", ringout_id, "accepted" if accepted else "found no session")
        return accepted

    def cancel_and_confirm(self, ringout_id: str, *, urgent: bool = False) -> CancelOutcome:
        """
        Cancel, then read the status again to tell honestly whether the call was stopped.

        :param urgent: the caller may run on top of interrupted code (``on_kill`` runs in a SIGTERM handler):
            wait on no shared-state lock or rate limit for more than a couple of seconds, and use the access
            token in hand rather than renewing it.
        """
        with bounded_waits() if urgent else contextlib.nullcontext():
            accepted = self.cancel_ringout(ringout_id)
            outcome = cancel_outcome(accepted, self.get_status(ringout_id) if accepted else classify(None))
        self.log.info("Cancel of RingOut %s: %s.", ringout_id, _CANCEL_WORDS[outcome])
        return outcome

    async def acancel_and_confirm(self, ringout_id: str) -> CancelOutcome:
        """Async :meth:`cancel_and_confirm`."""
        accepted = await self.acancel_ringout(ringout_id)
        outcome = cancel_outcome(accepted, await self.aget_status(ringout_id) if accepted else classify(None))
        self.log.info("Cancel of RingOut %s: %s.", ringout_id, _CANCEL_WORDS[outcome])
        return outcome

    def test_connection(self) -> tuple[bool, str]:
        """
        Exchange the credentials for a token and check that the app has the ``RingOut`` permission.

        Never places a call. The message says what is wrong in words a user can act on.
        """
        try:
            creds = parse_connection(self.get_connection(self.ringcentral_conn_id))
            self.__dict__["credentials"] = creds
            token = self._login(wait_on_rate_limit=False, attempts=1)  # a Test button answers at once
        except RingCentralConfigError as exc:
            return False, str(exc)
        except RingCentralAPIError as exc:
            return False, self._explain(exc)
        except Exception as exc:
            return False, f"Connection test failed: {self._scrub(str(exc))}"
        _mask(token.access_token)
        self._tokens.store(token)
        if REQUIRED_SCOPE.lower() not in {s.lower() for s in token.scopes}:
            return False, (
                f"Logged in to {creds.server_url}, but the app lacks the 'RingOut' permission "
                f"(granted: {token.scope or 'nothing'}). Add 'RingOut' to the app's permissions in the "
                "RingCentral developer console, then test again."
            )
        return True, (
            f"Connected to {creds.server_url} as extension {token.owner_id or 'unknown'}; "
            "the app has the RingOut permission."
        )

    def _explain(self, exc: RingCentralAPIError) -> str:
        server = self.credentials.server_url
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

    # --- async, for triggers ---------------------------------------------------------------------------

    async def _async_client(self) -> httpx.AsyncClient:
        """One HTTP client per event loop, so thousands of triggers share a connection pool."""
        import httpx

        return await client_for_running_loop(
            lambda: httpx.AsyncClient(
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
            )
        )

    async def _atoken(self, *, invalid: str | None = None) -> Token:
        token = self._tokens.peek()
        if token is None or token.access_token == invalid:
            token = await asyncio.to_thread(self._token, invalid=invalid)
        return token

    async def _aapi(self, method: str, path: str, *, group: str) -> httpx.Response | None:
        """Async twin of :meth:`_api` for GET and DELETE (triggers never POST). Returns None for 404."""
        import httpx

        creds = await self._acredentials()
        url = creds.server_url + path
        client = await self._async_client()
        refused: str | None = None
        retry = self._retry_policy(method)
        while True:
            token = await self._atoken(invalid=refused)
            # The shared pacer file is locked off the event loop; an unlimited group needs no lock at all.
            while True:
                delay = self._pacer.reserve_nowait(group)
                if delay is None:
                    delay = await asyncio.to_thread(self._pacer.reserve, group)
                if delay <= 0:
                    break
                await asyncio.sleep(min(delay, 10.0))
            try:
                response = await arequest_limited(
                    client,
                    method,
                    url,
                    headers={"Authorization": f"Bearer {token.access_token}"},
                    timeout=creds.request_timeout,
                )
            except (httpx.TransportError, ResponseTooLarge) as exc:
                error = ConnectTimeoutError() if isinstance(exc, httpx.ConnectError) else ProtocolError(str(type(exc)))
                decision = self._next_attempt(retry, method, url, error=error)
                if decision is None:
                    raise RingCentralAPIError(
                        f"could not reach {creds.server_url} ({type(exc).__name__}) after {self.max_attempts} attempts",
                        method=method,
                        path=path,
                    ) from None
                retry, delay = decision
                await asyncio.sleep(delay)
                continue
            if response.status_code == 401 and refused is None and self._is_token_error(response):
                refused = token.access_token
                continue
            status_code, headers = response.status_code, response.headers
            if self._pacer.needs_lock(group, headers, status_code):
                decision = await asyncio.to_thread(
                    self._after_response, retry, method, url, group, status_code, headers, True
                )
            else:
                decision = self._after_response(retry, method, url, group, status_code, headers, True)
            if decision is not None:
                retry, delay = decision
                if response.status_code != 429:
                    await asyncio.sleep(delay)
                continue
            if response.status_code == 404:
                return None
            if response.is_redirect:
                raise self._redirect_error(f"HTTP {response.status_code} redirect", method, path)
            if response.status_code >= 400:
                self._raise_for_response(response, method, path)  # type: ignore[arg-type]
            return response

    async def aget_status(self, ringout_id: str) -> RingOutStatus:
        """Async :meth:`get_status`: never blocks the event loop on the network."""
        path = self._ringout_path(ringout_id)
        for attempt in range(self.max_attempts):
            response = await self._aapi("GET", path, group=self.GROUP_LIGHT)
            status = self._read_status(response, path, attempt)
            if status is not None:
                return status
            await asyncio.sleep(self.backoff_factor * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def acancel_ringout(self, ringout_id: str) -> bool:
        """Async :meth:`cancel_ringout`."""
        path = self._ringout_path(ringout_id)
        return await self._aapi("DELETE", path, group=self.GROUP_HEAVY) is not None

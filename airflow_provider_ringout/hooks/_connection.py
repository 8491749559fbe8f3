"""
A ``ringcentral`` connection, checked and normalised: credentials, the server URL rules, the extra fields and the
legacy ``jwt`` key warning. No I/O: parsing only (secrets are registered with the masker as soon as they are read).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_ringout import JWT_FIELD, PRODUCTION_SERVER_URL
from airflow_provider_ringout._process import process_cache
from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.phone import validate_e164

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

LEGACY_JWT_FIELD = "jwt"  # the JWT's extra key before JWT_FIELD: still read, with a warning (Airflow shows it)

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


def is_loopback(hostname: str) -> bool:
    """Whether ``hostname`` is this machine (``localhost`` or a loopback address)."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


_USERINFO = re.compile(r"(//|^)[^/?#@\s]*@")


def _without_userinfo(text: str) -> str:
    """``text`` with any ``user:password@`` part of a URL replaced by ``***@``."""
    return _USERINFO.sub(r"\1***@", text)


_DEFAULT_PORTS = {"https": 443, "http": 80}


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
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise RingCentralConfigError(
            f"{where}: plain http:// is refused for {parts.hostname!r} because credentials would travel in clear "
            f"text; use https:// (http:// is allowed only to loopback, for the local emulator)."
        )
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    final_port = url_port or port
    if final_port and final_port != _DEFAULT_PORTS[parts.scheme]:  # 443 typed for the Test button changes nothing
        netloc = f"{netloc}:{final_port}"
    return f"{parts.scheme}://{netloc}"


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


_legacy_jwt_warned: set[str] = process_cache(__name__, "_legacy_jwt_warned", set())  # said once per process
_legacy_jwt_lock = threading.Lock()


def _warn_legacy_jwt_key(conn_id: str) -> None:
    with _legacy_jwt_lock:
        if _legacy_jwt_warned:
            return
        _legacy_jwt_warned.add(conn_id)
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


def _read_extra(conn: Any, conn_id: str) -> dict[str, Any]:
    """The connection's extra as a dict (Airflow hands it over as JSON text or already parsed)."""
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
    return extra


def _request_timeout(extra: Mapping[str, Any], conn_id: str) -> float:
    """The extra field ``request_timeout``: seconds in (0, 600], default 30."""
    timeout_raw = _extra_field(extra, "request_timeout")
    try:
        request_timeout = float(timeout_raw) if timeout_raw is not None else 30.0
    except (TypeError, ValueError):
        request_timeout = -1.0
    if not 0 < request_timeout <= 600:
        raise RingCentralConfigError(
            f"Connection {conn_id!r}: extra field 'request_timeout' must be a number of seconds in (0, 600]."
        )
    return request_timeout


def parse_connection(conn: Any, *, mask: Callable[[str | None], None] = _mask) -> RingCentralCredentials:
    """Check a ``ringcentral`` connection field by field; each problem names the field and the fix."""
    conn_id = getattr(conn, "conn_id", None) or "ringcentral_default"
    extra = _read_extra(conn, conn_id)
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
    request_timeout = _request_timeout(extra, conn_id)
    return RingCentralCredentials(
        conn_id=conn_id,
        server_url=normalize_server_url(conn.host, conn.port, conn_id=conn_id),
        client_id=client_id,
        client_secret=client_secret,
        jwt=jwt,
        from_number=from_number,
        request_timeout=request_timeout,
    )

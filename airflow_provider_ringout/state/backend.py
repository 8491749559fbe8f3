"""
Which shared state a hook uses: ``[ringcentral] shared_state = file`` (host-wide files) or ``redis`` (cluster-wide).

The access token is sealed at rest by either backend. ``redis`` is imported only when chosen; a Redis that cannot
be used makes the Redis backend fall back to the host's files (see :mod:`._redis_state`).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.hooks._shared_state import RatePacer, TokenCache

if TYPE_CHECKING:
    from airflow_provider_ringout.hooks._redis_state import RedisRatePacer, RedisTokenCache
    from airflow_provider_ringout.hooks._shared_state import StateDir
    from airflow_provider_ringout.hooks.ringcentral import RingCentralCredentials
    from airflow_provider_ringout.notifications._dedup import FileClaims, RedisClaims

DEFAULT_REDIS_CONN_ID = "redis_default"
# What to do when Redis cannot be used: said once by the fallback warning, and by the connection's Test button.
REDIS_FIX = (
    "to fix it, create the Airflow connection {conn_id!r} (type redis) or set [ringcentral] redis_conn_id to "
    "yours, and make that Redis reachable from every Airflow host; or set [ringcentral] shared_state = file"
)
CLAIMS_NAMESPACE = "alert-claims"  # alert claims are per incident, not per credential (as in the host's files)


class SharedState(str, Enum):
    """Values of ``[ringcentral] shared_state``."""

    FILE = "file"
    REDIS = "redis"


def configured_backend() -> tuple[SharedState, str]:
    """``[ringcentral] shared_state`` and ``redis_conn_id``; an unknown backend is a clear configuration error."""
    from airflow.providers.common.compat.sdk import conf

    raw = (conf.get("ringcentral", "shared_state", fallback="") or SharedState.FILE.value).strip().lower()
    try:
        backend = SharedState(raw)
    except ValueError:
        raise RingCentralConfigError(
            f"[ringcentral] shared_state must be 'file' or 'redis', not {raw!r}; "
            "set AIRFLOW__RINGCENTRAL__SHARED_STATE to one of them"
        ) from None
    conn_id = (conf.get("ringcentral", "redis_conn_id", fallback="") or DEFAULT_REDIS_CONN_ID).strip()
    return backend, conn_id


def shared_state(
    state: StateDir, credentials: RingCentralCredentials
) -> tuple[TokenCache | RedisTokenCache, RatePacer | RedisRatePacer]:
    """The token cache and rate pacer of ``credentials``, on the configured backend."""
    from airflow_provider_ringout.hooks._token_crypto import TokenSealer

    key = credentials.cache_key
    sealer = TokenSealer(key, credentials.client_secret, credentials.jwt)
    tokens, pacer = TokenCache(state, key, sealer), RatePacer(state, key)
    backend, conn_id = configured_backend()
    if backend is SharedState.FILE:
        return tokens, pacer
    from airflow_provider_ringout.hooks._redis_state import RedisLink, RedisRatePacer, RedisTokenCache

    link = RedisLink(conn_id, key)
    return RedisTokenCache(tokens, link, sealer), RedisRatePacer(pacer, link)


def claim_store(state: StateDir) -> FileClaims | RedisClaims:
    """Where alert claims (``dedup_key``) live, on the configured backend; the host's files back Redis up."""
    from airflow_provider_ringout.notifications._dedup import FileClaims

    files = FileClaims(state)
    backend, conn_id = configured_backend()
    if backend is SharedState.FILE:
        return files
    from airflow_provider_ringout.hooks._redis_state import RedisLink
    from airflow_provider_ringout.notifications._dedup import RedisClaims

    return RedisClaims(RedisLink(conn_id, CLAIMS_NAMESPACE), files)


def describe_shared_state(tokens: TokenCache | RedisTokenCache) -> str:
    """
    Which shared state the hook uses, for the connection's Test button; for Redis, whether it answers and holds
    this connection's token (read and opened, never shown).

    :param tokens: the hook's token cache, on the configured backend.
    """
    backend, conn_id = configured_backend()
    if backend is SharedState.FILE:
        return (
            "Shared state: this host's files ([ringcentral] shared_state = file): logins and the rate budget are "
            "shared by the tasks of one host only."
        )
    from airflow_provider_ringout.hooks._redis_state import RedisTokenCache, RedisUnavailable, _client

    if not isinstance(tokens, RedisTokenCache):  # pragma: no cover (the backend was read just now)
        return "Shared state: this host's files."
    try:
        client = _client(conn_id)
        client.ping()
        raw = client.get(tokens._redis_key)
    except RedisUnavailable as exc:
        reason = str(exc)
    except Exception as exc:  # redis-py's errors, sockets: no Redis to talk to
        reason = type(exc).__name__
    else:
        held = tokens.sealer.open(tokens._load(raw)) is not None
        return f"Shared state: Redis (connection {conn_id!r}) answers, and " + (
            "holds the cluster's token for this connection."
            if held
            else "holds no token for this connection yet (this host could not store it there)."
        )
    return (
        f"Shared state: [ringcentral] shared_state = redis, but Redis ([ringcentral] redis_conn_id = {conn_id!r}) "
        f"cannot be used ({reason}): each host falls back to its own files, with its own logins and rate budget; "
        + REDIS_FIX.format(conn_id=conn_id)
        + "."
    )

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

"""
The token cache and rate pacer of a credential on the configured shared state (:mod:`.config`): the host's files
(``file``) or the cluster's Redis (``redis``), and what the connection's Test button says about it.

The access token is sealed at rest by either backend. ``redis`` is imported only when chosen; a Redis that cannot
be used makes the Redis backend fall back to the host's files (see :mod:`.redis`). Alert claims pick their store
the same way, in :mod:`.claims`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from airflow_provider_ringout.state.config import REDIS_FIX, SharedState, configured_backend
from airflow_provider_ringout.state.pacer import RatePacer
from airflow_provider_ringout.state.sealing import TokenSealer
from airflow_provider_ringout.state.tokens import TokenCache

if TYPE_CHECKING:
    from airflow_provider_ringout.state.files import StateDir
    from airflow_provider_ringout.state.redis import RedisRatePacer, RedisTokenCache


class Credential(Protocol):
    """What the state needs of a connection's credentials (the hook's ``RingCentralCredentials``)."""

    @property
    def cache_key(self) -> str: ...

    @property
    def client_secret(self) -> str: ...

    @property
    def jwt(self) -> str: ...


def shared_state(
    state: StateDir, credentials: Credential
) -> tuple[TokenCache | RedisTokenCache, RatePacer | RedisRatePacer]:
    """The token cache and rate pacer of ``credentials``, on the configured backend."""
    key = credentials.cache_key
    sealer = TokenSealer(key, credentials.client_secret, credentials.jwt)
    tokens, pacer = TokenCache(state, key, sealer), RatePacer(state, key)
    backend, conn_id = configured_backend()
    if backend is SharedState.FILE:
        return tokens, pacer
    from airflow_provider_ringout.state.redis import RedisLink, RedisRatePacer, RedisTokenCache

    link = RedisLink(conn_id, key)
    return RedisTokenCache(tokens, link, sealer), RedisRatePacer(pacer, link)


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
    from airflow_provider_ringout.state.redis import RedisTokenCache, RedisUnavailable, _client

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

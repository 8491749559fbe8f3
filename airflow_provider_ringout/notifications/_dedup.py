"""
Claims with an expiry: "the first to claim key K within W seconds wins", for grouping alerts of one incident.

:class:`FileClaims` keeps the claims in the provider's host-wide state folder (one small JSON file guarded by an
``flock``, see ``hooks/_shared_state.py``), so every process of the host sees them. :class:`MemoryClaims` keeps
them in this process only. :class:`RedisClaims` keeps them in the cluster's Redis (``[ringcentral] shared_state =
redis``), so every host sees them, and falls back to the host's files while Redis is unwell. All implement
:class:`ClaimStore`. Keys are hashed before they are stored: an alert key may hold phone numbers, and neither the
file nor Redis may.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

from airflow_provider_ringout.exceptions import RingCentralConfigError

if TYPE_CHECKING:
    from airflow_provider_ringout.hooks._redis_state import RedisLink
    from airflow_provider_ringout.hooks._shared_state import StateDir

log = logging.getLogger(__name__)

CLAIMS_FILE = "alert-claims"
MAX_CLAIMS = 4096  # bounded, so a long-lived host never grows the file or the memory


def claim_id(key: str) -> str:
    """The stored form of a key: a digest (the key itself may name phone numbers)."""
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]


def _claim_in(claims: dict[str, float], key: str, window: float, now: float) -> bool:
    """Claim ``key`` in ``claims`` (id -> expiry, oldest first); drop expired and surplus entries."""
    for stale in [k for k, expires in claims.items() if not isinstance(expires, (int, float)) or expires <= now]:
        del claims[stale]
    ident = claim_id(key)
    if ident in claims:
        return False
    claims[ident] = now + window
    while len(claims) > MAX_CLAIMS:
        del claims[next(iter(claims))]
    return True


class ClaimStore(Protocol):
    """Where claims live. ``claim`` is atomic for every process that shares the store."""

    def claim(self, key: str, window: float) -> bool:
        """
        Claim ``key`` for ``window`` seconds.

        :param key: what identifies the incident.
        :param window: seconds the claim holds.
        :return: True if this caller got the claim, False if someone holds it (unexpired).
        :raises OSError: the store is unusable (the caller falls back to another store).
        """


class MemoryClaims:
    """Claims held by this process only (every thread of it)."""

    def __init__(self) -> None:
        self._claims: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, key: str, window: float) -> bool:
        """See :meth:`ClaimStore.claim`; never raises."""
        with self._lock:
            return _claim_in(self._claims, key, window, time.monotonic())


class FileClaims:
    """Claims shared by every process of the host through a :class:`StateDir` (wall-clock expiries)."""

    def __init__(self, state: StateDir) -> None:
        self.state = state

    def claim(self, key: str, window: float) -> bool:
        """See :meth:`ClaimStore.claim`; raises ``OSError`` when the folder cannot be used for sharing."""
        if not self.state.usable:
            raise OSError(f"state folder {self.state.path} is not usable")
        with self.state.locked(CLAIMS_FILE):
            data = self.state.read(CLAIMS_FILE) or {}
            raw = data.get("claims")
            claims = dict(raw) if isinstance(raw, dict) else {}
            won = _claim_in(claims, key, window, time.time())
            if won:
                self.state.write(CLAIMS_FILE, {"claims": claims})
                if self.state.read(CLAIMS_FILE) is None:  # the write went nowhere: the claim would not be shared
                    raise OSError(f"could not write {CLAIMS_FILE} in {self.state.path}")
            return won


class RedisClaims:
    """
    Claims shared by every host of a cluster: one atomic ``SET <key> 1 NX PX <window>`` in Redis.

    While Redis cannot be used, the host's files hold the claims (the Redis backend's one WARNING per process says
    so); a claim won in Redis is copied to the files too, so the host still groups its alerts if Redis dies later.

    :param link: the Redis connection (and the switch to the files while Redis fails), see ``hooks/_redis_state.py``.
    :param files: the host's claims, used while Redis fails.
    """

    def __init__(self, link: RedisLink, files: FileClaims) -> None:
        self.link = link
        self.files = files

    def redis_key(self, key: str) -> str:
        """The Redis key of a claim: the link's namespace and the key's digest (never the key itself)."""
        return f"{self.link.prefix}:claim:{claim_id(key)}"

    def claim(self, key: str, window: float) -> bool:
        """See :meth:`ClaimStore.claim`; raises ``OSError`` only when Redis and the host's folder both fail."""
        from airflow_provider_ringout.hooks._redis_state import RedisUnavailable

        try:
            with self.link.guard() as redis:
                won = bool(redis.set(self.redis_key(key), "1", nx=True, px=max(1, math.ceil(window * 1000))))
        except RedisUnavailable:
            return self.files.claim(key, window)
        if won:
            with contextlib.suppress(OSError):  # only a copy: Redis holds the claim
                self.files.claim(key, window)
        return won


def _shared_store(state: StateDir) -> ClaimStore:
    """The claim store of ``[ringcentral] shared_state``; the host's files if the setting is invalid."""
    from airflow_provider_ringout.hooks._backend import claim_store

    try:
        return claim_store(state)
    except RingCentralConfigError:  # the hook refuses the setting, naming it, before any call is placed
        return FileClaims(state)


_memory = MemoryClaims()
_warned: set[str] = set()
_warned_lock = threading.Lock()


def claim(key: str, window: float, state: StateDir | None) -> bool:
    """
    Claim ``key`` for ``window`` seconds host-wide, or cluster-wide with ``[ringcentral] shared_state = redis``;
    degrade to this process alone (one WARNING) if the shared state is unusable, so an alert is never lost because
    a disk is unwell (a Redis that is unwell degrades to the host's files first).

    The claim is always recorded in this process too, so a folder that breaks later cannot let this process
    alert twice.

    :param key: what identifies the incident.
    :param window: seconds the claim holds.
    :param state: the host-wide state folder (also the fallback of Redis), or None to use this process alone.
    :return: True if the caller should alert.
    """
    local = _memory.claim(key, window)
    if state is None:
        return local
    try:
        shared = _shared_store(state).claim(key, window)
    except OSError as exc:
        with _warned_lock:
            first = str(state.path) not in _warned
            _warned.add(str(state.path))
        if first:
            log.warning(
                "Alert grouping cannot use the state folder %s (%s); grouping alerts in this process only.",
                state.path,
                exc,
            )
        return local
    return shared and local

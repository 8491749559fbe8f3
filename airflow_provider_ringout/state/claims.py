"""
Alert claims: one escalation per incident, and no claim that can silence an alert.

A claim is a lease for the attempt. :func:`acquire` takes it for ``lease`` seconds (an owner token and an expiry),
or says who holds it (:class:`Held`). The escalation renews it before each number's call
(:meth:`Lease.renew`), so a process that dies mid-escalation loses it within about one lease and the next alert
rings. Once the escalation was delivered (acknowledged, connected, or a call left "not confirmed") the claim is
kept for ``dedup_window`` (:meth:`Lease.deliver`); when nobody was called or reached it is dropped at once
(:meth:`Lease.release`). Only the owner renews, delivers or releases it.

Where claims live: :class:`FileClaims` in the provider's host-wide state folder (one JSON file under an ``flock``,
wall-clock expiries), :class:`RedisClaims` in the cluster's Redis (``[ringcentral] shared_state = redis``; atomic
scripts, Redis's clock, a copy in the host's files for when Redis dies), and :class:`MemoryClaims` in this process
(always, so a store that breaks later cannot let this process alert twice). A store that fails degrades to this
process alone with one WARNING: an alert may then ring twice, never not at all.

Claim ids are an HMAC-SHA256 of the key under a secret derived from the connection's client secret and JWT
(:func:`.sealing.claim_secret`): the same connection computes the same id on every host, and a reader
of Redis or of the state folder cannot test guesses of a key (which may hold phone numbers) against them.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_ringout._process import process_cache
from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.state.config import SharedState, configured_backend

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_ringout.state.files import StateDir
    from airflow_provider_ringout.state.redis import RedisLink

log = logging.getLogger(__name__)

CLAIMS_FILE = "alert-claims"
CLAIMS_NAMESPACE = "alert-claims"  # in Redis: claims are per incident, not per credential (as in the host's files)
MAX_CLAIMS = 4096  # bounded, so a long-lived host never grows the file or the memory
# Added to per_number_timeout for a lease: placing a call (a login, a pacer wait, a 429) fits inside it.
LEASE_MARGIN = 15.0


@dataclass(frozen=True)
class Held:
    """:func:`acquire` could not take the claim."""

    delivered: bool  # True: delivered within dedup_window; False: another live holder is escalating now


class _Action(enum.Enum):
    RENEW = "renew"
    DELIVER = "deliver"
    RELEASE = "release"


def claim_id(key: str, secret: bytes) -> str:
    """The stored form of a key: an HMAC under the connection's claim secret (the key may name phone numbers)."""
    return hmac.new(secret, key.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:32]


def _live(entry: Any, now: float) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("owner"), str)
        and isinstance(entry.get("until"), (int, float))
        and entry["until"] > now
    )


def _take(claims: dict[str, Any], ident: str, owner: str, seconds: float, now: float, *, force: bool) -> Held | None:
    """Take ``ident`` in ``claims`` (id -> entry, oldest first), or say who holds it; drop stale and surplus entries."""
    for stale in [k for k, entry in claims.items() if not _live(entry, now)]:
        del claims[stale]
    entry = claims.get(ident)
    if entry is not None and not force:
        return Held(delivered=entry.get("delivered") is True)
    claims[ident] = {"owner": owner, "until": now + seconds, "delivered": False}
    while len(claims) > MAX_CLAIMS:
        del claims[next(iter(claims))]
    return None


def _update(claims: dict[str, Any], ident: str, owner: str, action: _Action, seconds: float, now: float) -> bool:
    """Apply ``action`` to ``ident`` if ``owner`` holds it (live); whether it did."""
    entry = claims.get(ident)
    if not isinstance(entry, dict) or not _live(entry, now) or entry["owner"] != owner:
        return False
    if action is _Action.RELEASE:
        del claims[ident]
    else:
        claims[ident] = {"owner": owner, "until": now + seconds, "delivered": action is _Action.DELIVER}
    return True


class ClaimStore(Protocol):
    """Where claims live. Each method is atomic for every process that shares the store."""

    def take(self, ident: str, owner: str, seconds: float) -> Held | None:
        """
        Take claim ``ident`` for ``owner`` for ``seconds``.

        :return: None if taken, else who holds it.
        :raises OSError: the store is unusable (the caller degrades to this process).
        """

    def update(self, ident: str, owner: str, action: _Action, seconds: float) -> bool:
        """Renew, deliver (keep ``seconds`` from now) or release ``ident`` if ``owner`` holds it; whether it did."""


class MemoryClaims:
    """Claims held by this process only (every thread of it), on the monotonic clock."""

    def __init__(self) -> None:
        self._claims: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, ident: str, owner: str, seconds: float) -> Held | None:
        """See :meth:`ClaimStore.take`; never raises."""
        with self._lock:
            return _take(self._claims, ident, owner, seconds, time.monotonic(), force=False)

    def update(self, ident: str, owner: str, action: _Action, seconds: float) -> bool:
        """See :meth:`ClaimStore.update`."""
        with self._lock:
            return _update(self._claims, ident, owner, action, seconds, time.monotonic())

    def __len__(self) -> int:
        return len(self._claims)

    def clear(self) -> None:
        """Forget every claim (see :func:`airflow_provider_ringout.state.reset_process_state`)."""
        with self._lock:
            self._claims.clear()


class FileClaims:
    """Claims shared by every process of the host through a :class:`StateDir` (wall-clock expiries)."""

    def __init__(self, state: StateDir) -> None:
        self.state = state

    def take(self, ident: str, owner: str, seconds: float, *, force: bool = False) -> Held | None:
        """See :meth:`ClaimStore.take`; ``force`` copies a claim won elsewhere (in Redis) over whatever is here."""
        held: Held | None = None

        def change(claims: dict[str, Any], now: float) -> bool:
            nonlocal held
            held = _take(claims, ident, owner, seconds, now, force=force)
            return held is None

        self._change(change)
        return held

    def update(self, ident: str, owner: str, action: _Action, seconds: float) -> bool:
        """See :meth:`ClaimStore.update`; raises ``OSError`` when the folder cannot be used for sharing."""
        return self._change(lambda claims, now: _update(claims, ident, owner, action, seconds, now))

    def _change(self, change: Any) -> bool:
        """Run ``change(claims, now)`` under the host-wide lock and write the claims back if it says it changed them."""
        if not self.state.usable:
            raise OSError(f"state folder {self.state.path} is not usable")
        with self.state.locked(CLAIMS_FILE):
            data = self.state.read(CLAIMS_FILE) or {}
            raw = data.get("claims")
            claims = dict(raw) if isinstance(raw, dict) else {}
            changed = bool(change(claims, time.time()))
            if changed:
                self.state.write(CLAIMS_FILE, {"claims": claims})
                if self.state.read(CLAIMS_FILE) is None:  # the write went nowhere: the claim would not be shared
                    raise OSError(f"could not write {CLAIMS_FILE} in {self.state.path}")
            return changed


# A Redis claim is "<owner>|L" (a lease) or "<owner>|D" (delivered), with a TTL on Redis's clock.
# KEYS[1] claim; ARGV[1] value, ARGV[2] TTL ms. Returns false when taken, else the holder's value.
_TAKE = """
local v = redis.call('GET', KEYS[1])
if v and string.find(v, '|', 1, true) then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# KEYS[1] claim; ARGV[1] '<owner>|', ARGV[2] new value ('' drops the claim), ARGV[3] TTL ms. 1 if the owner held it.
_UPDATE = """
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
"""


class RedisClaims:
    """
    Claims shared by every host of a cluster, in Redis; while Redis cannot be used, the host's files hold them (the
    Redis backend's one WARNING per process says so). Every change made in Redis is copied to the host's files
    too, so the host still groups its alerts, and the owner can still deliver or release, if Redis dies later.

    :param link: the Redis connection (and the switch to the files while Redis fails), see :mod:`.redis`.
    :param files: the host's claims, used while Redis fails.
    """

    def __init__(self, link: RedisLink, files: FileClaims) -> None:
        self.link = link
        self.files = files

    def redis_key(self, ident: str) -> str:
        """The Redis key of a claim: the link's namespace and the claim id (never the key itself)."""
        return f"{self.link.prefix}:claim:{ident}"

    def take(self, ident: str, owner: str, seconds: float) -> Held | None:
        """See :meth:`ClaimStore.take`; raises ``OSError`` only when Redis and the host's folder both fail."""
        from airflow_provider_ringout.state.redis import RedisUnavailable

        try:
            with self.link.guard() as redis:
                holder = redis.eval(_TAKE, 1, self.redis_key(ident), f"{owner}|L", _ms(seconds))
        except RedisUnavailable:
            return self.files.take(ident, owner, seconds)
        if holder:
            text = holder.decode() if isinstance(holder, bytes) else str(holder)
            return Held(delivered=text.endswith("|D"))
        with contextlib.suppress(OSError):  # only a copy: Redis holds the claim
            self.files.take(ident, owner, seconds, force=True)
        return None

    def update(self, ident: str, owner: str, action: _Action, seconds: float) -> bool:
        """See :meth:`ClaimStore.update`."""
        from airflow_provider_ringout.state.redis import RedisUnavailable

        value = "" if action is _Action.RELEASE else f"{owner}|{'D' if action is _Action.DELIVER else 'L'}"
        try:
            with self.link.guard() as redis:
                done = bool(redis.eval(_UPDATE, 1, self.redis_key(ident), f"{owner}|", value, _ms(seconds)))
        except RedisUnavailable:
            return self.files.update(ident, owner, action, seconds)
        with contextlib.suppress(OSError):
            self.files.update(ident, owner, action, seconds)
        return done


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def claim_store(state: StateDir) -> FileClaims | RedisClaims:
    """
    Where alert claims (``dedup_key``) live, on ``[ringcentral] shared_state``; the host's files back Redis up, and
    hold the claims when the setting is invalid.
    """
    files = FileClaims(state)
    try:
        backend, conn_id = configured_backend()
    except RingCentralConfigError:  # the hook refuses the setting, naming it, before any call is placed
        return files
    if backend is SharedState.FILE:
        return files
    from airflow_provider_ringout.state.redis import RedisLink

    return RedisClaims(RedisLink(conn_id, CLAIMS_NAMESPACE), files)


_memory = process_cache(__name__, "_memory", MemoryClaims())  # this process's claims, always kept
_warned: set[str] = process_cache(__name__, "_warned", set())  # state folders whose fallback was said
_warned_lock = threading.Lock()


def _degraded(state: StateDir, exc: OSError) -> None:
    """One WARNING per state folder and process: claims are kept in this process only."""
    with _warned_lock:
        first = str(state.path) not in _warned
        _warned.add(str(state.path))
    if first:
        log.warning(
            "Alert grouping cannot use the state folder %s (%s); grouping alerts in this process only.", state.path, exc
        )


class Lease:
    """
    A claim this process holds for one escalation (see the module docstring). Renew, deliver and release act only
    while this owner holds it; a store error is logged once and never raised.
    """

    def __init__(
        self, claim_id: str, owner: str, window: float, state: StateDir | None, secret: bytes, *, shared: bool
    ) -> None:
        self.claim_id = claim_id
        self._owner = owner
        self._window = float(window)
        self._state = state
        self._shared = shared and state is not None
        self._check = _check(secret, claim_id, owner, self._window)
        self._done = False

    def __repr__(self) -> str:
        return f"Lease(claim_id={self.claim_id!r})"

    def renew(self, seconds: float) -> None:
        """Extend the lease to ``seconds`` from now (before each number's call)."""
        if not self._done:
            self._apply(_Action.RENEW, seconds)

    def deliver(self) -> None:
        """The escalation was delivered: keep the claim for ``dedup_window`` from now."""
        if not self._done:
            self._done = True
            self._apply(_Action.DELIVER, self._window)

    def release(self) -> None:
        """Nobody was called or reached: drop the claim at once, so the next alert rings."""
        if not self._done:
            self._done = True
            self._apply(_Action.RELEASE, 0.0)

    def settle(self, delivered: bool) -> None:
        """After the escalation: kept for ``dedup_window`` if it was delivered, else released (the next alert rings)."""
        if delivered:
            self.deliver()
        else:
            self.release()

    def _apply(self, action: _Action, seconds: float) -> None:
        _memory.update(self.claim_id, self._owner, action, seconds)
        if not self._shared or self._state is None:
            return
        try:
            claim_store(self._state).update(self.claim_id, self._owner, action, seconds)
        except OSError as exc:
            _degraded(self._state, exc)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form (for a trigger or XCom): no secret, only a check that it was made by this connection."""
        return {"claim_id": self.claim_id, "owner": self._owner, "window": self._window, "check": self._check}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], state: StateDir | None, secret: bytes) -> Lease:
        """
        The lease :meth:`to_dict` described, in this process.

        :raises ValueError: ``data`` is malformed or was not made with this connection's secret.
        """
        try:
            ident, owner, window = str(data["claim_id"]), str(data["owner"]), float(data["window"])
            check = str(data["check"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a claim lease ({type(exc).__name__})") from None
        if not hmac.compare_digest(check, _check(secret, ident, owner, window)):
            raise ValueError("the claim lease was not made with this connection")
        return cls(ident, owner, window, state, secret, shared=True)


def _check(secret: bytes, ident: str, owner: str, window: float) -> str:
    return hmac.new(secret, f"lease|{ident}|{owner}|{window!r}".encode(), hashlib.sha256).hexdigest()[:32]


def acquire(key: str, *, window: float, lease: float, state: StateDir | None, secret: bytes) -> Lease | Held:
    """
    Take the claim of incident ``key`` for ``lease`` seconds, host-wide (cluster-wide with ``[ringcentral]
    shared_state = redis``), or say who holds it. A shared state that cannot be used degrades to this process
    alone (one WARNING), so an alert is never lost because a disk or Redis is unwell.

    :param key: what identifies the incident.
    :param window: seconds the claim is kept once delivered (``dedup_window``).
    :param lease: seconds the claim holds before it is renewed (about one ``per_number_timeout``).
    :param state: the host-wide state folder (also the fallback of Redis), or None to use this process alone.
    :param secret: the connection's claim secret (:func:`.sealing.claim_secret`).
    """
    ident = claim_id(key, secret)
    owner = secrets.token_hex(16)
    held = _memory.take(ident, owner, lease)
    if held is not None:
        return held
    shared = False
    if state is not None:
        try:
            held = claim_store(state).take(ident, owner, lease)
        except OSError as exc:
            _degraded(state, exc)
        else:
            if held is not None:
                _memory.update(ident, owner, _Action.RELEASE, 0.0)
                return held
            shared = True
    return Lease(ident, owner, window, state, secret, shared=shared)

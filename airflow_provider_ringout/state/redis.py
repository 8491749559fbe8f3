"""
Cluster-wide state in Redis (``[ringcentral] shared_state = redis``): one token and one rate budget per credential.

The same interface as the host-wide files (:class:`.tokens.TokenCache`, :class:`.pacer.RatePacer`),
for Airflow clusters whose task processes run on several hosts (Celery workers, Kubernetes pods):

- Token: a sealed record (AES-GCM, see :mod:`.sealing`) under ``ringout:{<credential hash>}:token`` with a
  TTL of the token's lifetime. A login happens under a Redis lock (``SET NX PX`` with a random owner value,
  released only by its owner) with a short expiry (:data:`LOCK_TTL`) that its owner renews while it logs in, so
  a host that dies holding it stalls the others a few seconds at most. Other hosts wait for the token (saying
  so once), bounded by :data:`LOGIN_WAIT`. Renewal ahead of expiry is done by whichever host takes the lock;
  the others keep using the still-valid token meanwhile. A
  token refused with 401 is replaced only if it is still the stored one (compare-and-set), so K hosts seeing
  the same 401 renew once.
- Rate budget: per group, a sliding window of sends (a sorted set), the limits learned from RingCentral's
  ``X-Rate-Limit-*`` headers and a ``blocked_until`` set by any host's 429, all changed atomically by Lua
  scripts on the Redis clock. Hosts that must wait queue in arrival order, and each slot that frees goes to the
  longest-waiting caller, so concurrent polls share the Light budget fairly and none starves.

Redis unreachable or failing (even in the middle of a wait): the host's file backend takes over, with one WARNING
per process naming ``[ringcentral] shared_state`` and the connection id; Redis is tried again after
:data:`RETRY_REDIS_AFTER` seconds. Redis restarted or flushed: the token is missing, so the next request logs in
once (under the lock) and goes on. ``redis`` is imported only when this module is used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ringout._process import process_cache
from airflow_provider_ringout._wait_end import lock_wait
from airflow_provider_ringout.state.config import REDIS_FIX
from airflow_provider_ringout.state.files import URGENT_LOCK_WAIT, urgent
from airflow_provider_ringout.state.pacer import QUIET
from airflow_provider_ringout.state.tokens import TokenCache

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from airflow_provider_ringout.state.pacer import RatePacer
    from airflow_provider_ringout.state.sealing import TokenSealer
    from airflow_provider_ringout.state.tokens import Token

log = logging.getLogger(__name__)

RETRY_REDIS_AFTER = 30.0  # seconds on the file backend before Redis is tried again
SOCKET_TIMEOUT = 5.0  # a Redis that stops answering is given up on after this, never waited on forever
LOCK_TTL = 5.0  # the login lock's expiry: a dead owner stalls the other hosts this long at most
LOCK_RENEW_EVERY = LOCK_TTL / 3  # the owner renews its lock this often while it logs in
LOGIN_WAIT = 95.0  # a live owner's login (even one waiting out the Auth penalty) ends well within this
TOKEN_POLL = 0.1  # seconds between looks at Redis while another host logs in
WAITER_STALE = 25.0  # a queued caller not seen for this long gave up (callers re-ask at least every 10 s)

_clients: dict[str, Any] = process_cache(__name__, "_clients", {})  # conn id -> its client
_clients_guard = threading.Lock()
_warned: set[str] = process_cache(__name__, "_warned", set())  # conn ids whose fallback was said


class RedisUnavailable(Exception):
    """Redis could not be used; the caller falls back to the host's files."""


def _client(conn_id: str) -> Any:
    """One Redis client per connection id and process, built by the Redis provider's hook, with socket timeouts."""
    with _clients_guard:
        if conn_id in _clients:
            return _clients[conn_id]
        try:
            from airflow.providers.redis.hooks.redis import RedisHook
        except ImportError:
            raise RedisUnavailable(
                "apache-airflow-providers-redis is not installed (pip install 'airflow-provider-ringout[redis]')"
            ) from None
        try:
            client = RedisHook(redis_conn_id=conn_id).get_conn()
        except Exception as exc:  # a missing or malformed connection: say which, fall back
            raise RedisUnavailable(f"the connection is missing or malformed: {type(exc).__name__}") from None
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # RedisHook sets no timeouts, and redis-py retries with back-off for seconds: a dead Redis must cost a
        # task one quick failure (then the files take over), not a hang. One retry still rides over a reconnect.
        retry = Retry(NoBackoff(), 1)
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            pool.connection_kwargs.setdefault("socket_timeout", SOCKET_TIMEOUT)
            pool.connection_kwargs.setdefault("socket_connect_timeout", SOCKET_TIMEOUT)
            pool.connection_kwargs["retry"] = retry
        if hasattr(client, "set_retry"):
            client.set_retry(retry)
        _clients[conn_id] = client
        return client


class RedisLink:
    """
    The Redis client of one connection id, and the switch to the host's files while Redis is unwell.

    :param conn_id: the ``redis`` Airflow connection (``[ringcentral] redis_conn_id``).
    :param key: the credential's cache key; every Redis key is namespaced by it (a hash tag, for Redis Cluster).
    """

    # conn id -> when (monotonic) this process tries Redis again after a failure
    _down_until: ClassVar[dict[str, float]] = process_cache(__name__, "RedisLink._down_until", {})

    def __init__(self, conn_id: str, key: str) -> None:
        self.conn_id = conn_id
        self.prefix = f"ringout:{{{key}}}"

    def usable(self) -> bool:
        """False while this process is on the file backend after a failure (re-tried every 30 s)."""
        return time.monotonic() >= self._down_until.get(self.conn_id, 0.0)

    @contextlib.contextmanager
    def guard(self) -> Iterator[Any]:
        """Yield the client; any Redis or socket failure becomes :class:`RedisUnavailable` (and is reported once)."""
        if not self.usable():
            raise RedisUnavailable("recently failed")
        try:
            from redis.exceptions import RedisError
        except ImportError:
            self._failed("the 'redis' package is not installed (pip install 'airflow-provider-ringout[redis]')")
            raise RedisUnavailable("no redis package") from None
        try:
            yield _client(self.conn_id)
        except RedisUnavailable as exc:
            self._failed(str(exc))
            raise
        except (RedisError, OSError) as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            raise RedisUnavailable(type(exc).__name__) from None

    def _failed(self, reason: str) -> None:
        self._down_until[self.conn_id] = time.monotonic() + RETRY_REDIS_AFTER
        if self.conn_id not in _warned:
            _warned.add(self.conn_id)
            log.warning(
                "[ringcentral] shared_state = redis, but Redis ([ringcentral] redis_conn_id = %r) cannot be used "
                "(%s); using this host's files instead: logins, the rate budget, alert grouping and escalations' "
                "saved progress are shared per host only until Redis is back (said once per process); %s.",
                self.conn_id,
                reason,
                REDIS_FIX.format(conn_id=self.conn_id),
            )


# KEYS[1] token key; ARGV[1] the value read before logging in ('' if none), ARGV[2] new value, ARGV[3] TTL ms.
# Stores the new token only if the stored one is still the one that was read; else returns the newer one.
_STORE_IF_UNCHANGED = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return false
"""
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"


@contextlib.contextmanager
def _renewing(link: RedisLink, lock_key: str, owner: str) -> Iterator[None]:
    """Keep ``owner``'s lock alive (a short expiry, renewed from a thread) while the body runs."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LOCK_RENEW_EVERY):
            with contextlib.suppress(RedisUnavailable), link.guard() as redis:
                if not redis.eval(_RENEW, 1, lock_key, owner, int(LOCK_TTL * 1000)):
                    return  # no longer ours (released, or expired while Redis was unreachable)

    thread = threading.Thread(target=renew, name="ringout-login-lock", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


class RedisTokenCache:
    """
    One access token per credential for the whole cluster (the interface of :class:`TokenCache`).

    :param files: the host's file cache: the in-process token memory and the fallback when Redis fails.
    :param link: the Redis connection.
    :param sealer: encrypts the token for Redis.
    """

    def __init__(self, files: TokenCache, link: RedisLink, sealer: TokenSealer) -> None:
        self.files = files
        self.link = link
        self.sealer = sealer
        self.key = files.key
        self._redis_key = f"{link.prefix}:token"
        self._lock_key = f"{link.prefix}:login-lock"

    def peek(self) -> Token | None:
        """The in-process token if still fresh; no I/O."""
        return self.files.peek()

    def get(self, login: Callable[[], Token], *, invalid: str | None = None) -> Token:
        """
        A fresh token: from memory, else from Redis, else by one login for the cluster (see the module docstring).

        ``invalid`` is an access token the server refused; it is replaced only if it is still the stored one.
        Inside :func:`bounded_waits` (``on_kill``) a token in hand that has not expired is used rather than
        renewed, and a login lock another host holds is waited on for ``URGENT_LOCK_WAIT`` at most.
        """
        token = self.files.in_hand() if urgent() else self.peek()
        if token is not None and token.access_token != invalid:
            return token
        try:
            token = self._get(login, invalid)
        except RedisUnavailable:
            return self.files.get(login, invalid=invalid)
        TokenCache._memory[self.key] = token
        return token

    def store(self, token: Token) -> None:
        """Share a token obtained outside :meth:`get` (a connection test)."""
        try:
            with self.link.guard() as redis:
                redis.set(self._redis_key, self._dump(token), px=self._ttl_ms(token))
            TokenCache._memory[self.key] = token
        except RedisUnavailable:
            self.files.store(token)

    def _get(self, login: Callable[[], Token], invalid: str | None) -> Token:
        hurry = urgent()  # a renewal holding the lock must not hold up a cancel from on_kill
        deadline = time.monotonic() + (lock_wait(URGENT_LOCK_WAIT if hurry else LOGIN_WAIT) or 0.0)
        said = False
        while True:
            with self.link.guard() as redis:
                raw = redis.get(self._redis_key)
            stored = self.sealer.open(self._load(raw))
            usable = stored if stored is not None and stored.access_token != invalid else None
            if usable is not None and usable.fresh():
                return usable
            owner = secrets.token_hex(16)
            with self.link.guard() as redis:
                locked = redis.set(self._lock_key, owner, nx=True, px=int(LOCK_TTL * 1000))
            if locked:
                return self._login_locked(login, owner, invalid)
            if usable is not None and time.time() < usable.expires_at - (0 if hurry else 10):
                return usable  # another host is renewing ahead of expiry: this token still works meanwhile
            if time.monotonic() > deadline:  # the owner's login outlived its bound (or urgent code's): go ahead
                return login()
            if not said:
                said = True
                log.info(
                    "Another process holds the RingCentral login lock in Redis (%s); waiting for its token (a lock "
                    "whose owner died expires within %.0f s).",
                    self.link.conn_id,
                    LOCK_TTL,
                )
            time.sleep(TOKEN_POLL)

    def _login_locked(self, login: Callable[[], Token], owner: str, invalid: str | None) -> Token:
        """Log in holding the lock, unless a token arrived meanwhile; store it only over what was read (CAS)."""
        try:
            with self.link.guard() as redis:
                raw = redis.get(self._redis_key)
            stored = self.sealer.open(self._load(raw))
            if stored is not None and stored.fresh() and stored.access_token != invalid:
                return stored
            with _renewing(self.link, self._lock_key, owner):
                token = login()
            try:
                with self.link.guard() as redis:
                    newer = redis.eval(
                        _STORE_IF_UNCHANGED, 1, self._redis_key, raw or "", self._dump(token), self._ttl_ms(token)
                    )
            except RedisUnavailable:  # Redis died during the login: keep the token (on this host), log in no more
                self.files.store(token)
                return token
            other = self.sealer.open(self._load(newer)) if newer else None
            return other if other is not None and other.fresh() and other.access_token != invalid else token
        finally:
            with contextlib.suppress(RedisUnavailable), self.link.guard() as redis:
                redis.eval(_RELEASE, 1, self._lock_key, owner)

    def _dump(self, token: Token) -> str:
        return json.dumps(self.sealer.seal(token))

    @staticmethod
    def _load(raw: Any) -> dict[str, Any] | None:
        if not raw:
            return None
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            data = json.loads(raw)
            return data if isinstance(data, dict) else None
        return None

    @staticmethod
    def _ttl_ms(token: Token) -> int:
        return max(1000, int((token.expires_at - time.time()) * 1000))


# The clock is Redis's (TIME), so hosts with skewed clocks still share one window. Every key gets a TTL.
_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local meta, sent, queue, seen = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local window = tonumber(redis.call('HGET', meta, 'window') or '60')
local stored_limit = redis.call('HGET', meta, 'limit')
local limit = tonumber(stored_limit or '0')
if not stored_limit and redis.call('HGET', meta, 'unlimited') ~= '1' then limit = tonumber(ARGV[3]) end
local blocked = tonumber(redis.call('HGET', meta, 'blocked_until') or '0')
"""

# Both reserves: drop senders that stopped asking (ARGV[5] seconds stale) and sends older than the window.
_PRUNE = """
local me, slack = ARGV[1], tonumber(ARGV[2])
local span = window * (1 + slack)
local ttl = math.ceil(span * 1000) + 60000
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', seen, '-inf', now - tonumber(ARGV[5]))) do
  redis.call('ZREM', queue, gone)
  redis.call('ZREM', seen, gone)
end
redis.call('ZREMRANGEBYSCORE', sent, '-inf', now - span)
"""

# ARGV: caller id, slack (fraction of the window), assumed limit (0: none), max tracked, stale seconds.
# Returns '0' with the send recorded, or the seconds to wait (the caller keeps its place in the queue).
_RESERVE = (
    _COMMON
    + _PRUNE
    + """
local function wait(delay)
  redis.call('ZADD', queue, 'NX', now, me)
  redis.call('ZADD', seen, now, me)
  redis.call('PEXPIRE', queue, ttl)
  redis.call('PEXPIRE', seen, ttl)
  return tostring(math.max(delay, 0.05))
end
local function send()
  redis.call('ZREM', queue, me)
  redis.call('ZREM', seen, me)
  redis.call('ZADD', sent, now, me .. '@' .. string.format('%.6f', now))
  if limit <= 0 then redis.call('ZREMRANGEBYRANK', sent, 0, -(tonumber(ARGV[4]) + 1)) end
  redis.call('PEXPIRE', sent, ttl)
  redis.call('PEXPIRE', meta, 86400000)
  return '0'
end
if now < blocked then return wait(blocked - now) end
if limit <= 0 then return send() end
local n = redis.call('ZCARD', sent)
local ahead = redis.call('ZRANK', queue, me) or redis.call('ZCARD', queue)
local free = limit - n
if ahead < free then return send() end
local index = ahead - free
if index < n then
  local entry = redis.call('ZRANGE', sent, index, index, 'WITHSCORES')
  return wait(tonumber(entry[2]) + span - now)
end
return wait(span)
"""
)

# A low-priority send (the call-log reader). ARGV: caller id, slack, assumed limit, max tracked, stale seconds,
# quiet seconds (none sent in the group for that long).
# '0' with the send recorded only when a slot is free now and nobody is queued for one; else the seconds until
# asking again could succeed. The caller never joins the queue, so it never takes a queued sender's slot.
_RESERVE_IDLE = (
    _COMMON
    + _PRUNE
    + """
if now < blocked then return tostring(blocked - now) end
if redis.call('ZCARD', queue) > 0 then return '1' end
if limit > 0 then
  local quiet = tonumber(ARGV[6])
  local last = redis.call('ZRANGE', sent, -1, -1, 'WITHSCORES')
  if last[2] and now - tonumber(last[2]) < quiet then return tostring(tonumber(last[2]) + quiet - now) end
  local n = redis.call('ZCARD', sent)
  if n >= limit then
    local entry = redis.call('ZRANGE', sent, n - limit, n - limit, 'WITHSCORES')
    return tostring(math.max(tonumber(entry[2]) + span - now, 0.05))
  end
end
redis.call('ZADD', sent, now, me .. '@' .. string.format('%.6f', now))
if limit <= 0 then redis.call('ZREMRANGEBYRANK', sent, 0, -(tonumber(ARGV[4]) + 1)) end
redis.call('PEXPIRE', sent, ttl)
redis.call('PEXPIRE', meta, 86400000)
return '0'
"""
)

# ARGV: limit, window, assumed limit, remaining, penalty seconds ('' when absent).
_OBSERVE = (
    _COMMON
    + """
local new_limit, new_window, remaining, penalty = ARGV[1], ARGV[2], ARGV[4], ARGV[5]
if new_limit == '' and penalty == '' then
  if not stored_limit then redis.call('HSET', meta, 'unlimited', '1') end
else
  if new_limit ~= '' then
    redis.call('HSET', meta, 'limit', new_limit)
    redis.call('HDEL', meta, 'unlimited')
  end
  if new_window ~= '' then
    redis.call('HSET', meta, 'window', new_window)
    window = tonumber(new_window)
  end
  if remaining ~= '' and tonumber(remaining) <= 0 and penalty == '' then
    local first = redis.call('ZRANGEBYSCORE', sent, now - window, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    local start = now
    if first[2] then start = tonumber(first[2]) end
    blocked = math.max(blocked, start + window)
  end
  if penalty ~= '' then blocked = math.max(blocked, now + tonumber(penalty)) end
  redis.call('HSET', meta, 'blocked_until', tostring(blocked))
end
redis.call('PEXPIRE', meta, 86400000)
return 0
"""
)


class RedisRatePacer:
    """
    Keeps one credential within RingCentral's per-group limits, cluster-wide (the interface of :class:`RatePacer`).

    Until a group's answers tell its limit, RingCentral's documented limit is assumed (so K hosts starting
    together do not overrun it on their first requests); a group whose answers carry no limit headers is then
    treated as unlimited.

    :param files: the host's file pacer, used while Redis fails.
    :param link: the Redis connection.
    """

    # RingCentral's documented per-minute limits, assumed until the headers say otherwise.
    ASSUMED_LIMITS: ClassVar[dict[str, int]] = {"Auth": 5, "Heavy": 10, "Medium": 40, "Light": 50}

    def __init__(self, files: RatePacer, link: RedisLink) -> None:
        self.files = files
        self.link = link
        self._caller = secrets.token_hex(8)  # this pacer's place in the queues (one hook: one task or trigger)
        self._turns: dict[str, float] = {}  # group -> when Redis last said this caller may send (monotonic)

    def _keys(self, group: str) -> list[str]:
        base = f"{self.link.prefix}:rate:{group}"
        return [base, f"{base}:sent", f"{base}:queue", f"{base}:seen"]

    def reserve_nowait(self, group: str) -> float | None:
        """Always None: asking Redis is I/O, so the caller reserves off the event loop."""
        return None

    def needs_lock(self, group: str, headers: Mapping[str, str], status: int) -> bool:
        """Always True: observing an answer writes to Redis (keep it off an event loop)."""
        return True

    def reserve(self, group: str) -> float:
        """
        Record a send in ``group`` and return 0, or return how long to wait (keeping this caller's turn).

        If Redis fails, the turn it last gave this caller is still kept (the hosts ahead hold the slots before
        it, so sending earlier would overrun the cluster's budget); after it, the host's files pace alone.
        """
        if self.link.usable():
            try:
                with self.link.guard() as redis:
                    delay = float(
                        redis.eval(
                            _RESERVE,
                            4,
                            *self._keys(group),
                            self._caller,
                            self.files.SLACK,
                            self.ASSUMED_LIMITS.get(group, 0),
                            self.files.MAX_TRACKED,
                            WAITER_STALE,
                        )
                    )
            except RedisUnavailable:
                pass
            else:
                self._turns[group] = time.monotonic() + delay
                return delay
        wait = self._turns.get(group, 0.0) - time.monotonic()
        return wait if wait > 0 else self.files.reserve(group)

    def reserve_idle(self, group: str) -> float:
        """
        A low-priority send (see :meth:`RatePacer.reserve_idle`), cluster-wide: 0 with the send recorded only when a
        slot is free now, no caller is queued for one and none sent for :data:`.pacer.QUIET` s; else seconds until asking again could succeed. While
        Redis fails, the host's files decide.
        """
        if self.link.usable():
            try:
                with self.link.guard() as redis:
                    return float(
                        redis.eval(
                            _RESERVE_IDLE,
                            4,
                            *self._keys(group),
                            f"{self._caller}:idle",
                            self.files.SLACK,
                            self.ASSUMED_LIMITS.get(group, 0),
                            self.files.MAX_TRACKED,
                            WAITER_STALE,
                            QUIET,
                        )
                    )
            except RedisUnavailable:
                pass
        return self.files.reserve_idle(group)

    def observe(self, group: str, headers: Mapping[str, str], *, penalty: float | None = None) -> None:
        """Learn the limit from an answer's headers; ``penalty`` (a 429's wait) holds back every host."""
        if not self.link.usable():
            self.files.observe(group, headers, penalty=penalty)
            return
        limit, window, remaining = (
            _number(headers.get(f"X-Rate-Limit-{name}")) for name in ("Limit", "Window", "Remaining")
        )
        args = (limit, window, self.ASSUMED_LIMITS.get(group, 0), remaining, "" if penalty is None else penalty)
        try:
            with self.link.guard() as redis:
                redis.eval(_OBSERVE, 4, *self._keys(group), *args)
        except RedisUnavailable:
            self.files.observe(group, headers, penalty=penalty)


def _number(value: str | None) -> str:
    """A header's number as Lua reads it, or '' when absent or not a number (never trusted into a script)."""
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return ""
    return repr(number) if math.isfinite(number) else ""

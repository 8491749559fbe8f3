"""
The call-log records shared by every look-up of a host (or a cluster), and the reader's lease.

RingCentral's call log is in the Heavy group (10 requests a minute, shared with placing and cancelling calls), so
K tasks waiting for their calls' results must not read it K times. One reader does: a look-up that finds the shared
records older than the interval takes the **reader lease** (an owner and an expiry), syncs once (the hook's
``call-log-sync``), and stores the new records, the sync token and the time; the lease ends with the store. Every
other look-up matches against the stored records. A reader that dies mid-sync holds the lease until it expires
(``lease`` seconds), then the next look-up takes over; a write by a reader whose lease ran out is dropped (it is
always safe: the next reader syncs again from the token stored before).

Stored per credential: ``records`` (id -> record, only the fields the matcher reads), ``token`` (the last sync token;
None: the next sync is a full one), ``synced_at`` (wall clock), ``denied`` (a 403 seen by the reader: its message and
until when it is repeated without asking again). Records are kept for :data:`KEEP` seconds after their start and
at most :data:`MAX_RECORDS` of them, newest first, so the store stays bounded.

Where: :class:`FileCallLog` in the host's state folder (one JSON file under an ``flock``; in this process while the
folder is unusable), :class:`RedisCallLog` in the cluster's Redis (``[ringcentral] shared_state = redis``; the host's
files while Redis fails). :func:`call_log_store` picks one as the token cache and pacer are picked.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_ringout._process import process_cache
from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.state.config import SharedState, configured_backend

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow_provider_ringout.state.files import StateDir
    from airflow_provider_ringout.state.redis import RedisLink

KEEP = 3 * 3600.0  # seconds a record is kept after its start: a look-up for an older call finds nothing here
MAX_RECORDS = 500  # at most this many, newest first (about 0.4 MB as stored; a state file is read up to 1 MB)


def _now() -> float:
    """The wall clock every time here is read from (one place, so a test can move it: "an interval passed")."""
    return time.time()


# In-process stores of folders that cannot be shared, per credential.
_memories: dict[str, dict[str, Any]] = process_cache(__name__, "_memories", {})


@dataclass(frozen=True)
class Snapshot:
    """The shared call-log state as one look-up sees it."""

    records: list[dict[str, Any]] = field(default_factory=list)
    token: str | None = None
    synced_at: float = 0.0
    denied: str | None = None  # the reader's 403 message, while it is repeated without asking RingCentral

    def fresh(self, interval: float, now: float | None = None) -> bool:
        """Whether the last sync is less than ``interval`` seconds old."""
        return (now if now is not None else _now()) - self.synced_at < interval


class CallLogStore(Protocol):
    """Where the shared records and the reader lease live (see the module docstring)."""

    def snapshot(self) -> Snapshot:
        """The stored state (empty when none)."""

    def take_turn(self, owner: str, interval: float, lease: float) -> Snapshot | None:
        """
        The reader lease for ``owner`` (``lease`` seconds) and the state to sync from, when the last sync is at least
        ``interval`` old and no live reader holds it; else None (match against :meth:`snapshot`).
        """

    def store(self, owner: str, records: Iterable[Mapping[str, Any]], token: str | None, *, synced: bool) -> bool:
        """
        ``owner``'s sync: merge ``records`` (by id), save ``token`` and (``synced``) the time, end the lease.

        :return: whether it was written (False: ``owner`` no longer held the lease; nothing changed).
        """

    def deny(self, owner: str, message: str, seconds: float) -> None:
        """``owner``'s sync was refused (403): every look-up repeats ``message`` for ``seconds``; ends the lease."""

    def release(self, owner: str) -> None:
        """``owner`` did not sync (no Heavy slot free now): end the lease, change nothing else."""


def merged(data: Mapping[str, Any], records: Iterable[Mapping[str, Any]], now: float) -> dict[str, Any]:
    """The stored records with ``records`` merged in (a later version of an id wins), old and surplus ones dropped."""
    kept: dict[str, Any] = dict(data.get("records") or {}) if isinstance(data.get("records"), dict) else {}
    for record in records:
        ident = str(record.get("id") or "")
        if ident:
            kept[ident] = dict(record)
    started = {ident: _start(record) for ident, record in kept.items()}
    newest = sorted((i for i in kept if started[i] >= now - KEEP), key=lambda i: started[i], reverse=True)
    return {ident: kept[ident] for ident in newest[:MAX_RECORDS]}


def _start(record: Any) -> float:
    """A record's start (epoch seconds); -inf when it has none readable (dropped first)."""
    try:
        moment = datetime.fromisoformat(str(record.get("startTime")).replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return -math.inf
    return moment.timestamp() if moment.tzinfo else -math.inf


def _snapshot(data: Mapping[str, Any] | None, now: float) -> Snapshot:
    """A stored document as a :class:`Snapshot`; anything malformed reads as absent."""
    if not isinstance(data, dict):
        return Snapshot()
    records = data.get("records")
    token, synced_at, denied = data.get("token"), data.get("synced_at"), data.get("denied")
    message = None
    if isinstance(denied, dict) and isinstance(denied.get("message"), str):
        until = denied.get("until")
        message = denied["message"] if isinstance(until, (int, float)) and until > now else None
    return Snapshot(
        records=[r for r in records.values() if isinstance(r, dict)] if isinstance(records, dict) else [],
        token=token if isinstance(token, str) and token else None,
        synced_at=float(synced_at) if isinstance(synced_at, (int, float)) and math.isfinite(synced_at) else 0.0,
        denied=message,
    )


def _lease_free(data: Mapping[str, Any], now: float) -> bool:
    reader = data.get("reader")
    return not (isinstance(reader, dict) and isinstance(reader.get("until"), (int, float)) and reader["until"] > now)


def _holds(data: Mapping[str, Any], owner: str, now: float) -> bool:
    reader = data.get("reader")
    return not _lease_free(data, now) and isinstance(reader, dict) and reader.get("owner") == owner


class FileCallLog:
    """The records and lease shared by the processes of one host, in its state folder (wall-clock times)."""

    def __init__(self, state: StateDir, key: str) -> None:
        self.state = state
        self.name = f"call-log-{key}"

    def _load(self) -> dict[str, Any]:
        data = self.state.read(self.name) if self.state.usable else _memories.get(self.name)
        return dict(data) if isinstance(data, dict) else {}

    def _save(self, data: dict[str, Any]) -> None:
        self.state.write(self.name, data)
        if not self.state.usable:  # also when this very write failed
            _memories[self.name] = data

    def snapshot(self) -> Snapshot:
        """See :meth:`CallLogStore.snapshot` (no lock: writers replace the file atomically)."""
        return _snapshot(self._load(), _now())

    def take_turn(self, owner: str, interval: float, lease: float) -> Snapshot | None:
        """See :meth:`CallLogStore.take_turn`."""
        with self.state.locked(self.name):
            data, now = self._load(), _now()
            seen = _snapshot(data, now)
            if seen.fresh(interval, now) or seen.denied or not _lease_free(data, now):
                return None
            data["reader"] = {"owner": owner, "until": now + lease}
            self._save(data)
            return seen

    def store(self, owner: str, records: Iterable[Mapping[str, Any]], token: str | None, *, synced: bool) -> bool:
        """See :meth:`CallLogStore.store`."""
        with self.state.locked(self.name):
            data, now = self._load(), _now()
            if not _holds(data, owner, now):
                return False
            data.update(records=merged(data, records, now), token=token, reader=None)
            if synced:
                data["synced_at"] = now
            self._save(data)
            return True

    def deny(self, owner: str, message: str, seconds: float) -> None:
        """See :meth:`CallLogStore.deny`."""
        self._end(owner, {"denied": {"message": message, "until": _now() + seconds}})

    def release(self, owner: str) -> None:
        """See :meth:`CallLogStore.release`."""
        self._end(owner, {})

    def _end(self, owner: str, changes: dict[str, Any]) -> None:
        with self.state.locked(self.name):
            data = self._load()
            if _holds(data, owner, _now()):
                data.update(changes, reader=None)
                self._save(data)


# KEYS[1] lease. ARGV[1] owner, ARGV[2] lease ms. 1 when taken (no live holder), else 0.
_TAKE = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1"
# KEYS[1] lease, KEYS[2] state. ARGV[1] owner, ARGV[2] new state ('' keeps it), ARGV[3] TTL ms. 1 if owner held it.
_STORE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
redis.call('DEL', KEYS[1])
return 1
"""


class RedisCallLog:
    """
    The records and lease shared by every host of a cluster, in Redis (the lease on Redis's clock, by its TTL);
    while Redis cannot be used, the host's :class:`FileCallLog` (the Redis backend's one WARNING says so).
    """

    def __init__(self, link: RedisLink, files: FileCallLog) -> None:
        self.link = link
        self.files = files
        self._lease_key = f"{link.prefix}:call-log:reader"
        self._state_key = f"{link.prefix}:call-log"

    def _read(self, redis: Any) -> dict[str, Any]:
        raw = redis.get(self._state_key)
        try:
            data = json.loads(raw) if raw else {}
        except (ValueError, UnicodeDecodeError):
            data = {}
        return data if isinstance(data, dict) else {}

    def snapshot(self) -> Snapshot:
        """See :meth:`CallLogStore.snapshot`."""
        from airflow_provider_ringout.state.redis import RedisUnavailable

        try:
            with self.link.guard() as redis:
                return _snapshot(self._read(redis), _now())
        except RedisUnavailable:
            return self.files.snapshot()

    def take_turn(self, owner: str, interval: float, lease: float) -> Snapshot | None:
        """See :meth:`CallLogStore.take_turn`."""
        from airflow_provider_ringout.state.redis import RedisUnavailable

        try:
            with self.link.guard() as redis:
                seen = _snapshot(self._read(redis), _now())
                if seen.fresh(interval) or seen.denied:
                    return None
                if not redis.eval(_TAKE, 1, self._lease_key, owner, _ms(lease)):
                    return None
                seen = _snapshot(self._read(redis), _now())  # a reader may have stored just before
                if seen.fresh(interval) or seen.denied:
                    redis.eval(_STORE, 2, self._lease_key, self._state_key, owner, "", 0)
                    return None
                return seen
        except RedisUnavailable:
            return self.files.take_turn(owner, interval, lease)

    def store(self, owner: str, records: Iterable[Mapping[str, Any]], token: str | None, *, synced: bool) -> bool:
        """See :meth:`CallLogStore.store` (only the lease holder reads, merges and writes the state)."""
        from airflow_provider_ringout.state.redis import RedisUnavailable

        try:
            with self.link.guard() as redis:
                data, now = self._read(redis), _now()
                data.update(records=merged(data, records, now), token=token)
                if synced:
                    data["synced_at"] = now
                return self._write(redis, owner, data)
        except RedisUnavailable:
            return self.files.store(owner, records, token, synced=synced)

    def deny(self, owner: str, message: str, seconds: float) -> None:
        """See :meth:`CallLogStore.deny`."""
        from airflow_provider_ringout.state.redis import RedisUnavailable

        try:
            with self.link.guard() as redis:
                data = self._read(redis)
                data["denied"] = {"message": message, "until": _now() + seconds}
                self._write(redis, owner, data)
        except RedisUnavailable:
            self.files.deny(owner, message, seconds)

    def release(self, owner: str) -> None:
        """See :meth:`CallLogStore.release`."""
        from airflow_provider_ringout.state.redis import RedisUnavailable

        try:
            with self.link.guard() as redis:
                redis.eval(_STORE, 2, self._lease_key, self._state_key, owner, "", 0)
        except RedisUnavailable:
            self.files.release(owner)

    def _write(self, redis: Any, owner: str, data: dict[str, Any]) -> bool:
        return bool(redis.eval(_STORE, 2, self._lease_key, self._state_key, owner, json.dumps(data), _ms(KEEP)))


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def call_log_store(state: StateDir, key: str) -> FileCallLog | RedisCallLog:
    """The shared call log of credential ``key`` on ``[ringcentral] shared_state`` (the host's files back Redis)."""
    files = FileCallLog(state, key)
    try:
        backend, conn_id = configured_backend()
    except RingCentralConfigError:  # the hook refuses the setting, naming it, before any request
        return files
    if backend is SharedState.FILE:
        return files
    from airflow_provider_ringout.state.redis import RedisLink

    return RedisCallLog(RedisLink(conn_id, key), files)

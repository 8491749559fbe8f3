"""
Saved progress of escalations, for a triggerer that restarts: in the host's state folder, or in the cluster's Redis.

The escalation trigger (``triggers/escalation.py``) saves its progress under a key of the task instance and its
try, with numbers as positions in the list, never the numbers. Where it is kept follows ``[ringcentral]
shared_state`` (:mod:`.config`), as the alert claims' store does (:func:`.claims.claim_store`):

- ``file``: one JSON file of the host's state folder (:data:`PROGRESS_FILE`), at most :data:`MAX_SAVED`
  escalations, the oldest dropped first. A triggerer restarted on another host does not see it.
- ``redis``: one key per escalation, ``ringout:{escalation-progress}:progress:<key>``, expiring
  :data:`RESUMABLE_FOR` seconds after its last save, so a trigger picked up by a triggerer on any host resumes
  where it stood. Each save is copied to the host's file too: while Redis cannot be used (the Redis backend's one
  WARNING per process says so, see :mod:`.redis`) the file is read and written instead, and a save that only the
  file got (marked :data:`_MISSED`) is preferred to Redis's older one on this host.

What the progress means is the trigger's business; this module only keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.state.config import SharedState, configured_backend

if TYPE_CHECKING:
    from airflow_provider_ringout.state.files import StateDir
    from airflow_provider_ringout.state.redis import RedisLink

PROGRESS_FILE = "escalations"
MAX_SAVED = 1024  # bounded: the oldest escalations' progress is dropped first
PROGRESS_NAMESPACE = "escalation-progress"  # in Redis: per escalation, not per credential
# How long after its last save an escalation can be resumed from Redis (its key's TTL): far beyond any escalation
# (numbers x rounds x per_number_timeout) and any triggerer restart, yet Redis never keeps it for good.
RESUMABLE_FOR = 24 * 3600.0
_MISSED = "redis_missed"  # in the host's copy: this save did not reach Redis, so it is newer than Redis's


def _link() -> RedisLink | None:
    """The Redis link of saved progress when ``[ringcentral] shared_state = redis``, else None (the host's file)."""
    try:
        backend, conn_id = configured_backend()
    except RingCentralConfigError:  # the hook refuses the setting, naming it; the file keeps the progress meanwhile
        return None
    if backend is SharedState.FILE:
        return None
    from airflow_provider_ringout.state.redis import RedisLink

    return RedisLink(conn_id, PROGRESS_NAMESPACE)


def redis_key(link: RedisLink, key: str) -> str:
    """The Redis key of an escalation's progress: the link's namespace and the progress key (a digest)."""
    return f"{link.prefix}:progress:{key}"


def load_progress(state: StateDir, key: str) -> Mapping[str, Any] | None:
    """The progress saved under ``key``, or None (nothing saved, unreadable, unusable folder and Redis)."""
    local = _load_file(state, key)
    link = _link()
    if link is None or (local is not None and local.get(_MISSED) is True):
        return _without_mark(local)
    from airflow_provider_ringout.state.redis import RedisUnavailable

    try:
        with link.guard() as redis:
            raw = redis.get(redis_key(link, key))
    except RedisUnavailable:
        return _without_mark(local)
    shared = _decode(raw)
    return shared if shared is not None else _without_mark(local)  # a flushed Redis: the host's copy, if any


def save_progress(state: StateDir, key: str, progress: Mapping[str, Any]) -> bool:
    """
    Save ``progress`` under ``key`` (in Redis, and in the host's file); whether a restarted triggerer will find it
    (False: neither Redis nor the folder took it).
    """
    link = _link()
    if link is None:
        return _save_file(state, key, progress)
    from airflow_provider_ringout.state.redis import RedisUnavailable

    try:
        with link.guard() as redis:
            redis.set(redis_key(link, key), json.dumps(dict(progress)), px=int(RESUMABLE_FOR * 1000))
    except RedisUnavailable:
        return _save_file(state, key, {**progress, _MISSED: True})
    _save_file(state, key, progress)  # the host's copy, for a restart while Redis is down (a failure is harmless)
    return True


def _load_file(state: StateDir, key: str) -> Mapping[str, Any] | None:
    with state.locked(PROGRESS_FILE):
        saved = (state.read(PROGRESS_FILE) or {}).get(key)
    return saved if isinstance(saved, Mapping) else None


def _save_file(state: StateDir, key: str, progress: Mapping[str, Any]) -> bool:
    """Save ``progress`` under ``key`` as the file's newest entry; whether it is in the folder."""
    with state.locked(PROGRESS_FILE):
        data = state.read(PROGRESS_FILE) or {}
        data.pop(key, None)  # re-inserted last: the newest entries are kept
        data[key] = dict(progress)
        while len(data) > MAX_SAVED:
            del data[next(iter(data))]
        state.write(PROGRESS_FILE, data)
    return state.usable


def _without_mark(saved: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return None if saved is None else {k: v for k, v in saved.items() if k != _MISSED}


def _decode(raw: Any) -> Mapping[str, Any] | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, Mapping) else None

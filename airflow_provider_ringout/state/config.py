"""
Which shared state is configured: ``[ringcentral] shared_state`` (``file`` or ``redis``) and ``redis_conn_id``;
and how often that state's call-log records are synced (``[ringcentral] call_log_interval``).

Read by :mod:`.backend` (the token cache and pacer), :mod:`.claims` (alert claims), :mod:`.progress` (escalations'
saved progress) and :mod:`.redis` (whose fallback warning names the fix, :data:`REDIS_FIX`); imports none of them.
"""

from __future__ import annotations

from enum import Enum

from airflow_provider_ringout.exceptions import RingCentralConfigError

DEFAULT_REDIS_CONN_ID = "redis_default"
# What to do when Redis cannot be used: said once by the fallback warning, and by the connection's Test button.
REDIS_FIX = (
    "to fix it, create the Airflow connection {conn_id!r} (type redis) or set [ringcentral] redis_conn_id to "
    "yours, and make that Redis reachable from every Airflow host; or set [ringcentral] shared_state = file"
)


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


CALL_LOG_INTERVAL = (
    20.0  # seconds between syncs of the shared call-log records: at most 3 of 10 Heavy requests a minute
)
MIN_CALL_LOG_INTERVAL = 1.0


def configured_call_log_interval() -> float:
    """``[ringcentral] call_log_interval``: seconds between two syncs of the shared call-log records."""
    from airflow.providers.common.compat.sdk import conf

    raw = (conf.get("ringcentral", "call_log_interval", fallback="") or "").strip()
    if not raw:
        return CALL_LOG_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= MIN_CALL_LOG_INTERVAL:  # also refuses nan
        raise RingCentralConfigError(
            f"[ringcentral] call_log_interval must be a number of seconds, at least {MIN_CALL_LOG_INTERVAL:g}, not "
            f"{raw!r}; set AIRFLOW__RINGCENTRAL__CALL_LOG_INTERVAL (default {CALL_LOG_INTERVAL:g})"
        )
    return value

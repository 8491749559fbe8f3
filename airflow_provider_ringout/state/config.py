"""
Which shared state is configured: ``[ringcentral] shared_state`` (``file`` or ``redis``) and ``redis_conn_id``.

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

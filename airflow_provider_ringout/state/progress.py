"""
Saved progress of escalations, in the host's state folder (:mod:`.files`), for a triggerer that restarts.

One JSON file (:data:`PROGRESS_FILE`) maps a key of the task instance and its try to its progress, as the
escalation trigger (``triggers/escalation.py``) writes it: numbers as positions in the list, never the numbers.
At most :data:`MAX_SAVED` escalations are kept, the oldest dropped first. What the progress means is the
trigger's business; this module only keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_ringout.state.files import StateDir

PROGRESS_FILE = "escalations"
MAX_SAVED = 1024  # bounded: the oldest escalations' progress is dropped first


def load_progress(state: StateDir, key: str) -> Mapping[str, Any] | None:
    """The progress saved under ``key``, or None (nothing saved, unreadable file, unusable folder)."""
    with state.locked(PROGRESS_FILE):
        saved = (state.read(PROGRESS_FILE) or {}).get(key)
    return saved if isinstance(saved, Mapping) else None


def save_progress(state: StateDir, key: str, progress: Mapping[str, Any]) -> bool:
    """Save ``progress`` under ``key`` (as the newest entry); whether it is in the folder (a failed write says no)."""
    with state.locked(PROGRESS_FILE):
        data = state.read(PROGRESS_FILE) or {}
        data.pop(key, None)  # re-inserted last: the newest entries are kept
        data[key] = dict(progress)
        while len(data) > MAX_SAVED:
            del data[next(iter(data))]
        state.write(PROGRESS_FILE, data)
    return state.usable

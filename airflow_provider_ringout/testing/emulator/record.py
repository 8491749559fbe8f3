"""The request record: every request the emulator answered (control plane aside), and counts by method, kind, status."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout.testing.emulator.routes import kinds_of

if TYPE_CHECKING:
    import threading


@dataclass
class RecordedRequest:
    """
    One request the emulator answered (control-plane requests are not recorded).

    ``status`` is the HTTP status sent; 0 when an injected ``reset`` closed the connection instead. With
    ``drop_after_processing`` it is the status that was computed but never sent. ``time`` is ``time.monotonic()``
    at arrival.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any | None
    kind: str
    status: int
    time: float
    rate_group: str | None
    form: dict[str, str] | None = None
    fault: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, served by ``GET /_emulator/requests``."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "kind": self.kind,
            "status": self.status,
            "json": self.json,
            "form": self.form,
            "body": self.body.decode("utf-8", "replace"),
            "time": self.time,
            "rate_group": self.rate_group,
            "fault": self.fault,
        }


class RequestLog:
    """The most recent ``max_recorded`` requests, and counts of all of them; uses the emulator's lock."""

    def __init__(self, lock: threading.RLock, max_recorded: int) -> None:
        """An empty record."""
        self._lock = lock
        self._records: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self._counts: dict[tuple[str, str, int], int] = {}

    def add(self, record: RecordedRequest) -> None:
        """Record an answered request."""
        with self._lock:
            self._records.append(record)
            key = (record.method, record.kind, record.status)
            self._counts[key] = self._counts.get(key, 0) + 1

    def clear(self) -> None:
        """Forget every request and count."""
        with self._lock:
            self._records.clear()
            self._counts.clear()

    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded requests, oldest first."""
        with self._lock:
            return list(self._records)

    def count(self, method: str | None = None, kind: str | None = None, status: int | None = None) -> int:
        """How many requests matched; ``kind`` is a RecordedRequest kind or an alias such as "ring-out-status"."""
        kinds = kinds_of(kind, "kind") if kind is not None else None
        verb = method.upper() if method else None
        with self._lock:
            return sum(
                n
                for (m, k, s), n in self._counts.items()
                if (verb is None or m == verb) and (kinds is None or k in kinds) and (status is None or s == status)
            )

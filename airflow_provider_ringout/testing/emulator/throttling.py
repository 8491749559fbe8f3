"""
Rate limits as RingCentral applies them: a sliding window per (credential, group), a penalty that every request
made during it restarts, and truthful ``X-Rate-Limit-*`` headers on every answer.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from airflow_provider_ringout.hooks.endpoints import RateGroup
from airflow_provider_ringout.testing.emulator.wire import Response, basic_credentials, rate_exceeded

if TYPE_CHECKING:
    import threading
    from email.message import Message

    from airflow_provider_ringout.hooks.endpoints import Endpoint

# Requests a minute per user and app (RingCentral's defaults); an endpoint's group is its row's in the table.
REAL_RATE_LIMITS: dict[str, int] = {
    RateGroup.LIGHT.value: 50,
    RateGroup.MEDIUM.value: 40,
    RateGroup.HEAVY.value: 10,
    RateGroup.AUTH.value: 5,
}


class RateSettings(Protocol):
    """The emulator settings the limiter reads on every request (tests may change them at any time)."""

    client_id: str
    rate_limits: dict[str, int] | None
    rate_window: float
    rate_penalty: float


@dataclass
class _Bucket:
    """Sliding-window rate state of one (client, group)."""

    times: deque[float] = field(default_factory=deque)
    penalty_until: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """The limiter's answer for one request: the headers every answer carries, and the 429 when it is refused."""

    headers: dict[str, str]
    refusal: Response | None = None


class RateLimiter:
    """The rate buckets of every (credential, group); uses the emulator's lock."""

    def __init__(self, settings: RateSettings, lock: threading.RLock) -> None:
        """Empty buckets; ``settings`` is read at each request."""
        self._settings = settings
        self._lock = lock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def reset(self) -> None:
        """Forget every bucket and penalty."""
        with self._lock:
            self._buckets.clear()

    def admit(self, endpoint: Endpoint | None, headers: Message) -> Verdict:
        """Spend one request of the endpoint's group budget (no headers when the group is not limited)."""
        settings = self._settings
        group = endpoint.group if endpoint is not None else None
        limit = settings.rate_limits.get(group) if (settings.rate_limits is not None and group) else None
        if group is None or limit is None:
            return Verdict({})
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.setdefault((self._rate_key(endpoint, headers), group), _Bucket())
            limited = now < bucket.penalty_until
            if not limited:
                while bucket.times and bucket.times[0] <= now - settings.rate_window:
                    bucket.times.popleft()
                limited = len(bucket.times) >= limit
            if limited:
                bucket.penalty_until = now + settings.rate_penalty  # every request in the penalty restarts it
                remaining = 0
            else:
                bucket.times.append(now)
                remaining = limit - len(bucket.times)
        rate_headers = {
            "X-Rate-Limit-Group": group,
            "X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Remaining": str(remaining),
            "X-Rate-Limit-Window": str(max(1, math.ceil(settings.rate_window))),
        }
        if not limited:
            return Verdict(rate_headers)
        refusal = rate_exceeded()
        refusal.headers.update(rate_headers)
        refusal.headers["Retry-After"] = str(max(1, math.ceil(settings.rate_penalty)))
        return Verdict(rate_headers, refusal)

    def _rate_key(self, endpoint: Endpoint | None, headers: Message) -> str:
        """Whose budget a request spends: the Basic-auth client on the OAuth endpoints, else the app's client."""
        if endpoint is not None and endpoint.is_login:
            client = basic_credentials(headers.get("Authorization"))
            return client[0] if client else "anonymous"
        return self._settings.client_id

"""
The RatePacer change recommended in ../README.md, applied by monkeypatching, to measure it before it is made.

Not part of the package and not imported by the benchmarks. Activate it for one run with::

    RINGOUT_PROPOSED_PACER=1 PYTHONPATH=benchmarks/proposals python benchmarks/bench_triggerer_scale.py

(``sitecustomize.py`` here imports this module at interpreter start, also in every child process.)

What it changes in ``airflow_provider_ringout.hooks._shared_state.RatePacer``: a group whose responses carry no
``X-Rate-Limit-*`` headers is flagged ``unlimited`` once in the shared file; afterwards ``reserve()`` for it takes a
fast path (one ``stat()``, no lock, no write) until a limit or a 429 block appears. The list of recorded sends is
capped at the group's limit (100 while the limit is unknown) instead of growing with every send of the window.
"""

from __future__ import annotations

import os
import time
from typing import Any

from airflow_provider_ringout.hooks import _shared_state

RatePacer = _shared_state.RatePacer
MAX_TRACKED = 100
_original_observe = RatePacer.observe


def _peek(self: Any) -> dict[str, Any]:
    """The shared state without the lock, re-read only when the file changed (writers replace it atomically)."""
    if not self.state.usable:
        return self._memory
    try:
        info = os.stat(self.state.path / f"{self.name}.json")
        sig: tuple[int, int, int] | None = (info.st_ino, info.st_mtime_ns, info.st_size)
    except FileNotFoundError:
        sig = None
    if sig != getattr(self, "_seen", "never read"):
        self._view = (self.state.read(self.name) or {}) if sig else {}
        self._seen = sig
    return self._view


def reserve_nowait(self: Any, group: str) -> float | None:
    """0.0 when the server does not rate-limit ``group`` and no block is in force (no lock, no write); else None."""
    entry = _peek(self).get(group) or {}
    if entry.get("unlimited") and not entry.get("limit") and time.time() >= float(entry.get("blocked_until", 0)):
        return 0.0
    return None


def reserve(self: Any, group: str) -> float:
    """RatePacer.reserve with the fast path first and a capped list of sends."""
    fast = reserve_nowait(self, group)
    if fast is not None:
        return fast
    with self.state.locked(self.name):
        data = self._load()
        entry = data.setdefault(group, {})
        now = time.time()
        blocked_until = float(entry.get("blocked_until", 0))
        if now < blocked_until:
            return blocked_until - now
        limit, window = entry.get("limit"), float(entry.get("window", 60))
        sent = [t for t in entry.get("sent", []) if t > now - window - self.SLACK * window]
        if limit and len(sent) >= int(limit):
            return float(sent[len(sent) - int(limit)] + window * (1 + self.SLACK) - now)
        sent.append(now)
        entry["sent"] = sent[-(int(limit) if limit else MAX_TRACKED) :]
        self._save(data)
        return 0.0


def observe(self: Any, group: str, headers: Any, *, penalty: float | None = None) -> None:
    """RatePacer.observe, plus: a response without rate-limit headers flags its group ``unlimited`` (once)."""
    if penalty is None and headers.get("X-Rate-Limit-Limit") is None:
        entry = _peek(self).get(group) or {}
        if not entry.get("unlimited") and not entry.get("limit"):
            with self.state.locked(self.name):
                data = self._load()
                data.setdefault(group, {})["unlimited"] = True
                self._save(data)
        return
    _original_observe(self, group, headers, penalty=penalty)


RatePacer.reserve = reserve  # type: ignore[method-assign]
RatePacer.observe = observe  # type: ignore[method-assign]

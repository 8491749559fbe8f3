"""
The rate pacer shared by the processes of one host: RingCentral's per-group budget of one credential.

Kept in the host's state folder (:mod:`.files`), so processes on one host share RingCentral's per-user budget and
nobody sends during a 429 penalty, which would extend it. No wait it asks for is longer than
:data:`MAX_RATE_LIMIT_WAIT`. The cluster-wide pacer in Redis (:mod:`.redis`) falls back to this one.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard

from airflow_provider_ringout._process import process_cache

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from airflow_provider_ringout.state.files import StateDir

# No rate-limit wait (a pacer's, or a 429's Retry-After) is ever longer than this (RingCentral's penalty is 60 s):
# a bogus Retry-After, a corrupt file or a wall clock stepped back cannot block a group for hours.
MAX_RATE_LIMIT_WAIT = 300.0
# A sender the pacer told to wait asks again at least this often (another host may have lifted or moved a block).
RESERVE_RECHECK = 10.0
# A refused sender counts as waiting until its next ask plus this margin: no low-priority send takes its slot.
WAITING_MARGIN = 1.0
# A low-priority send also waits until the group has been quiet this long: the senders of a burst (K tasks placing
# calls at once) are not all waiting yet when the first of them looks for its result.
QUIET = 1.0


def _number(value: Any) -> TypeGuard[float]:
    """A finite int or float (not a bool): the only numbers a state file may hold."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _clean_entry(entry: Any, now: float, max_tracked: int) -> dict[str, Any]:
    """
    A group's pacer state with only well-typed, plausible values: a malformed or hostile file never raises.

    A block ending more than :data:`MAX_RATE_LIMIT_WAIT` from now (a corrupt value, or a wall clock stepped back)
    is dropped; so are sends recorded in the future.
    """
    if not isinstance(entry, dict):
        return {}
    clean: dict[str, Any] = {}
    limit = entry.get("limit")
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit <= 100_000:
        clean["limit"] = limit
    window = entry.get("window")
    if _number(window) and 0 < window <= MAX_RATE_LIMIT_WAIT:
        clean["window"] = float(window)
    if entry.get("unlimited") is True:
        clean["unlimited"] = True
    for key in ("blocked_until", "wanted_until"):
        until = entry.get(key)
        if _number(until) and now < until <= now + MAX_RATE_LIMIT_WAIT:
            clean[key] = float(until)
    sent = entry.get("sent")
    if isinstance(sent, list):
        clean["sent"] = [float(t) for t in sent[-max_tracked:] if _number(t) and t <= now]
    return clean


def capped_wait(seconds: Any, default: float) -> float:
    """A server-given wait as seconds in [0, :data:`MAX_RATE_LIMIT_WAIT`]; ``default`` when not a usable number."""
    return min(float(seconds), MAX_RATE_LIMIT_WAIT) if _number(seconds) and seconds >= 0 else default


class RatePacer:
    """
    Keeps one credential within RingCentral's per-group limits, host-wide.

    Limits and windows are learned from the ``X-Rate-Limit-*`` headers; a 429 blocks its group for
    ``Retry-After`` seconds (at most :data:`MAX_RATE_LIMIT_WAIT`) for every process. Sends are logged per group so
    the budget of a window is used fully but not exceeded. A group whose answers carry no such headers (the emulator
    without limits) is marked unlimited, and then costs one ``stat()`` per request instead of a locked rewrite of
    the shared file. Penalties this process learned itself are timed on the monotonic clock.
    """

    # Our clock starts a little before the server's: wait this much longer than the window to stay inside it.
    SLACK = 0.05
    # Sends remembered while the limit is unknown (it is learned from the first answer's headers).
    MAX_TRACKED = 100
    # In-process state of folders that cannot be shared, per credential (shared by this process's hooks).
    _memories: ClassVar[dict[str, dict[str, Any]]] = process_cache(__name__, "RatePacer._memories", {})
    # (file name, group) -> (the blocked_until this process wrote, when it ends on the monotonic clock)
    _own_blocks: ClassVar[dict[tuple[str, str], tuple[float, float]]] = process_cache(
        __name__, "RatePacer._own_blocks", {}
    )

    def __init__(self, state: StateDir, key: str) -> None:
        self.state = state
        self.name = f"rate-{key}"
        self._view: dict[str, Any] = {}
        self._seen: tuple[int, int, int] | str | None = "never read"

    @property
    def _memory(self) -> dict[str, Any]:
        return self._memories.setdefault(self.name, {})

    def _load(self) -> dict[str, Any]:
        data = self.state.read(self.name) if self.state.usable else self._memory
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, Any]) -> None:
        self.state.write(self.name, data)
        if not self.state.usable:  # also when this very write failed
            self._memories[self.name] = data

    def _peek(self) -> dict[str, Any]:
        """The shared state without the lock, re-read only when the file changed (writers replace it atomically)."""
        if not self.state.usable:
            return self._memory
        signature = self.state.signature(self.name)
        if not self.state.usable:
            return self._memory
        if signature != self._seen:
            self._view = (self.state.read(self.name) or {}) if signature else {}
            self._seen = signature
        return self._view

    def _entry(self, data: Mapping[str, Any], group: str, now: float) -> dict[str, Any]:
        return _clean_entry(data.get(group), now, self.MAX_TRACKED)

    def _blocked_for(self, group: str, entry: Mapping[str, Any], now: float) -> float:
        """Seconds left of the group's block: on the monotonic clock when the block is ours, else the wall clock."""
        blocked_until = entry.get("blocked_until", 0.0)
        own = self._own_blocks.get((self.name, group))
        if own is not None and own[0] == blocked_until:
            return max(0.0, own[1] - time.monotonic())
        return max(0.0, blocked_until - now)

    def reserve_nowait(self, group: str) -> float | None:
        """0 when ``group`` is unlimited and not blocked (no lock, no write, safe on an event loop); else None."""
        now = time.time()
        entry = self._entry(self._peek(), group, now)
        if entry.get("unlimited") and not entry.get("limit") and self._blocked_for(group, entry, now) <= 0:
            return 0.0
        return None

    def reserve(self, group: str) -> float:
        """Record a send in ``group`` and return 0, or return how long to wait (at most :data:`MAX_RATE_LIMIT_WAIT`)."""
        fast = self.reserve_nowait(group)
        if fast is not None:
            return fast
        with self._locked_entry(group) as (data, entry, now):
            wait = self._wait(group, entry, now)
            if wait > 0:
                # Said in the shared state, so a low-priority send (reserve_idle) leaves the next slot to this one
                # (written only when it moves on: many waiters asking together cost one write).
                wanted = now + min(wait, RESERVE_RECHECK) + WAITING_MARGIN
                if wanted > entry.get("wanted_until", 0.0) + WAITING_MARGIN / 2:
                    entry["wanted_until"] = wanted
                    self._save(data)
                return wait
            self._record_send(entry, now)
            self._save(data)
            return 0.0

    def reserve_idle(self, group: str) -> float:
        """
        A low-priority send (the call-log reader): record it and return 0 only when a slot of ``group`` is free now,
        no other sender waits for one and none sent in the last :data:`QUIET` seconds; else return how long until
        asking again could succeed. It never queues,
        and never says it waits, so it cannot take a slot a waiting POST or DELETE would have had.
        """
        fast = self.reserve_nowait(group)
        if fast is not None:
            return fast
        with self._locked_entry(group) as (data, entry, now):
            sent = entry.get("sent") or [0.0]
            wait = max(self._wait(group, entry, now), entry.get("wanted_until", 0.0) - now, sent[-1] + QUIET - now)
            if wait > 0:
                return wait
            self._record_send(entry, now)
            self._save(data)
            return 0.0

    @contextlib.contextmanager
    def _locked_entry(self, group: str) -> Iterator[tuple[dict[str, Any], dict[str, Any], float]]:
        """Under the host lock: the pacer's state, ``group``'s entry in it (pruned to now), and now."""
        with self.state.locked(self.name):
            data = self._load()
            now = time.time()
            entry = data[group] = self._entry(data, group, now)
            yield data, entry, now

    def _wait(self, group: str, entry: Mapping[str, Any], now: float) -> float:
        """Seconds until ``group`` has a free slot (0: one is free now): a block, or a full window."""
        blocked = self._blocked_for(group, entry, now)
        if blocked > 0:
            return blocked
        limit, window = entry.get("limit"), entry.get("window", 60.0)
        sent = [t for t in entry.get("sent", []) if t > now - window - self.SLACK * window]
        if limit and len(sent) >= limit:
            return min(MAX_RATE_LIMIT_WAIT, sent[len(sent) - limit] + window * (1 + self.SLACK) - now)
        return 0.0

    def _record_send(self, entry: dict[str, Any], now: float) -> None:
        """Log a send now in the group's window (only the sends that still count are kept)."""
        limit, window = entry.get("limit"), entry.get("window", 60.0)
        sent = [t for t in entry.get("sent", []) if t > now - window - self.SLACK * window]
        sent.append(now)
        entry["sent"] = sent[-(limit or self.MAX_TRACKED) :]

    def observe(self, group: str, headers: Mapping[str, str], *, penalty: float | None = None) -> None:
        """Learn the limit from a response's headers; ``penalty`` (a 429's wait) blocks the group host-wide."""
        limit, window = headers.get("X-Rate-Limit-Limit"), headers.get("X-Rate-Limit-Window")
        remaining = headers.get("X-Rate-Limit-Remaining")
        if penalty is None and limit is None:
            entry = self._entry(self._peek(), group, time.time())
            if not entry.get("unlimited") and not entry.get("limit"):
                with self._locked_entry(group) as (data, entry, _):
                    entry["unlimited"] = True
                    self._save(data)
            return
        with self._locked_entry(group) as (data, entry, now):
            with contextlib.suppress(ValueError):
                if limit is not None and int(limit) > 0:
                    entry["limit"] = int(limit)
                    entry.pop("unlimited", None)
                if window is not None and 0 < float(window) <= MAX_RATE_LIMIT_WAIT:
                    entry["window"] = float(window)
                if remaining is not None and int(remaining) <= 0 and penalty is None:
                    # Someone else (another host) used the budget: wait out the window from our oldest send.
                    win = entry.get("window", 60.0)
                    sent = [t for t in entry.get("sent", []) if t > now - win] or [now]
                    entry["blocked_until"] = max(entry.get("blocked_until", 0.0), sent[0] + win)
            if penalty is not None:
                wait = capped_wait(penalty, MAX_RATE_LIMIT_WAIT)
                if now + wait > entry.get("blocked_until", 0.0):
                    entry["blocked_until"] = now + wait
                    self._own_blocks[(self.name, group)] = (now + wait, time.monotonic() + wait)
            self._save(data)

    def needs_lock(self, group: str, headers: Mapping[str, str], status: int) -> bool:
        """Whether :meth:`observe` of this answer may take the file lock (then keep it off an event loop)."""
        if status == 429 or headers.get("X-Rate-Limit-Limit") is not None:
            return True
        entry = self._entry(self._peek(), group, time.time())
        return not entry.get("unlimited") and not entry.get("limit")

"""
The end of the wait a request serves, for every request of the hook (sync or async) and the shared-state locks.

:func:`within_wait` marks a block whose requests must end by a time (a status read inside its poll's wait; a
call placed inside a callback's clock, which must also be *sent* by ``send_by``); :func:`bounded_timeout`,
:func:`past_wait_end`, :func:`send_room` and :func:`lock_wait` are what the retry core (``_transport``), the
login (``_oauth``) and the locks (``_shared_state``, ``_redis_state``) ask of it. It imports nothing of the hook,
so every one of them can use it.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


# The bounds (time.monotonic) of the wait a request serves: its resends, back-offs and rate-limit waits stop at
# ``send_by``, and its answer is awaited until ``end`` (see :func:`within_wait`).
@dataclass(frozen=True)
class _Bounds:
    send_by: float
    end: float


_wait_end: contextvars.ContextVar[_Bounds | None] = contextvars.ContextVar("ringout_wait_end", default=None)


@contextlib.contextmanager
def within_wait(end: float, *, send_by: float | None = None) -> Iterator[None]:
    """
    Requests sent in this block (sync or async) back off, resend and wait for a rate limit only until ``end``
    (``time.monotonic()``): a single status read is bounded by what is left of the wait it serves.

    :param send_by: for placing a call: the waits before sending (a login, the pacer, a 429's ``Retry-After``)
        stop here instead, the ring-out POST is not sent after it (:class:`RingCentralWaitEndedError`, no call
        exists), and its answer is still awaited until ``end``.
    """
    reset = _wait_end.set(_Bounds(end if send_by is None else min(send_by, end), end))
    try:
        yield
    finally:
        _wait_end.reset(reset)


def bounded_timeout(request_timeout: float, *, before_send: bool = False) -> float:
    """
    A request's socket timeout: ``request_timeout``, cut to what is left of the wait it serves (at least 1 s, so
    a read at the very end still gets its answer), so a slow server cannot hold one read past the wait's end.

    :param before_send: the request gets ready for another (the login): cut to ``send_by`` instead.
    """
    bounds = _wait_end.get()
    if bounds is None:
        return request_timeout
    end = bounds.send_by if before_send else bounds.end
    return min(request_timeout, max(1.0, end - time.monotonic()))


def lock_wait(seconds: float | None) -> float | None:
    """
    How long a shared-state lock (the login lock, the pacer's) may be waited on: ``seconds`` (None: no bound), cut
    to what is left before the request must be sent (at least 1 s); the caller goes ahead without it after that.
    """
    bounds = _wait_end.get()
    if bounds is None:
        return seconds
    left = max(1.0, bounds.send_by - time.monotonic())
    return left if seconds is None else min(seconds, left)


# Kept free before ``send_by`` when a rate-limit wait is drawn to fit it, so the resend still goes out in time.
SEND_MARGIN = 0.5


def send_room() -> float | None:
    """Seconds a request may still wait before it must be sent (None: no bound; see :func:`within_wait`)."""
    bounds = _wait_end.get()
    return None if bounds is None else bounds.send_by - time.monotonic() - SEND_MARGIN


def past_wait_end(delay: float) -> bool:
    """Whether sleeping ``delay`` s would go past the end of the wait the request serves (see :func:`within_wait`)."""
    bounds = _wait_end.get()
    return bounds is not None and time.monotonic() + delay > bounds.send_by

"""Faults struck at a point of a run (after so many status reads), from a thread, while the run goes on."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_ringout.testing import RingCentralEmulator


class Strike:
    """Whether the fault struck: a test that relies on it says so, instead of passing on a run it missed."""

    def __init__(self) -> None:
        self.struck = threading.Event()
        self.run_ended = threading.Event()


@contextmanager
def strike_when(ready: Callable[[], bool], fault: Callable[[], None], *, poll: float = 0.02) -> Iterator[Strike]:
    """
    Strike ``fault`` as soon as ``ready()`` holds while the block runs, and never after it ended.

    No deadline: a slow machine (a busy CI host starting Airflow's processes) only delays the point, and a
    fault struck at another point (say before the call was placed) would test something else.
    """
    strike = Strike()

    def watch() -> None:
        while not strike.run_ended.is_set():
            if ready():
                fault()
                strike.struck.set()
                return
            strike.run_ended.wait(poll)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield strike
    finally:
        strike.run_ended.set()
        thread.join()


def status_reads(emulator: RingCentralEmulator, reads: int) -> Callable[[], bool]:
    """Ready once the emulator answered ``reads`` RingOut status reads (whatever their answer)."""
    return lambda: emulator.count(kind="ring-out-get") >= reads

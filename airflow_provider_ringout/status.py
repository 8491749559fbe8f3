"""
What a RingOut status means, decided in one place for the operator, the sensor, the trigger and the notifier.

RingCentral reports three fields (``callStatus``, ``callerStatus`` for the first leg, ``calleeStatus`` for the
second). :func:`classify` turns them, or a vanished session (HTTP 404), into one :class:`RingOutState`;
:class:`RingOutWatch` remembers whether the call was ever seen connected, so that a session that later
disappears resolves to connected (a normal end), failed (it was seen failing) or unknown (it vanished before
this watch saw it connect or fail: it may have connected, so nobody may dial it again).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_ringout._process import process_cache

log = logging.getLogger(__name__)


class RingOutState(str, enum.Enum):
    """Where a RingOut stands, as far as a waiting task is concerned."""

    PENDING = "pending"
    CONNECTED = "connected"
    FAILED = "failed"
    GONE = "gone"
    UNKNOWN = "unknown"  # the session vanished before it was seen connected or failing: it may have connected

    @property
    def is_final(self) -> bool:
        """Whether waiting on is pointless (connected, failed or unknown)."""
        return self in (RingOutState.CONNECTED, RingOutState.FAILED, RingOutState.UNKNOWN)


CONNECTED_CALL_VALUES = frozenset({"success", "finished"})
FAILURE_VALUES = frozenset(
    v.lower()
    for v in (
        "Busy",
        "NoAnswer",
        "Rejected",
        "GenericError",
        "InternationalDisabled",
        "DestinationBlocked",
        "NotEnoughFunds",
        "NosuchUser",
        "Invalid",
        "Error",
        "CannotReach",
        "NoAnsweringMachine",
        "RingOutFromThisNumberIsNotSupported",
    )
)
GONE_VALUE = "nosessionfound"
PENDING_VALUES = frozenset({"inprogress", "unknown"})
KNOWN_VALUES = CONNECTED_CALL_VALUES | FAILURE_VALUES | PENDING_VALUES | {GONE_VALUE}

_reported_unknown: set[str] = process_cache(__name__, "_reported_unknown", set())  # values said once


@dataclass(frozen=True)
class RingOutStatus:
    """The three status fields of one reading, and the state they mean."""

    state: RingOutState
    call_status: str | None = None
    caller_status: str | None = None
    callee_status: str | None = None

    @property
    def ongoing(self) -> bool:
        """Whether the call is still going on: its legs ringing (pending) or both up (``callStatus`` Success)."""
        return self.state is RingOutState.PENDING or (self.call_status or "").lower() == "success"

    def describe(self) -> str:
        """The three statuses in one short phrase, for logs and failure messages."""
        if self.state is RingOutState.GONE and self.call_status is None:
            return "session gone (HTTP 404)"
        return f"callStatus={self.call_status}, callerStatus={self.caller_status}, calleeStatus={self.callee_status}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, for XCom and trigger events."""
        return {
            "state": self.state.value,
            "callStatus": self.call_status,
            "callerStatus": self.caller_status,
            "calleeStatus": self.callee_status,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RingOutStatus:
        """Inverse of :meth:`as_dict`."""
        return cls(
            RingOutState(data["state"]),
            data.get("callStatus"),
            data.get("callerStatus"),
            data.get("calleeStatus"),
        )


GONE = RingOutStatus(RingOutState.GONE)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def classify(body: Mapping[str, Any] | None) -> RingOutStatus:
    """
    Classify a RingOut status body; ``None`` stands for HTTP 404 (the session no longer exists).

    Connected: ``callStatus`` Success or Finished. Failed: a failure value in ``callStatus``, or in a leg
    while ``callStatus`` is not Success. Gone: ``NoSessionFound``. Anything else, including values this
    version does not know, is pending; an unknown value is logged once per process.
    """
    if body is None:
        return GONE
    nested = body.get("status") if isinstance(body, Mapping) else None
    raw: Mapping[str, Any] = nested if isinstance(nested, Mapping) else {}
    call, caller, callee = (_text(raw.get(k)) for k in ("callStatus", "callerStatus", "calleeStatus"))
    call_l, caller_l, callee_l = ((v or "").lower() for v in (call, caller, callee))

    for value in (call, caller, callee):
        if value and value.lower() not in KNOWN_VALUES and value.lower() not in _reported_unknown:
            _reported_unknown.add(value.lower())
            log.warning("Unknown RingOut status value %r; treating it as still in progress.", value)

    if call_l == "success":
        state = RingOutState.CONNECTED
    elif call_l in FAILURE_VALUES or caller_l in FAILURE_VALUES or callee_l in FAILURE_VALUES:
        state = RingOutState.FAILED
    elif call_l == "finished":
        state = RingOutState.CONNECTED
    elif GONE_VALUE in (call_l, caller_l, callee_l):
        state = RingOutState.GONE
    else:
        state = RingOutState.PENDING
    return RingOutStatus(state, call, caller, callee)


class RingOutWatch:
    """
    Follows one call across readings and resolves "gone" by its history.

    A session that disappears after a connected reading ended normally (connected); one that disappears after a
    failing reading failed; one that disappears before either was seen has an unknown outcome (it may have
    connected between two readings), which must never lead to a second call.
    """

    def __init__(self, ringout_id: str, *, seen_connected: bool = False) -> None:
        self.ringout_id = ringout_id
        self.seen_connected = seen_connected
        self.last: RingOutStatus | None = None
        self.vanished = False  # the latest reading found no session (``last`` keeps the reading before, if any)

    def observe(self, status: RingOutStatus) -> RingOutState:
        """Record a reading and return the state it resolves to: pending, connected, failed or unknown."""
        self.vanished = status.state is RingOutState.GONE
        if status.state is not RingOutState.GONE or self.last is None:
            self.last = status
        if status.state is RingOutState.CONNECTED:
            self.seen_connected = True
            return RingOutState.CONNECTED
        if status.state is RingOutState.GONE:
            if self.seen_connected:
                return RingOutState.CONNECTED
            if self.last is not None and self.last.state is RingOutState.FAILED:
                return RingOutState.FAILED
            return RingOutState.UNKNOWN
        return status.state

    def to_dict(self) -> dict[str, Any]:
        """
        JSON-friendly form, for the trigger's serialized kwargs (the same three keys it has always had).

        :return: ``ringout_id``, ``seen_connected`` and ``last_status`` (:meth:`RingOutStatus.as_dict`, or None).
        """
        return {
            "ringout_id": self.ringout_id,
            "seen_connected": self.seen_connected,
            "last_status": self.last.as_dict() if self.last else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RingOutWatch:
        """
        Inverse of :meth:`to_dict`; ``seen_connected`` and ``last_status`` may be missing (nothing seen yet).

        :param data: a mapping with at least ``ringout_id``.
        :return: the watch, with its last reading restored.
        """
        watch = cls(str(data["ringout_id"]), seen_connected=bool(data.get("seen_connected")))
        if data.get("last_status"):
            watch.last = RingOutStatus.from_dict(data["last_status"])
        return watch

    @property
    def pending(self) -> bool:
        """
        Whether the call may still be ringing, as far as this watch knows: nothing read yet, or the latest reading
        pending. The one "still pending?" test of a task's ``on_kill``, the trigger's, and the stop after Airflow's
        timeout (a session that vanished, or a final reading, is not pending: nothing to cancel).
        """
        return not self.vanished and (self.last is None or self.last.state is RingOutState.PENDING)

    def describe(self) -> str:
        """The last statuses seen, for messages (a 404 does not hide the last real reading)."""
        return self.last.describe() if self.last else "no status read yet"

    @property
    def outcome_unknown(self) -> bool:
        """Whether the session vanished before it was seen connected or failing (it may have connected)."""
        return (
            not self.seen_connected
            and self.last is not None
            and self.last.state in (RingOutState.PENDING, RingOutState.GONE)
        )

    def failure_message(self) -> str:
        """Why the call did not (knowingly) connect, with the three statuses."""
        if self.outcome_unknown:
            return (
                f"RingOut {self.ringout_id}: its session ended before the call was seen connected or failing, so "
                f"it may have connected; it is not dialled again ({self.describe()}). "
                "Clear the task to place a new call deliberately."
            )
        return f"RingOut {self.ringout_id} failed: the call did not connect ({self.describe()})."


class CancelOutcome(str, enum.Enum):
    """What a cancel achieved, judged from the status read right after the DELETE."""

    STOPPED = "stopped"  # the call is over and never connected
    NOTHING_TO_STOP = "nothing_to_stop"  # the session was already gone
    CONNECTED = "connected"  # both legs were up: DELETE cannot hang up
    FIRST_LEG_UP = "first_leg_up"  # the from_number phone answered: RingCentral no longer lets DELETE stop it

    @property
    def stopped(self) -> bool:
        """Whether the cancel stopped the call before it connected."""
        return self is CancelOutcome.STOPPED

    def describe(self) -> str:
        """
        What the cancel achieved, in words, for every log line and message that reports a cancel.

        :return: a clause about the call ("it was cancelled and stopped", ...), honest about a call that goes on.
        """
        return _CANCEL_WORDS[self]


_CANCEL_WORDS = {
    CancelOutcome.STOPPED: "it was cancelled and stopped",
    CancelOutcome.NOTHING_TO_STOP: "its session was already gone, nothing to stop",
    CancelOutcome.CONNECTED: "it could not be stopped: it had already connected, and a RingOut cancel cannot hang "
    "it up",
    CancelOutcome.FIRST_LEG_UP: "the cancel could NOT stop it: the first leg was already answered, and RingCentral "
    "no longer lets a cancel stop the call",
}


def cancel_outcome(accepted: bool, after: RingOutStatus) -> CancelOutcome:
    """Judge a cancel: ``accepted`` is whether DELETE found the session, ``after`` the status read next."""
    if not accepted:
        return CancelOutcome.NOTHING_TO_STOP
    if after.state is RingOutState.CONNECTED:
        return CancelOutcome.CONNECTED
    if after.state is RingOutState.PENDING and (after.caller_status or "").lower() == "success":
        return CancelOutcome.FIRST_LEG_UP
    return CancelOutcome.STOPPED

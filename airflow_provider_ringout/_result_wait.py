"""
How a wait for a call's result ends, written once for RingOutOperator (``wait_for_result``), RingOutCallResultSensor
(poke, reschedule, deferrable) and RingOutCallResultTrigger.

- :func:`placed_ringout`: the ``ringout`` dict a task is given (a dict, or its JSON as a template renders it).
- :func:`look_up`: one look-up (``get_call_result``): the result dict, None (not there yet), or the ambiguous
  error (two records could be the call: never guessed).
- :func:`wait_for_result`: the blocking wait, bounded, ending in the result or :class:`RingOutCallResultTimeoutError`.
- :class:`CallResultEvent`: the trigger's one event, the only code that knows its JSON; :meth:`CallResultEvent.outcome`
  ends the resumed task's wait as the blocking wait ends.
- :func:`not_found_message`: the words of the timeout, saying why a record may not come (the ambiguous error's
  words are the hook's).

The deferral itself is ``triggers.call_result.defer_result_wait`` (the trigger imports this module).
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout.call_result import PlacedRingOut
from airflow_provider_ringout.exceptions import (
    RingCentralConfigError,
    RingOutCallResultAmbiguousError,
    RingOutCallResultError,
    RingOutCallResultTimeoutError,
)

if TYPE_CHECKING:
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

# Seconds between two look-ups of a waiting result. The call log is in RingCentral's Heavy group (10 requests a
# minute per user and app, shared with the POST and DELETE), and a record comes 15-30 s after the call ends.
RESULT_POLL_INTERVAL = 10.0
# How long a task waits for a record by default: RingCentral's 15-30 s delay, plus the call's length.
RESULT_TIMEOUT = timedelta(minutes=5)


def placed_ringout(value: Any, name: str = "ringout") -> PlacedRingOut:
    """
    The RingOut a task waits on, from the ``ringout`` dict (XCom key ``ringout``) or its JSON text.

    A template renders a dict as text unless the DAG sets ``render_template_as_native_obj``: both work.

    :raises RingCentralConfigError: not a ringout dict (named, with what it lacks).
    """
    if isinstance(value, PlacedRingOut):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            try:  # str() of a dict, as a template renders one
                import ast

                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise RingCentralConfigError(
                    f"{name} must be the ringout dict (XCom key 'ringout') or its JSON; got text that is neither."
                ) from None
    if not isinstance(value, Mapping):
        raise RingCentralConfigError(
            f"{name} must be the ringout dict (XCom key 'ringout'); got {type(value).__name__}."
        )
    try:
        return PlacedRingOut.from_dict(value)
    except ValueError as exc:
        raise RingCentralConfigError(f"{name}: {exc}.") from None


def not_found_message(ringout_id: str, within: str) -> str:
    """Why a call's record did not appear within ``within`` (words such as "300 s", "the sensor's timeout")."""
    return (
        f"The call-log record of RingOut {ringout_id} did not appear within {within}. It may not appear: a call "
        "cancelled or lost before its first leg rang, or whose session vanished, may leave none; RingCentral writes "
        "a record 15-30 s after the call ends, so a call still going on, or just ended, is not there yet (wait "
        "longer: result_timeout, or the sensor's timeout); and an app or user without the ReadCallLog permission "
        "reads nothing (that answers 403 naming it)."
    )


def look_up(hook: RingCentralHook, ringout: PlacedRingOut) -> dict[str, Any] | None:
    """
    One :meth:`RingCentralHook.get_call_result` look-up: the result dict, or None while the record is not there.

    :raises RingOutCallResultAmbiguousError: two records could be the call (never guessed).
    """
    return hook.get_call_result(
        ringout.id, from_number=ringout.from_number, to_number=ringout.to_number, placed_at=ringout.placed_at
    )


def log_result(log: Any, ringout_id: str, result: Mapping[str, Any]) -> None:
    """The one log line a found result gets: its result, how long the call lasted and who answered."""
    log.info(
        "RingOut %s result: %s (%s s, answered by: %s).",
        ringout_id,
        result.get("result"),
        result.get("duration"),
        result.get("answered_by"),
    )


def wait_for_result(
    hook: RingCentralHook, ringout: PlacedRingOut, *, timeout: float, poll_interval: float
) -> dict[str, Any]:
    """
    Look the call's record up until it appears (its result dict), or ``timeout`` seconds pass.

    :raises RingOutCallResultTimeoutError: no record within ``timeout`` (the message says why it may not come).
    :raises RingOutCallResultAmbiguousError: two records could be the call.
    """
    deadline = time.monotonic() + timeout
    while (result := look_up(hook, ringout)) is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RingOutCallResultTimeoutError(not_found_message(ringout.id, f"{timeout:g} s"), ringout_id=ringout.id)
        time.sleep(min(poll_interval, remaining))
    return result


class ResultEventKind(str, enum.Enum):
    """How the trigger's wait for a result ended: the ``status`` of its event."""

    FOUND = "found"
    AMBIGUOUS = "ambiguous"
    TIMEOUT = "timeout"
    ERROR = "error"  # the look-ups failed (no ReadCallLog permission, RingCentral unreachable, ...)


@dataclass(frozen=True)
class CallResultEvent:
    """
    The result trigger's one event: what its wait came to, the call, the result (found) or a message, and
    ``carry``: what the deferring task handed the trigger to get back (the event is all a resumed task is sure to
    get: ``airflow dags test`` drops the deferral's own kwargs).
    """

    kind: ResultEventKind
    ringout: PlacedRingOut
    result: dict[str, Any] | None = None
    message: str = ""
    carry: dict[str, Any] | None = None
    candidates: int = 0  # ambiguous: how many records could be the call

    def payload(self) -> dict[str, Any]:
        """The JSON the trigger fires."""
        return {
            "status": self.kind.value,
            "ringout": self.ringout.as_dict(),
            "result": self.result,
            "message": self.message,
            "carry": self.carry,
            "candidates": self.candidates,
        }

    @classmethod
    def decode(cls, event: Any) -> CallResultEvent:
        """
        Read the event a task resumes with; a ``status`` this release does not know reads as an error.

        :raises RingOutCallResultError: the event is not a result trigger's event.
        """
        if not isinstance(event, Mapping) or not isinstance(event.get("ringout"), Mapping):
            raise RingOutCallResultError(f"The task resumed with an event that is not a call-result event: {event!r}.")
        ringout = placed_ringout(event["ringout"], "the event's ringout")
        message = str(event.get("message") or "")
        try:
            kind = ResultEventKind(event.get("status"))
        except ValueError:
            kind, message = ResultEventKind.ERROR, f"unrecognised event status {event.get('status')!r}: {message}"
        result = event.get("result") if isinstance(event.get("result"), Mapping) else None
        if kind is ResultEventKind.FOUND and result is None:
            kind, message = ResultEventKind.ERROR, "a found event without a result"
        carry = event.get("carry") if isinstance(event.get("carry"), Mapping) else None
        candidates = event["candidates"] if isinstance(event.get("candidates"), int) else 0
        return cls(
            kind,
            ringout,
            dict(result) if result is not None else None,
            message,
            dict(carry) if carry else None,
            candidates,
        )

    def outcome(self, within: str) -> dict[str, Any]:
        """
        End the resumed wait as the blocking one ends: the result dict, or the error.

        :param within: how long the wait was, in words, for the timeout's message.
        :raises RingOutCallResultTimeoutError: no record in time.
        :raises RingOutCallResultAmbiguousError: two records could be the call.
        :raises RingOutCallResultError: the trigger's look-ups failed.
        """
        ringout_id = self.ringout.id
        if self.kind is ResultEventKind.FOUND and self.result is not None:
            return self.result
        if self.kind is ResultEventKind.AMBIGUOUS:
            raise RingOutCallResultAmbiguousError(self.message, ringout_id=ringout_id, candidates=self.candidates)
        if self.kind is ResultEventKind.TIMEOUT:
            raise RingOutCallResultTimeoutError(not_found_message(ringout_id, within), ringout_id=ringout_id)
        raise RingOutCallResultError(
            f"Reading the result of RingOut {ringout_id} failed: {self.message}", ringout_id=ringout_id
        )

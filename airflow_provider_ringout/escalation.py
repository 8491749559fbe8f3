"""
The escalation engine: ring a list of numbers in turn until one person acknowledges, for the notifier and tasks.

One number at a time is rung (with ``connect_to``: the person first, with RingCentral's press-1 prompt, then
connected on to ``connect_to``, so a voicemail cannot acknowledge), waited on for up to its wait, cancelled if
still unanswered (:meth:`RingCentralHook.cancel_and_confirm`, worded by ``CancelOutcome.describe()``), and the
next is rung. It stops at the first acknowledgement. A number is never dialled twice in a round, and a number
whose outcome is unknown ("not confirmed (may have connected)") never again in the escalation. A wait that fails
(status reads failing) cancels the call urgently and says what the cancel did.

The decisions live here once: :class:`CallOutcome` words what one call came to, :class:`CallRecord` is one call
and its cancel, :class:`Progress` is where an escalation stands (which round, which number next, what each call
came to; JSON-friendly, so the deferrable trigger can persist it and resume). :class:`Escalation` runs them with
the blocking hook; ``triggers/escalation.py`` runs the same decisions with the async hook. Under a clock (the
notifier's callback) each call gets a :class:`Slot`: placing it (login, pacer, 429 waits) stops where a useful
ring no longer fits, and a number left out is recorded "not rung" (:meth:`Progress.give_up`), never dropped.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout._wait_end import within_wait
from airflow_provider_ringout.exceptions import (
    RingCentralAuthError,
    RingCentralWaitEndedError,
    RingOutUnconfirmedError,
)
from airflow_provider_ringout.phone import mask_phone_number, validate_e164
from airflow_provider_ringout.status import CancelOutcome, RingOutState, RingOutWatch, classify

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

log = logging.getLogger(__name__)


class Step(enum.Enum):
    """What the escalation does after a call."""

    STOP = "stop"  # delivered: nobody else is rung
    NEXT = "next"  # not reached: ring the next number
    ABORT = "abort"  # nothing can be placed (credentials refused): stop, undelivered


class CallOutcome(str, enum.Enum):
    """What one call came to; :meth:`CallRecord.describe` is the one place that words it."""

    ACKNOWLEDGED = "acknowledged"  # connect_to: the person pressed 1 and was connected on
    CONNECTED = "connected"  # from_number shape: the alerted leg answered
    PLACED = "placed"  # placed without waiting (the notifier's wait_for_connection=False)
    NO_ANSWER = "no_answer"  # not acknowledged (connected) within its wait
    NOT_PRESSED = "not_pressed"  # the first leg was answered but nobody pressed 1 (a voicemail?)
    CALL_FAILED = "call_failed"  # RingCentral reported a failure (busy, rejected, ...)
    NOT_PLACED = "not_placed"  # the POST was refused: no call exists
    UNCONFIRMED = "unconfirmed"  # may have connected: never dialled again
    WAIT_FAILED = "wait_failed"  # its status could not be read: cancelled urgently
    REFUSED = "refused"  # RingCentral refused the credentials: nothing can be placed
    NOT_RUNG = "not_rung"  # no time was left to ring it (a callback's clock): no call exists

    @property
    def delivered(self) -> bool:
        """Whether this call reached someone (the escalation stops)."""
        return self in (CallOutcome.ACKNOWLEDGED, CallOutcome.CONNECTED, CallOutcome.PLACED)

    @property
    def step(self) -> Step:
        """What the escalation does next."""
        if self.delivered:
            return Step.STOP
        return Step.ABORT if self is CallOutcome.REFUSED else Step.NEXT


_WORDS = {
    CallOutcome.ACKNOWLEDGED: "acknowledged (pressed 1)",
    CallOutcome.CONNECTED: "answered",
    CallOutcome.PLACED: "placed; not waited on",
    CallOutcome.NO_ANSWER: "not {what} within {wait:.0f} s",
    CallOutcome.NOT_PRESSED: "answered but nobody pressed 1 (a voicemail?)",
    CallOutcome.CALL_FAILED: "the call did not go through",
    CallOutcome.NOT_PLACED: "the call could not be placed",
    CallOutcome.UNCONFIRMED: "not confirmed (may have connected), so it is not dialled again",
    CallOutcome.WAIT_FAILED: "its status could not be read",
    CallOutcome.REFUSED: "RingCentral refused the credentials; no call placed",
    CallOutcome.NOT_RUNG: "not rung: no time was left",
}


@dataclass
class CallRecord:
    """One call of an escalation: the number, what it came to, and what its cancel did (if it was cancelled)."""

    number: str
    outcome: CallOutcome
    round: int = 1
    wait: float = 0.0
    acknowledging: bool = True  # connect_to shape (acknowledge by pressing 1) or from_number shape (answer)
    ringout_id: str | None = None
    cancel: CancelOutcome | None = None
    cancel_error: str | None = None  # the cancel itself failed: the call may still ring
    detail: str = ""  # the statuses seen, or the error

    def describe(self) -> str:
        """What this call came to, in words (the number is not in them: callers mask it)."""
        words = _WORDS[self.outcome].format(what="acknowledged" if self.acknowledging else "connected", wait=self.wait)
        if self.detail:
            words = f"{words} ({self.detail})"
        if self.cancel is not None:
            words = f"{words}; {self.cancel.describe()}"
        elif self.cancel_error is not None:
            words = f"{words}; the cancel failed ({self.cancel_error}), so it may still be ringing"
        return words

    def as_result(self) -> dict[str, Any]:
        """The XCom form: the number, the outcome's words and its value."""
        return {"number": self.number, "outcome": self.describe(), "result": self.outcome.value, "round": self.round}

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "outcome": self.outcome.value,
            "round": self.round,
            "wait": self.wait,
            "acknowledging": self.acknowledging,
            "ringout_id": self.ringout_id,
            "cancel": self.cancel.value if self.cancel else None,
            "cancel_error": self.cancel_error,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CallRecord:
        return cls(
            number=str(data["number"]),
            outcome=CallOutcome(data["outcome"]),
            round=int(data.get("round") or 1),
            wait=float(data.get("wait") or 0.0),
            acknowledging=bool(data.get("acknowledging", True)),
            ringout_id=data.get("ringout_id"),
            cancel=CancelOutcome(data["cancel"]) if data.get("cancel") else None,
            cancel_error=data.get("cancel_error"),
            detail=str(data.get("detail") or ""),
        )


@dataclass(frozen=True)
class Slot:
    """
    The time one call may take: how long it may ring, and under a clock (the notifier's callback) the two bounds
    that placing it does not pass, however long the login, the pacer or a 429's ``Retry-After`` take.

    :param wait: seconds the call may ring once placed.
    :param ends: ``time.monotonic()`` by which the ring is cancelled (its wait is cut to end there).
    :param place_by: ``time.monotonic()`` after which the POST is not sent: the call is then "not rung".
    """

    wait: float
    ends: float | None = None
    place_by: float | None = None

    def placing(self) -> contextlib.AbstractContextManager[object]:
        """The block that places the call: its waits stop at ``place_by``, its answer is awaited until ``ends``."""
        if self.ends is None:
            return contextlib.nullcontext()
        return within_wait(self.ends, send_by=self.place_by)

    def ring_for(self) -> float:
        """How long the call placed now may ring: its wait, cut to ``ends`` (placing it took time too)."""
        if self.ends is None:
            return self.wait
        return max(0.0, min(self.wait, self.ends - time.monotonic()))


def answered_outcome(acknowledging: bool) -> CallOutcome:
    """The delivered outcome of the shape: acknowledged (connect_to) or connected (from_number)."""
    return CallOutcome.ACKNOWLEDGED if acknowledging else CallOutcome.CONNECTED


def settled(state: RingOutState, acknowledging: bool) -> tuple[CallOutcome, bool]:
    """What a watched call came to, and whether it must be cancelled (still ringing, or failing on one leg)."""
    if state is RingOutState.CONNECTED:
        return answered_outcome(acknowledging), False
    if state is RingOutState.UNKNOWN:
        return CallOutcome.UNCONFIRMED, False
    if state is RingOutState.FAILED:  # a failed leg can leave the other one ringing
        return CallOutcome.CALL_FAILED, True
    return CallOutcome.NO_ANSWER, True


def after_cancel(outcome: CallOutcome, cancel: CancelOutcome | None, acknowledging: bool) -> CallOutcome:
    """
    What a cancelled call came to, from why it was cancelled (no answer, failed wait) and what the cancel found.

    Connected as it was cancelled: delivered. Answered without pressing 1: not acknowledged. Session already gone
    after it was last seen ringing: it may have connected in between, so not confirmed (never redialled).
    """
    if cancel is CancelOutcome.CONNECTED:
        return answered_outcome(acknowledging)
    if cancel is CancelOutcome.FIRST_LEG_UP and acknowledging:
        return CallOutcome.NOT_PRESSED
    if cancel is CancelOutcome.NOTHING_TO_STOP and outcome in (CallOutcome.NO_ANSWER, CallOutcome.WAIT_FAILED):
        return CallOutcome.UNCONFIRMED
    return outcome


@dataclass
class Progress:
    """
    Where an escalation stands: the round, the next number's position, and every call so far.

    JSON-friendly (:meth:`to_dict`), so a deferrable escalation persists it after each step and a restarted
    trigger resumes where it stood. ``in_flight`` is a call placed (or being placed) whose outcome is not recorded
    yet: a restart finishes (or cancels) that call rather than placing it again.
    """

    numbers: list[str]
    rounds: int = 1
    round: int = 1
    index: int = 0
    calls: list[CallRecord] = field(default_factory=list)
    in_flight: dict[str, Any] | None = None
    aborted: bool = False

    @property
    def unconfirmed(self) -> list[str]:
        """Numbers that may have connected: never dialled again in this escalation."""
        return list(dict.fromkeys(c.number for c in self.calls if c.outcome is CallOutcome.UNCONFIRMED))

    @property
    def reached(self) -> CallRecord | None:
        """The call that was delivered, if any."""
        return next((c for c in self.calls if c.outcome.delivered), None)

    @property
    def delivered(self) -> bool:
        """Delivered: someone was reached, or a call was left "not confirmed (may have connected)"."""
        return self.reached is not None or bool(self.unconfirmed)

    @property
    def finished(self) -> bool:
        return self.aborted or self.reached is not None or self.round > self.rounds

    def next_number(self) -> str | None:
        """The next number to ring (moving to the next round as needed), or None when the escalation is over."""
        while not self.finished:
            if self.index >= len(self.numbers):
                self.round, self.index = self.round + 1, 0
                continue
            number = self.numbers[self.index]
            rung = {c.number for c in self.calls if c.round == self.round}
            if number in rung or number in self.unconfirmed:
                self.index += 1
                continue
            return number
        return None

    def give_up(self, detail: str) -> list[CallRecord]:
        """Record every number left in this round as not rung (no time was left, ``detail`` says whose clock)."""
        skipped: list[CallRecord] = []
        current = self.round
        while (number := self.next_number()) is not None and self.round == current:
            skipped.append(CallRecord(number, CallOutcome.NOT_RUNG, detail=detail))
            self.record(skipped[-1])
        return skipped

    def record(self, call: CallRecord) -> Step:
        """Record the current number's call and move on; returns what the escalation does next."""
        call.round = self.round
        self.calls.append(call)
        self.in_flight = None
        self.index += 1
        step = call.outcome.step
        self.aborted = step is Step.ABORT
        return step

    def position(self) -> tuple[int, int]:
        return self.index + 1, len(self.numbers)

    def to_dict(self, *, numbers: bool = True) -> dict[str, Any]:
        """
        JSON-friendly form; with ``numbers=False`` (for files on disk) each number is replaced by its position.

        :param numbers: keep the phone numbers (event payloads); False stores positions in ``self.numbers``.
        """

        def who(number: str) -> Any:
            return number if numbers else self.numbers.index(number)

        calls = [{**c.to_dict(), "number": who(c.number)} for c in self.calls]
        in_flight = dict(self.in_flight) if self.in_flight else None
        if in_flight and not numbers:
            in_flight["number"] = who(in_flight["number"])
        return {
            "numbers": list(self.numbers) if numbers else len(self.numbers),
            "rounds": self.rounds,
            "round": self.round,
            "index": self.index,
            "calls": calls,
            "in_flight": in_flight,
            "aborted": self.aborted,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], numbers: Sequence[str] | None = None) -> Progress:
        """
        Inverse of :meth:`to_dict`; ``numbers`` turns the positions of a ``numbers=False`` form back into numbers.

        :raises ValueError: the positions do not fit ``numbers`` (the data belongs to another list).
        """
        listed = [str(n) for n in (numbers if numbers is not None else data["numbers"])]
        if numbers is not None and data.get("numbers") != len(listed):
            raise ValueError("the saved escalation is of another list of numbers")

        def who(value: Any) -> str:
            return listed[int(value)] if numbers is not None else str(value)

        in_flight = dict(data["in_flight"]) if data.get("in_flight") else None
        if in_flight:
            in_flight["number"] = who(in_flight["number"])
        return cls(
            numbers=listed,
            rounds=int(data.get("rounds") or 1),
            round=int(data.get("round") or 1),
            index=int(data.get("index") or 0),
            calls=[CallRecord.from_dict({**c, "number": who(c["number"])}) for c in data.get("calls") or []],
            in_flight=in_flight,
            aborted=bool(data.get("aborted")),
        )

    def outcomes(self) -> str:
        """Each call's outcome, numbers masked, for the error when nobody acknowledged."""
        return (
            "; ".join(f"round {c.round}: {mask_phone_number(c.number)} {c.describe()}" for c in self.calls)
            or "no call was placed"
        )

    def result(self) -> dict[str, Any]:
        """The task's return value: who acknowledged, in which round, and every call."""
        reached = self.reached
        return {
            "acknowledged_by": reached.number if reached else None,
            "round": reached.round if reached else None,
            "calls": [c.as_result() for c in self.calls],
        }


def not_placed(record: CallRecord, exc: Exception) -> CallRecord:
    """
    A POST that raised: not rung when its time ran out before it was sent, not confirmed when its answer was
    lost, refused credentials, or not placed.
    """
    if isinstance(exc, RingCentralWaitEndedError):  # given up before the POST was sent: no call exists
        record.outcome, record.detail = CallOutcome.NOT_RUNG, f"placing the call ran out of time: {exc}"
    elif isinstance(exc, RingOutUnconfirmedError):
        record.outcome = CallOutcome.UNCONFIRMED
        record.detail = f"the call may have been placed, but the answer to its POST was lost: {exc}"
    elif isinstance(exc, RingCentralAuthError):
        record.outcome, record.detail = CallOutcome.REFUSED, str(exc)
    else:
        record.outcome, record.detail = CallOutcome.NOT_PLACED, str(exc)
    return record


def call_args(number: str, connect_to: str | None, from_number: str | None, caller_id: str | None) -> dict[str, Any]:
    """What :meth:`RingCentralHook.place_ringout` gets to alert ``number``: press-1 and connect_to, or from_number."""
    if connect_to:
        return {"to_number": connect_to, "from_number": number, "caller_id": caller_id, "play_prompt": True}
    return {"to_number": number, "from_number": from_number, "caller_id": caller_id}


class Escalation:
    """
    Runs an escalation with the blocking hook, logging each step under ``label`` (numbers masked).

    :param hook: the RingCentralHook.
    :param connect_to: the acknowledging shape: each person is rung first and must press 1.
    :param from_number: the other shape: the phone rung first (default: the connection's).
    :param caller_id: the number the called party sees.
    :param poll_interval: seconds between status reads.
    :param wait_for_connection: False places one call and returns without waiting (the notifier's option).
    :param label: how log lines begin ("RingOut alert", "RingOut escalation").
    """

    def __init__(
        self,
        hook: RingCentralHook,
        *,
        connect_to: str | None = None,
        from_number: str | None = None,
        caller_id: str | None = None,
        poll_interval: float = 2.0,
        wait_for_connection: bool = True,
        label: str = "RingOut alert",
        logger: Any = None,
    ) -> None:
        self.hook = hook
        self.connect_to = connect_to or None
        self.from_number = from_number
        self.caller_id = caller_id
        self.poll_interval = poll_interval
        self.wait_for_connection = wait_for_connection or bool(self.connect_to)
        self.label = label
        self.log = logger or log

    @property
    def acknowledging(self) -> bool:
        return self.connect_to is not None

    def call_args(self, number: str) -> dict[str, Any]:
        return call_args(number, self.connect_to, self.from_number, self.caller_id)

    def check(self, number: str) -> None:
        """Check what every call shares (connection, connect_to, first leg, caller_id) before any is placed."""
        self.hook.credentials  # noqa: B018 (reads and checks the connection)
        if self.connect_to:
            validate_e164(self.connect_to, "connect_to")
        self.hook.build_ringout_request(**self.call_args(number))

    def run(
        self,
        progress: Progress,
        wait_for: Callable[[Progress], float | Slot | None],
        before_each_call: Callable[[], object] | None = None,
    ) -> Progress:
        """
        Ring until someone acknowledges, every round is done, or ``wait_for`` says there is no time left.

        :param progress: where the escalation stands (a new one: ``Progress(numbers, rounds)``).
        :param wait_for: seconds to wait on the next call (or its :class:`Slot`, under a clock), or None to stop
            before it (the caller records why: :meth:`Progress.give_up`).
        :param before_each_call: called before each number is rung (renews a claim); an error there is logged
            and the call goes ahead, so bookkeeping never stops an alert.
        :return: ``progress``, finished.
        """
        while (number := progress.next_number()) is not None:
            slot = wait_for(progress)
            if slot is None:
                break
            if before_each_call is not None:
                try:
                    before_each_call()
                except Exception as exc:
                    self.log.warning("%s: could not renew the incident's claim (%s); calling anyway.", self.label, exc)
            position, total = progress.position()
            progress.record(self.ring(number, position, total, slot if isinstance(slot, Slot) else Slot(slot)))
        return progress

    def ring(self, number: str, position: int, total: int, slot: Slot) -> CallRecord:
        """Ring one number inside ``slot`` (placing it included), cancel it if unanswered; never places it twice."""
        masked = mask_phone_number(number)
        self.log.info("%s: calling %s (%d of %d).", self.label, masked, position, total)
        record = CallRecord(number, CallOutcome.NOT_PLACED, wait=slot.wait, acknowledging=self.acknowledging)
        try:
            with slot.placing():
                body = self.hook.place_ringout(**self.call_args(number))
        except Exception as exc:
            return self._logged(not_placed(record, exc))
        record.ringout_id = str(body["id"])
        record.wait = wait = slot.ring_for()
        if not self.wait_for_connection:
            record.outcome = CallOutcome.PLACED
            return self._logged(record)
        watch = RingOutWatch(record.ringout_id)
        watch.observe(classify(body))
        try:
            state = self.hook.wait_for_ringout(watch, timeout=wait, poll_interval=min(self.poll_interval, wait))
        except Exception as exc:  # the status cannot be read: do not leave the phone ringing
            record.outcome, record.detail = CallOutcome.WAIT_FAILED, f"{type(exc).__name__}: {exc}"
            return self._logged(self.cancel(record, urgent=True))
        except BaseException:  # the callback is being stopped: do not leave the phone ringing
            self.cancel(record, urgent=True)
            raise
        record.outcome, stop = settled(state, self.acknowledging)
        record.detail = watch.describe()
        return self._logged(self.cancel(record) if stop else record)

    def cancel(self, record: CallRecord, *, urgent: bool = False) -> CallRecord:
        """Stop an unanswered call before the next number rings, and record what the cancel did."""
        assert record.ringout_id is not None
        try:
            record.cancel = self.hook.cancel_and_confirm(record.ringout_id, urgent=urgent)
        except Exception as exc:
            record.cancel_error = f"{type(exc).__name__}: {exc}"
            return record
        record.outcome = after_cancel(record.outcome, record.cancel, self.acknowledging)
        return record

    def _logged(self, record: CallRecord) -> CallRecord:
        log_call(self.log, self.label, record)
        return record


def log_call(logger: Any, label: str, record: CallRecord) -> None:
    """One log line per call, in the outcome's words; delivered calls at INFO, the rest at WARNING."""
    masked = mask_phone_number(record.number)
    ident = f" (RingOut {record.ringout_id})" if record.ringout_id else ""
    if record.outcome.delivered:
        logger.info("%s delivered: %s %s%s.", label, masked, record.describe(), ident)
    elif record.outcome is CallOutcome.REFUSED:
        logger.error("%s FAILED: %s: %s", label, masked, record.describe())
    else:
        logger.warning("%s: %s%s: %s; moving on.", label, masked, ident, record.describe())


def unique_numbers(numbers: Sequence[Any]) -> list[Any]:
    """The numbers in order, stripped, without duplicates (a number is never rung twice in a round)."""
    return list(dict.fromkeys(n.strip() if isinstance(n, str) else n for n in numbers))

"""
RingOutEscalationTrigger: a whole escalation (ring, wait, cancel, next) in the triggerer, holding no worker slot.

It runs the decisions of :mod:`airflow_provider_ringout.escalation` (the blocking engine's words, outcomes and
:class:`~airflow_provider_ringout.escalation.Progress`) with the async hook: status reads and cancels are
``aget_status`` / ``acancel_and_confirm``; the POST, which the hook has only in blocking form, runs in a worker
thread (``asyncio.to_thread``), so the event loop never waits on the network.

Restart safety. A triggerer that restarts rebuilds the trigger from its ``serialize()`` kwargs, which Airflow
stored when the task deferred and never updates; progress made since then would be lost, and the escalation would
start over and ring the first engineer again. So the trigger saves its :class:`Progress` after each step (before
each POST, after it, after each call's outcome) under a key of the task instance and its try (``progress_key``):
in the hook's host-wide state folder (the same private 0700 folder, flock-guarded JSON, that holds the token cache
and the alert claims) and, with ``[ringcentral] shared_state = redis``, in Redis too, so a triggerer on another host
resumes it (kept by :mod:`airflow_provider_ringout.state.progress`). A rebuilt trigger reads it first:

- a call recorded as over is not rung again in that round;
- a call placed but not yet resolved (its RingOut id saved) is watched on until its saved deadline, then
  cancelled as usual: nothing is left ringing and nobody is rung twice;
- a POST that was being sent when the triggerer stopped (no id saved) may have placed a call, so that number is
  "not confirmed (may have connected)" and never rung again in this escalation.

The provider's own state was chosen over the trigger's kwargs (not re-persisted by Airflow), XCom and the task
state store (not writable from a trigger on every supported core). Numbers are never written to it: progress is
saved with each number's position in the list. With the ``file`` shared state, a triggerer restarted on another
host does not see the folder and starts the escalation over; the docs say so. With ``redis``, a Redis that cannot
be used leaves the host's folder (one WARNING from the Redis backend). When neither can be written the escalation
goes on and one WARNING says a restart would start it over.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_ringout._task_mixin import check_hook_params, seconds
from airflow_provider_ringout.escalation import (
    CallOutcome,
    CallRecord,
    Progress,
    after_cancel,
    call_args,
    log_call,
    not_placed,
    settled,
)
from airflow_provider_ringout.exceptions import RingOutError
from airflow_provider_ringout.phone import mask_phone_number
from airflow_provider_ringout.state.progress import load_progress, save_progress
from airflow_provider_ringout.status import RingOutState, RingOutWatch, classify
from airflow_provider_ringout.triggers._base import RingCentralTrigger
from airflow_provider_ringout.triggers.ringout import CANCEL_TIMEOUT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow.sdk import Context

    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
    from airflow_provider_ringout.state.files import StateDir

LABEL = "RingOut escalation"


def progress_key(context: Context) -> str:
    """The saved progress's key: a digest of the task instance and its try (a retry is a new escalation)."""
    ti = context["ti"]
    parts = (ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1), getattr(ti, "try_number", 1))
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class EscalationEvent:
    """The trigger's one event: the escalation's progress (finished), and a message when the trigger failed."""

    progress: Progress
    error: str = ""

    def payload(self) -> dict[str, Any]:
        return {"status": "error" if self.error else "done", "progress": self.progress.to_dict(), "message": self.error}

    @classmethod
    def decode(cls, event: Any) -> EscalationEvent:
        """
        Read the event a task resumes with (``execute_complete``'s ``event``), once.

        :raises RingOutError: not an escalation event, or the trigger failed (its message, and each call so far).
        """
        if not isinstance(event, Mapping) or not isinstance(event.get("progress"), Mapping):
            raise RingOutError(f"The task resumed with an event that is not a RingOut escalation event: {event!r}.")
        progress = Progress.from_dict(event["progress"])
        if event.get("status") != "done":
            raise RingOutError(
                f"{LABEL} stopped in the triggerer: {event.get('message') or 'unknown error'}. "
                f"Each call so far: {progress.outcomes()}."
            )
        return cls(progress)


class RingOutEscalationTrigger(RingCentralTrigger):
    """
    Ring ``numbers`` in order (press-1 prompt, connected to ``connect_to``) until one acknowledges, ``rounds`` times.

    Fires one event (:class:`EscalationEvent`) when the escalation is over. See the module docstring for restarts.
    """

    def __init__(
        self,
        *,
        numbers: list[str],
        connect_to: str,
        per_number_timeout: float,
        rounds: int,
        progress_key: str,
        caller_id: str | None = None,
        poll_interval: float = 2.0,
        ringcentral_conn_id: str = "ringcentral_default",
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.numbers = [str(n) for n in numbers]
        self.connect_to = connect_to
        self.per_number_timeout = seconds(per_number_timeout, "per_number_timeout")
        self.rounds = int(rounds)
        self.progress_key = str(progress_key)
        self.caller_id = caller_id
        self.poll_interval = seconds(poll_interval, "poll_interval")
        self.ringcentral_conn_id = ringcentral_conn_id
        self.hook_params = check_hook_params(hook_params)
        self.progress = Progress(list(self.numbers), self.rounds)
        self._unsaved_warned = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self._classpath(), {
            "numbers": list(self.numbers),
            "connect_to": self.connect_to,
            "per_number_timeout": self.per_number_timeout,
            "rounds": self.rounds,
            "progress_key": self.progress_key,
            "caller_id": self.caller_id,
            "poll_interval": self.poll_interval,
            "ringcentral_conn_id": self.ringcentral_conn_id,
            "hook_params": self.hook_params,
        }

    # --- saved progress --------------------------------------------------------------------------------

    def _load(self, state: StateDir) -> None:
        """Go on from the progress a previous run of this trigger saved, if any."""
        saved = load_progress(state, self.progress_key)
        if saved is None:
            return
        try:
            self.progress = Progress.from_dict(saved, self.numbers)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self.log.warning("%s: the saved progress is unusable (%s); starting over.", LABEL, exc)
            return
        self.log.info(
            "%s: resuming after a triggerer restart at round %d, number %d (%d call(s) already over).",
            LABEL,
            self.progress.round,
            self.progress.index + 1,
            len(self.progress.calls),
        )

    def _save(self, state: StateDir) -> None:
        """Save the progress (numbers as positions); a failure is said once and the escalation goes on."""
        try:
            saved = save_progress(state, self.progress_key, self.progress.to_dict(numbers=False))
        except Exception as exc:
            saved, why = False, f"{type(exc).__name__}: {exc}"
        else:
            why = f"the state folder {state.path} is not usable"
        if not saved and not self._unsaved_warned:
            self._unsaved_warned = True
            self.log.warning("%s: progress cannot be saved (%s); a triggerer restart would start it over.", LABEL, why)

    async def _step(self, state: StateDir) -> None:
        await asyncio.to_thread(self._save, state)

    # --- the escalation ------------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        try:
            await hook._acredentials()  # read the connection the async way before any thread uses it
            state = hook._state
            await asyncio.to_thread(self._load, state)
            if self.progress.in_flight is not None:
                await self._resume_in_flight(hook, state)
            while (number := self.progress.next_number()) is not None:
                self.progress.record(await self._ring(hook, state, number))
                await self._step(state)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            self.log.exception("%s stopped by an unexpected error.", LABEL)
            message += await self._stop_in_flight(hook)
            yield TriggerEvent(EscalationEvent(self.progress, message).payload())
            return
        yield TriggerEvent(EscalationEvent(self.progress).payload())

    async def _stop_in_flight(self, hook: RingCentralHook) -> str:
        """After an unexpected error: cancel the call in flight, if any, and say what the cancel did."""
        ringout_id = (self.progress.in_flight or {}).get("ringout_id")
        if not ringout_id:
            return ""
        try:
            outcome = await asyncio.wait_for(hook.acancel_and_confirm(str(ringout_id)), CANCEL_TIMEOUT)
        except Exception as exc:
            return f"; the call in flight (RingOut {ringout_id}) could not be cancelled ({type(exc).__name__}: {exc})"
        return f"; the call in flight (RingOut {ringout_id}): {outcome.describe()}"

    def _record(self, number: str) -> CallRecord:
        return CallRecord(number, CallOutcome.NOT_PLACED, wait=self.per_number_timeout, acknowledging=True)

    async def _ring(self, hook: RingCentralHook, state: StateDir, number: str) -> CallRecord:
        """Place one call (saved before and after the POST), then watch it."""
        position, total = self.progress.position()
        self.log.info("%s: calling %s (%d of %d).", LABEL, mask_phone_number(number), position, total)
        record = self._record(number)
        self.progress.in_flight = {"number": number}
        await self._step(state)
        args = call_args(number, self.connect_to, None, self.caller_id)
        try:
            body = await asyncio.to_thread(hook.place_ringout, **args)
        except Exception as exc:
            return self._logged(not_placed(record, exc))
        record.ringout_id = str(body["id"])
        deadline = time.time() + self.per_number_timeout
        self.progress.in_flight = {"number": number, "ringout_id": record.ringout_id, "deadline": deadline}
        await self._step(state)
        watch = RingOutWatch(record.ringout_id)
        watch.observe(classify(body))
        return await self._watch(hook, record, watch, deadline)

    async def _resume_in_flight(self, hook: RingCentralHook, state: StateDir) -> None:
        """The previous run stopped mid-call: finish that call, never placing it again."""
        flight = self.progress.in_flight or {}
        record = self._record(str(flight["number"]))
        if not flight.get("ringout_id"):
            record.outcome = CallOutcome.UNCONFIRMED
            record.detail = "the triggerer stopped while its POST was being sent, so it may have been placed"
            self.progress.record(self._logged(record))
        else:
            record.ringout_id = str(flight["ringout_id"])
            deadline = float(flight.get("deadline") or time.time())
            self.progress.record(await self._watch(hook, record, RingOutWatch(record.ringout_id), deadline))
        await self._step(state)

    async def _watch(
        self, hook: RingCentralHook, record: CallRecord, watch: RingOutWatch, deadline: float
    ) -> CallRecord:
        """Wait until the call is over or ``deadline`` (epoch seconds) passes; cancel it if it still rings."""
        assert record.ringout_id is not None
        try:
            while (state := watch.observe(await hook.aget_status(record.ringout_id))) is RingOutState.PENDING:
                remaining = deadline - time.time()
                if remaining <= 0:
                    break
                await asyncio.sleep(min(self.poll_interval, remaining))
        except Exception as exc:  # the status cannot be read: do not leave the phone ringing
            record.outcome, record.detail = CallOutcome.WAIT_FAILED, f"{type(exc).__name__}: {exc}"
            return self._logged(await self._cancel(hook, record))
        record.outcome, stop = settled(state, acknowledging=True)
        record.detail = watch.describe()
        return self._logged(await self._cancel(hook, record) if stop else record)

    async def _cancel(self, hook: RingCentralHook, record: CallRecord) -> CallRecord:
        assert record.ringout_id is not None
        try:
            record.cancel = await asyncio.wait_for(hook.acancel_and_confirm(record.ringout_id), CANCEL_TIMEOUT)
        except Exception as exc:
            record.cancel_error = f"{type(exc).__name__}: {exc}"
            return record
        record.outcome = after_cancel(record.outcome, record.cancel, acknowledging=True)
        return record

    def _logged(self, record: CallRecord) -> CallRecord:
        log_call(self.log, LABEL, record)
        return record

    async def on_kill(self) -> None:
        """The user killed the deferred task (Airflow 3.3+): cancel the call in flight, if any."""
        ringout_id = (self.progress.in_flight or {}).get("ringout_id")
        if ringout_id:
            self.log.warning("%s: the task was killed while RingOut %s was ringing: cancelling it.", LABEL, ringout_id)
            await asyncio.wait_for(self._hook().acancel_and_confirm(str(ringout_id)), CANCEL_TIMEOUT)

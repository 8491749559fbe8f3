"""
RingOutEscalationOperator: an escalation as a task of its own, free of any callback's clock.

Each engineer of ``to_numbers`` is rung in order, first with RingCentral's press-1 prompt and connected on to
``connect_to`` (so a voicemail cannot acknowledge); an unanswered call is cancelled after ``per_number_timeout``
and the next is rung; the list is gone through ``rounds`` times; the first acknowledgement ends it. The engine
is :mod:`airflow_provider_ringout.escalation` (shared with RingOutNotifier); in deferrable mode the whole
escalation runs in :class:`~airflow_provider_ringout.triggers.escalation.RingOutEscalationTrigger` and holds no
worker slot. ``dedup_key`` / ``dedup_window`` are the notifier's: a notifier and an escalation task of one incident
escalate once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from airflow.providers.common.compat.sdk import AirflowSkipException, BaseOperator, conf

from airflow_provider_ringout._params import escalation_timing
from airflow_provider_ringout._task_mixin import (
    RingCentralTaskMixin,
    check_hook_params,
)
from airflow_provider_ringout.escalation import Escalation, Progress, unique_numbers
from airflow_provider_ringout.exceptions import (
    RingCentralConfigError,
    RingOutFailedError,
    RingOutOutcomeUnknownError,
)
from airflow_provider_ringout.phone import mask_phone_number, validate_e164
from airflow_provider_ringout.state import claims as _dedup

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import timedelta

    from airflow.sdk import Context

MAX_ROUNDS = 10
LABEL = "RingOut escalation"


def finish(progress: Progress, log: Any) -> dict[str, Any]:
    """
    The task's result once the escalation is over: who acknowledged, or an error listing each number's outcome.

    :raises RingOutOutcomeUnknownError: nobody was seen to acknowledge, but a call may have connected (not
        retried: a retry would ring that number again).
    :raises RingOutFailedError: nobody acknowledged after every round (or nothing could be placed).
    """
    reached = progress.reached
    if reached is not None:
        log.info(
            "%s: %s acknowledged in round %d of %d.",
            LABEL,
            mask_phone_number(reached.number),
            reached.round,
            progress.rounds,
        )
        return progress.result()
    rounds = f"{progress.rounds} round{'s' if progress.rounds > 1 else ''}"
    if progress.unconfirmed:
        raise RingOutOutcomeUnknownError(
            f"{LABEL} NOT CONFIRMED after {rounds}: nobody was seen to acknowledge, and "
            f"{', '.join(mask_phone_number(n) for n in progress.unconfirmed)} may have connected, so the task is "
            f"not retried (clear it to escalate again deliberately). Each call: {progress.outcomes()}."
        )
    why = "stopped: nothing could be placed" if progress.aborted else f"nobody acknowledged after {rounds}"
    raise RingOutFailedError(f"{LABEL} FAILED: {why}. Each call: {progress.outcomes()}.")


class RingOutEscalationOperator(RingCentralTaskMixin, BaseOperator):
    """
    Ring an escalation list until someone acknowledges (presses 1), as a task of its own.

    Use it downstream of the guarded tasks with ``trigger_rule="one_failed"``. It returns, for TaskFlow and XCom,
    ``{"acknowledged_by": "+1...", "round": 1, "calls": [{"number": "+1...", "outcome": "...", ...}]}``, and
    fails, listing each number's outcome, when nobody acknowledged after all rounds. Numbers are masked in logs.

    :param to_numbers: the engineers, E.164, rung in order. Templated.
    :param connect_to: the auto-answering line (bridge, IVR, NOC) an engineer who presses 1 is connected to.
        Templated.
    :param per_number_timeout: seconds each engineer is rung before the call is cancelled and the next is rung.
    :param rounds: how many times the list is gone through.
    :param caller_id: the number the engineers see (one of the account's numbers). Templated.
    :param poll_interval: seconds between status reads.
    :param dedup_key: what identifies one incident (the notifier's meaning and claims); default: the DAG run,
        the numbers and ``connect_to``. Templated.
    :param dedup_window: seconds (or a timedelta) an incident is held once escalated.
    :param ringcentral_conn_id: the ``ringcentral`` connection. Templated.
    :param hook_params: keyword arguments for :class:`RingCentralHook`; an unknown key fails when the DAG is parsed.
    :param deferrable: run the whole escalation in the triggerer, holding no worker slot.
    """

    template_fields: Sequence[str] = ("to_numbers", "connect_to", "caller_id", "dedup_key", "ringcentral_conn_id")
    ui_color = "#ff6600"

    def __init__(
        self,
        *,
        to_numbers: str | Sequence[str],
        connect_to: str,
        per_number_timeout: float | timedelta = 30,
        rounds: int = 1,
        caller_id: str | None = None,
        poll_interval: float = 2.0,
        dedup_key: str | None = None,
        dedup_window: float | timedelta = 3600,
        ringcentral_conn_id: str = "ringcentral_default",
        hook_params: dict[str, Any] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hook_params = check_hook_params(hook_params)
        self.to_numbers = to_numbers
        self.connect_to = connect_to
        self.caller_id = caller_id
        self.per_number_timeout, self.poll_interval, self.dedup_window = escalation_timing(
            per_number_timeout, poll_interval, dedup_window
        )
        if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= MAX_ROUNDS:
            raise RingCentralConfigError(f"rounds must be a whole number from 1 to {MAX_ROUNDS}; got {rounds!r}.")
        self.rounds = rounds
        self.dedup_key = dedup_key
        self.ringcentral_conn_id = ringcentral_conn_id
        self.deferrable = deferrable

    # --- checks ------------------------------------------------------------------------------------------

    def _numbers(self) -> list[str]:
        """The rendered ``to_numbers``, in order, without duplicates (each checked: a mistake fails the task)."""
        raw = self.to_numbers
        numbers = unique_numbers(list(raw) if isinstance(raw, (list, tuple)) else [raw])
        if not numbers:
            raise RingCentralConfigError("to_numbers is empty: give at least one E.164 number to ring.")
        return [str(validate_e164(n, f"to_numbers[{i}]")) for i, n in enumerate(numbers, start=1)]

    def _engine(self) -> Escalation:
        return Escalation(
            self.hook,
            connect_to=str(validate_e164(self.connect_to, "connect_to")),
            caller_id=self.caller_id,
            poll_interval=self.poll_interval,
            label=LABEL,
            logger=self.log,
        )

    def _claim(self, context: Context, numbers: list[str], lease: float) -> _dedup.Lease | None:
        """
        Take the incident's claim as a lease of ``lease`` seconds (the notifier's key, store and secret), or skip:
        this incident was delivered within ``dedup_window``, or is being escalated elsewhere right now.

        The key is built by the notifier's own ``_incident_key`` (the operator has the two attributes it reads,
        ``dedup_key`` and ``connect_to``), so a notifier and this task of one incident share one claim. Grouping
        never stops an escalation: if the claim cannot be taken, the escalation rings without it (logged).
        """
        from airflow_provider_ringout.notifications.ringout import RingOutNotifier

        as_notifier = cast("RingOutNotifier", self)
        key = RingOutNotifier._incident_key(as_notifier, context, numbers)
        claims = RingOutNotifier._claims_state(as_notifier) if key is not None else None
        if key is None or claims is None:
            return None
        try:
            claim = _dedup.acquire(key, window=self.dedup_window, lease=lease, state=claims[0], secret=claims[1])
        except Exception:
            self.log.exception("%s: alert grouping failed; ringing without it.", LABEL)
            return None
        if isinstance(claim, _dedup.Held):
            why = (
                f"was delivered within dedup_window ({self.dedup_window:.0f} s)"
                if claim.delivered
                else "is being escalated elsewhere right now (if that stops without delivering, the next alert rings)"
            )
            raise AirflowSkipException(
                f"{LABEL}: this incident {why}; not ringing {', '.join(mask_phone_number(n) for n in numbers)}."
            )
        return claim

    @staticmethod
    def _settle(lease: _dedup.Lease | None, progress: Progress | None) -> None:
        """Keep the claim for dedup_window if the escalation was delivered; else release it: the next alert rings."""
        if lease is not None:
            lease.settle(progress is not None and progress.delivered)

    # --- execution -----------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        numbers = self._numbers()
        engine = self._engine()
        engine.check(numbers[0])  # the connection, connect_to and caller_id, before anything is claimed or rung
        per_call = self.per_number_timeout + _dedup.LEASE_MARGIN
        # Deferred, the triggerer runs the whole escalation (and resumes it after a restart): the lease covers it.
        lease = self._claim(context, numbers, per_call * len(numbers) * self.rounds if self.deferrable else per_call)
        self.log.info(
            "%s: ringing %s in order, %.0f s each, %d round(s); pressing 1 connects to %s.",
            LABEL,
            ", ".join(mask_phone_number(n) for n in numbers),
            self.per_number_timeout,
            self.rounds,
            mask_phone_number(self.connect_to),
        )
        if self.deferrable:
            self._defer(context, numbers, lease)
        progress: Progress | None = None
        try:
            renew = None if lease is None else (lambda: lease.renew(per_call))
            progress = engine.run(Progress(numbers, self.rounds), lambda _progress: self.per_number_timeout, renew)
        finally:
            self._settle(lease, progress)
        return finish(progress, self.log)

    def _defer(self, context: Context, numbers: list[str], lease: _dedup.Lease | None) -> None:
        """Hand the whole escalation to the triggerer (see :mod:`airflow_provider_ringout.triggers.escalation`)."""
        from airflow_provider_ringout.triggers.escalation import RingOutEscalationTrigger, progress_key

        self.defer(
            trigger=RingOutEscalationTrigger(
                numbers=numbers,
                connect_to=self.connect_to,
                caller_id=self.caller_id,
                per_number_timeout=self.per_number_timeout,
                rounds=self.rounds,
                poll_interval=self.poll_interval,
                progress_key=progress_key(context),
                ringcentral_conn_id=self.ringcentral_conn_id,
                hook_params=self.hook_params,
            ),
            method_name="execute_complete",
            kwargs={"lease": None if lease is None else lease.to_dict()},
        )

    def execute_complete(
        self, context: Context, event: dict[str, Any], lease: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger: decode its event once, settle the claim, then succeed or fail as blocking does."""
        from airflow_provider_ringout.notifications.ringout import RingOutNotifier
        from airflow_provider_ringout.triggers.escalation import EscalationEvent

        progress = EscalationEvent.decode(event).progress
        claims = RingOutNotifier._claims_state(cast("RingOutNotifier", self)) if lease else None
        if lease and claims is not None:
            try:
                self._settle(_dedup.Lease.from_dict(lease, claims[0], claims[1]), progress)
            except Exception:  # the lease lapses by itself; the escalation's outcome stands
                self.log.exception("%s: could not settle the incident's claim.", LABEL)
        return finish(progress, self.log)

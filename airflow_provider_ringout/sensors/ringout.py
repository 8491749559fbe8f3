"""RingOutSensor: waits until a placed RingOut connects; cancels it on timeout if asked."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    conf,
)

from airflow_provider_ringout._params import MAX_POLL_INTERVAL, check_hook_params, seconds
from airflow_provider_ringout._task_mixin import RingCentralTaskMixin
from airflow_provider_ringout._wait import RingOutEventKind, timeout_message
from airflow_provider_ringout.status import CancelOutcome, RingOutWatch

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

log = logging.getLogger(__name__)


def as_utc(value: Any) -> datetime | None:
    """A datetime, or an ISO 8601 string of one (Airflow 3.0's ``dags test`` hands one over), as aware UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))  # Python < 3.11 refuses "Z"
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def first_poke_time(context: Context, timeout: float) -> datetime:
    """
    When a rescheduled sensor first poked: Airflow's first reschedule date, normalised.

    ``None`` before the first reschedule means "now". If the core cannot say (``None`` after a reschedule, or a
    value that is no date), the DAG run's start is used: it is never later than the first poke, so the timeout
    comes early rather than late and the call is still cancelled; without it the timeout is taken as reached.
    """
    now = datetime.now(UTC)
    raw = context["ti"].get_first_reschedule_date(context)
    if raw is None and not context.get("task_reschedule_count"):
        return now
    first = as_utc(raw)
    if first is not None:
        return first
    run_start = as_utc(getattr(context.get("dag_run"), "start_date", None))
    log.warning(
        "Airflow gave no usable first reschedule date (%r); timing the sensor from %s so it still cancels in time.",
        raw,
        f"the DAG run's start ({run_start.isoformat()})" if run_start else "its timeout (cancelling now)",
    )
    return run_start or now - timedelta(seconds=timeout)


class ReschedulePokes:
    """
    A rescheduled sensor's pokes, decided here rather than in Airflow's sensor loop (shared by this module's sensor
    and RingOutCallResultSensor): it subtracts the raw first reschedule date and breaks on a core that hands over a
    string (3.0's ``dags test``). The sensor's ``poke`` decides the timeout (:meth:`_last_poke_before_timeout`).
    """

    timeout: Any
    poke_interval: Any
    _first_poke: datetime | None = None
    poke: Any  # the sensor's
    _get_next_poke_interval: Any  # BaseSensorOperator's

    def _elapsed(self, context: Context) -> float:
        """Seconds since the rescheduled sensor first poked (asked once per poke: each poke is a new process)."""
        if self._first_poke is None:
            self._first_poke = first_poke_time(context, float(self.timeout))
        return (datetime.now(UTC) - self._first_poke).total_seconds()

    def _last_poke_before_timeout(self, context: Context) -> bool:
        """Whether the next reschedule would land after ``timeout``."""
        return self._elapsed(context) + float(self.poke_interval) >= float(self.timeout)

    def _poke_then_reschedule(self, context: Context) -> Any:
        """
        One reschedule-mode poke; pending, the task is rescheduled ``poke_interval`` later.

        :return: what the poke returned once it is done (``PokeReturnValue``, or True).
        """
        try:
            from airflow.sdk.exceptions import AirflowRescheduleException
        except ImportError:  # older Airflow 3 cores
            from airflow.exceptions import AirflowRescheduleException

        if done := self.poke(context):
            return done
        self._elapsed(context)  # the first poke's time, normalised (already known unless the poke had no need)
        # Airflow's own interval rule (poke_interval, or exponential_backoff capped by timeout and max_wait).
        interval = self._get_next_poke_interval(self._first_poke, lambda: self._elapsed(context), 1)
        raise AirflowRescheduleException(datetime.now(UTC) + timedelta(seconds=float(interval)))


class RingOutSensor(ReschedulePokes, RingCentralTaskMixin, BaseSensorOperator):
    """
    Wait until the RingOut ``ringout_id`` connects; fail at once if it fails.

    On the sensor's ``timeout`` the call is cancelled first (if ``cancel_on_timeout``), in poke, reschedule and
    deferrable mode alike, then Airflow's sensor timeout is raised (or the task skipped with ``soft_fail``). In
    deferrable mode the trigger cancels at its deadline, a margin before ``timeout`` (Airflow's own timeout for
    the deferral); if Airflow's timeout comes first anyway, the resuming task cancels a still-pending call.

    :param ringout_id: the id returned by RingOutOperator (e.g. its ``.output``). Templated.
    :param cancel_on_timeout: cancel the call when the sensor times out.
    :param cancel_on_kill: cancel a still-pending call when the task is killed.
    :param deferrable: wait in the triggerer.
    :param ringcentral_conn_id: the ``ringcentral`` connection.
    :param hook_params: keyword arguments for :class:`RingCentralHook` (``max_attempts``, ``backoff_factor``,
        ``token_cache_dir``), also handed to the trigger; an unknown key fails when the DAG is parsed.
    """

    template_fields: Sequence[str] = ("ringout_id", "ringcentral_conn_id")
    ui_color = "#ffcc99"

    def __init__(
        self,
        *,
        ringout_id: str,
        cancel_on_timeout: bool = True,
        cancel_on_kill: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        ringcentral_conn_id: str = "ringcentral_default",
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 5.0)
        kwargs.setdefault("timeout", timedelta(minutes=5).total_seconds())
        super().__init__(**kwargs)
        # 0 would poll RingCentral in a busy loop; the sensor's timeout is how long it waits for the call.
        seconds(self.poke_interval, "poke_interval", maximum=MAX_POLL_INTERVAL, bound_name="MAX_POLL_INTERVAL")
        seconds(self.timeout, "timeout")
        self.hook_params = check_hook_params(hook_params)
        self.ringout_id = ringout_id
        self.cancel_on_timeout = cancel_on_timeout
        self.cancel_on_kill = cancel_on_kill
        self.deferrable = deferrable
        self.ringcentral_conn_id = ringcentral_conn_id
        self._watch: RingOutWatch | None = None
        self._cancelled: CancelOutcome | None = None  # cancel at most once per try
        self._first_poke: datetime | None = None

    def _watching(self) -> RingOutWatch:
        if self._watch is None:
            self.hook.validate_ringout_id(self.ringout_id)  # refuses an empty or unrendered id before any request
            self._watch = RingOutWatch(str(self.ringout_id))
        return self._watch

    def poke(self, context: Context) -> bool:
        watch = self._watching()
        # A read failing for good fails the wait; a retry of the sensor pokes the same id, so it reconnects.
        if self._read(watch, context).is_final:  # it connected (failed or unknown raised)
            return True
        if self.reschedule and self._last_poke_before_timeout(context):
            # Some Airflow versions fail a timed-out rescheduled sensor before calling it again, so the cancel
            # must happen on the last poke that runs.
            self._time_out(watch)
        return False

    def execute(self, context: Context) -> Any:
        if self.deferrable:
            return self._check_once_then_defer(context)
        try:
            if self.reschedule:
                try:
                    self._poke_then_reschedule(context)
                    return None
                except (AirflowSensorTimeout, AirflowFailException) as exc:  # as Airflow's sensor loop does
                    if self.soft_fail:
                        raise AirflowSkipException("Skipping due to soft_fail is set to True.") from exc
                    raise
            return super().execute(context)
        except (AirflowSensorTimeout, AirflowSkipException) as exc:
            # A skip without a cause is soft_fail's timeout; one with a cause came from a failed poke.
            if isinstance(exc, AirflowSensorTimeout) or exc.__cause__ is None:
                self._cancel_after_timeout()
            raise

    def _check_once_then_defer(self, context: Context) -> Any:
        if self.poke(context):
            return None
        # Airflow fails the deferred sensor at ``timeout``; the trigger ends the wait (and cancels) a margin before.
        limit = float(self.timeout)
        self._defer_wait(
            self._watching(),
            wait=limit,
            poll_interval=float(self.poke_interval),
            hard_end=time.time() + limit,
            say_waited=False,
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Airflow's own timeout beat the trigger: stop a still-pending call, then fail as Airflow does."""
        self._stop_after_airflow_timeout(next_method, context)
        return super().resume_execution(next_method, next_kwargs, context)

    def _deferred_ringout_id(self, context: Context) -> str | None:
        return str(self.ringout_id) if self.ringout_id else None

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        """
        Resume after the trigger: succeed, fail, or time out (cancelling, unless the trigger did) as a poke does.

        :param event: the trigger's event.
        """
        resumed = self._resume(context, event)
        if resumed.kind is RingOutEventKind.TIMEOUT:
            self._time_out(resumed.watch, resumed.cancel)

    def _time_out(self, watch: RingOutWatch, done: CancelOutcome | None = None) -> None:
        """Cancel the call (unless ``done`` says the trigger did), then raise Airflow's sensor timeout."""
        outcome = self._cancel_after_timeout(done)
        raise AirflowSensorTimeout(timeout_message(watch.ringout_id, "the sensor's timeout", watch, outcome))

    def _cancel_after_timeout(self, done: CancelOutcome | None = None) -> CancelOutcome | None:
        """Cancel the call after the timeout, unless ``done`` says the trigger already did; returns the outcome."""
        if self._watch is None:
            return None
        if self._cancelled is None:  # a timed-out last poke already cancelled, before execute() saw the timeout
            self._cancelled = self._cancel_at_timeout(self._watch.ringout_id, done)
            self._report_cancel(self._watch.ringout_id, self._cancelled)
        return self._cancelled

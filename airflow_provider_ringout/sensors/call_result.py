"""RingOutCallResultSensor: waits for the call-log record of a RingOut placed elsewhere, and returns its result."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_ringout._params import MAX_POLL_INTERVAL, MAX_RESULT_WAIT, check_hook_params, seconds
from airflow_provider_ringout._result_wait import (
    RESULT_POLL_INTERVAL,
    RESULT_TIMEOUT,
    CallResultEvent,
    ResultEventKind,
    log_result,
    look_up,
    not_found_message,
    placed_ringout,
)
from airflow_provider_ringout._task_mixin import RingCentralTaskMixin
from airflow_provider_ringout.sensors.ringout import ReschedulePokes

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_provider_ringout.call_result import PlacedRingOut

WITHIN = "the sensor's timeout"


class RingOutCallResultSensor(ReschedulePokes, RingCentralTaskMixin, BaseSensorOperator):
    """
    Wait until the call-log record of a RingOut appears, and return its result dict (XCom ``return_value``).

    ``{"result", "reason", "duration" (s), "start_time", "legs": [{"leg_type", "result", "reason", "duration"}],
    "telephony_session_id", "answered_by": "person" | "voicemail" | "unknown"}``. RingCentral writes a record 15-30 s
    after the call ends, so the wait is at least the call's length plus that. Each look-up is a call-log read
    (Heavy group, permission ``ReadCallLog``). Two records that could be the call (the same two numbers twice
    near ``placed_at``) fail the task with ``RingOutCallResultAmbiguousError``: the result is never guessed. When no
    record comes within ``timeout``, Airflow's ``AirflowSensorTimeout`` (a skip with ``soft_fail``) says why.

    :param ringout: the ``ringout`` dict RingOutOperator pushes (``{"id", "from_number", "to_number",
        "placed_at"}``), or its JSON text. Templated, e.g. ``"{{ ti.xcom_pull(task_ids='call', key='ringout') }}"``
        (with or without ``render_template_as_native_obj``).
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    :param ringcentral_conn_id: the ``ringcentral`` connection.
    :param hook_params: keyword arguments for :class:`RingCentralHook`, also handed to the trigger.
    """

    template_fields: Sequence[str] = ("ringout", "ringcentral_conn_id")
    ui_color = "#ffe0b3"

    def __init__(
        self,
        *,
        ringout: dict[str, Any] | str,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        ringcentral_conn_id: str = "ringcentral_default",
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", RESULT_POLL_INTERVAL)
        kwargs.setdefault("timeout", RESULT_TIMEOUT.total_seconds())
        super().__init__(**kwargs)
        seconds(self.poke_interval, "poke_interval", maximum=MAX_POLL_INTERVAL, bound_name="MAX_POLL_INTERVAL")
        seconds(self.timeout, "timeout", maximum=MAX_RESULT_WAIT, bound_name="MAX_RESULT_WAIT")
        self.hook_params = check_hook_params(hook_params)
        self.ringout = ringout
        self.deferrable = deferrable
        self.ringcentral_conn_id = ringcentral_conn_id
        self._first_poke = None

    def _placed(self) -> PlacedRingOut:
        """The rendered ``ringout``, checked (a dict, or its JSON text)."""
        return placed_ringout(self.ringout)

    def poke(self, context: Context) -> PokeReturnValue:
        ringout = self._placed()
        result = look_up(self.hook, ringout)  # raises RingOutCallResultAmbiguousError: never guessed, never retried
        if result is not None:
            log_result(self.log, ringout.id, result)
            return PokeReturnValue(is_done=True, xcom_value=result)
        if self.reschedule and self._last_poke_before_timeout(context):
            raise AirflowSensorTimeout(not_found_message(ringout.id, WITHIN))
        return PokeReturnValue(is_done=False)

    def execute(self, context: Context) -> Any:
        if self.deferrable:
            return self._check_once_then_defer(context)
        if self.reschedule:
            return self._rescheduled_poke(context)
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:  # Airflow's own words say only that time ran out: say why
            raise AirflowSensorTimeout(f"{not_found_message(self._placed().id, WITHIN)} ({exc})") from exc

    def _rescheduled_poke(self, context: Context) -> Any:
        """One reschedule-mode poke (``ReschedulePokes``), ending as Airflow's sensor loop ends (``soft_fail``)."""
        try:
            return self._poke_then_reschedule(context).xcom_value
        except (AirflowSensorTimeout, AirflowFailException) as exc:
            if self.soft_fail:
                raise AirflowSkipException("Skipping due to soft_fail is set to True.") from exc
            raise

    def _check_once_then_defer(self, context: Context) -> Any:
        done = self.poke(context)
        if done:
            return done.xcom_value
        from airflow_provider_ringout.triggers.call_result import defer_result_wait

        limit = float(self.timeout)  # Airflow fails the deferred sensor at it; the trigger ends a margin before
        defer_result_wait(
            self,
            self._placed(),
            wait=limit,
            poll_interval=float(self.poke_interval),
            hard_end=time.time() + limit,
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """
        Resume after the trigger: the result dict, or the error a poke ends with.

        :param event: the trigger's event.
        """
        resumed = CallResultEvent.decode(event)
        if resumed.kind is ResultEventKind.TIMEOUT:
            message = not_found_message(resumed.ringout.id, WITHIN)
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        result = resumed.outcome(WITHIN)
        log_result(self.log, resumed.ringout.id, result)
        return result

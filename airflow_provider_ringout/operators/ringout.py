"""Operators that place a RingOut and wait until it connects (RingOutOperator), or cancel one (RingOutCancelOperator)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, ResumableJobMixin, conf

from airflow_provider_ringout._params import MAX_POLL_INTERVAL, MAX_RESULT_WAIT, check_hook_params, seconds
from airflow_provider_ringout._result_wait import (
    RESULT_POLL_INTERVAL,
    RESULT_TIMEOUT,
    CallResultEvent,
    log_result,
    look_up,
    placed_ringout,
    wait_for_result,
)
from airflow_provider_ringout._task_mixin import MAP_INDEX_TEMPLATE, RingCentralTaskMixin
from airflow_provider_ringout._wait import RingOutEventKind, timeout_message
from airflow_provider_ringout.call_result import PlacedRingOut
from airflow_provider_ringout.exceptions import (
    RingOutCallResultError,
    RingOutFailedError,
    RingOutOutcomeUnknownError,
    RingOutTimeoutError,
    RingOutUnconfirmedError,
)
from airflow_provider_ringout.request import RingOutRequest, fields_of, request_at_parse
from airflow_provider_ringout.status import CancelOutcome, RingOutState, RingOutWatch

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


# Outcome remembered in task_state_store, so a retry knows how the call ended even once RingCentral forgot it.
OUTCOME_KEY = "ringout_outcome"
# Set when a call may have connected (its session vanished unseen, or the POST's answer was lost): no later try
# dials again until a user clears this task instance (see ``cleared_since``).
HOLD_KEY = "ringout_hold"
# The call as placed (the ``ringout`` dict), remembered so a reconnecting retry can push it and wait for its result.
PLACED_KEY = "ringout_placed"
# The XCom keys: the call as placed (every mode), and its call-log result (``wait_for_result=True``).
RINGOUT_XCOM = "ringout"
CALL_RESULT_XCOM = "call_result"
NOT_REDIALLED = "it is not dialled again. Clear the task to place a new call deliberately."


def clear_number(context: Context) -> int:
    """How many times the DAG run was cleared (0 on cores that do not say), to tell a clear from a retry."""
    return int(getattr(context.get("dag_run"), "clear_number", None) or 0)


def max_tries(context: Context) -> int | None:
    """
    The task instance's ``max_tries``: Airflow raises it to ``try_number + retries`` when THIS task instance (this
    map index) is cleared, and leaves it when it retries or another task of the run is cleared. None if unknown.
    """
    value = getattr(context.get("ti"), "max_tries", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cleared_since(hold: dict[str, Any], context: Context) -> bool:
    """Whether this task instance was cleared since ``hold`` was set (a retry, or a clear of another task, is not)."""
    held_at, now = hold.get("max_tries"), max_tries(context)
    if isinstance(held_at, int) and now is not None:
        return now > held_at
    # A hold written before max_tries was recorded: the run's clear count is all there is (any task's clear).
    return bool(hold.get("clear_number") != clear_number(context))


class RingOutOperator(RingCentralTaskMixin, ResumableJobMixin, BaseOperator):
    """
    Place a RingOut (ring ``from_number``, then connect it to ``to_number``) and wait until it connects.

    Returns the RingOut id, so ``.output`` feeds a sensor or a cancel task. On Airflow 3.3+ a retry reconnects to
    a call that is still ringing, or succeeds if it already connected, instead of dialling again.

    The five fields of the call (``to_number`` to ``country_id``) are checked once, as one
    :class:`~airflow_provider_ringout.request.RingOutRequest`: when the DAG is parsed if none holds a template
    (a wrong number is a DAG import error), else once rendered, before anything is sent.

    :param to_number: the number to connect to (second leg), E.164. Templated.
    :param from_number: the phone rung first, E.164; default: the connection's ``from_number``. Templated.
    :param caller_id: number shown to the called party (one of the user's numbers). Templated.
    :param play_prompt: ask the first leg to press 1 before dialling the second; unattended calls never connect.
    :param country_id: RingCentral dialing-plan country id. Templated.
    :param wait_for_connection: wait until the call connects; if False, succeed once it is placed.
    :param wait_for_result: after the call connected (or failed), wait until it is over and its call-log record
        appears, and push the result dict as XCom ``call_result`` (the return value stays the RingOut id). A record
        that does not appear within ``result_timeout``, or two records that could be the call, fail the task
        (:class:`RingOutCallResultError`, never retried: the call was placed). Needs the ``ReadCallLog`` permission.
    :param result_timeout: how long to wait for the record (seconds or timedelta; at most ``MAX_RESULT_WAIT``).
    :param result_poll_interval: seconds between two look-ups of the record (call-log reads are Heavy requests).
    :param wait_timeout: how long to wait for the call to connect (seconds or timedelta).
    :param poll_interval: seconds between status reads.
    :param cancel_on_timeout: cancel the call when the wait times out.
    :param cancel_on_kill: cancel a still-pending call when the task is killed (marked failed, cleared, timed out).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param ringcentral_conn_id: the ``ringcentral`` connection.
    :param hook_params: keyword arguments for :class:`RingCentralHook` (``max_attempts``, ``backoff_factor``,
        ``token_cache_dir``), also handed to the trigger; an unknown key fails when the DAG is parsed.
    :param map_index_template: Airflow's; by default a mapped call shows its masked ``to_number`` in the grid.
    """

    template_fields: Sequence[str] = (
        "to_number",
        "from_number",
        "caller_id",
        "country_id",
        "ringcentral_conn_id",
    )
    ui_color = "#ff8800"
    external_id_key = "ringout_id"

    def __init__(
        self,
        *,
        to_number: str,
        from_number: str | None = None,
        caller_id: str | None = None,
        play_prompt: bool = False,
        country_id: str | int | None = None,
        wait_for_connection: bool = True,
        wait_for_result: bool = False,
        result_timeout: float | timedelta = RESULT_TIMEOUT,
        result_poll_interval: float = RESULT_POLL_INTERVAL,
        wait_timeout: float | timedelta = timedelta(minutes=5),
        poll_interval: float = 5.0,
        cancel_on_timeout: bool = True,
        cancel_on_kill: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        ringcentral_conn_id: str = "ringcentral_default",
        hook_params: dict[str, Any] | None = None,
        # Airflow's partial() reads this default too (3.3; 3.0 does not), so mapped calls show their masked number.
        map_index_template: str | None = MAP_INDEX_TEMPLATE,
        **kwargs: Any,
    ) -> None:
        super().__init__(map_index_template=map_index_template, **kwargs)
        self.hook_params = check_hook_params(hook_params)
        self.to_number = to_number
        self.from_number = from_number
        self.caller_id = caller_id
        self.play_prompt = play_prompt
        self.country_id = country_id
        self.wait_for_connection = wait_for_connection
        self.wait_timeout = seconds(wait_timeout, "wait_timeout")
        self.poll_interval = seconds(
            poll_interval, "poll_interval", maximum=MAX_POLL_INTERVAL, bound_name="MAX_POLL_INTERVAL"
        )
        self.wait_for_result = wait_for_result
        self.result_timeout = seconds(
            result_timeout, "result_timeout", maximum=MAX_RESULT_WAIT, bound_name="MAX_RESULT_WAIT"
        )
        self.result_poll_interval = seconds(
            result_poll_interval, "result_poll_interval", maximum=MAX_POLL_INTERVAL, bound_name="MAX_POLL_INTERVAL"
        )
        self.cancel_on_timeout = cancel_on_timeout
        self.cancel_on_kill = cancel_on_kill
        self.deferrable = deferrable
        self.ringcentral_conn_id = ringcentral_conn_id
        self._watch: RingOutWatch | None = None
        self._placed: PlacedRingOut | None = None
        self._result_pushed = False  # this try pushed XCom call_result
        self._parsed_fields = fields_of(self)
        self._request = request_at_parse(self._parsed_fields)

    def ringout_request(self) -> RingOutRequest:
        """
        The call this task places, checked once: the one built when the DAG was parsed while the fields are as
        they were then, else one built from the fields as they are now (rendered).

        :raises RingCentralConfigError: a field is wrong (named, with the form expected).
        """
        fields = fields_of(self)
        if self._request is None or fields != self._parsed_fields:
            self._request, self._parsed_fields = RingOutRequest(**fields), fields
        return self._request

    def execute(self, context: Context) -> str:
        # Check the connection and the rendered numbers before anything is sent (or a retry reconnects).
        self.hook.credentials  # noqa: B018 (parses and checks the connection)
        self.hook.build_ringout_request(request=self.ringout_request())  # the default from_number, if needed
        self._refuse_if_held(context)
        return self.execute_resumable(context)

    def _refuse_if_held(self, context: Context) -> None:
        """
        Fail, without dialling, a try that follows a call which may have connected, unless the task was cleared.

        Such failures are not retried by Airflow; this covers a try that resumes anyway (the worker died after
        the outcome was stored). A clear of this task instance since then is a deliberate "call again": the hold
        and the earlier call's id are dropped, so a new call is placed. A clear of another task of the run is not.
        """
        store = context.get("task_state_store")
        hold = store.get(HOLD_KEY) if store is not None else None
        if store is None or not isinstance(hold, dict):
            return
        if not cleared_since(hold, context):
            raise RingOutOutcomeUnknownError(
                f"An earlier try of this task placed a call that may have connected ({hold.get('why')}); "
                + NOT_REDIALLED,
                ringout_id=str(hold.get("ringout_id") or ""),
            )
        self.log.info("The task was cleared after a call that may have connected: placing a new call.")
        for key in (HOLD_KEY, OUTCOME_KEY, self.external_id_key):
            store.delete(key)

    def _hold(self, context: Context, why: str, ringout_id: str | None) -> None:
        """Remember (Airflow 3.3+) that a call may have connected, so no later try of this run dials again."""
        store = context.get("task_state_store")
        if store is not None:
            store.set(
                HOLD_KEY,
                {
                    "why": why,
                    "ringout_id": ringout_id,
                    "max_tries": max_tries(context),
                    "clear_number": clear_number(context),
                },
            )

    # --- ResumableJobMixin ---------------------------------------------------------------------------

    def submit_job(self, context: Context) -> str:
        request = self.ringout_request()
        body = self.hook.build_ringout_request(request=request)  # the numbers as sent (from: maybe the default)
        from_number, to_number = body["from"]["phoneNumber"], body["to"]["phoneNumber"]
        try:
            body = self.hook.place_ringout(request=request)
        except RingOutUnconfirmedError as exc:
            self._hold(context, "the answer to the POST that places it was lost", None)
            raise RingOutUnconfirmedError(
                f"{exc.api_message}; it may have connected, so " + NOT_REDIALLED,
                status_code=exc.status_code,
                error_codes=exc.error_codes,
                method=exc.method,
                path=exc.path,
            ) from exc
        placed_at = datetime.now(UTC)  # when the POST returned (it may have waited for the pacer): the match window
        ringout_id = body["id"]
        self._watch = RingOutWatch(ringout_id)
        context["ti"].xcom_push(key="ringout_id", value=ringout_id)
        self._placed = PlacedRingOut(ringout_id, from_number, to_number, placed_at)
        self._push_placed(context, remember=True)
        return ringout_id

    def _push_placed(self, context: Context, *, remember: bool) -> None:
        """Push XCom ``ringout`` (the call as placed); ``remember`` it for a reconnecting retry (Airflow 3.3+)."""
        if self._placed is None:
            return
        placed: dict[str, Any] = dict(self._placed.as_dict())
        context["ti"].xcom_push(key=RINGOUT_XCOM, value=placed)
        store = context.get("task_state_store")
        if remember and store is not None:
            store.set(PLACED_KEY, placed)

    def get_job_status(self, external_id: Any, context: Context) -> str:
        """How the call of an earlier try stands: pending, connected or failed (a retry reconnects or redials)."""
        ringout_id = str(external_id)
        context["ti"].xcom_push(key="ringout_id", value=ringout_id)  # a retry starts with its XComs cleared
        store = context.get("task_state_store")
        if store is not None and isinstance(placed := store.get(PLACED_KEY), dict):
            self._placed = placed_ringout(placed)
            self._push_placed(context, remember=False)
        remembered = store.get(OUTCOME_KEY) if store is not None else None
        if remembered in (RingOutState.CONNECTED.value, RingOutState.FAILED.value):
            return str(remembered)
        self._watch = RingOutWatch(ringout_id)
        state = self._watch.observe(self.hook.get_status(ringout_id))
        if state is RingOutState.UNKNOWN:
            # Gone before this try saw it: it may have connected while no worker watched. Never ring twice.
            self._finish(state, self._watch, context)
        return state.value

    def is_job_active(self, status: str) -> bool:
        return status == RingOutState.PENDING.value

    def is_job_succeeded(self, status: str) -> bool:
        return status == RingOutState.CONNECTED.value

    def poll_until_complete(self, external_id: Any, context: Context) -> str:  # type: ignore[override]
        """
        Wait until the call connects (or defer to do so), failing on failure or timeout.

        Returns the RingOut id: on a reconnecting retry the mixin hands this value straight to XCom.
        """
        ringout_id = str(external_id)
        if self._watch is None or self._watch.ringout_id != ringout_id:
            self._watch = RingOutWatch(ringout_id)
        if not self.wait_for_connection:
            if self.wait_for_result:
                self._await_result(context, None, self._watch)
            return ringout_id
        if self.deferrable:
            self._check_once_then_defer(self._watch, context)
            return ringout_id
        try:
            state = self.hook.wait_for_ringout(self._watch, timeout=self.wait_timeout, poll_interval=self.poll_interval)
        except Exception as exc:  # status reads failing for good, or anything unexpected: no final status
            raise self._wait_failed(context, ringout_id, exc) from exc
        if state is RingOutState.PENDING:
            self._time_out(self._watch, context)
        self._finish(state, self._watch, context)
        return ringout_id

    def get_job_result(self, external_id: Any, context: Context) -> str:
        """The RingOut id; a retry that finds its call already connected waits for the call's result here."""
        ringout_id = str(external_id)
        if self.wait_for_result and not self._result_pushed:
            self._await_result(context, RingOutState.CONNECTED, RingOutWatch(ringout_id))
        return ringout_id

    # --- outcomes ------------------------------------------------------------------------------------

    def _remember(self, context: Context, state: RingOutState) -> None:
        store = context.get("task_state_store")
        if store is not None:
            store.set(OUTCOME_KEY, state.value)

    def _finish(self, state: RingOutState, watch: RingOutWatch, context: Context) -> None:
        """Remember the outcome (a call that may have connected also holds off any redial), then end the wait."""
        self._remember(context, state)
        if state is RingOutState.UNKNOWN:
            self._hold(context, "its session vanished before it was seen connected or failing", watch.ringout_id)
        if self.wait_for_result and state in (RingOutState.CONNECTED, RingOutState.FAILED):
            self._await_result(context, state, watch)
        super()._finish(state, watch, context)

    # --- the call's result (wait_for_result) ---------------------------------------------------------

    def _await_result(self, context: Context, state: RingOutState | None, watch: RingOutWatch) -> None:
        """
        Wait for the call's record and push XCom ``call_result``; deferrable, in the triggerer (the task resumes
        in :meth:`execute_result_complete`, which ends the call's wait as ``state`` says: a failed call fails).

        :param state: how the call's own wait ended (connected, failed), or None when it was not waited on.
        :raises RingOutCallResultError: no record in time, two records could be the call, or the look-ups failed.
        """
        placed = self._placed_call(context, watch.ringout_id)
        if placed is None:
            raise RingOutCallResultError(
                f"The result of RingOut {watch.ringout_id} cannot be looked up: when it was placed is not known "
                "(neither this try, its XCom 'ringout' nor the task's state store says).",
                ringout_id=watch.ringout_id,
            )
        try:
            if self.deferrable:  # one look first: a record already written is read here, without a deferral
                result = look_up(self.hook, placed)
            else:
                result = wait_for_result(
                    self.hook, placed, timeout=self.result_timeout, poll_interval=self.result_poll_interval
                )
        except RingOutCallResultError:
            raise
        except Exception as exc:  # a look-up failing for good: never retried, a retry must not dial again
            raise RingOutCallResultError(
                f"Reading the result of RingOut {placed.id} failed: {exc}", ringout_id=placed.id
            ) from exc
        if result is not None:
            context["ti"].xcom_push(key=CALL_RESULT_XCOM, value=result)
            self._result_pushed = True
            log_result(self.log, placed.id, result)
            return
        from airflow_provider_ringout.triggers.call_result import defer_result_wait

        defer_result_wait(  # not there yet (deferrable): the triggerer waits, the task resumes in execute_result_complete
            self,
            placed,
            wait=self.result_timeout,
            poll_interval=self.result_poll_interval,
            hard_end=self._hard_end(context),
            method_name="execute_result_complete",
            carry={"call_state": state.value if state else None, "watch": watch.to_dict()},
        )

    def _placed_call(self, context: Context, ringout_id: str) -> PlacedRingOut | None:
        """
        The call as placed: this try's, else as the try that placed it pushed it (XCom ``ringout``; a task
        resumed after a deferral is a new process), else as remembered for a retry (``task_state_store``).
        """
        if self._placed is None or self._placed.id != ringout_id:
            ti, store = context["ti"], context.get("task_state_store")
            pull = getattr(ti, "xcom_pull", None)
            saved = pull(task_ids=ti.task_id, key=RINGOUT_XCOM, map_indexes=ti.map_index) if pull else None
            if not isinstance(saved, dict) and store is not None:
                saved = store.get(PLACED_KEY)
            self._placed = placed_ringout(saved) if isinstance(saved, dict) else None
        return self._placed if self._placed is not None and self._placed.id == ringout_id else None

    def execute_result_complete(self, context: Context, event: dict[str, Any]) -> str:
        """
        Resume after the result trigger: push XCom ``call_result``, then end as the call's own wait ended (its
        state and watch come back in the event's ``carry``: a failed call fails the task).

        :param event: the result trigger's event.
        :return: the RingOut id.
        :raises RingOutCallResultError: no record in time, two records could be the call, or the look-ups failed.
        """
        resumed = CallResultEvent.decode(event)
        result = resumed.outcome(f"{self.result_timeout:g} s")
        context["ti"].xcom_push(key=CALL_RESULT_XCOM, value=result)
        self._result_pushed = True
        log_result(self.log, resumed.ringout.id, result)
        carry = resumed.carry or {}
        if carry.get("call_state") and isinstance(carry.get("watch"), dict):
            watch = RingOutWatch.from_dict(carry["watch"])
            RingCentralTaskMixin._finish(self, RingOutState(carry["call_state"]), watch, context)
        return resumed.ringout.id

    def _time_out(
        self,
        watch: RingOutWatch,
        context: Context,
        *,
        cancelled: CancelOutcome | None = None,
        waited: float | None = None,
    ) -> None:
        """Cancel (unless ``cancelled`` says the trigger did), word the outcome and fail."""
        outcome = self._cancel_at_timeout(watch.ringout_id, cancelled)
        if outcome is not None and outcome.stopped:
            self._remember(context, RingOutState.FAILED)
        message = timeout_message(watch.ringout_id, f"{waited or self.wait_timeout:g} s", watch, outcome)
        self.log.error(message)
        raise RingOutTimeoutError(
            message,
            ringout_id=watch.ringout_id,
            status=watch.last,
            cancelled=outcome.stopped if outcome else None,
        )

    def _reconnects(self, context: Context) -> bool:
        """A retry reconnects to the call when Airflow (3.3+) stored its id in ``task_state_store`` for it, and
        no no-redial hold refuses that retry."""
        store = context.get("task_state_store")
        return store is not None and not isinstance(store.get(HOLD_KEY), dict)

    def _check_once_then_defer(self, watch: RingOutWatch, context: Context) -> None:
        if self._read(watch, context).is_final:  # it connected (failed or unknown raised)
            return
        self._defer_wait(
            watch,
            wait=self.wait_timeout,
            poll_interval=self.poll_interval,
            hard_end=self._hard_end(context),
            say_waited=True,
        )

    def _hard_end(self, context: Context) -> float | None:
        """When Airflow fails the task at the latest (its ``execution_timeout``, deferred or not); None if never."""
        if self.execution_timeout is None:
            return None
        started = getattr(context["ti"], "start_date", None)
        return (started.timestamp() if started else time.time()) + self.execution_timeout.total_seconds()

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Airflow's own timeout beat the trigger: stop a still-pending call, then fail as Airflow does."""
        outcome = self._stop_after_airflow_timeout(next_method, context)
        if outcome is not None and outcome.stopped:
            self._remember(context, RingOutState.FAILED)
        return super().resume_execution(next_method, next_kwargs, context)

    def _deferred_ringout_id(self, context: Context) -> str | None:
        """The call of the try that deferred, as it saved it (this try has not seen it)."""
        ti = context["ti"]
        ringout_id = ti.xcom_pull(task_ids=ti.task_id, key="ringout_id", map_indexes=ti.map_index)
        return str(ringout_id) if ringout_id else None

    def execute_complete(self, context: Context, event: dict[str, Any], waited: float | None = None) -> str:
        """
        Resume after the trigger: succeed, fail, or time out as the blocking wait does.

        On ``timeout`` the call is cancelled here only if the trigger did not already (a trigger of this version
        cancels it itself; one serialized by an older version does not).

        :param event: the trigger's event.
        :param waited: how long the trigger waited, for the message (``wait_timeout`` if not given).
        :return: the RingOut id.
        """
        resumed = self._resume(context, event)
        if resumed.kind is RingOutEventKind.TIMEOUT:
            self._time_out(resumed.watch, context, cancelled=resumed.cancel, waited=waited)
        return resumed.watch.ringout_id


class RingOutCancelOperator(RingCentralTaskMixin, BaseOperator):
    """
    Cancel a RingOut. Returns True if the call was stopped, False if there was nothing to stop.

    RingCentral cannot stop a call once its first leg is answered: that is logged and returns False, or fails
    the task when ``fail_if_connected`` is True.

    :param ringout_id: the id returned by RingOutOperator. Templated.
    :param ringcentral_conn_id: the ``ringcentral`` connection.
    :param fail_if_connected: fail instead of returning False when the call could not be stopped.
    :param hook_params: keyword arguments for :class:`RingCentralHook` (``max_attempts``, ``backoff_factor``,
        ``token_cache_dir``); an unknown key fails when the DAG is parsed.
    """

    template_fields: Sequence[str] = ("ringout_id", "ringcentral_conn_id")
    ui_color = "#ffb366"

    def __init__(
        self,
        *,
        ringout_id: str,
        ringcentral_conn_id: str = "ringcentral_default",
        fail_if_connected: bool = False,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hook_params = check_hook_params(hook_params)
        self.ringout_id = ringout_id
        self.ringcentral_conn_id = ringcentral_conn_id
        self.fail_if_connected = fail_if_connected

    def execute(self, context: Context) -> bool:
        outcome = self.hook.cancel_and_confirm(self.ringout_id)
        if outcome in (CancelOutcome.CONNECTED, CancelOutcome.FIRST_LEG_UP):
            message = f"Cancel of RingOut {self.ringout_id}: {outcome.describe()}."
            if self.fail_if_connected:
                raise RingOutFailedError(message, ringout_id=str(self.ringout_id))
            self.log.warning(message)
        return outcome.stopped

"""
RingOutNotifier: phone someone when a DAG or task fails (or on any other callback), with an escalation list.

A notifier runs inside Airflow's callback machinery, so it never raises: a failed alert is logged and swallowed.
It also never alerts twice for one failure: each (dag_id, run_id, task_id, map_index, try_number, numbers) is
alerted at most once per process, and one alert never dials the same number twice.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections import OrderedDict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.notifier import BaseNotifier

from airflow_provider_ringout._task_mixin import RingCentralTaskMixin, seconds
from airflow_provider_ringout.exceptions import RingCentralAuthError, RingCentralConfigError, RingOutUnconfirmedError
from airflow_provider_ringout.phone import mask_phone_number, validate_e164
from airflow_provider_ringout.status import CancelOutcome, RingOutState, RingOutWatch, classify

if TYPE_CHECKING:
    from collections.abc import Generator, Hashable, Sequence

    from airflow.sdk import Context

    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

# Alerts already sent (or being sent) by this process, oldest first; bounded so a long-lived process never grows.
_ALERTED: OrderedDict[Hashable, None] = OrderedDict()
_ALERTED_LOCK = threading.Lock()
_ALERTED_MAX = 4096
_MAX_PER_NUMBER_WAIT = timedelta(hours=1)


def _claim_alert(key: Hashable) -> bool:
    """Record ``key``; False if it was already recorded (this failure was alerted already)."""
    with _ALERTED_LOCK:
        if key in _ALERTED:
            return False
        _ALERTED[key] = None
        while len(_ALERTED) > _ALERTED_MAX:
            _ALERTED.popitem(last=False)
        return True


def _masked(number: Any) -> str:
    """A number for the log: partly masked, and never the raw value of something that is not a string."""
    return mask_phone_number(number) if isinstance(number, str) else f"<not a number: {type(number).__name__}>"


class RingOutNotifier(RingCentralTaskMixin, BaseNotifier):
    """
    Place a RingOut call as an alert; usable as ``on_failure_callback`` (or any other callback) of a DAG or task.

    RingCentral rings ``from_number`` first, then connects it to the alerted number. With
    ``wait_for_connection=True`` the numbers of ``to_numbers`` are called in order until one connects; a call
    that fails or is not connected within ``per_number_timeout`` seconds is cancelled before the next number is
    dialled. Without it, one call is placed to the first number and the notifier returns at once.

    It never raises into Airflow (a failed alert is logged as such) and never alerts twice for the same failure in
    one process. Numbers are logged partly masked.

    .. code-block:: python

        on_failure_callback = RingOutNotifier(
            to_numbers=["+14155550101", "+14155550102"], from_number="+14155550100", wait_for_connection=True
        )

    :param to_numbers: one E.164 number, or an escalation list of them. Templated.
    :param from_number: the phone rung first, E.164; default: the connection's ``from_number``. Templated.
    :param caller_id: number shown to the called party (one of the user's numbers). Templated.
    :param ringcentral_conn_id: the ``ringcentral`` connection. Templated.
    :param wait_for_connection: call the numbers in turn until one connects; if False, place one call and return.
    :param per_number_timeout: seconds to wait for each number to connect before cancelling and moving on.
    :param poll_interval: seconds between status reads while waiting.
    """

    template_fields: Sequence[str] = ("to_numbers", "from_number", "caller_id", "ringcentral_conn_id")

    def __init__(
        self,
        *,
        to_numbers: str | Sequence[str],
        from_number: str | None = None,
        caller_id: str | None = None,
        ringcentral_conn_id: str = "ringcentral_default",
        wait_for_connection: bool = False,
        per_number_timeout: float = 60,
        poll_interval: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.to_numbers = to_numbers
        self.from_number = from_number
        self.caller_id = caller_id
        self.ringcentral_conn_id = ringcentral_conn_id
        self.wait_for_connection = bool(wait_for_connection)
        # Static settings are checked now, so a mistake is a DAG import error rather than a silent failed alert.
        self.per_number_timeout = seconds(per_number_timeout, "per_number_timeout", maximum=_MAX_PER_NUMBER_WAIT)
        self.poll_interval = seconds(poll_interval, "poll_interval", maximum=_MAX_PER_NUMBER_WAIT)

    # --- entry points ----------------------------------------------------------------------------------

    def __call__(self, *args: Any) -> None:
        """Render the templates on a copy (so a shared notifier keeps its templates), then alert; never raises."""
        prepared = self._prepare(self._context_from_args(args))
        if prepared is not None:
            prepared.notify(prepared.context)

    def __await__(self) -> Generator[Any, None, None]:
        """Awaitable form used by the triggerer (deadline alerts); never raises either."""
        prepared = self._prepare(self.context)
        if prepared is None:
            return asyncio.sleep(0).__await__()
        return prepared.async_notify(prepared.context).__await__()

    async def async_notify(self, context: Context) -> None:
        """Alert from an event loop: the blocking calls run in a worker thread."""
        await asyncio.to_thread(self.notify, context)

    @staticmethod
    def _context_from_args(args: tuple[Any, ...]) -> Any:
        if len(args) == 1:
            return args[0]
        names = ("dag", "task_list", "blocking_task_list", "blocking_tis")
        return dict(zip(names, args, strict=False))

    def _prepare(self, context: Any) -> RingOutNotifier | None:
        """A rendered copy of this notifier bound to ``context``, or None (logged) if rendering failed."""
        try:
            notifier = copy.copy(self)
            notifier.context = context
            notifier._update_context(context)
            dag = context.get("dag")
            # DAG-level callbacks under ``dag.test()`` get the scheduler's SerializedDAG, which has no template
            # environment; render with the default one then (the DAG's own macros are not available there).
            jinja_env = None if dag is None or hasattr(dag, "get_template_env") else notifier.get_template_env()
            notifier.render_template_fields(context, jinja_env)
        except Exception:
            self.log.exception("RingOut alert FAILED: its templates could not be rendered; no call was placed.")
            return None
        return notifier

    # --- the alert -------------------------------------------------------------------------------------

    def notify(self, context: Context) -> None:
        """Place the alert call(s). Logs, never raises: an alert must not break the callback that sends it."""
        try:
            numbers = self._numbers()
            key = self._alert_key(context, numbers)
            if key is not None and not _claim_alert(key):
                self.log.warning(
                    "RingOut alert to %s for this failure was already sent by this process; not calling again.",
                    ", ".join(_masked(n) for n in numbers) or "nobody",
                )
                return
            self._alert(numbers)
        except Exception:
            self.log.exception("RingOut alert FAILED with an unexpected error; the alert may not have been delivered.")

    def _numbers(self) -> list[str]:
        """The rendered ``to_numbers`` as a list of strings, in order, without duplicates."""
        raw = self.to_numbers
        items: list[Any] = list(raw) if isinstance(raw, (list, tuple)) else [raw]
        return list(dict.fromkeys(n.strip() if isinstance(n, str) else n for n in items))

    @staticmethod
    def _alert_key(context: Any, numbers: Sequence[Any]) -> Hashable | None:
        """What identifies "this failure" for the twice-guard; None when the context names no run at all."""
        get = context.get if hasattr(context, "get") else (lambda _key: None)
        ti = get("ti") or get("task_instance")
        dag_run = get("dag_run")
        dag = get("dag")
        dag_id = getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None) or getattr(dag, "dag_id", None)
        run_id = getattr(ti, "run_id", None) or get("run_id") or getattr(dag_run, "run_id", None)
        if dag_id is None and run_id is None:
            return None
        # Only an on_execute_callback sees the try still running; every other callback of a try is about how
        # it ended (the task's and the DAG's failure callbacks then count as one failure, even though the DAG
        # callback's task instance carries no state).
        state = getattr(ti, "state", None)
        phase = "started" if getattr(state, "value", state) == "running" else "ended"
        return (
            dag_id,
            run_id,
            getattr(ti, "task_id", None),
            getattr(ti, "map_index", None),
            getattr(ti, "try_number", None),
            phase,
            tuple(repr(n) for n in numbers),
        )

    def _alert(self, numbers: list[Any]) -> None:
        valid: list[str] = []
        for position, number in enumerate(numbers, start=1):
            try:
                checked = validate_e164(number, f"to_numbers[{position}]")
            except RingCentralConfigError as exc:
                self.log.error("RingOut alert: skipping an unusable number: %s", exc)
                continue
            if checked:
                valid.append(checked)
        if not valid:
            self.log.error("RingOut alert FAILED: no valid number to call in to_numbers; no call was placed.")
            return
        hook = self.hook
        try:  # the connection, from_number and caller_id are common to every call: check them once
            hook.credentials  # noqa: B018 (reads and checks the connection)
            hook.build_ringout_request(to_number=valid[0], from_number=self.from_number, caller_id=self.caller_id)
        except Exception as exc:
            self.log.error("RingOut alert FAILED before any call was placed: %s", exc)
            return
        if not self.wait_for_connection and len(valid) > 1:
            self.log.info(
                "RingOut alert: wait_for_connection=False, so only one call is placed; the other %d number(s) "
                "are used only for escalation with wait_for_connection=True.",
                len(valid) - 1,
            )
        for position, number in enumerate(valid, start=1):
            outcome = self._call(hook, number, position, len(valid))
            if outcome in ("done", "abort"):
                return
        self.log.error("RingOut alert FAILED: nobody was reached (%s).", ", ".join(mask_phone_number(n) for n in valid))

    def _call(self, hook: RingCentralHook, number: str, position: int, total: int) -> str:
        """
        Call one number. Returns "done" (alert delivered, or placed when not waiting), "next" or "abort".

        A POST is never repeated: the hook does not resend it blindly, and each number is called once.
        """
        masked = mask_phone_number(number)
        self.log.info("RingOut alert: calling %s (%d of %d).", masked, position, total)
        try:
            body = hook.place_ringout(to_number=number, from_number=self.from_number, caller_id=self.caller_id)
        except RingOutUnconfirmedError as exc:
            if not self.wait_for_connection:
                self.log.warning("RingOut alert to %s may have been placed, but unconfirmed: %s", masked, exc)
                return "done"
            self.log.error("RingOut alert to %s is unconfirmed and cannot be watched; moving on: %s", masked, exc)
            return "next"
        except RingCentralAuthError as exc:
            self.log.error("RingOut alert FAILED: RingCentral refused the credentials, no call placed: %s", exc)
            return "abort"
        except Exception as exc:
            self.log.error("RingOut alert: the call to %s could not be placed: %s", masked, exc)
            return "next"
        ringout_id = str(body["id"])
        if not self.wait_for_connection:
            self.log.info("RingOut alert placed to %s (RingOut %s); not waiting for it to connect.", masked, ringout_id)
            return "done"

        watch = RingOutWatch(ringout_id)
        watch.observe(classify(body))
        try:
            state = hook.wait_for_ringout(watch, timeout=self.per_number_timeout, poll_interval=self.poll_interval)
        except Exception as exc:  # the status could not be read: treat as unanswered, so it is cancelled
            self.log.warning("RingOut alert: could not read the status of RingOut %s: %s", ringout_id, exc)
            state = RingOutState.PENDING
        if state is RingOutState.CONNECTED:
            self.log.info("RingOut alert delivered: %s answered (RingOut %s).", masked, ringout_id)
            return "done"
        why = "failed" if state is RingOutState.FAILED else f"did not connect within {self.per_number_timeout:g} s"
        self.log.warning("RingOut alert: the call to %s %s (%s).", masked, why, watch.describe())
        return self._cancel(hook, ringout_id, masked)

    def _cancel(self, hook: RingCentralHook, ringout_id: str, masked: str) -> str:
        """Stop an unanswered call before the next number rings; "done" if it turns out it had connected."""
        try:
            outcome = hook.cancel_and_confirm(ringout_id)
        except Exception as exc:
            self.log.warning("RingOut alert: could not cancel RingOut %s to %s: %s", ringout_id, masked, exc)
            return "next"
        if outcome is CancelOutcome.CONNECTED:
            self.log.info("RingOut alert delivered: %s answered as it was cancelled (RingOut %s).", masked, ringout_id)
            return "done"
        if outcome is CancelOutcome.FIRST_LEG_UP:
            self.log.warning(
                "RingOut alert: RingOut %s to %s could not be stopped (its first leg is up); moving on anyway.",
                ringout_id,
                masked,
            )
        return "next"


# The function-style name Airflow notifiers also carry (send_slack_notification, send_pagerduty_notification, ...).
send_ringout_notification = RingOutNotifier

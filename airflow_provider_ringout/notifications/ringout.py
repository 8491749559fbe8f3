"""
RingOutNotifier: phone someone when a DAG or task fails (or on any other callback), with an escalation list.

A notifier runs inside Airflow's callback machinery, so it never raises: a failed alert is logged and swallowed.
It places one escalation per incident (by default per DAG run, host-wide, or cluster-wide with
``[ringcentral] shared_state = redis``, for ``dedup_window``), never dials the
same number twice in one escalation, plans the escalation to end before Airflow stops the callback, and cancels
the last unanswered call itself. The escalation itself (ring, wait, cancel, next, and the words for each call's
outcome) is the shared engine in :mod:`airflow_provider_ringout.escalation`; this module adds the callback's
clock (``_budget``), the incident claims (``_dedup``) and the never-raise wrapper.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.notifier import BaseNotifier

from airflow_provider_ringout._params import escalation_timing
from airflow_provider_ringout._process import process_cache
from airflow_provider_ringout._task_mixin import (
    RingCentralTaskMixin,
    check_hook_params,
)
from airflow_provider_ringout.escalation import CallOutcome, Escalation, Progress, unique_numbers
from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.notifications import _budget, _context
from airflow_provider_ringout.phone import mask_phone_number, validate_e164
from airflow_provider_ringout.state import claims as _dedup

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Sequence
    from datetime import timedelta

    from airflow.sdk import Context


def _masked(number: Any) -> str:
    """A number for the log: partly masked, and never the raw value of something that is not a string."""
    return mask_phone_number(number) if isinstance(number, str) else f"<not a number: {type(number).__name__}>"


# The parse-time warning about a list that cannot fit a callback was given in this process (it is said once).
_warned: set[str] = process_cache(__name__, "_warned", set())  # warnings said once per process


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class RingOutNotifier(RingCentralTaskMixin, BaseNotifier):
    """
    Place a RingOut call as an alert; usable as ``on_failure_callback`` (or any other callback) of a DAG or task.

    Two shapes (see docs/notifier.md, "Designing an alert call"):

    - ``connect_to`` (recommended): each engineer of ``to_numbers`` is rung **first** with RingCentral's press-1
      prompt; only a person who answers and presses 1 is connected on to ``connect_to`` (an auto-answering
      bridge, IVR or NOC line), so a voicemail cannot acknowledge. Acknowledged = connected. A number not
      acknowledged within ``per_number_timeout`` is cancelled and the next engineer is rung.
    - ``from_number``: RingCentral rings ``from_number`` first, then connects it to the alerted number; any answer
      of the alerted leg (a voicemail greeting too) counts as connected. With ``wait_for_connection=True`` the
      numbers are called in turn until one connects; without it one call is placed and the notifier returns.

    A number whose outcome is unknown (the POST's answer was lost, or the session vanished before it was seen
    connected or failing) is logged as "not confirmed (may have connected)" and the escalation goes on to the
    next number, never the same one again. The escalation is planned to end before Airflow stops the callback
    (``[core] task_success_overtime`` on a worker, ``[dag_processor] dag_file_processor_timeout`` in the DAG
    processor): waits are shortened, or the last numbers dropped (WARNING), and the last call is cancelled.
    It never raises into Airflow. Numbers are logged partly masked.

    .. code-block:: python

        on_failure_callback = RingOutNotifier(to_numbers=["+14155550101", "+14155550102"], connect_to="+14155550199")

    :param to_numbers: one E.164 number, or an escalation list of them (the people alerted). Templated.
    :param connect_to: with it, each person is rung first and must press 1; the call then goes on to this
        auto-answering number (E.164). Cannot be given with ``from_number``. Templated.
    :param from_number: without ``connect_to``: the phone rung first, E.164; default: the connection's
        ``from_number``. Templated.
    :param caller_id: number shown to the called party (one of the user's numbers). Templated.
    :param ringcentral_conn_id: the ``ringcentral`` connection. Templated.
    :param wait_for_connection: call the numbers in turn until one connects; if False, place one call and return.
        Always on with ``connect_to``.
    :param per_number_timeout: seconds to wait for each number to connect before cancelling and moving on (may
        be shortened to fit the callback's time).
    :param poll_interval: seconds between status reads while waiting.
    :param dedup_key: what identifies one incident: alerts with the same key within ``dedup_window`` place one
        escalation, across the processes of the host (of the cluster with ``[ringcentral] shared_state = redis``). Templated; default: the DAG run and the numbers alerted
        (one escalation per DAG run). A per-task key (``"{{ ti.task_id }}-{{ ti.try_number }}"``) alerts for
        every failing try.
    :param dedup_window: seconds (or a timedelta) a key is held.
    :param hook_params: keyword arguments for :class:`RingCentralHook` (``max_attempts``, ``backoff_factor``,
        ``token_cache_dir``); an unknown key fails when the DAG is parsed.
    """

    template_fields: Sequence[str] = (
        "to_numbers",
        "from_number",
        "caller_id",
        "ringcentral_conn_id",
        "connect_to",
        "dedup_key",
    )

    def __init__(
        self,
        *,
        to_numbers: str | Sequence[str],
        from_number: str | None = None,
        caller_id: str | None = None,
        ringcentral_conn_id: str = "ringcentral_default",
        wait_for_connection: bool | None = None,
        per_number_timeout: float = 60,
        poll_interval: float = 2.0,
        connect_to: str | None = None,
        dedup_key: str | None = None,
        dedup_window: float | timedelta = 3600,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hook_params = check_hook_params(hook_params)
        self.to_numbers = to_numbers
        self.from_number = from_number
        self.caller_id = caller_id
        self.ringcentral_conn_id = ringcentral_conn_id
        self.connect_to = connect_to
        self.dedup_key = dedup_key
        # Static settings are checked now, so a mistake is a DAG import error rather than a silent failed alert.
        self.per_number_timeout, self.poll_interval, self.dedup_window = escalation_timing(
            per_number_timeout, poll_interval, dedup_window
        )
        if connect_to not in (None, ""):
            if from_number not in (None, ""):
                raise RingCentralConfigError(
                    "connect_to and from_number cannot be given together: with connect_to each number of "
                    "to_numbers is rung first and connected on to connect_to, so there is no from_number. Drop one."
                )
            if wait_for_connection is False:
                raise RingCentralConfigError(
                    "connect_to waits for each person to press 1; drop wait_for_connection=False (or connect_to)."
                )
            if not _is_template(connect_to):
                validate_e164(connect_to, "connect_to")
            wait_for_connection = True
        self.wait_for_connection = bool(wait_for_connection)
        if not kwargs.get("context"):  # built by Airflow to run now (a deadline's callback), not at a DAG's parse
            self._warn_if_unfit()

    def _warn_if_unfit(self) -> None:
        """
        At DAG parse: say so if a static escalation list cannot be rung in the time a callback gets; at most once
        per process, and not in a task process (it parses the DAG file again for each task: its log is the task's).
        """
        raw = self.to_numbers
        if (
            "unfit" in _warned
            or not self.wait_for_connection
            or _is_template(raw)
            or not isinstance(raw, (list, tuple))
        ):
            return
        if len(raw) < 2:
            return
        try:
            unfit = [] if _budget.in_task_process() else _budget.unfit_settings(len(raw), self.per_number_timeout)
        except Exception:  # the configuration could not be read: nothing to warn about yet
            return
        if unfit:
            _warned.add("unfit")
            self.log.warning(
                "RingOutNotifier: an escalation of %d numbers needs about %.0f s to ring each for %.0f s, more "
                "than a callback gets with %s; there only the first numbers are rung. Use "
                "RingOutEscalationOperator (a task of its own, no callback clock), raise the setting, or shorten "
                "the list (said once per process).",
                len(raw),
                _budget.needed(len(raw), self.per_number_timeout),
                min(self.per_number_timeout, _budget.MIN_WAIT),
                " / ".join(unfit),
            )

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
        # The connection is read the triggerer's way first (before 3.3 a trigger's worker thread cannot ask the
        # supervisor for it); if that fails, notify reads it again and logs why.
        with contextlib.suppress(Exception):
            await self.hook._acredentials()
        await asyncio.to_thread(self.notify, context)

    @staticmethod
    def _context_from_args(args: tuple[Any, ...]) -> Any:
        if len(args) == 1:
            return args[0]
        names = ("dag", "task_list", "blocking_task_list", "blocking_tis")
        return dict(zip(names, args, strict=False))

    def _prepare(self, context: Any) -> RingOutNotifier | None:
        """
        A rendered copy of this notifier bound to ``context``, or None (logged) if rendering failed. A ``dedup_key``
        that fails to render falls back to the default key (one WARNING): a grouping mistake must not drop the alert.
        """

        def rendered(dedup_key: str | None) -> RingOutNotifier:
            notifier = copy.copy(self)
            notifier.dedup_key = dedup_key
            notifier.context = context
            notifier._update_context(context)
            dag = context.get("dag")
            # DAG-level callbacks under ``dag.test()`` get the scheduler's SerializedDAG, which has no template
            # environment; render with the default one then (the DAG's own macros are not available there).
            jinja_env = None if dag is None or hasattr(dag, "get_template_env") else notifier.get_template_env()
            notifier.render_template_fields(context, jinja_env)
            return notifier

        try:
            return rendered(self.dedup_key)
        except Exception as exc:
            failure = exc
        fallback = None
        if self.dedup_key is not None:
            with contextlib.suppress(Exception):  # something else fails to render too: logged below
                fallback = rendered(None)
            if fallback is not None:
                self.log.warning(
                    "RingOut alert: dedup_key could not be rendered (%s: %s); using the default key (this DAG run "
                    "and the numbers alerted) instead. The alert goes ahead.",
                    type(failure).__name__,
                    failure,
                )
                return fallback
        self.log.error(
            "RingOut alert FAILED: its templates could not be rendered; no call was placed.", exc_info=failure
        )
        return None

    # --- the alert -------------------------------------------------------------------------------------

    def notify(self, context: Context) -> None:
        """Place the alert call(s). Logs, never raises: an alert must not break the callback that sends it."""
        try:
            started = time.monotonic()
            budget = _budget.callback_budget()  # placing even a single call counts against it
            numbers = self._numbers()
            key = self._incident_key(context, numbers)
            claims = self._claims_state() if key is not None else None
            seconds = self.per_number_timeout + _dedup.LEASE_MARGIN
            claim: _dedup.Lease | _dedup.Held | None = None
            if key is not None and claims is not None:  # else no incident, or no connection (the alert says so)
                try:
                    claim = _dedup.acquire(
                        key, window=self.dedup_window, lease=seconds, state=claims[0], secret=claims[1]
                    )
                except Exception:  # grouping must never stop an alert
                    self.log.exception("RingOut alert: alert grouping failed; calling without it.")
            if isinstance(claim, _dedup.Held):
                who = ", ".join(_masked(n) for n in numbers) or "nobody"
                if claim.delivered:
                    self.log.warning(
                        "RingOut alert to %s for this incident was delivered within dedup_window (%.0f s); not "
                        "calling again.",
                        who,
                        self.dedup_window,
                    )
                else:
                    self.log.warning(
                        "RingOut alert to %s: an escalation of this incident is in progress elsewhere; not calling "
                        "from here (if it stops without delivering, the next alert rings).",
                        who,
                    )
                return
            lease = claim
            delivered = False
            try:
                renew = None if lease is None else (lambda: lease.renew(seconds))
                delivered = self._alert(numbers, budget, started, before_each_call=renew)
            finally:
                if lease is not None:
                    lease.settle(delivered)
        except Exception:
            self.log.exception("RingOut alert FAILED with an unexpected error; the alert may not have been delivered.")

    def _numbers(self) -> list[str]:
        """The rendered ``to_numbers`` as a list of strings, in order, without duplicates."""
        raw = self.to_numbers
        items: list[Any] = list(raw) if isinstance(raw, (list, tuple)) else [raw]
        return unique_numbers(items)

    def _claims_state(self) -> tuple[Any, bytes] | None:
        """
        The host-wide state folder the claims live in (the hook's; None if it cannot be opened) and the
        connection's claim secret; None if the connection cannot be read (the alert then fails on it).
        """
        from airflow_provider_ringout.state.sealing import claim_secret

        try:
            credentials = self.hook.credentials
        except Exception:
            return None
        secret = claim_secret(credentials.client_secret, credentials.jwt)
        try:
            return self.hook._state, secret
        except Exception as exc:
            self.log.warning("Alert grouping cannot open the state folder (%s); grouping in this process only.", exc)
            return None, secret

    def _incident_key(self, context: Any, numbers: Sequence[Any]) -> str | None:
        """The rendered ``dedup_key``, else the DAG run and the alerted numbers; None when nothing names a run."""
        target = "|".join(repr(n) for n in numbers) + f"|{self.connect_to!r}"
        if isinstance(self.dedup_key, str) and self.dedup_key.strip():
            return f"key|{self.dedup_key.strip()}"
        dag_id, run_id = _context.run_of(context)  # a callback's context, or a deadline alert's (JSON)
        if dag_id is None and run_id is None:
            return None
        return f"run|{dag_id}|{run_id}|{target}"

    def _valid_numbers(self, numbers: list[Any]) -> list[str]:
        """The usable E.164 numbers, in order; each unusable one is logged and skipped."""
        valid: list[str] = []
        for position, number in enumerate(numbers, start=1):
            try:
                checked = validate_e164(number, f"to_numbers[{position}]")
            except RingCentralConfigError as exc:
                self.log.error("RingOut alert: skipping an unusable number: %s", exc)
                continue
            if checked:
                valid.append(checked)
        return valid

    def _alert(
        self,
        numbers: list[Any],
        budget: _budget.Budget,
        started: float,
        *,
        before_each_call: Callable[[], object] | None = None,
    ) -> bool:
        """
        Run the escalation (:class:`~airflow_provider_ringout.escalation.Escalation`) inside the callback's budget.

        :param before_each_call: called before each number is rung (renews the incident's claim).
        :return: whether the alert was delivered: someone acknowledged (connected), the call was placed without
            waiting, or a call was left "not confirmed (may have connected)".
        """
        valid = self._valid_numbers(numbers)
        if not valid:
            self.log.error("RingOut alert FAILED: no valid number to call in to_numbers; no call was placed.")
            return False
        engine = Escalation(
            self.hook,
            connect_to=self.connect_to,
            from_number=self.from_number,
            caller_id=self.caller_id,
            poll_interval=self.poll_interval,
            wait_for_connection=self.wait_for_connection,
            label="RingOut alert",
            logger=self.log,
        )
        try:  # the connection, the first leg and caller_id are common to every call: check them once
            engine.check(valid[0])
        except Exception as exc:
            self.log.error("RingOut alert FAILED before any call was placed: %s", exc)
            return False
        if not self.wait_for_connection and len(valid) > 1:
            self.log.info(
                "RingOut alert: wait_for_connection=False, so only one call is placed; the other %d number(s) "
                "are used only for escalation with wait_for_connection=True.",
                len(valid) - 1,
            )
            valid = valid[:1]
        window = _budget.Window.start(
            budget, started, len(valid), self.per_number_timeout if self.wait_for_connection else 0.0
        )
        self._log_plan(window)
        progress = engine.run(Progress(valid), lambda p: window.slot(p.index), before_each_call)
        if not progress.finished:  # the plan, or the callback's time, ended before these numbers
            progress.give_up(window.why_not(progress.index))
        return self._report(progress, window)

    def _log_plan(self, window: _budget.Window) -> None:
        """Say up front what the callback's time allows (the last line says what came of it)."""
        if window.left is None or not self.wait_for_connection:
            return
        plan = window.plan
        if plan.count == 0:
            self.log.warning(
                "RingOut alert: the callback's time is too short to ring anyone: %.0f s left of %s, less than the "
                "shortest useful ring (%.0f s) and the time to place and cancel a call; nobody is rung.",
                window.left,
                window.budget.setting,
                window.shortest,
            )
        elif plan.count < window.total:
            self.log.warning(
                "RingOut alert: the callback's time only allows %s; the other numbers are not rung.", window.describe()
            )
        elif plan.wait < self.per_number_timeout:
            self.log.info("RingOut alert: waits shortened to fit the callback's time: %s.", window.describe())

    def _report(self, progress: Progress, window: _budget.Window) -> bool:
        """
        The alert's last line: each number, what came of its call or why it was not rung (in the engine's words),
        and the fix when the callback's time left numbers out.

        :return: whether the alert was delivered (see :meth:`_alert`).
        """
        if progress.reached is not None or progress.aborted:  # the engine's line for that call says it all
            return progress.delivered
        calls = " ".join(
            f"({n}) {mask_phone_number(c.number)}: {c.describe()}." for n, c in enumerate(progress.calls, start=1)
        )
        fix = ""
        if window.left is not None and any(c.outcome is CallOutcome.NOT_RUNG for c in progress.calls):
            fix = (
                " To ring every number, use RingOutEscalationOperator (a task of its own, no callback clock), or "
                f"raise {window.budget.setting_name}."
            )
        if progress.unconfirmed:
            self.log.warning(
                "RingOut alert NOT CONFIRMED: nobody was seen to answer; %s may have connected. %s%s",
                ", ".join(mask_phone_number(n) for n in progress.unconfirmed),
                calls,
                fix,
            )
            return True
        tried = any(c.outcome is not CallOutcome.NOT_RUNG for c in progress.calls)
        self.log.error(
            "RingOut alert FAILED: %s. %s%s", "nobody was reached" if tried else "nobody was rung", calls, fix
        )
        return False


# The function-style name Airflow notifiers also carry (send_slack_notification, send_pagerduty_notification, ...).
send_ringout_notification = RingOutNotifier

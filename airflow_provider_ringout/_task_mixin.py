"""What every RingOut task shares: a lazily built hook and its ``hook_params``, duration checks, cancel-on-kill."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout.exceptions import RingCentralConfigError, RingOutError, RingOutFailedError
from airflow_provider_ringout.phone import mask_phone_number
from airflow_provider_ringout.status import RingOutState

if TYPE_CHECKING:
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
    from airflow_provider_ringout.status import RingOutWatch
    from airflow_provider_ringout.triggers.ringout import RingOutTrigger

# Upper bounds on what a DAG may set, checked when the DAG is parsed, so no task can retry a dead RingCentral for
# days. Each names what it bounds; an error names the bound it broke.
MAX_WAIT = timedelta(hours=24)  # wait_timeout, a sensor's timeout: how long one task waits for a call
MAX_POLL_INTERVAL = timedelta(hours=1)  # poll_interval, poke_interval: the gap between two status reads
MAX_ATTEMPTS = 20  # hook_params["max_attempts"]: sends of one request in all, on 5xx or a dropped connection
MAX_BACKOFF_FACTOR = 60.0  # hook_params["backoff_factor"]: seconds, doubled per attempt
MAX_RATE_LIMIT_BUDGET = 3600.0  # hook_params["rate_limit_budget"]: seconds one request may wait out 429s
MAX_PER_NUMBER_WAIT = timedelta(hours=1)  # an escalation's per_number_timeout and poll_interval (notifier, task)
MAX_DEDUP_WINDOW = timedelta(days=7)  # dedup_window: how long a delivered alert keeps its incident claimed
# RingOutOperator's default map_index_template: a mapped call shows the number it calls, masked as in the logs,
# in the grid instead of 0/1/2 (the number is already rendered when Airflow renders this, after the task ran).
MAP_INDEX_TEMPLATE = "{{ task.mask_number(task.to_number) }}"


def seconds(
    value: float | timedelta, name: str, *, maximum: timedelta = MAX_WAIT, bound_name: str | None = None
) -> float:
    """Check a duration parameter (seconds or timedelta): positive and not absurd. Raised when the DAG is built."""
    if isinstance(value, bool) or not isinstance(value, (int, float, timedelta)):
        raise RingCentralConfigError(f"{name} must be a number of seconds or a timedelta; got {value!r}.")
    result = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not 0 < result <= maximum.total_seconds():
        bound = bound_name or ("MAX_WAIT" if maximum == MAX_WAIT else None)
        raise RingCentralConfigError(
            f"{name} must be more than 0 and at most {maximum.total_seconds():.0f} seconds"
            + (f" (the bound {bound})" if bound else "")
            + f"; got {result:g}."
        )
    return result


def _attempts(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS:
        raise RingCentralConfigError(
            f"{name} must be a whole number from 1 to {MAX_ATTEMPTS} (the bound MAX_ATTEMPTS); got {value!r}."
        )
    return value


def _bounded_seconds(value: Any, name: str, bound: float, bound_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= bound:
        raise RingCentralConfigError(
            f"{name} must be a number of seconds from 0 to {bound:g} (the bound {bound_name}); got {value!r}."
        )
    return float(value)


def _factor(value: Any, name: str) -> float:
    return _bounded_seconds(value, name, MAX_BACKOFF_FACTOR, "MAX_BACKOFF_FACTOR")


def _budget(value: Any, name: str) -> float:
    return _bounded_seconds(value, name, MAX_RATE_LIMIT_BUDGET, "MAX_RATE_LIMIT_BUDGET")


def _folder(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value).strip():
        raise RingCentralConfigError(f"{name} must be a folder path; got {value!r}.")
    return str(os.fspath(value))  # a plain string, so the trigger's kwargs stay JSON


# The RingCentralHook settings a task may pass in ``hook_params``, each with its check. Listed here rather than
# read from the hook's signature so that parsing a DAG never imports the hook (OAuth, HTTP); a test keeps the two
# in step.
HOOK_PARAMS: dict[str, Callable[[Any, str], Any]] = {
    "max_attempts": _attempts,
    "backoff_factor": _factor,
    "token_cache_dir": _folder,
    "rate_limit_budget": _budget,
}


def check_hook_params(hook_params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """
    Check ``hook_params`` when the DAG is built, so a typo is a DAG import error rather than a failed call.

    :param hook_params: keyword arguments for :class:`RingCentralHook` (``max_attempts``, ``backoff_factor``,
        ``token_cache_dir``, ``rate_limit_budget``), or None.
    :return: a checked copy (None when empty).
    :raises RingCentralConfigError: naming the unknown key or the bad value, and what is accepted.
    """
    if hook_params is None:
        return None
    if not isinstance(hook_params, Mapping):
        raise RingCentralConfigError(
            f"hook_params must be a dict of RingCentralHook arguments ({', '.join(HOOK_PARAMS)}); "
            f"got {type(hook_params).__name__}."
        )
    checked: dict[str, Any] = {}
    for key, value in hook_params.items():
        if key == "ringcentral_conn_id":
            raise RingCentralConfigError(
                "hook_params cannot hold ringcentral_conn_id: pass it as the task's own ringcentral_conn_id."
            )
        if key not in HOOK_PARAMS:
            raise RingCentralConfigError(
                f"hook_params has an unknown key {key!r}; RingCentralHook accepts {', '.join(HOOK_PARAMS)}."
            )
        checked[key] = HOOK_PARAMS[key](value, f"hook_params[{key!r}]")
    return checked or None


def retry_follows(task: Any, context: Mapping[str, Any], *, reconnects: bool) -> bool:
    """
    Whether a retry of this task will follow a retryable failure now and reconnect to its call.

    The one place operator and sensor decide whether a call whose wait failed is cancelled now or left to the
    retry. Airflow retries a failed try while ``try_number <= max_tries`` (``max_tries`` is ``retries`` until a
    clear raises it); a core that does not say counts as "no retry", so the call is cancelled rather than left.

    :param task: the operator or sensor (its ``retries`` when the task instance has no ``max_tries``).
    :param context: the task's context.
    :param reconnects: whether a retry of this task watches the same call (False: it would lose it).
    """
    ti = context.get("ti")
    try_number = getattr(ti, "try_number", None)
    max_tries = getattr(ti, "max_tries", None)
    if max_tries is None:
        max_tries = getattr(task, "retries", 0)
    if not reconnects or not isinstance(try_number, int) or not isinstance(max_tries, int):
        return False
    return bool(getattr(task, "retries", 0)) and try_number <= max_tries


class RingCentralTaskMixin:
    """
    The hook, built on first use (never at DAG-parse time), and ``on_kill`` that cancels a still-pending call.

    Classes using it set ``ringcentral_conn_id``, and may set ``hook_params`` (checked by
    :func:`check_hook_params`), ``cancel_on_kill``, ``cancel_on_timeout`` and ``_watch``.
    """

    ringcentral_conn_id: str
    hook_params: dict[str, Any] | None = None
    cancel_on_kill: bool = False
    cancel_on_timeout: bool = False
    _watch: RingOutWatch | None = None
    log: Any

    @cached_property
    def hook(self) -> RingCentralHook:
        """The task's hook, built with ``ringcentral_conn_id`` and ``hook_params`` on first use."""
        from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

        return RingCentralHook(ringcentral_conn_id=self.ringcentral_conn_id, **(self.hook_params or {}))

    def mask_number(self, number: str | None) -> str:
        """``number`` masked as the logs show it (``phone.mask_phone_number``); templates call it (map index)."""
        return mask_phone_number(number)

    def _trigger(self, watch: RingOutWatch, *, end_time: float, poll_interval: float) -> RingOutTrigger:
        """The trigger that waits on ``watch`` in the triggerer with this task's settings, until ``end_time``."""
        from airflow_provider_ringout.triggers.ringout import RingOutTrigger

        return RingOutTrigger.from_watch(
            watch,
            end_time=end_time,
            poll_interval=poll_interval,
            ringcentral_conn_id=self.ringcentral_conn_id,
            cancel_on_kill=self.cancel_on_kill,
            cancel_on_timeout=self.cancel_on_timeout,
            hook_params=self.hook_params,
        )

    def _failed_wait(
        self, context: Mapping[str, Any], ringout_id: str, why: str, *, reconnects: bool
    ) -> RingOutFailedError:
        """
        The error for a wait that ended without a final status; the call is cancelled first, unless a retry
        follows that reconnects to it (that retry cancels it if its own wait fails for good).

        :param why: what ended the wait (a status read failing for good, the trigger's error, ...).
        :param reconnects: whether a retry of this task would watch this same call.
        """
        if retry_follows(self, context, reconnects=reconnects):
            what = "it is left to the task's retry, which reconnects to it (and cancels it if its own wait fails)"
        else:
            what = self._cancel_urgently(ringout_id)
        message = f"Waiting on RingOut {ringout_id} failed ({why}); {what}."
        self.log.error(message)
        return RingOutFailedError(message, ringout_id=ringout_id)

    def _cancel_urgently(self, ringout_id: str) -> str:
        """Cancel with bounded waits (the wait already failed: do not hang on top of it); say what it did."""
        try:
            return self.hook.cancel_and_confirm(ringout_id, urgent=True).describe()
        except RingOutError as exc:
            self.log.exception("Could not cancel RingOut %s.", ringout_id)
            return f"a cancel was tried, but whether it stopped the call is unknown ({exc})"
        except Exception as exc:
            self.log.exception("Could not cancel RingOut %s.", ringout_id)
            return f"a cancel was tried, but whether it stopped the call is unknown ({type(exc).__name__})"

    def on_kill(self) -> None:
        """Cancel a call that is still pending when the task is killed, so no phone rings on for nobody."""
        watch = self._watch
        if not self.cancel_on_kill or watch is None:
            return
        if watch.last is not None and watch.last.state is not RingOutState.PENDING:
            return
        self.log.warning("Task killed while RingOut %s was pending: cancelling it.", watch.ringout_id)
        try:
            # on_kill runs in Airflow's SIGTERM handler, maybe on top of a token renewal holding the shared locks.
            self.hook.cancel_and_confirm(watch.ringout_id, urgent=True)
        except Exception:
            self.log.exception("Could not cancel RingOut %s.", watch.ringout_id)

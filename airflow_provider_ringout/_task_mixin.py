"""What every RingOut task shares: a lazily built hook and its ``hook_params``, duration checks, cancel-on-kill."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.phone import mask_phone_number
from airflow_provider_ringout.status import RingOutState

if TYPE_CHECKING:
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
    from airflow_provider_ringout.status import RingOutWatch
    from airflow_provider_ringout.triggers.ringout import RingOutTrigger

MAX_WAIT = timedelta(hours=24)
# RingOutOperator's default map_index_template: a mapped call shows the number it calls, masked as in the logs,
# in the grid instead of 0/1/2 (the number is already rendered when Airflow renders this, after the task ran).
MAP_INDEX_TEMPLATE = "{{ task.mask_number(task.to_number) }}"


def seconds(value: float | timedelta, name: str, *, maximum: timedelta = MAX_WAIT) -> float:
    """Check a duration parameter (seconds or timedelta): positive and not absurd. Raised when the DAG is built."""
    if isinstance(value, bool) or not isinstance(value, (int, float, timedelta)):
        raise RingCentralConfigError(f"{name} must be a number of seconds or a timedelta; got {value!r}.")
    result = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not 0 < result <= maximum.total_seconds():
        raise RingCentralConfigError(
            f"{name} must be more than 0 and at most {maximum.total_seconds():.0f} seconds; got {result:g}."
        )
    return result


def _whole_number(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RingCentralConfigError(f"{name} must be a whole number of at least 1; got {value!r}.")
    return value


def _factor(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 60:
        raise RingCentralConfigError(f"{name} must be a number of seconds from 0 to 60; got {value!r}.")
    return float(value)


def _budget(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
        raise RingCentralConfigError(f"{name} must be a number of seconds from 0 to 3600; got {value!r}.")
    return float(value)


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
    "max_attempts": _whole_number,
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

"""
The parameters a DAG sets, checked when it is parsed: the upper bounds (each named for what it bounds), duration
checks, and ``hook_params``. Below the tasks and the triggers, which both check what they are given with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from airflow_provider_ringout.exceptions import RingCentralConfigError

# Upper bounds on what a DAG may set, checked when the DAG is parsed, so no task can retry a dead RingCentral for
# days. Each names what it bounds; an error names the bound it broke.
MAX_WAIT = timedelta(hours=24)  # wait_timeout, a sensor's timeout: how long one task waits for a call
MAX_POLL_INTERVAL = timedelta(hours=1)  # poll_interval, poke_interval: the gap between two status reads
MAX_ATTEMPTS = 20  # hook_params["max_attempts"]: sends of one request in all, on 5xx or a dropped connection
MAX_BACKOFF_FACTOR = 60.0  # hook_params["backoff_factor"]: seconds, doubled per attempt
MAX_RATE_LIMIT_BUDGET = 3600.0  # hook_params["rate_limit_budget"]: seconds one request may wait out 429s
MAX_PER_NUMBER_WAIT = timedelta(hours=1)  # an escalation's per_number_timeout and poll_interval (notifier, task)
MAX_DEDUP_WINDOW = timedelta(days=7)  # dedup_window: how long a delivered alert keeps its incident claimed
# result_timeout: how long a task waits for a call's call-log record (the call's length plus RingCentral's
# 15-30 s delay); a call of hours is possible, a wait of a day for its record is not.
MAX_RESULT_WAIT = timedelta(hours=6)


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


def escalation_timing(
    per_number_timeout: float | timedelta, poll_interval: float | timedelta, dedup_window: float | timedelta
) -> tuple[float, float, float]:
    """An escalation's timing (the notifier's and the escalation task's, one meaning), checked when the DAG is built."""
    return (
        seconds(per_number_timeout, "per_number_timeout", maximum=MAX_PER_NUMBER_WAIT),
        seconds(poll_interval, "poll_interval", maximum=MAX_PER_NUMBER_WAIT),
        seconds(dedup_window, "dedup_window", maximum=MAX_DEDUP_WINDOW),
    )


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

"""
How long an alert callback may run, and an escalation plan that fits it.

Airflow stops callbacks from outside, with no chance to clean up:

- a DAG-level callback (and a task callback the scheduler hands to the DAG processor) runs in a DAG file processor,
  which the DAG processor SIGKILLs ``[dag_processor] dag_file_processor_timeout`` seconds (default 50) after it
  started; parsing the DAG file counts against that time;
- a task-level callback runs in the task's process after the task reported its end; the worker's supervisor
  terminates it ``[core] task_success_overtime`` seconds (default 20) later, whatever the end was.

A call still ringing when the process is killed cannot be cancelled, so the notifier plans its escalation to end
before that, and cancels the last unanswered call itself.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

# Shortest useful wait for one person: a few rings, time to pick up and (with connect_to) hear the prompt.
MIN_WAIT = 20.0
# Time one number costs besides its wait: the POST, the last status read, the cancel and the read after it.
CALL_OVERHEAD = 3.0
# Kept free at the end of the budget, so the last cancel is sent before the process is stopped.
END_MARGIN = 3.0

PROCESSOR_SETTING = ("dag_processor", "dag_file_processor_timeout", 50.0)
WORKER_SETTING = ("core", "task_success_overtime", 20.0)


@dataclass(frozen=True)
class Budget:
    """Seconds left to this callback (None: nothing stops it) and the setting that limits it."""

    seconds: float | None
    setting: str = ""


@dataclass(frozen=True)
class Plan:
    """How many numbers of the list are called, and how long each may ring before it is cancelled."""

    count: int
    wait: float

    def describe(self, total: int, budget: Budget) -> str:
        """One sentence for the log."""
        limit = f"{budget.seconds:.0f} s left of {budget.setting}" if budget.seconds is not None else "no limit"
        return f"{self.count} of {total} number(s), up to {self.wait:.0f} s each ({limit})"


def _setting(section: str, key: str, default: float) -> float:
    from airflow.providers.common.compat.sdk import conf

    try:
        value = conf.getfloat(section, key, fallback=default)
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) and value > 0 else default


def setting_text(setting: tuple[str, str, float]) -> str:
    """``[section] key = N s`` with the configured value."""
    section, key, default = setting
    return f"[{section}] {key} = {_setting(section, key, default):g} s"


def _process_age() -> float:
    """Seconds since this process started (the DAG processor times a file processor from its start)."""
    import psutil

    return max(0.0, time.time() - psutil.Process().create_time())


def _caller_modules() -> set[str]:
    """Modules of the frames that called us (cheap: a few dozen frames)."""
    names: set[str] = set()
    frame = sys._getframe(1)
    while frame is not None:
        names.add(str(frame.f_globals.get("__name__", "")))
        frame = frame.f_back  # type: ignore[assignment]
    return names


def _supervised_task_process() -> bool:
    """Whether this is a task process under a supervisor that enforces the overtime (not ``dags test``)."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    comms = getattr(runner, "SUPERVISOR_COMMS", None)
    return comms is not None and type(comms).__name__ != "InProcessSupervisorComms"


def callback_budget() -> Budget:
    """The time this callback has, judged from who called it (see the module's docstring)."""
    callers = _caller_modules()
    if "airflow.dag_processing.processor" in callers:
        section, key, default = PROCESSOR_SETTING
        left = _setting(section, key, default) - _process_age()
        return Budget(left, setting_text(PROCESSOR_SETTING))
    if "airflow.sdk.execution_time.task_runner" in callers and _supervised_task_process():
        section, key, default = WORKER_SETTING
        return Budget(_setting(section, key, default), setting_text(WORKER_SETTING))
    return Budget(None)


def plan(total: int, per_number: float, budget: float | None) -> Plan:
    """
    Fit an escalation of ``total`` numbers into ``budget`` seconds.

    Every number gets ``per_number`` seconds if that fits; else the waits are shortened evenly, but not below
    :data:`MIN_WAIT` (a shorter wait reaches nobody): then only the first numbers that fit are called. One
    number is always called, with whatever time is left.

    :param total: numbers in the list.
    :param per_number: the wait asked for, seconds.
    :param budget: seconds the callback has, or None for no limit.
    :return: the plan.
    """
    if budget is None or total <= 0:
        return Plan(max(total, 0), per_number)
    usable = budget - END_MARGIN
    even = usable / total - CALL_OVERHEAD
    if even >= min(per_number, MIN_WAIT):
        return Plan(total, min(per_number, even))
    wait = min(per_number, MIN_WAIT)
    count = int(usable // (wait + CALL_OVERHEAD))
    if count >= 1:
        return Plan(min(count, total), min(per_number, usable / count - CALL_OVERHEAD))
    return Plan(1, max(1.0, min(per_number, usable - CALL_OVERHEAD)))


def needed(total: int, per_number: float) -> float:
    """The shortest time an escalation of ``total`` numbers needs to call each one usefully."""
    return total * (min(per_number, MIN_WAIT) + CALL_OVERHEAD) + END_MARGIN


def unfit_settings(total: int, per_number: float) -> list[str]:
    """The callback limits (as ``[section] key = N s``) too short to call every number of the list usefully."""
    need = needed(total, per_number)
    return [setting_text(setting) for setting in (WORKER_SETTING, PROCESSOR_SETTING) if _setting(*setting) < need]

"""
How long an alert callback may run, and an escalation plan that fits it.

Airflow stops callbacks from outside, with no chance to clean up:

- a DAG-level callback (and a task callback the scheduler hands to the DAG processor) runs in a DAG file processor,
  which the DAG processor SIGKILLs ``[dag_processor] dag_file_processor_timeout`` seconds (default 50) after it
  started; parsing the DAG file counts against that time;
- a task-level callback runs in the task's process after the task reported its end; the worker's supervisor
  terminates it ``[core] task_success_overtime`` seconds (default 20) later, whatever the end was.

A call still ringing when the process is killed cannot be cancelled, so the notifier plans its escalation to end
before that, and cancels the last unanswered call itself. Placing a call counts too: a slow or locked login, the
pacer's wait and a 429's ``Retry-After`` come out of the same time (:meth:`Window.slot` bounds each placement),
and a number that no longer fits is "not rung", never planned and then silently dropped.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

from airflow_provider_ringout.escalation import Slot

# Shortest useful wait for one person: a few rings, time to pick up and (with connect_to) hear the prompt.
MIN_WAIT = 20.0
# Shortest ring worth placing at all (about two rings): with less time left nobody is rung, and the log says why.
MIN_RING = 10.0
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
    setting: str = ""  # "[core] task_success_overtime = 20 s"

    @property
    def setting_name(self) -> str:
        """The setting without its value, for "raise ..."."""
        return self.setting.split(" = ", 1)[0]


@dataclass(frozen=True)
class Plan:
    """How many numbers of the list are called, and how long each may ring before it is cancelled."""

    count: int
    wait: float

    def describe(self, total: int, left: float | None, budget: Budget) -> str:
        """One sentence for the log (``left``: the seconds the plan was made for)."""
        limit = f"{left:.0f} s left of {budget.setting}" if left is not None else "no limit"
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


def _in_task_process(callers: set[str]) -> bool:
    """Called (through ``callers``) by a supervised task process's runner, not by a DAG file processor."""
    return (
        "airflow.sdk.execution_time.task_runner" in callers
        and "airflow.dag_processing.processor" not in callers
        and _supervised_task_process()
    )


def in_task_process() -> bool:
    """
    Whether the caller runs in a supervised task process (the worker's; a DAG file processor sets the task
    runner's ``SUPERVISOR_COMMS`` too, but is not one): there a DAG file is parsed again for each task.
    """
    return _in_task_process(_caller_modules())


def callback_budget() -> Budget:
    """The time this callback has, judged from who called it (see the module's docstring)."""
    callers = _caller_modules()
    if "airflow.dag_processing.processor" in callers:
        section, key, default = PROCESSOR_SETTING
        left = _setting(section, key, default) - _process_age()
        return Budget(left, setting_text(PROCESSOR_SETTING))
    if _in_task_process(callers):
        section, key, default = WORKER_SETTING
        return Budget(_setting(section, key, default), setting_text(WORKER_SETTING))
    return Budget(None)


def plan(total: int, per_number: float, budget: float | None) -> Plan:
    """
    Fit an escalation of ``total`` numbers into ``budget`` seconds.

    Every number gets ``per_number`` seconds if that fits; else the waits are shortened evenly, but not below
    :data:`MIN_WAIT` (a shorter wait reaches nobody): then only the first numbers that fit are called. When not
    even one fits that way, the first is called with whatever time is left, if that is at least
    :func:`shortest` (else nobody: ``Plan(0, 0.0)``).

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
    left = min(per_number, usable - CALL_OVERHEAD)
    return Plan(1, left) if left >= shortest(per_number) else Plan(0, 0.0)


def shortest(per_number: float) -> float:
    """The shortest ring worth placing: :data:`MIN_RING`, or the wait asked for if that is shorter."""
    return min(MIN_RING, per_number)


def needed(total: int, per_number: float) -> float:
    """The shortest time an escalation of ``total`` numbers needs to call each one usefully."""
    return total * (min(per_number, MIN_WAIT) + CALL_OVERHEAD) + END_MARGIN


def unfit_settings(total: int, per_number: float) -> list[str]:
    """The callback limits (as ``[section] key = N s``) too short to call every number of the list usefully."""
    need = needed(total, per_number)
    return [setting_text(setting) for setting in (WORKER_SETTING, PROCESSOR_SETTING) if _setting(*setting) < need]


@dataclass(frozen=True)
class Window:
    """
    One escalation inside its callback's clock: the plan, made against the time really left, and each call's slot.

    :param budget: the callback's time.
    :param plan: how many numbers are rung, and for how long each.
    :param total: how many numbers the list has.
    :param left: the seconds left when the plan was made (None: no limit).
    :param deadline: ``time.monotonic()`` by which the last cancel is sent (None: no limit).
    :param shortest: the shortest ring worth placing (:func:`shortest`).
    """

    budget: Budget
    plan: Plan
    total: int
    left: float | None
    deadline: float | None
    shortest: float

    @classmethod
    def start(cls, budget: Budget, started: float, total: int, per_number: float) -> Window:
        """Plan ``total`` numbers into what is left now of ``budget`` (``started``: when the callback began)."""
        if budget.seconds is None:
            return cls(budget, plan(total, per_number, None), total, None, None, shortest(per_number))
        left = started + budget.seconds - time.monotonic()
        deadline = started + budget.seconds - END_MARGIN
        return cls(budget, plan(total, per_number, left), total, left, deadline, shortest(per_number))

    def slot(self, index: int) -> Slot | None:
        """
        The slot of the planned call ``index`` (0-based), or None: the plan ends before it, or it no longer fits.

        Its ring ends early enough that each later planned call still gets at least the shortest ring, and it is
        placed only while a useful ring still fits (placing it, with its login, pacer wait and 429s, counts).
        """
        if index >= self.plan.count:
            return None
        if self.deadline is None:
            return Slot(self.plan.wait)
        later = self.plan.count - index - 1
        ends = self.deadline - CALL_OVERHEAD - later * (self.shortest + CALL_OVERHEAD)
        place_by = ends - self.shortest
        if time.monotonic() >= place_by:
            return None
        return Slot(self.plan.wait, ends=ends, place_by=place_by)

    def why_not(self, index: int) -> str:
        """Why the numbers from ``index`` on are not rung (the callback's time, and its setting)."""
        left = f"{self.left or 0:.0f} s were left of {self.budget.setting}"
        if self.plan.count == 0:
            return f"the callback's time: {left}, too little for any call"
        if index >= self.plan.count:
            return f"the callback's time: {left}, enough for {self.plan.count} of {self.total} number(s)"
        return f"the callback's time ran out: {self.budget.setting}"

    def describe(self) -> str:
        """The plan in one sentence, for the log."""
        return self.plan.describe(self.total, self.left, self.budget)

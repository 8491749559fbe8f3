"""
What fast tests need to run a task's ``execute()`` in process: a task-instance double, and a deferral run to its end.

The installed Airflow ships no helper that builds a runtime task instance outside its own test suite, so the
double holds just what our tasks use of it: ``xcom_push`` (the RingOut id is saved at once), the reschedule-mode
sensor's ``get_first_reschedule_date``, and the ``stats_tags`` that Airflow 3.3's ``ResumableJobMixin`` reads.
A deferral is finished as the triggerer and the task runner do it: the trigger's ``run()`` yields one event, then
``resume_execution(method_name, kwargs + event)``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any


class TaskInstanceDouble:
    """A running task instance, as far as our operators and sensors look at it."""

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}
        self.first_reschedule_date: datetime | None = None
        self.stats_tags: dict[str, str] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def get_first_reschedule_date(self, context: Any) -> datetime | None:
        """When the first poke of a rescheduled sensor ran (None: this is the first)."""
        return self.first_reschedule_date


class StateStoreDouble(dict):  # type: ignore[type-arg]
    """Airflow 3.3's task_state_store, as far as the operator uses it."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


def task_context(ti: TaskInstanceDouble | None = None) -> dict[str, Any]:
    """A context with the task instance under both of the names Airflow gives it."""
    ti = ti or TaskInstanceDouble()
    return {"ti": ti, "task_instance": ti}


def finish_deferral(task: Any, deferred: Any, context: dict[str, Any], *, limit: float = 20.0) -> Any:
    """
    Run the trigger of ``deferred`` (a ``TaskDeferred``) until its event, then resume ``task`` with it.

    ``limit`` bounds the trigger's run, so a deadline that never comes fails the test at once instead of hanging.
    """

    async def events() -> list[Any]:
        return [event async for event in deferred.trigger.run()]

    fired = asyncio.run(asyncio.wait_for(events(), limit))
    assert len(fired) == 1, fired  # a trigger yields exactly one event
    next_kwargs = {**(deferred.kwargs or {}), "event": fired[0].payload}
    return task.resume_execution(deferred.method_name, next_kwargs, context)

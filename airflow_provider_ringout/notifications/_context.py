"""
Which DAG run an alert's context names, whatever called the alert.

A task's or a DAG's callback gets Airflow's task context (``ti``, ``dag_run``, ``run_id``, ``dag`` objects). A
Deadline Alert's ``AsyncCallback`` (Airflow 3.1+, run by the triggerer's ``CallbackTrigger``) gets a small JSON
context built by the scheduler when the deadline was missed (``Deadline.handle_miss``)::

    {"dag_run": {"dag_id": "...", "dag_run_id": "...", ...}, "deadline": {"id": "...", "deadline_time": ...}}

where ``dag_run`` is the REST API's DAG run (``dag_run_id``, not ``run_id``). :func:`run_of` reads both, so the
notifier's default incident key (the DAG run and the numbers) is the same for a late run's page and for that
run's failure callback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _field(source: Any, *names: str) -> str | None:
    """The first of ``names`` that ``source`` has (as an attribute, or a key of a mapping) and is a non-empty string."""
    for name in names:
        value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def run_of(context: Any) -> tuple[str | None, str | None]:
    """
    The ``(dag_id, run_id)`` an alert's context names; either may be None when the context does not say.

    :param context: a task or DAG callback's context, or a Deadline Alert's JSON context (see the module's doc).
    """
    get = context.get if hasattr(context, "get") else (lambda _key: None)
    ti = get("ti") or get("task_instance")
    dag_run = get("dag_run")
    dag_id = _field(ti, "dag_id") or _field(dag_run, "dag_id") or _field(get("dag"), "dag_id")
    run_id = _field(ti, "run_id") or get("run_id") or _field(dag_run, "run_id", "dag_run_id")
    return dag_id, (run_id if isinstance(run_id, str) and run_id else None)

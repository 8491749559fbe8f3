"""
``RingOutNotifier`` as a Deadline Alert's ``AsyncCallback`` (Airflow 3.1+), run by Airflow's own ``CallbackTrigger``
(what the triggerer runs) against the emulator, with the context the scheduler builds when a deadline is missed:
the run as the REST API shows it (``dag_run.dag_id``, ``dag_run.dag_run_id``), no ``ti``. The same run's failure
alert is then one incident with the page. Under real services: ``tests/e2e/test_standalone_deadline.py``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout.notifications import _context
from airflow_provider_ringout.notifications.ringout import RingOutNotifier
from airflow_provider_ringout.testing import CallScript, Outcome
from airflow_provider_ringout.version_compat import AIRFLOW_V_3_1_PLUS
from tests.notifications.test_ringout_notifier import FIRST, created, logs, make_context

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_ringout.testing import RingCentralEmulator

__all__ = ["logs"]
BRIDGE = "+14155550199"
KWARGS = {"to_numbers": [FIRST], "connect_to": BRIDGE, "per_number_timeout": 5, "poll_interval": 0.1}


def deadline_context(dag_id: str, run_id: str) -> dict[str, Any]:
    """The context ``Deadline.handle_miss`` gives a callback: the DAG run as the REST API returns it, and the deadline."""
    dag_run = {"dag_run_id": run_id, "dag_id": dag_id, "state": "running", "run_type": "manual", "conf": {}}
    return {"dag_run": dag_run, "deadline": {"id": "0199", "deadline_time": "2026-12-06T17:00:00+00:00"}}


def run_callback_trigger(kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """Run Airflow's CallbackTrigger for the notifier to its end, as the triggerer does; its events' payloads."""
    from airflow.triggers.callback import CallbackTrigger

    path = f"{RingOutNotifier.__module__}.{RingOutNotifier.__qualname__}"
    trigger = CallbackTrigger(callback_path=path, callback_kwargs=dict(kwargs))

    async def events() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(events())


def test_the_deadline_context_names_the_run() -> None:
    assert _context.run_of(deadline_context("nightly", "scheduled__2026-12-06")) == ("nightly", "scheduled__2026-12-06")
    assert _context.run_of({"deadline": {"id": "x"}}) == (None, None)  # nothing names a run: no grouping
    ti_context = make_context()
    assert _context.run_of(ti_context) == ("alerting_dag", ti_context["run_id"])


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="this Airflow core has no Deadline Alerts (they came in 3.1)")
def test_a_missed_deadline_pages_and_the_same_runs_failure_alert_is_the_same_incident(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    emulator = ringcentral_conn_env
    emulator.script_caller(FIRST, CallScript(outcome=Outcome.ANSWERED, after=0.3, talk=60))
    failure = make_context()  # a task of the run fails later: its failure alert's context
    late = deadline_context("alerting_dag", failure["run_id"])

    payloads = run_callback_trigger({**KWARGS, "context": late})

    assert [str(p["state"]) for p in payloads][-1].endswith("success"), payloads
    assert created(emulator) == [BRIDGE]  # the engineer rung first (press 1), connected on to the bridge
    assert "RingOut alert delivered" in logs()

    RingOutNotifier(**KWARGS)(failure)

    assert created(emulator) == [BRIDGE]  # no second call
    assert "was delivered within dedup_window (3600 s); not calling again" in logs()


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="this Airflow core has no Deadline Alerts (they came in 3.1)")
def test_another_runs_deadline_pages_again(ringcentral_conn_env: RingCentralEmulator) -> None:
    emulator = ringcentral_conn_env
    emulator.script_caller(FIRST, CallScript(outcome=Outcome.ANSWERED, after=0.3, talk=60))
    for run_id in ("scheduled__1", "scheduled__2"):
        run_callback_trigger({**KWARGS, "context": deadline_context("alerting_dag", run_id)})
    assert created(emulator) == [BRIDGE, BRIDGE]

"""
A call that may have connected is never dialled again by a later try of the task, on every supported core.

Run as Airflow runs it (``airflow dags test``, ``retries=1``, ``retry_delay=0``) against the emulator: a call
that connects and vanishes between two reads, and a POST whose answer is lost, fail the task once with a message
that says so; a call seen busy is retried and dialled again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest

from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from tests.airflow_runner import AirflowHome, DagRunResult
from tests.dags.ringout_scenarios import NO_REDIAL, NO_REDIAL_POLL
from tests.strike import status_reads, strike_when

pytestmark = pytest.mark.e2e
CLEAR_TO_CALL = "Clear the task to place a new call deliberately."


@pytest.fixture
def emulator() -> Iterator[RingCentralEmulator]:
    with RingCentralEmulator() as emulator:
        yield emulator


def posts(emulator: RingCentralEmulator, number: str) -> int:
    return sum(1 for r in emulator.requests if r.kind == "ring-out-create" and r.json["to"]["phoneNumber"] == number)


def tries(airflow_home: AirflowHome, dag_id: str) -> int:
    """How many tries Airflow ran of the last run's task (``try_number`` of its task instance)."""
    with sqlite3.connect(airflow_home.path / "airflow.db") as db:
        (number,) = db.execute(
            "SELECT try_number FROM task_instance WHERE dag_id = ? ORDER BY start_date DESC LIMIT 1", (dag_id,)
        ).fetchone()
    return int(number)


def run(airflow_home: AirflowHome, emulator: RingCentralEmulator, dag_id: str) -> DagRunResult:
    result = airflow_home.dags_test(dag_id, env={"AIRFLOW_CONN_RINGCENTRAL_DEFAULT": emulator.connection_json()})
    result.output = " ".join(result.output.split())  # Airflow 3.0 wraps exception messages at 80 columns
    return result


def connect_then_vanish(emulator: RingCentralEmulator) -> None:
    """The call connects, and its session is gone before the next read (a read a poll later gets 404)."""
    (ringout_id,) = emulator.sessions
    emulator.set_status(ringout_id, "Success", "Success", "Success")
    time.sleep(NO_REDIAL_POLL / 4)
    emulator.restart()  # the session is forgotten


@pytest.mark.parametrize("mode", ["blocking", "deferrable"])
def test_call_that_connected_and_vanished_between_reads_is_not_dialled_again(
    airflow_home: AirflowHome, emulator: RingCentralEmulator, mode: str
) -> None:
    number = NO_REDIAL["vanished"]
    if mode == "blocking":  # answered at 0.5 s, gone at 1.5 s; read at 0 s and 3 s
        emulator.script(number, CallScript(outcome=Outcome.ANSWERED, after=0.5, talk=0.5, linger=0.5))
        result = run(airflow_home, emulator, f"no_redial_vanished_{mode}")
    else:  # the operator reads once and defers; the trigger's first read must see it pending too
        emulator.script(number, CallScript(outcome=Outcome.NEVER_ANSWERS))
        with strike_when(status_reads(emulator, 2), lambda: connect_then_vanish(emulator)) as strike:
            result = run(airflow_home, emulator, f"no_redial_vanished_{mode}")
        assert strike.struck.is_set(), result.output[-3000:]
    assert result.states["call"] == "failed", result.output[-3000:]
    assert tries(airflow_home, f"no_redial_vanished_{mode}") == 1  # Airflow did not retry it
    assert posts(emulator, number) == 1, result.output[-3000:]
    statuses = [r.status for r in emulator.requests if r.kind == "ring-out-get"]
    assert statuses[-1] == 404 and 200 in statuses
    assert "RingOutOutcomeUnknownError" in result.output
    assert "may have connected; it is not dialled again" in result.output
    assert CLEAR_TO_CALL in result.output
    assert "Prior job in terminal state, resubmitting fresh" not in result.output
    assert emulator.count(kind="ring-out-delete") == 0


@pytest.mark.parametrize("mode", ["blocking", "deferrable"])
def test_unconfirmed_post_is_not_sent_again_by_a_retry(
    airflow_home: AirflowHome, emulator: RingCentralEmulator, mode: str
) -> None:
    number = NO_REDIAL["unconfirmed"]
    emulator.script(number, CallScript(outcome=Outcome.ANSWERED, after=0.5))
    emulator.inject("drop_after_processing", method="POST", path="ring-out-create")
    result = run(airflow_home, emulator, f"no_redial_unconfirmed_{mode}")
    assert result.states["call"] == "failed", result.output[-3000:]
    assert tries(airflow_home, f"no_redial_unconfirmed_{mode}") == 1  # Airflow did not retry it
    assert posts(emulator, number) == 1, result.output[-3000:]
    assert len(emulator.sessions) == 1  # the lost answer's call really was placed
    assert "RingOutUnconfirmedError" in result.output
    assert "it may have connected, so it is not dialled again" in result.output
    assert CLEAR_TO_CALL in result.output


@pytest.mark.parametrize("mode", ["blocking", "deferrable"])
def test_call_seen_busy_is_dialled_again_by_the_retry(
    airflow_home: AirflowHome, emulator: RingCentralEmulator, mode: str
) -> None:
    number = NO_REDIAL["busy"]
    emulator.script(number, CallScript(outcome=Outcome.BUSY, after=0.5, linger=2 * NO_REDIAL_POLL))
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

    result = run(airflow_home, emulator, f"no_redial_busy_{mode}")
    assert result.states["call"] == "failed", result.output[-3000:]
    assert tries(airflow_home, f"no_redial_busy_{mode}") == 2  # a plain failure: Airflow retried it
    if mode == "deferrable" and not AIRFLOW_V_3_3_PLUS:
        # Airflow 3.0's `dags test` resumes the retry in execute_complete with the first try's event: no new POST.
        assert posts(emulator, number) == 1
        assert result.output.count("RingOutFailedError: RingOut") == 2
        return
    assert posts(emulator, number) == 2, result.output[-3000:]  # retries=1 means "try calling again"
    assert "calleeStatus=Busy" in result.output
    assert "may have connected" not in result.output


def test_resumed_try_after_an_unconfirmed_post_does_not_dial(
    airflow_home: AirflowHome, emulator: RingCentralEmulator
) -> None:
    """
    The POST's answer is lost, then the first try's worker dies before Airflow records the failure, so Airflow
    retries. On 3.3+ the retry finds the outcome in task_state_store and fails without dialling. Before 3.3
    there is no task_state_store: the retry dials again, as documented (docs/operators.md, retries).
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

    number = NO_REDIAL["unconfirmed"]
    emulator.script(number, CallScript(outcome=Outcome.ANSWERED, after=0.5))
    emulator.inject("drop_after_processing", method="POST", path="ring-out-create")
    result = run(airflow_home, emulator, "no_redial_resumed")
    assert "simulated worker loss after the outcome was decided" in result.output
    assert tries(airflow_home, "no_redial_resumed") == 2
    if AIRFLOW_V_3_3_PLUS:
        assert result.states["call"] == "failed", result.output[-3000:]
        assert posts(emulator, number) == 1, result.output[-3000:]
        assert "An earlier try of this task placed a call that may have connected" in result.output
        assert CLEAR_TO_CALL in result.output
    else:
        assert posts(emulator, number) == 2

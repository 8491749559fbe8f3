"""Every wait path, run as Airflow runs it (``airflow dags test``), against the emulator over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from tests.airflow_runner import AirflowHome, DagRunResult
from tests.dags.ringout_scenarios import SCENARIOS, SENSOR_SCENARIOS, VANISH_AFTER_READS
from tests.strike import status_reads, strike_when

pytestmark = pytest.mark.e2e


@pytest.fixture
def emulator() -> Iterator[RingCentralEmulator]:
    with RingCentralEmulator(default_script=CallScript(after=0.5, talk=5, linger=3)) as emulator:
        for name, (number, outcome, after, _) in SCENARIOS.items():
            # Calls stay readable long enough for sensors that run after several other tasks.
            talk = 0.6 if outcome == "connects_then_finishes" else 60
            reads = VANISH_AFTER_READS.get(name)
            script = CallScript(outcome=Outcome(outcome), after=after, talk=talk, linger=60, vanish_after_reads=reads)
            emulator.script(number, script)
        yield emulator


def run(airflow_home: AirflowHome, emulator: RingCentralEmulator, dag_id: str) -> DagRunResult:
    return airflow_home.dags_test(dag_id, env={"AIRFLOW_CONN_RINGCENTRAL_DEFAULT": emulator.connection_json()})


@pytest.mark.parametrize("mode", ["blocking", "deferrable"])
def test_operator_paths(airflow_home: AirflowHome, emulator: RingCentralEmulator, mode: str) -> None:
    result = run(airflow_home, emulator, f"operator_{mode}")
    for name, (number, _, _, succeeds) in SCENARIOS.items():
        assert result.states[name] == ("success" if succeeds else "failed"), (name, result.output[-3000:])
        posts = [r for r in emulator.requests if r.kind == "ring-out-create" and r.json["to"]["phoneNumber"] == number]
        assert len(posts) == 1, name  # never dialled twice
        assert result.xcom(name, "ringout_id"), name  # saved at once, even when the wait failed
        if succeeds:
            assert result.xcom(name) == result.xcom(name, "ringout_id")
    deleted = {r.path.rsplit("/", 1)[-1] for r in emulator.requests if r.kind == "ring-out-delete"}
    assert deleted == {result.xcom("never_answers", "ringout_id"), result.xcom("first_leg_up", "ringout_id")}
    out = result.output
    assert "did not connect within 2 s; it was cancelled and stopped" in out
    assert "the cancel could NOT stop it: the first leg was already answered" in out
    assert "RingOutFailedError" in out and "calleeStatus=Busy" in out
    assert "Unknown RingOut status value 'SomethingNew2027'" in out
    if mode == "deferrable":  # calls that never connect are always pending at the first check: they defer
        assert out.count("Pausing task as DEFERRED") >= 2
        assert "running trigger in line" in out


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_sensor_paths(airflow_home: AirflowHome, emulator: RingCentralEmulator, mode: str) -> None:
    result = run(airflow_home, emulator, f"sensor_{mode}")
    expected = {"answered": "success", "busy": "failed", "never_answers": "failed", "first_leg_up": "failed"}
    for name in SENSOR_SCENARIOS:
        assert result.states[f"place_{name}"] == "success", result.output[-3000:]
        assert result.states[f"wait_{name}"] == expected[name], (name, result.output[-3000:])
    deleted = {r.path.rsplit("/", 1)[-1] for r in emulator.requests if r.kind == "ring-out-delete"}
    assert deleted == {result.xcom("place_never_answers"), result.xcom("place_first_leg_up")}
    assert emulator.count(kind="ring-out-create") == len(SENSOR_SCENARIOS)
    if mode == "deferrable":
        assert result.output.count("Pausing task as DEFERRED") >= 2
    if mode == "reschedule":  # every core: Airflow 3.0's `dags test` hands the first reschedule date as a string
        assert "UP_FOR_RESCHEDULE" in result.output
        assert "did not connect within the sensor's timeout" in " ".join(result.output.split())  # 3.0 wraps it
        assert "TypeError" not in result.output
    for name in ("never_answers", "first_leg_up"):  # the timeout cancels once, not once per layer that sees it
        ringout_id = result.xcom(f"place_{name}")
        assert sum(1 for r in emulator.requests if r.kind == "ring-out-delete" and r.path.endswith(ringout_id)) == 1
    assert emulator.sessions[result.xcom("place_never_answers")].cancelled  # the phone stopped ringing


def test_cancel_operator(airflow_home: AirflowHome, emulator: RingCentralEmulator) -> None:
    result = run(airflow_home, emulator, "cancel_operator")
    assert result.states["cancel_never_answers"] == "success"
    assert result.xcom("cancel_never_answers") is True
    assert result.states["cancel_answered"] == "success"
    assert result.xcom("cancel_answered") is False  # connected: a DELETE cannot hang up
    assert result.states["cancel_first_leg_up"] == "success"
    assert result.states["cancel_strict"] == "failed"
    assert "could not be stopped: it had already connected" in result.output


def test_retry_reconnects_instead_of_dialling_again(airflow_home: AirflowHome, emulator: RingCentralEmulator) -> None:
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

    answered, busy = SCENARIOS["answered"][0], SCENARIOS["busy"][0]
    # Busy before the retry looks, and still readable then.
    emulator.script(busy, CallScript(outcome=Outcome.BUSY, after=0.0, linger=60))
    gone = SCENARIOS["session_disappears"][0]
    emulator.script(gone, CallScript(outcome=Outcome.SESSION_DISAPPEARS, after=0.0))  # gone before the retry
    result = run(airflow_home, emulator, "operator_retry")
    posts = {
        number: sum(
            1 for r in emulator.requests if r.kind == "ring-out-create" and r.json["to"]["phoneNumber"] == number
        )
        for number in (answered, busy)
    }
    assert "simulated worker loss" in result.output
    assert result.states["answered"] == "success"
    if AIRFLOW_V_3_3_PLUS:
        assert posts[answered] == 1  # the retry found the pending call in task_state_store and waited on it
        # Still ringing when the retry looked (reconnect), or connected by then (a busy host starts it late).
        resumed = re.search(r"Reconnecting to existing job|Job already completed successfully", result.output)
        assert resumed, result.output[-3000:]
        assert result.xcom("answered") == result.xcom("answered", "ringout_id")  # the id is still the result
    else:
        assert posts[answered] == 2  # documented limitation before Airflow 3.3: no task_state_store
    assert posts[busy] == 2  # the first call failed (busy), so the retry placed a new one
    assert result.states["busy"] == "failed"
    gone_posts = sum(
        1 for r in emulator.requests if r.kind == "ring-out-create" and r.json["to"]["phoneNumber"] == gone
    )
    assert result.states["session_disappears"] == "failed"
    if AIRFLOW_V_3_3_PLUS:  # gone while nobody watched: it may have connected, so it is never dialled again
        assert gone_posts == 1
        assert "may have connected; it is not dialled again" in result.output
    else:  # documented limitation before 3.3: a retry after a lost worker cannot know the first call, dials again
        assert gone_posts == 2


FAULTS = ["429", "token_revoked", "503_burst", "reset", "slow_get", "malformed_json", "html", "jwt_revoked", "restart"]
FAILING_FAULTS = {"jwt_revoked", "restart"}


@pytest.mark.parametrize(
    ("mode", "fault"),
    [("blocking", f) for f in FAULTS]
    + [("deferrable", "429"), ("deferrable", "token_revoked"), ("deferrable", "restart")],
)
def test_faults_in_the_middle_of_a_wait(
    airflow_home: AirflowHome, emulator: RingCentralEmulator, mode: str, fault: str
) -> None:
    emulator.script("+15550000010", CallScript(outcome=Outcome.ANSWERED, after=3))

    def fault_strikes() -> None:
        if fault == "429":
            emulator.inject("429", path="ring-out-get", retry_after=1)
        elif fault == "token_revoked":
            emulator.revoke_all_tokens()
        elif fault == "503_burst":
            emulator.inject("503", path="ring-out-get", times=3)
        elif fault == "reset":
            emulator.inject("reset", path="ring-out-get")
        elif fault == "slow_get":
            emulator.inject("slow", path="ring-out-get", delay=2.5)  # longer than the 1 s request timeout
        elif fault in ("malformed_json", "html"):
            emulator.inject(fault, path="ring-out-get")
        elif fault == "jwt_revoked":
            emulator.revoke_all_tokens()
            emulator.reject_jwt()
        else:
            emulator.restart()

    conn = emulator.connection_json(extra={"request_timeout": 1})
    # In the middle of the wait: once the call's status was read twice (it connects at 3 s).
    with strike_when(status_reads(emulator, 2), fault_strikes) as strike:
        result = airflow_home.dags_test(f"operator_faults_{mode}", env={"AIRFLOW_CONN_RINGCENTRAL_DEFAULT": conn})
    assert strike.struck.is_set(), result.output[-3000:]  # else the run proved nothing about the fault
    assert emulator.count(kind="ring-out-create") == 1  # never dialled twice, whatever happened
    if fault in FAILING_FAULTS:
        assert result.states["slow_answer"] == "failed"
        deletes = [r.status for r in emulator.requests if r.kind == "ring-out-delete"]
        if fault == "jwt_revoked":  # the wait failed with no retry to follow: a cancel is tried, and refused too
            assert deletes in ([], [401]), deletes
            assert "whether it stopped the call is unknown" in " ".join(result.output.split())
        else:  # the outcome is known ("may have connected"): nothing to cancel
            assert deletes == []
        expected = (
            "rejected the JWT|invalid_grant"
            if fault == "jwt_revoked"
            else "may have connected; it is not dialled again"
        )
        # Airflow 3.0 wraps exception messages in its framed tracebacks: compare with whitespace collapsed.
        assert re.search(expected, " ".join(result.output.split())), result.output[-3000:]
        return
    assert result.states["slow_answer"] == "success", result.output[-3000:]
    gets = [r for r in emulator.requests if r.kind == "ring-out-get"]
    if fault == "429":
        statuses = [r.status for r in gets]
        assert statuses.count(429) == 1
        after = gets[statuses.index(429) + 1]
        assert after.time - gets[statuses.index(429)].time >= 1.0  # nothing sent during the penalty
    elif fault == "token_revoked":
        assert 401 in [r.status for r in gets]
        assert emulator.count(kind="token") >= 2
    elif fault == "503_burst":
        assert [r.status for r in gets].count(503) == 3


def test_killed_task_cancels_its_pending_call(airflow_home: AirflowHome, emulator: RingCentralEmulator) -> None:
    result = run(airflow_home, emulator, "operator_killed")
    assert result.states == {"cancel_on_kill_true": "failed", "cancel_on_kill_false": "failed"}
    assert "AirflowTaskTimeout" in result.output
    deleted = {r.path.rsplit("/", 1)[-1] for r in emulator.requests if r.kind == "ring-out-delete"}
    assert deleted == {result.xcom("cancel_on_kill_true", "ringout_id")}

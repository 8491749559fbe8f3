"""
RingOutNotifier against the RingCentral emulator over real HTTP (the hook is never mocked).

Unit-level tests call the notifier with a minimal callback context; the e2e tests run failing DAGs through
``airflow dags test`` in a subprocess and check the calls the emulator received.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.notifications.ringout import RingOutNotifier
from airflow_provider_ringout.testing import CallScript, Outcome
from tests.airflow_runner import dags_test_needs_reserialize

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_ringout.testing import RingCentralEmulator

FROM = "+14155550100"
FIRST = "+14155550101"
SECOND = "+14155550102"
THIRD = "+14155550103"
REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAG = REPO / "example_dags" / "example_ringout_notifier.py"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def make_context(*, try_number: int = 1, **extra: Any) -> Any:
    """A minimal failure-callback context: the DAG, a task instance unique to the test, plus any extra keys."""
    ti = SimpleNamespace(
        dag_id="alerting_dag",
        run_id=f"manual__{uuid.uuid4()}",
        task_id="load",
        map_index=-1,
        try_number=try_number,
        state="failed",
    )
    from airflow.sdk import DAG

    return {"dag": DAG("alerting_dag", schedule=None), "ti": ti, "task_instance": ti, "run_id": ti.run_id, **extra}


def created(emulator: RingCentralEmulator) -> list[str]:
    """The numbers called, in order."""
    return [r.json["to"]["phoneNumber"] for r in emulator.requests if r.kind == "ring-out-create" and r.json]


def deleted_ids(emulator: RingCentralEmulator) -> list[str]:
    """The RingOut ids that were cancelled (DELETE), in order."""
    return [r.path.rsplit("/", 1)[-1] for r in emulator.requests if r.method == "DELETE"]


def ids_by_number(emulator: RingCentralEmulator) -> dict[str, str]:
    return {info.to_number: rid for rid, info in emulator.sessions.items()}


def fast(**kwargs: Any) -> RingOutNotifier:
    kwargs.setdefault("from_number", FROM)
    kwargs.setdefault("poll_interval", 0.1)
    return RingOutNotifier(**kwargs)


@pytest.fixture
def logs(capfd: pytest.CaptureFixture[str]) -> Callable[[], str]:
    """Everything logged so far in the test (Airflow's structlog writes straight to the process's stdout)."""
    seen: list[str] = []

    def read() -> str:
        out, err = capfd.readouterr()
        seen.append(out + err)
        return "".join(seen)

    return read


# --- escalation ------------------------------------------------------------------------------------------


def test_escalates_past_unanswered_number_and_cancels_it(ringcentral_conn_env: RingCentralEmulator) -> None:
    emulator = ringcentral_conn_env
    emulator.script(FIRST, CallScript(outcome=Outcome.NEVER_ANSWERS))
    emulator.script(SECOND, CallScript(outcome=Outcome.ANSWERED, after=0.3))
    notifier = fast(to_numbers=[FIRST, SECOND, THIRD], wait_for_connection=True, per_number_timeout=1)

    started = time.monotonic()
    notifier.notify(make_context())

    assert created(emulator) == [FIRST, SECOND]  # the third is never called: the second answered
    ids = ids_by_number(emulator)
    assert deleted_ids(emulator) == [ids[FIRST]]  # the unanswered call was cancelled, the answered one not
    first_delete = next(r.time for r in emulator.requests if r.method == "DELETE")
    second_post = [r.time for r in emulator.requests if r.kind == "ring-out-create"][1]
    assert first_delete < second_post  # cancelled before the next number rang
    assert emulator.sessions[ids[FIRST]].cancelled
    assert time.monotonic() - started >= 1.0  # the first number rang its whole per_number_timeout


def test_moves_on_at_once_when_a_call_fails(ringcentral_conn_env: RingCentralEmulator) -> None:
    emulator = ringcentral_conn_env
    emulator.script(FIRST, CallScript(outcome=Outcome.NO_ANSWER, after=0.3))
    emulator.script(SECOND, CallScript(outcome=Outcome.ANSWERED, after=0.3))
    notifier = fast(to_numbers=[FIRST, SECOND], wait_for_connection=True, per_number_timeout=30)

    notifier.notify(make_context())

    assert created(emulator) == [FIRST, SECOND]
    first_post, second_post = (r.time for r in emulator.requests if r.kind == "ring-out-create")
    assert second_post - first_post < 30  # moved on when the call failed, not after per_number_timeout
    assert emulator.count(method="DELETE", kind="ring-out-delete") == 1
    assert deleted_ids(emulator) == [ids_by_number(emulator)[FIRST]]


def test_nobody_answers_every_call_cancelled_and_logged(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    emulator = ringcentral_conn_env
    emulator.script(None, CallScript(outcome=Outcome.NEVER_ANSWERS))
    notifier = fast(to_numbers=[FIRST, SECOND], wait_for_connection=True, per_number_timeout=0.5)

    notifier.notify(make_context())

    assert created(emulator) == [FIRST, SECOND]
    assert emulator.count(method="DELETE") == 2
    assert "RingOut alert FAILED: nobody was reached" in logs()
    assert FIRST not in logs()  # numbers are masked
    assert SECOND not in logs()


def test_one_call_without_wait_for_connection(ringcentral_conn_env: RingCentralEmulator) -> None:
    emulator = ringcentral_conn_env
    emulator.script(FIRST, CallScript(outcome=Outcome.NEVER_ANSWERS))
    notifier = fast(to_numbers=[FIRST, SECOND])

    notifier.notify(make_context())

    assert emulator.count(kind="ring-out-get") == 0  # placed, and did not wait on it
    assert emulator.count(method="POST", kind="ring-out-create") == 1
    assert created(emulator) == [FIRST]
    assert emulator.count(method="GET", kind="ring-out-get") == 0
    assert emulator.count(method="DELETE") == 0


def test_a_single_number_string_is_accepted(ringcentral_conn_env: RingCentralEmulator) -> None:
    notifier = fast(to_numbers=SECOND, caller_id=FROM)

    notifier.notify(make_context())

    [request] = [r for r in ringcentral_conn_env.requests if r.kind == "ring-out-create"]
    assert request.json == {
        "from": {"phoneNumber": FROM},
        "to": {"phoneNumber": SECOND},
        "playPrompt": False,
        "callerId": {"phoneNumber": FROM},
    }


# --- never twice -----------------------------------------------------------------------------------------


def test_no_double_alert_for_the_same_failure(ringcentral_conn_env: RingCentralEmulator) -> None:
    emulator = ringcentral_conn_env
    notifier = fast(to_numbers=[FIRST])
    context = make_context()

    notifier(context)  # as Airflow calls it
    notifier(context)
    notifier.notify(context)
    fast(to_numbers=[FIRST]).notify(context)  # another notifier for the same numbers and failure

    assert emulator.count(method="POST", kind="ring-out-create") == 1

    # A later try of the same run is the same incident (one escalation per DAG run by default); another
    # notifier with other numbers is another alert.
    retry_ti = SimpleNamespace(**{**vars(context["ti"]), "try_number": 2})
    notifier({**context, "ti": retry_ti, "task_instance": retry_ti})
    fast(to_numbers=[SECOND]).notify(context)
    assert created(emulator) == [FIRST, SECOND]


def test_start_and_end_of_a_try_are_one_incident_unless_keyed_apart(
    ringcentral_conn_env: RingCentralEmulator,
) -> None:
    context = make_context()
    running = SimpleNamespace(**{**vars(context["ti"]), "state": "running"})
    notifier = fast(to_numbers=[FIRST])
    notifier({**context, "ti": running, "task_instance": running})  # as an on_execute_callback
    notifier(context)  # the failure of the same run
    assert created(ringcentral_conn_env) == [FIRST]

    keyed = fast(to_numbers=[SECOND], dedup_key="{{ run_id }}-{{ ti.state }}")
    keyed({**context, "ti": running, "task_instance": running})
    keyed(context)
    assert created(ringcentral_conn_env) == [FIRST, SECOND, SECOND]


def test_one_alert_never_redials_a_number(ringcentral_conn_env: RingCentralEmulator) -> None:
    emulator = ringcentral_conn_env
    emulator.script(FIRST, CallScript(outcome=Outcome.NO_ANSWER, after=0.2))
    notifier = fast(to_numbers=[FIRST, FIRST, f" {FIRST} "], wait_for_connection=True, per_number_timeout=5)

    notifier.notify(make_context())

    assert created(emulator) == [FIRST]


def test_unconfirmed_call_is_not_sent_again(ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]) -> None:
    emulator = ringcentral_conn_env
    emulator.inject("drop_after_processing", method="POST", path="ring-out-create")
    notifier = fast(to_numbers=[FIRST, SECOND])

    notifier.notify(make_context())  # the POST rang the phone but its answer was lost

    assert emulator.count(method="POST", kind="ring-out-create") == 1
    assert created(emulator) == [FIRST]
    assert "may have been placed" in logs()


# --- never raises ----------------------------------------------------------------------------------------


def test_rejected_credentials_do_not_raise(ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]) -> None:
    emulator = ringcentral_conn_env
    emulator.reject_jwt()
    notifier = fast(to_numbers=[FIRST, SECOND], wait_for_connection=True, per_number_timeout=1)

    notifier(make_context())  # must not raise

    assert emulator.count(method="POST", kind="ring-out-create") == 0
    assert emulator.count(kind="token") >= 1
    assert "RingOut alert FAILED" in logs()


@pytest.mark.parametrize(
    "to_numbers",
    [
        pytest.param("4155550101", id="no-plus"),
        pytest.param(["+1 415 555 0101"], id="spaces"),
        pytest.param([14155550101], id="not-a-string"),
        pytest.param([], id="empty"),
        pytest.param(None, id="none"),
    ],
)
def test_bad_numbers_do_not_raise(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str], to_numbers: Any
) -> None:
    fast(to_numbers=to_numbers).notify(make_context())

    assert ringcentral_conn_env.requests == []  # nothing sent, not even a login
    assert "RingOut alert FAILED: no valid number" in logs()
    assert "4155550101" not in logs().replace(" ", "")


def test_bad_number_is_skipped_and_the_next_called(ringcentral_conn_env: RingCentralEmulator) -> None:
    fast(to_numbers=["+0123", SECOND], wait_for_connection=True, per_number_timeout=5).notify(make_context())

    assert created(ringcentral_conn_env) == [SECOND]


def test_server_error_on_the_call_does_not_raise_nor_resend(ringcentral_conn_env: RingCentralEmulator) -> None:
    ringcentral_conn_env.inject("500", method="POST", path="ring-out-create")

    fast(to_numbers=[FIRST, SECOND]).notify(make_context())

    # A 500 on the POST may have rung the phone: it is never resent, and no second call is placed.
    assert created(ringcentral_conn_env) == [FIRST]


def test_bad_from_number_or_missing_connection_do_not_raise(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    fast(to_numbers=[FIRST], from_number="555-0100").notify(make_context())
    fast(to_numbers=[FIRST], ringcentral_conn_id="no_such_connection").notify(make_context())
    RingOutNotifier(to_numbers=[FIRST]).notify(make_context())  # no from_number anywhere

    assert ringcentral_conn_env.requests == []
    assert logs().count("RingOut alert FAILED before any call was placed") == 3


def test_unrenderable_template_does_not_raise(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    notifier = fast(to_numbers="{{ 1 / 0 }}")

    notifier(make_context())

    assert ringcentral_conn_env.requests == []
    assert "RingOut alert FAILED" in logs()


def test_static_settings_are_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(RingCentralConfigError, match="per_number_timeout"):
        RingOutNotifier(to_numbers=FIRST, per_number_timeout=0)
    with pytest.raises(RingCentralConfigError, match="poll_interval"):
        RingOutNotifier(to_numbers=FIRST, poll_interval="2")  # type: ignore[arg-type]


# --- templating ------------------------------------------------------------------------------------------


def test_numbers_are_rendered_per_call_and_templates_kept(ringcentral_conn_env: RingCentralEmulator) -> None:
    notifier = fast(to_numbers=["{{ params.oncall }}"], from_number="{{ params.desk }}")
    assert list(notifier.template_fields) == [
        "to_numbers",
        "from_number",
        "caller_id",
        "ringcentral_conn_id",
        "connect_to",
        "dedup_key",
    ]

    notifier(make_context(params={"oncall": FIRST, "desk": FROM}))
    notifier(make_context(params={"oncall": SECOND, "desk": FROM}))  # the same instance, shared by two tasks

    assert created(ringcentral_conn_env) == [FIRST, SECOND]
    assert notifier.to_numbers == ["{{ params.oncall }}"]


def _notifier_takes_context() -> bool:
    import inspect

    from airflow.providers.common.compat.notifier import BaseNotifier

    return "context" in inspect.signature(BaseNotifier.__init__).parameters


@pytest.mark.skipif(not _notifier_takes_context(), reason="this Airflow's BaseNotifier has no awaitable form")
def test_awaitable_form_alerts_too(ringcentral_conn_env: RingCentralEmulator) -> None:
    notifier = fast(to_numbers="{{ params.oncall }}", context=make_context(params={"oncall": THIRD}))

    async def run() -> None:
        await notifier

    asyncio.run(run())

    assert created(ringcentral_conn_env) == [THIRD]


def test_example_dag_uses_the_notifier(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    monkeypatch.setenv("RINGOUT_EXAMPLE_NOTIFIER_TIMEOUT", "4")
    bag = DagBag(str(EXAMPLE_DAG))

    assert bag.import_errors == {}
    dag = bag.dags["example_ringout_notifier"]
    callbacks = dag.get_task("fail").on_failure_callback
    assert isinstance(callbacks, list)
    [callback] = callbacks
    assert isinstance(callback, RingOutNotifier)
    assert callback.to_numbers == [FIRST, SECOND]
    assert callback.connect_to == "+14155550199"  # engineers are rung first and must press 1
    assert callback.from_number is None
    assert callback.wait_for_connection is True
    assert callback.per_number_timeout == 4
    assert callback.poll_interval >= 2  # within RingCentral's Light budget


# --- real Airflow ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated Airflow home (sqlite), shared by the e2e tests of this module."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=120)
    return home


def dags_test(dag_id: str, dags: Path, home: Path, emulator: RingCentralEmulator, tmp_path: Path) -> str:
    """Run ``airflow dags test dag_id`` against the emulator; return its output."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_RINGCENTRAL_DEFAULT": emulator.connection_json(),
        "AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR": str(tmp_path / "token-cache-subprocess"),
        "RINGOUT_EXAMPLE_NOTIFIER_TIMEOUT": "3",
    }
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    if dags_test_needs_reserialize():
        subprocess.run([AIRFLOW, "dags", "reserialize"], env=env, capture_output=True, timeout=120, check=False)
    result = subprocess.run(
        [AIRFLOW, "dags", "test", dag_id], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return result.stdout + result.stderr


@pytest.mark.e2e
def test_example_dag_task_failure_escalates_under_airflow_dags_test(
    airflow_home: Path, ringcentral_emulator: RingCentralEmulator, tmp_path: Path
) -> None:
    emulator = ringcentral_emulator
    emulator.script_caller(FIRST, CallScript(outcome=Outcome.NEVER_ANSWERS))  # the primary does not answer
    emulator.script_caller(SECOND, CallScript(outcome=Outcome.ANSWERED, after=0.6))  # the backup presses 1
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(EXAMPLE_DAG, dags)

    output = dags_test("example_ringout_notifier", dags, airflow_home, emulator, tmp_path)

    assert "fails on purpose" in output, output[-3000:]
    rung = [r.json for r in emulator.requests if r.kind == "ring-out-create" and r.json]
    assert [body["from"]["phoneNumber"] for body in rung] == [FIRST, SECOND], output[-3000:]
    assert all(body["playPrompt"] is True for body in rung)
    first_id = next(rid for rid, info in emulator.sessions.items() if info.from_number == FIRST)
    assert deleted_ids(emulator) == [first_id]
    assert "acknowledged (pressed 1)" in output
    for number in (FIRST, SECOND, "+14155550199"):
        assert number not in output  # masked in the task log too


PROBE_DAG = """
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_ringout.notifications.ringout import RingOutNotifier

on_call = RingOutNotifier(to_numbers="{{ params.oncall }}", from_number="+14155550100")
manager = RingOutNotifier(to_numbers=["+14155550101"], from_number="+14155550100")

with DAG(
    dag_id="ringout_dag_level_probe",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    on_failure_callback=[on_call, manager],
    params={"oncall": "+14155550103"},
):

    @task(retries=0, on_failure_callback=on_call)
    def fail() -> None:
        raise RuntimeError("probe fails on purpose")

    fail()
"""


@pytest.mark.e2e
def test_dag_level_failure_callback_under_airflow_dags_test(
    airflow_home: Path, ringcentral_emulator: RingCentralEmulator, tmp_path: Path
) -> None:
    """
    In Airflow 3.3 ``dags test`` runs DAG-level callbacks too (with a SerializedDAG in the context), in the process
    that ran the task: the task's alert is not repeated by the DAG callback, and another DAG-level alert is placed.
    """
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "ringout_dag_level_probe.py").write_text(PROBE_DAG)

    output = dags_test("ringout_dag_level_probe", dags, airflow_home, ringcentral_emulator, tmp_path)

    assert re.search(r"Executing (on_failure )?dag callback", output), output[-3000:]  # 3.3 / 3.0 wording
    assert created(ringcentral_emulator) == [THIRD, FIRST], output[-3000:]
    assert "for this incident was delivered within dedup_window" in output  # one escalation per run and numbers

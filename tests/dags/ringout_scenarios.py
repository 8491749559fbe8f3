"""
DAGs that exercise every wait path of the operator, the sensor and the cancel operator, one task per scenario.

Each scenario has its own callee number; the test scripts the emulator's outcome for that number. The same
scenarios run in blocking (poke), reschedule and deferrable mode.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG

from airflow_provider_ringout.exceptions import RingOutUnconfirmedError
from airflow_provider_ringout.operators.ringout import RingOutCancelOperator, RingOutOperator
from airflow_provider_ringout.sensors.ringout import RingOutSensor

# name: (callee number, emulator outcome, seconds until it happens, task should succeed)
SCENARIOS: dict[str, tuple[str, str, float, bool]] = {
    "answered": ("+15550000001", "answered", 0.6, True),
    "busy": ("+15550000002", "busy", 0.4, False),
    "no_answer": ("+15550000003", "no_answer", 0.4, False),
    "rejected": ("+15550000004", "rejected", 0.4, False),
    "never_answers": ("+15550000005", "never_answers", 0.0, False),
    "first_leg_up": ("+15550000006", "first_leg_up", 0.2, False),
    "unknown_status": ("+15550000007", "unknown_status", 0.8, True),
    "session_disappears": ("+15550000008", "session_disappears", 0.0, False),  # by reads: VANISH_AFTER_READS
    "connects_then_finishes": ("+15550000009", "connects_then_finishes", 0.4, True),
}
# Scenarios scripted by events, not the clock: the call vanishes after this many status reads (the first check
# sees it ringing, the next finds it gone), however late the reads come on a busy host.
VANISH_AFTER_READS: dict[str, int] = {"session_disappears": 1}
SENSOR_SCENARIOS = ("answered", "busy", "never_answers", "first_leg_up")
FROM = "+15550009999"
WAIT = 2.0
POLL = 0.2
START = datetime(2026, 1, 1)

for mode in ("blocking", "deferrable"):
    with DAG(f"operator_{mode}", schedule=None, start_date=START, catchup=False, tags=["test"]):
        for name, (number, _, _, _) in SCENARIOS.items():
            RingOutOperator(
                task_id=name,
                to_number=number,
                from_number=FROM,
                wait_timeout=WAIT,
                poll_interval=POLL,
                deferrable=mode == "deferrable",
            )

for mode in ("poke", "reschedule", "deferrable"):
    with DAG(f"sensor_{mode}", schedule=None, start_date=START, catchup=False, tags=["test"]):
        for name in SENSOR_SCENARIOS:
            place = RingOutOperator(
                task_id=f"place_{name}", to_number=SCENARIOS[name][0], from_number=FROM, wait_for_connection=False
            )
            place >> RingOutSensor(
                task_id=f"wait_{name}",
                ringout_id=place.output,
                poke_interval=POLL if mode != "reschedule" else 1,
                timeout=WAIT if mode != "reschedule" else 3,
                mode="reschedule" if mode == "reschedule" else "poke",
                deferrable=mode == "deferrable",
            )

with DAG("cancel_operator", schedule=None, start_date=START, catchup=False, tags=["test"]):
    for name in ("never_answers", "answered", "first_leg_up"):
        place = RingOutOperator(
            task_id=f"place_{name}",
            to_number=SCENARIOS[name][0],
            from_number=FROM,
            wait_for_connection=name == "answered",
            poll_interval=POLL,
        )
        place >> RingOutCancelOperator(task_id=f"cancel_{name}", ringout_id=place.output)
    strict = RingOutOperator(
        task_id="place_strict", to_number=SCENARIOS["answered"][0], from_number=FROM, poll_interval=POLL
    )
    strict >> RingOutCancelOperator(task_id="cancel_strict", ringout_id=strict.output, fail_if_connected=True)


class WorkerLostOnFirstTry(RingOutOperator):
    """Test double of a worker that dies mid-wait on its first try (after the call was placed)."""

    def poll_until_complete(self, external_id: object, context: object) -> str:
        if context["ti"].try_number == 1:  # type: ignore[index]
            raise RuntimeError("simulated worker loss after the POST")
        return super().poll_until_complete(external_id, context)  # type: ignore[arg-type]


with DAG("operator_retry", schedule=None, start_date=START, catchup=False, tags=["test"]):
    for name in ("answered", "busy", "session_disappears"):
        WorkerLostOnFirstTry(
            task_id=name,
            to_number=SCENARIOS[name][0],
            from_number=FROM,
            poll_interval=POLL,
            wait_timeout=WAIT,
            retries=1,
            retry_delay=0,
        )

for mode in ("blocking", "deferrable"):
    with DAG(f"operator_faults_{mode}", schedule=None, start_date=START, catchup=False, tags=["test"]):
        RingOutOperator(
            task_id="slow_answer",
            to_number="+15550000010",
            from_number=FROM,
            poll_interval=POLL,
            wait_timeout=8,
            deferrable=mode == "deferrable",
        )

with DAG("operator_killed", schedule=None, start_date=START, catchup=False, tags=["test"]):
    from datetime import timedelta

    for cancel_on_kill in (True, False):
        RingOutOperator(
            task_id=f"cancel_on_kill_{str(cancel_on_kill).lower()}",
            to_number=SCENARIOS["never_answers"][0],
            from_number=FROM,
            poll_interval=POLL,
            wait_timeout=60,
            cancel_on_kill=cancel_on_kill,
            execution_timeout=timedelta(seconds=2),
        )

# A call that may have connected (it vanished between two reads, or the POST's answer was lost) is never dialled
# again by a later try; one seen failing (busy) is. Slow polls, so a call can connect and vanish in between.
NO_REDIAL = {"vanished": "+15550000011", "unconfirmed": "+15550000012", "busy": "+15550000013"}
NO_REDIAL_POLL = 3.0

for mode in ("blocking", "deferrable"):
    for name, number in NO_REDIAL.items():
        with DAG(f"no_redial_{name}_{mode}", schedule=None, start_date=START, catchup=False, tags=["test"]):
            RingOutOperator(
                task_id="call",
                to_number=number,
                from_number=FROM,
                poll_interval=NO_REDIAL_POLL,
                wait_timeout=30,
                retries=1,
                retry_delay=0,
                deferrable=mode == "deferrable",
            )


class LostAfterTheOutcome(RingOutOperator):
    """Test double of a worker that dies on its first try just after the POST's answer was lost."""

    def submit_job(self, context: Any) -> str:
        try:
            return super().submit_job(context)
        except RingOutUnconfirmedError:
            if context["ti"].try_number == 1:
                raise RuntimeError("simulated worker loss after the outcome was decided") from None
            raise


with DAG("no_redial_resumed", schedule=None, start_date=START, catchup=False, tags=["test"]):
    LostAfterTheOutcome(
        task_id="call",
        to_number=NO_REDIAL["unconfirmed"],
        from_number=FROM,
        poll_interval=NO_REDIAL_POLL,
        wait_timeout=30,
        retries=1,
        retry_delay=0,
    )

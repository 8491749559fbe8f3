"""
DAGs for the call's result (``wait_for_result``, RingOutCallResultSensor), one callee number per scenario; the test
scripts the emulator's outcome for each number (``test_call_result_dags.py``).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, get_current_context, task

from airflow_provider_ringout.operators.ringout import RingOutOperator
from airflow_provider_ringout.sensors.call_result import RingOutCallResultSensor

# name: callee number (the test scripts its outcome)
CONNECTED, BUSY, VOICEMAIL_CALLEE = "+15550001001", "+15550001002", "+15550001003"
AMBIGUOUS, LATE = "+15550001004", "+15550001005"
MAPPED = ("+15550001011", "+15550001012", "+15550001013")
FROM = "+15550009998"
VOICEMAIL_FROM = "+15550009997"  # its first leg is taken by a voicemail (the test scripts the caller)
OTHER_FROM = "+15550009996"  # calls whose results nobody reads, kept off the pairs whose results are read
START = datetime(2026, 1, 1)
FAST = {"poll_interval": 0.2, "result_poll_interval": 0.2, "result_timeout": 60}

for mode in ("blocking", "deferrable"):
    with DAG(f"result_operator_{mode}", schedule=None, start_date=START, catchup=False, tags=["test"]):
        deferrable = mode == "deferrable"
        for name, number, caller in (
            ("connected", CONNECTED, FROM),
            ("busy", BUSY, FROM),
            ("voicemail_first_leg", VOICEMAIL_CALLEE, VOICEMAIL_FROM),
        ):
            RingOutOperator(
                task_id=name, to_number=number, from_number=caller, wait_for_result=True, deferrable=deferrable, **FAST
            )
        RingOutOperator(task_id="no_result", to_number=CONNECTED, from_number=OTHER_FROM, deferrable=deferrable)
        RingOutOperator(task_id="placed_only", to_number=CONNECTED, from_number=OTHER_FROM, wait_for_connection=False)

    with DAG(f"result_errors_{mode}", schedule=None, start_date=START, catchup=False, tags=["test"]):
        late = RingOutOperator(
            task_id="late",
            to_number=LATE,
            from_number=FROM,
            wait_for_result=True,
            deferrable=mode == "deferrable",
            **{**FAST, "result_timeout": 2},
        )
        # late runs before the two AMBIGUOUS calls, never between them: they must be placed within the matcher's
        # 10 s window of each other, and late's deferred wait (held after its deferral) can take longer than that.
        first = RingOutOperator(
            task_id="first",
            to_number=AMBIGUOUS,
            from_number=FROM,
            wait_for_connection=False,
            trigger_rule="all_done",
        )
        (
            late
            >> first
            >> RingOutOperator(
                task_id="second",
                to_number=AMBIGUOUS,
                from_number=FROM,
                wait_for_result=True,
                deferrable=mode == "deferrable",
                **FAST,
            )
        )

for mode in ("poke", "reschedule", "deferrable", "native"):
    # native: render_template_as_native_obj, so the operator's written-out numbers must stay text, and the
    # template below renders to the ringout dict itself.
    native = mode == "native"
    with DAG(
        f"result_sensor_{mode}",
        schedule=None,
        start_date=START,
        catchup=False,
        tags=["test"],
        render_template_as_native_obj=native,
    ):
        place = RingOutOperator(task_id="place", to_number=CONNECTED, from_number=FROM, wait_for_connection=False)
        if mode == "poke":  # the dict itself, as a TaskFlow task hands it over

            @task
            def ringout_of_place() -> dict:
                return get_current_context()["ti"].xcom_pull(task_ids="place", key="ringout")

            ringout = ringout_of_place()
            place >> ringout
        else:  # the dict as a template renders it: its text (native: the dict)
            ringout = "{{ ti.xcom_pull(task_ids='place', key='ringout') }}"
        place >> RingOutCallResultSensor(
            task_id="result",
            ringout=ringout,
            mode="reschedule" if mode == "reschedule" else "poke",
            deferrable=mode == "deferrable",
            poke_interval=0.2,
            timeout=60,
        )

with DAG("result_mapped", schedule=None, start_date=START, catchup=False, tags=["test"]):
    calls = RingOutOperator.partial(task_id="call", from_number=FROM, **FAST, wait_for_result=True).expand(
        to_number=list(MAPPED)
    )

    @task(trigger_rule="all_done")
    def report() -> list[str]:
        """Each mapped call's ``call_result``, in map-index order (Airflow cannot map over a custom XCom key)."""
        ti = get_current_context()["ti"]
        pulled = [ti.xcom_pull(task_ids="call", key="call_result", map_indexes=i) for i in range(len(MAPPED))]
        return [result["result"] for result in pulled]

    calls >> report()

    placed = RingOutOperator.partial(task_id="place", from_number=OTHER_FROM, wait_for_connection=False).expand(
        to_number=list(MAPPED)
    )

    @task
    def ringouts() -> list[dict]:
        ti = get_current_context()["ti"]
        return [ti.xcom_pull(task_ids="place", key="ringout", map_indexes=i) for i in range(len(MAPPED))]

    found = ringouts()
    placed >> found
    RingOutCallResultSensor.partial(task_id="result", poke_interval=0.2, timeout=60).expand(ringout=found)

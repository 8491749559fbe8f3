"""
When a rescheduled RingOutSensor first poked, whatever the core hands over, and the fallback when it cannot say.

The datetime and ISO-string forms are what Airflow 3.3 and 3.0's ``dags test`` really return (both run end to
end in ``test_ringout_e2e_modes.py::test_sensor_paths[reschedule]``); ``None`` after a reschedule and a value
that is no date come from no real core, so a stand-in task instance gives them here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_ringout.sensors.ringout import RingOutSensor, first_poke_time

FIRST = datetime(2026, 12, 2, 6, 0, 0, tzinfo=UTC)
RUN_START = FIRST - timedelta(minutes=3)


def context(first: Any, *, reschedules: int = 1, run_start: datetime | None = RUN_START) -> Any:
    ti = SimpleNamespace(get_first_reschedule_date=lambda _context: first)
    return {"ti": ti, "task_reschedule_count": reschedules, "dag_run": SimpleNamespace(start_date=run_start)}


@pytest.mark.parametrize(
    "given",
    [
        FIRST,  # Airflow 3.3
        FIRST.isoformat(),  # Airflow 3.0's `dags test`
        "2026-12-02T06:00:00Z",
        FIRST.replace(tzinfo=None),  # naive: Airflow stores UTC
        FIRST.astimezone(timezone(timedelta(hours=2))),
    ],
)
def test_first_reschedule_date_in_any_form(given: Any) -> None:
    assert first_poke_time(context(given), timeout=60) == FIRST


def test_first_poke_is_now() -> None:
    before = datetime.now(UTC)
    assert before <= first_poke_time(context(None, reschedules=0), timeout=60) <= datetime.now(UTC)


@pytest.mark.parametrize("given", [None, "yesterday", 12345])
def test_no_usable_date_falls_back_to_the_run_start(given: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert first_poke_time(context(given), timeout=60) == RUN_START  # never later than the first poke
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "no usable first reschedule date" in caplog.text


def test_no_date_and_no_run_start_means_the_timeout_is_reached() -> None:
    def sensor() -> RingOutSensor:  # a new one per poke, as each poke is a new process
        return RingOutSensor(task_id="wait", ringout_id="1", mode="reschedule", poke_interval=5, timeout=60)

    assert sensor()._last_poke_before_timeout(context("garbage", run_start=None))
    assert not sensor()._last_poke_before_timeout(context(datetime.now(UTC)))
    assert sensor()._last_poke_before_timeout(context(datetime.now(UTC) - timedelta(seconds=56)))

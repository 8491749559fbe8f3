"""
Phone numbers under ``render_template_as_native_obj=True``: Airflow's native rendering reads the text
``"+14155550199"`` as the int 14155550199 (the '+' dropped). A number written out is never rendered, so it stays
text; a template that renders to such a number fails before anything is sent, saying why.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from airflow.sdk import DAG

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.notifications.ringout import RingOutNotifier
from airflow_provider_ringout.operators.escalation import RingOutEscalationOperator
from airflow_provider_ringout.operators.ringout import RingOutOperator
from airflow_provider_ringout.phone import validate_e164

TO, FROM = "+14155550199", "+14155550100"


def native_dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), render_template_as_native_obj=True)


def test_written_out_numbers_stay_text_under_native_rendering() -> None:
    with native_dag("native_numbers") as dag:
        call = RingOutOperator(task_id="call", to_number=TO, from_number=FROM)
        escalate = RingOutEscalationOperator(task_id="escalate", to_numbers=[TO, FROM], connect_to=FROM)
    context = {"params": {}, "dag": dag}

    call.render_template_fields(context)
    escalate.render_template_fields(context)

    assert (call.to_number, call.from_number) == (TO, FROM)
    assert escalate.to_numbers == [TO, FROM] and escalate.connect_to == FROM


def test_notifier_numbers_stay_text_under_native_rendering() -> None:
    with native_dag("native_notifier") as dag:
        notifier = RingOutNotifier(to_numbers=[TO], from_number=FROM)
    notifier.render_template_fields({"params": {}, "dag": dag}, dag.get_template_env())

    assert notifier.to_numbers == [TO] and notifier.from_number == FROM


def test_a_template_rendered_to_a_number_is_refused_saying_why() -> None:
    with native_dag("native_template") as dag:
        call = RingOutOperator(task_id="call", to_number="{{ params.to }}", from_number=FROM)
    call.render_template_fields({"params": {"to": TO}, "dag": dag})

    assert call.to_number == int(TO)  # Airflow's native rendering, not ours
    with pytest.raises(RingCentralConfigError, match="render_template_as_native_obj") as err:
        validate_e164(call.to_number, "to_number")
    assert "to_number" in str(err.value)

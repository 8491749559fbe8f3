"""Bad input is refused before any request, with a message that names the field (table-driven)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.operators.ringout import RingOutCancelOperator, RingOutOperator
from airflow_provider_ringout.sensors.ringout import RingOutSensor
from airflow_provider_ringout.testing import RingCentralEmulator

TO, FROM = "+14155550199", "+14155550100"


class FakeTI:
    stats_tags: dict[str, str] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        raise AssertionError("nothing may be pushed for bad input")


CONTEXT: dict[str, Any] = {"ti": FakeTI()}

NUMBER_CASES = [
    ("empty", ""),
    ("none", None),
    ("letters", "call-me-maybe"),
    ("spaces", "+1 415 555 0199"),
    ("dashes", "+1-415-555-0199"),
    ("national", "4155550199"),
    ("leading_zero_country", "+04155550199"),
    ("too_long", "+1234567890123456"),
    ("list", [TO]),
    ("unrendered_template", "{{ params.to_number }}"),
]


# An empty from_number is not bad input: it falls back to the connection's default From number.
FIELD_CASES = [(field, case, value) for field in ("to_number", "from_number") for case, value in NUMBER_CASES]
FIELD_CASES = [c for c in FIELD_CASES if not (c[0] == "from_number" and c[2] in ("", None))]


@pytest.mark.parametrize(("field", "case", "value"), FIELD_CASES, ids=[f"{f}-{c}" for f, c, _ in FIELD_CASES])
def test_bad_numbers(ringcentral_conn_env: RingCentralEmulator, field: str, case: str, value: Any) -> None:
    """A plain bad number fails when the DAG is parsed; a template is checked once rendered, before any request."""
    kwargs = {"to_number": TO, "from_number": FROM, field: value}
    if case == "unrendered_template":
        op = RingOutOperator(task_id="call", **kwargs)  # a template: nothing to check until it is rendered
        with pytest.raises(RingCentralConfigError, match=rf"{field}.*unrendered template"):
            op.execute(CONTEXT)
    else:
        with pytest.raises(RingCentralConfigError, match=field):
            RingOutOperator(task_id="call", **kwargs)
    assert ringcentral_conn_env.requests == []


@pytest.mark.parametrize(("field", "case", "value"), FIELD_CASES, ids=[f"{f}-{c}" for f, c, _ in FIELD_CASES])
def test_bad_numbers_from_a_template_fail_once_rendered(
    ringcentral_conn_env: RingCentralEmulator, field: str, case: str, value: Any
) -> None:
    op = RingOutOperator(task_id="call", **{"to_number": TO, "from_number": FROM, field: "{{ params.number }}"})
    setattr(op, field, value)  # what Airflow's rendering of the template field leaves
    with pytest.raises(RingCentralConfigError, match=field):
        op.execute(CONTEXT)
    assert ringcentral_conn_env.requests == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"caller_id": "555-0100"}, "caller_id"),
        ({"play_prompt": "yes"}, "play_prompt must be True or False"),
        ({"country_id": "US"}, "country_id must be RingCentral's numeric country id"),
    ],
)
def test_the_other_request_fields_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(RingCentralConfigError, match=message):
        RingOutOperator(task_id="call", to_number=TO, **kwargs)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("wait_timeout", 0),
        ("wait_timeout", -5),
        ("wait_timeout", timedelta(days=30)),
        ("wait_timeout", "soon"),
        ("wait_timeout", True),
        ("poll_interval", 0),
        ("poll_interval", -1.0),
        ("poll_interval", 10**7),
    ],
)
def test_bad_durations_fail_when_the_dag_is_built(field: str, value: Any) -> None:
    with pytest.raises(RingCentralConfigError, match=field):
        RingOutOperator(task_id="call", to_number=TO, **{field: value})


CONNECTION_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("no_client_id", {"login": ""}, "Client ID"),
    ("no_secret", {"password": ""}, "Client secret"),
    ("no_jwt", {"extra": {"jwt_token": ""}}, "'jwt_token' is empty"),
    ("jwt_not_a_jwt", {"extra": {"jwt_token": "abc123"}}, "not a JWT"),
    ("host_with_path", {"host": "https://platform.ringcentral.com/restapi/v1.0"}, "without path"),
    ("host_with_query", {"host": "https://platform.ringcentral.com?debug=1"}, "without path"),
    ("http_not_loopback", {"host": "http://platform.ringcentral.com"}, "clear text"),
    ("unknown_scheme", {"host": "ws://platform.ringcentral.com"}, "not supported"),
    ("bad_default_from", {"extra": {"from_number": "555-0100"}}, "from_number"),
    ("bad_timeout", {"extra": {"request_timeout": "-3"}}, "request_timeout"),
]


@pytest.mark.parametrize(("case", "overrides", "fragment"), CONNECTION_CASES, ids=[c for c, _, _ in CONNECTION_CASES])
def test_bad_connections(
    ringcentral_emulator: RingCentralEmulator,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    overrides: dict[str, Any],
    fragment: str,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", ringcentral_emulator.connection_json(**overrides))
    with pytest.raises(RingCentralConfigError, match="Connection 'ringcentral_default'") as err:
        RingOutOperator(task_id="call", to_number=TO, from_number=FROM).execute(CONTEXT)
    assert fragment in str(err.value)
    assert ringcentral_emulator.requests == []


def test_server_that_is_not_ringcentral(ringcentral_conn_env: RingCentralEmulator) -> None:
    ringcentral_conn_env.inject("html", path="token", times=20)
    from airflow_provider_ringout.exceptions import RingCentralAPIError

    quick = {"backoff_factor": 0}  # the message is tested, not the back-off between the token requests
    with pytest.raises(RingCentralAPIError, match="non-RingCentral body"):
        RingOutOperator(task_id="call", to_number=TO, from_number=FROM, hook_params=quick).execute(CONTEXT)
    assert ringcentral_conn_env.count(kind="ring-out-create") == 0


def test_extra_not_json(ringcentral_emulator: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(ringcentral_emulator.connection_json())
    conn["extra"] = '{"jwt_token": '
    monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", json.dumps(conn))
    with pytest.raises(Exception, match=r"not valid JSON|isn.t defined"):
        RingOutOperator(task_id="call", to_number=TO, from_number=FROM).execute(CONTEXT)
    assert ringcentral_emulator.requests == []


ID_CASES: list[tuple[str, Callable[[Any], Any]]] = [
    ("sensor", lambda rid: RingOutSensor(task_id="wait", ringout_id=rid).poke(CONTEXT)),
    ("cancel", lambda rid: RingOutCancelOperator(task_id="cancel", ringout_id=rid).execute(CONTEXT)),
]


@pytest.mark.parametrize("ringout_id", ["", "   ", None, "{{ ti.xcom_pull('call') }}"])
@pytest.mark.parametrize(("kind", "run"), ID_CASES, ids=[k for k, _ in ID_CASES])
def test_bad_ringout_ids(ringcentral_conn_env: RingCentralEmulator, ringout_id: Any, kind: str, run: Any) -> None:
    with pytest.raises(RingCentralConfigError, match="ringout_id"):
        run(ringout_id)
    assert ringcentral_conn_env.requests == []

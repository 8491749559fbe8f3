"""
RingOutRequest: a call's five fields checked once, when the DAG is parsed if they are plain, else once rendered,
and carried as one value to the hook (which still takes the loose keyword arguments).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.operators.ringout import RingOutOperator
from airflow_provider_ringout.request import RingOutRequest, is_templated, request_at_parse
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from tests.task_context import task_context

TO, FROM, SHOWN = "+14155550199", "+14155550100", "+14155550142"


def test_a_request_is_built_only_valid_and_normalised() -> None:
    request = RingOutRequest(to_number=TO, from_number="", caller_id="", country_id=1)
    assert request.fields() == {
        "to_number": TO,
        "from_number": None,
        "caller_id": None,
        "play_prompt": False,
        "country_id": "1",
    }
    json.dumps(request.fields())  # plain values
    with pytest.raises(RingCentralConfigError, match="to_number is required"):
        RingOutRequest(to_number=None)  # type: ignore[arg-type]
    with pytest.raises(RingCentralConfigError, match="country_id"):
        RingOutRequest(to_number=TO, country_id=True)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        request.to_number = FROM  # type: ignore[misc]  # frozen: whoever holds it sends what was checked


def test_its_repr_masks_the_numbers() -> None:
    shown = repr(RingOutRequest(to_number=TO, from_number=FROM, caller_id=SHOWN))
    assert TO not in shown and FROM not in shown and SHOWN not in shown
    assert "+1******0199" in shown


def test_the_body_takes_the_connections_from_number_only_when_it_has_none() -> None:
    request = RingOutRequest(to_number=TO, caller_id=SHOWN, play_prompt=True, country_id="1")
    assert request.body(default_from_number=FROM) == {
        "from": {"phoneNumber": FROM},
        "to": {"phoneNumber": TO},
        "playPrompt": True,
        "callerId": {"phoneNumber": SHOWN},
        "country": {"id": "1"},
    }
    own = RingOutRequest(to_number=TO, from_number=SHOWN)
    assert own.body(default_from_number=FROM)["from"] == {"phoneNumber": SHOWN}
    with pytest.raises(RingCentralConfigError, match=r"from_number is required.*of connection 'rc'"):
        request.body(connection="rc")


class Resolved:
    """Stands for an XComArg or a mapped argument: resolved only when the task runs."""


@pytest.mark.parametrize(
    ("value", "templated"),
    [
        (TO, False),
        (None, False),
        (44, False),
        ([TO], False),
        ("{{ params.to }}", True),
        ("{% if x %}+1{% endif %}", True),
        (["{{ params.to }}"], True),
        ({"k": "{{ x }}"}, True),
        (Resolved(), True),
    ],
)
def test_what_counts_as_templated(value: Any, templated: bool) -> None:
    assert is_templated(value) is templated


def test_a_request_is_built_at_parse_only_when_no_field_is_templated() -> None:
    plain = {"to_number": TO, "from_number": FROM, "caller_id": None, "play_prompt": False, "country_id": None}
    assert request_at_parse(plain) == RingOutRequest(to_number=TO, from_number=FROM)
    assert request_at_parse({**plain, "from_number": "{{ params.from }}"}) is None
    assert request_at_parse({**plain, "to_number": Resolved()}) is None


def test_the_hook_refuses_a_request_and_fields_together() -> None:
    with pytest.raises(RingCentralConfigError, match=r"either request or the call's fields.*to_number"):
        RingCentralHook().build_ringout_request(request=RingOutRequest(to_number=TO), to_number=FROM)


def test_the_hook_places_the_same_call_from_a_request_as_from_its_fields(
    ringcentral_conn_env: RingCentralEmulator,
) -> None:
    ringcentral_conn_env.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    hook = RingCentralHook()
    fields = {"to_number": TO, "from_number": FROM, "caller_id": SHOWN, "play_prompt": True, "country_id": 1}

    hook.place_ringout(**fields)
    hook.place_ringout(request=RingOutRequest(**fields))

    first, second = (r.body for r in ringcentral_conn_env.requests if r.kind == "ring-out-create")
    assert first == second
    assert json.loads(first)["country"] == {"id": "1"}


def count_checks(monkeypatch: pytest.MonkeyPatch) -> list[RingOutRequest]:
    """Record every RingOutRequest built (each is checked as it is built)."""
    built: list[RingOutRequest] = []
    check = RingOutRequest.__post_init__

    def counted(self: RingOutRequest) -> None:
        check(self)
        built.append(self)

    monkeypatch.setattr(RingOutRequest, "__post_init__", counted)
    return built


@pytest.mark.parametrize("templated", [False, True], ids=["plain", "templated"])
def test_an_operator_checks_its_call_once(
    ringcentral_conn_env: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch, templated: bool
) -> None:
    """Plain fields are checked when the DAG is parsed, templated ones once rendered: once either way."""
    ringcentral_conn_env.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    built = count_checks(monkeypatch)

    op = RingOutOperator(
        task_id="call",
        to_number="{{ params.to }}" if templated else TO,
        from_number=FROM,
        wait_for_connection=False,
    )
    assert len(built) == (0 if templated else 1)  # a plain call is checked at parse
    if templated:
        op.to_number = TO  # what Airflow's rendering leaves
    op.execute(task_context())

    assert len(built) == 1
    assert ringcentral_conn_env.count(kind="ring-out-create") == 1

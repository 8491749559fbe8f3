"""Status semantics: every RingOut reading maps to pending, connected, failed or gone, and never crashes."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_ringout import status as status_module
from airflow_provider_ringout.status import (
    CancelOutcome,
    RingOutState,
    RingOutStatus,
    RingOutWatch,
    cancel_outcome,
    classify,
)

SPEC_VALUES = [
    "Invalid", "Success", "InProgress", "Busy", "NoAnswer", "RingOutFromThisNumberIsNotSupported", "Rejected",
    "GenericError", "Finished", "InternationalDisabled", "DestinationBlocked", "NotEnoughFunds", "NosuchUser",
    "Error", "CannotReach", "NoAnsweringMachine", "NoSessionFound", "Unknown",
]  # fmt: skip


def body(call: Any, caller: Any = "InProgress", callee: Any = "InProgress") -> dict[str, Any]:
    return {"id": "1", "status": {"callStatus": call, "callerStatus": caller, "calleeStatus": callee}}


@pytest.mark.parametrize(
    ("call", "caller", "callee", "state"),
    [
        ("InProgress", "InProgress", "InProgress", RingOutState.PENDING),
        ("InProgress", "Success", "InProgress", RingOutState.PENDING),
        ("Success", "Success", "Success", RingOutState.CONNECTED),
        ("Finished", "Finished", "Finished", RingOutState.CONNECTED),
        ("success", "success", "success", RingOutState.CONNECTED),  # case-insensitive
        ("SUCCESS", "Busy", "NoAnswer", RingOutState.CONNECTED),  # legs do not override a connected call
        ("Busy", "Success", "Busy", RingOutState.FAILED),
        ("CannotReach", "Success", "Busy", RingOutState.FAILED),
        ("InProgress", "NoAnswer", "InProgress", RingOutState.FAILED),
        ("InProgress", "Success", "Rejected", RingOutState.FAILED),
        ("InProgress", "InProgress", "nosuchuser", RingOutState.FAILED),
        ("InProgress", "InProgress", "NoSuchUser", RingOutState.FAILED),  # the pre-2026 spelling
        ("Finished", "Success", "NoAnswer", RingOutState.FAILED),
        ("NoSessionFound", "NoSessionFound", "NoSessionFound", RingOutState.GONE),
        ("InProgress", "NoSessionFound", "InProgress", RingOutState.GONE),
        ("Unknown", "InProgress", "InProgress", RingOutState.PENDING),
        ("SomethingNew2027", "InProgress", "InProgress", RingOutState.PENDING),
        (None, None, None, RingOutState.PENDING),
    ],
)
def test_classify(call: str, caller: str, callee: str, state: RingOutState) -> None:
    assert classify(body(call, caller, callee)).state is state


@pytest.mark.parametrize(
    "value", [v for v in SPEC_VALUES if v not in ("Success", "Finished", "InProgress", "Unknown", "NoSessionFound")]
)
def test_every_failure_value_in_the_spec_fails(value: str) -> None:
    assert classify(body(value)).state is RingOutState.FAILED
    assert classify(body("InProgress", callee=value)).state is RingOutState.FAILED


def test_404_is_gone() -> None:
    assert classify(None).state is RingOutState.GONE
    assert classify(None).describe() == "session gone (HTTP 404)"


def test_unknown_value_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    status_module._reported_unknown.discard("brandnewvalue")
    caplog.set_level(logging.WARNING, logger="airflow_provider_ringout.status")
    for _ in range(3):
        classify(body("BrandNewValue"))
    assert caplog.text.count("Unknown RingOut status value 'BrandNewValue'") == 1


def test_watch_resolves_gone_by_history() -> None:
    connected_then_gone = RingOutWatch("1")
    assert connected_then_gone.observe(classify(body("Success", "Success", "Success"))) is RingOutState.CONNECTED
    assert connected_then_gone.observe(classify(None)) is RingOutState.CONNECTED
    never_connected = RingOutWatch("2")
    assert never_connected.observe(classify(body("InProgress"))) is RingOutState.PENDING
    assert never_connected.observe(classify(None)) is RingOutState.UNKNOWN  # it may have connected unseen
    message = never_connected.failure_message()
    assert "may have connected; it is not dialled again" in message
    assert "callStatus=InProgress, callerStatus=InProgress, calleeStatus=InProgress" in message  # last real reading


def test_watch_keeps_a_seen_failure_when_the_session_vanishes() -> None:
    seen_failing = RingOutWatch("3")
    assert seen_failing.observe(classify(body("InProgress", "Success", "Busy"))) is RingOutState.FAILED
    assert seen_failing.observe(classify(None)) is RingOutState.FAILED
    assert not seen_failing.outcome_unknown
    gone_at_first_read = RingOutWatch("4")
    assert gone_at_first_read.observe(classify(None)) is RingOutState.UNKNOWN
    assert gone_at_first_read.outcome_unknown


def test_failure_message_shows_three_statuses() -> None:
    watch = RingOutWatch("7")
    watch.observe(classify(body("CannotReach", "Success", "Busy")))
    assert watch.failure_message() == (
        "RingOut 7 failed: the call did not connect (callStatus=CannotReach, callerStatus=Success, calleeStatus=Busy)."
    )


def test_status_dict_round_trip() -> None:
    original = classify(body("InProgress", "Success", "InProgress"))
    assert RingOutStatus.from_dict(original.as_dict()) == original


@pytest.mark.parametrize(
    "readings",
    [
        [],
        [body("InProgress", "Success", "InProgress")],
        [body("Success", "Success", "Success"), None],  # connected, then gone: the last real reading is kept
    ],
)
def test_watch_dict_round_trip(readings: list[dict[str, Any] | None]) -> None:
    original = RingOutWatch("7")
    for reading in readings:
        original.observe(classify(reading))
    data = json.loads(json.dumps(original.to_dict()))  # as a trigger payload stores it
    rebuilt = RingOutWatch.from_dict(data)
    assert (rebuilt.ringout_id, rebuilt.seen_connected, rebuilt.last) == ("7", original.seen_connected, original.last)
    assert rebuilt.to_dict() == original.to_dict()
    assert rebuilt.failure_message() == original.failure_message()


def test_watch_from_a_dict_with_only_the_id() -> None:
    watch = RingOutWatch.from_dict({"ringout_id": 7})
    assert (watch.ringout_id, watch.seen_connected, watch.last) == ("7", False, None)


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        (CancelOutcome.STOPPED, "it was cancelled and stopped"),
        (CancelOutcome.NOTHING_TO_STOP, "its session was already gone, nothing to stop"),
        (CancelOutcome.CONNECTED, "it could not be stopped: it had already connected"),
        (CancelOutcome.FIRST_LEG_UP, "the cancel could NOT stop it: the first leg was already answered"),
    ],
)
def test_cancel_outcomes_put_themselves_into_words(outcome: CancelOutcome, words: str) -> None:
    assert outcome.describe().startswith(words)
    goes_on = outcome in (CancelOutcome.CONNECTED, CancelOutcome.FIRST_LEG_UP)
    assert ("could not" in outcome.describe().lower()) is goes_on  # a call that goes on is never hidden


@pytest.mark.parametrize(
    ("accepted", "after", "outcome"),
    [
        (False, None, CancelOutcome.NOTHING_TO_STOP),
        (True, None, CancelOutcome.STOPPED),
        (True, body("NoAnswer", "NoAnswer"), CancelOutcome.STOPPED),
        (True, body("Success", "Success", "Success"), CancelOutcome.CONNECTED),
        (True, body("InProgress", "Success", "InProgress"), CancelOutcome.FIRST_LEG_UP),
    ],
)
def test_cancel_outcome(accepted: bool, after: dict[str, Any] | None, outcome: CancelOutcome) -> None:
    assert cancel_outcome(accepted, classify(after)) is outcome


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)


@given(
    st.one_of(
        st.none(),
        st.dictionaries(st.text(max_size=10), json_values, max_size=4),
        st.fixed_dictionaries(
            {
                "status": st.dictionaries(
                    st.sampled_from(["callStatus", "callerStatus", "calleeStatus"]),
                    json_values | st.sampled_from(SPEC_VALUES),
                )
            }
        ),
    )
)
def test_any_body_gives_a_state(data: Any) -> None:
    result = classify(data)
    assert result.state in set(RingOutState)
    assert isinstance(result.describe(), str)


def test_a_watch_is_pending_until_a_final_reading_or_a_vanished_session() -> None:
    watch = RingOutWatch("1")
    assert watch.pending  # nothing read yet: it may ring
    watch.observe(classify(body("InProgress")))
    assert watch.pending
    watch.observe(classify(None))
    assert not watch.pending  # gone: nothing left to cancel, though its last reading stays the pending one
    assert watch.last is not None and watch.last.state is RingOutState.PENDING
    connected = RingOutWatch("2")
    connected.observe(classify(body("Success", "Success", "Success")))
    assert not connected.pending

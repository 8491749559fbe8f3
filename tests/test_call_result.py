"""The call-log matcher (``call_result.py``), against records the emulator really wrote and served over HTTP."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout.call_result import (
    AnsweredBy,
    MatchOutcome,
    PlacedRingOut,
    answered_by,
    call_result,
    match_call,
)
from airflow_provider_ringout.testing import (
    CallScript,
    Outcome,
    RingCentralEmulator,
)
from tests.emulator_api import api

if TYPE_CHECKING:
    from collections.abc import Iterator

BASE = "/restapi/v1.0/account/~/extension/~"
FROM, TO, OTHER_TO = "+14155550100", "+14155550123", "+14155550124"
BUSY_TO, VOICEMAIL_TO, NO_ANSWER_TO = "+14155550131", "+14155550134", "+14155550132"
VOICEMAIL_FROM = "+14155550160"
TIMEOUT = 5
RESULT_KEYS = {"result", "reason", "duration", "start_time", "legs", "telephony_session_id", "answered_by"}


def ended_at_once(outcome: Outcome = Outcome.ANSWERED, talk: float = 0) -> CallScript:
    """A call that has ended by the time the POST is answered."""
    return CallScript(outcome=outcome, after=0, talk=talk, linger=30)


class Phone:
    """Places RingOuts on the emulator and reads its call log, over HTTP, as the hook will."""

    def __init__(self, emulator: RingCentralEmulator) -> None:
        self.emulator = emulator
        self.session = api(emulator)

    def place(self, to: str = TO, frm: str = FROM) -> PlacedRingOut:
        """POST a RingOut, remembering when it was placed (when the POST returned, as the hook's docs ask)."""
        body = {"from": {"phoneNumber": frm}, "to": {"phoneNumber": to}}
        response = self.session.post(f"{self.emulator.url}{BASE}/ring-out", json=body, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return PlacedRingOut(str(response.json()["id"]), frm, to, datetime.now(UTC))

    def records(self, view: str = "Detailed") -> list[dict[str, Any]]:
        """The call log as GET .../call-log serves it."""
        response = self.session.get(
            f"{self.emulator.url}{BASE}/call-log", params={"view": view, "perPage": "max"}, timeout=TIMEOUT
        )
        assert response.status_code == 200, response.text
        return list(response.json()["records"])


@pytest.fixture
def phone() -> Iterator[Phone]:
    """An emulator whose calls end at once and are logged at once."""
    with RingCentralEmulator(default_script=ended_at_once(talk=0), call_log_delay=0) as emulator:
        emulator.script(BUSY_TO, ended_at_once(Outcome.BUSY))
        emulator.script(NO_ANSWER_TO, ended_at_once(Outcome.NO_ANSWER))
        emulator.script(VOICEMAIL_TO, ended_at_once(Outcome.VOICEMAIL))
        emulator.script_caller(VOICEMAIL_FROM, ended_at_once(Outcome.VOICEMAIL))
        yield Phone(emulator)


def test_a_connected_call_is_found_with_the_result_dict_the_issue_names(phone: Phone) -> None:
    phone.emulator.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0, talk=0, linger=30))
    ringout = phone.place()
    match = match_call(phone.records(), ringout)
    assert match.outcome is MatchOutcome.FOUND and match.candidates == 1
    result = match.answer()
    assert isinstance(result, dict) and set(result) == RESULT_KEYS
    (record,) = phone.records()
    assert result == {
        "result": "Call connected",
        "reason": "Accepted",
        "duration": 0,
        "start_time": record["startTime"],
        "legs": [
            {"leg_type": "RingOutWebToCaller", "result": "Call connected", "reason": "Accepted", "duration": 0},
            {"leg_type": "RingOutWebToSubscriber", "result": "Call connected", "reason": "Accepted", "duration": 0},
        ],
        "telephony_session_id": record["telephonySessionId"],
        "answered_by": "person",
    }


def test_a_busy_callee_with_a_one_leg_record_is_found(phone: Phone) -> None:
    ringout = phone.place(to=BUSY_TO)
    phone.place()  # another call from the same phone: not a candidate
    result = match_call(phone.records(), ringout).answer()
    assert isinstance(result, dict)
    assert (result["result"], result["reason"], result["answered_by"]) == ("Busy", "Line Busy", "unknown")
    assert [leg["leg_type"] for leg in result["legs"]] == ["RingOutWebToCaller"]


def test_two_calls_to_the_same_numbers_are_ambiguous(phone: Phone) -> None:
    first = phone.place()
    second = phone.place()
    records = phone.records()
    for ringout in (first, second):
        match = match_call(records, ringout)
        assert match.outcome is MatchOutcome.AMBIGUOUS and match.candidates == 2
        assert match.result is None and match.answer() == "ambiguous"


def test_calls_to_other_numbers_are_told_apart(phone: Phone) -> None:
    mine, other = phone.place(to=TO), phone.place(to=OTHER_TO)
    records = phone.records()
    callee_of = {r["telephonySessionId"]: r["to"]["phoneNumber"] for r in records}
    for ringout in (mine, other):
        result = match_call(records, ringout).answer()
        assert isinstance(result, dict)
        assert callee_of[result["telephony_session_id"]] == ringout.to_number


def test_no_record_yet_is_not_found(phone: Phone) -> None:
    phone.emulator.call_log.delay = 3600
    ringout = phone.place()
    match = match_call(phone.records(), ringout)
    assert match.outcome is MatchOutcome.NOT_FOUND and match.answer() is None
    phone.emulator.call_log.delay = 0
    assert match_call(phone.records(), ringout).outcome is MatchOutcome.FOUND


def test_a_record_outside_the_window_is_not_the_call(phone: Phone) -> None:
    ringout = phone.place()
    records = phone.records()
    later = PlacedRingOut(ringout.id, FROM, TO, ringout.placed_at + timedelta(hours=1))
    earlier = PlacedRingOut(ringout.id, FROM, TO, ringout.placed_at - timedelta(hours=1))
    assert match_call(records, later).outcome is MatchOutcome.NOT_FOUND
    assert match_call(records, earlier).outcome is MatchOutcome.NOT_FOUND
    narrow = match_call(records, later, window_before=timedelta(hours=2))
    assert narrow.outcome is MatchOutcome.FOUND


def test_another_call_between_the_same_numbers_is_not_taken_for_this_one(phone: Phone) -> None:
    """
    Only one record is written so far: that of a call between the same two numbers placed 20 s before this one
    (or after it: a short later call logged first). It is not this call's record: not there yet, never a guess.
    """
    logged = phone.place()
    records = phone.records()
    assert match_call(records, logged).outcome is MatchOutcome.FOUND
    for offset in (timedelta(seconds=20), -timedelta(seconds=20)):
        this_call = PlacedRingOut("1234", FROM, TO, logged.placed_at + offset)
        assert match_call(records, this_call).outcome is MatchOutcome.NOT_FOUND, offset


def test_the_numbers_must_both_match(phone: Phone) -> None:
    ringout = phone.place()
    records = phone.records()
    assert (
        match_call(records, PlacedRingOut(ringout.id, FROM, OTHER_TO, ringout.placed_at)).outcome
        is MatchOutcome.NOT_FOUND
    )
    assert (
        match_call(records, PlacedRingOut(ringout.id, OTHER_TO, TO, ringout.placed_at)).outcome
        is MatchOutcome.NOT_FOUND
    )


def test_answered_by_voicemail_on_the_first_leg(phone: Phone) -> None:
    ringout = phone.place(frm=VOICEMAIL_FROM)
    result = match_call(phone.records(), ringout).answer()
    assert isinstance(result, dict)
    assert (result["result"], result["answered_by"]) == ("Voicemail", "voicemail")


def test_a_voicemail_on_the_second_leg_is_unknown_not_person(phone: Phone) -> None:
    ringout = phone.place(to=VOICEMAIL_TO)
    result = match_call(phone.records(), ringout).answer()
    assert isinstance(result, dict)
    assert (result["reason"], result["answered_by"]) == ("Connected", "unknown")


def test_a_first_leg_nobody_answered(phone: Phone) -> None:
    ringout = phone.place(to=NO_ANSWER_TO)
    result = match_call(phone.records(), ringout).answer()
    assert isinstance(result, dict)
    assert (result["result"], result["answered_by"], len(result["legs"])) == ("No Answer", "unknown", 1)


def test_the_simple_view_matches_by_its_ringout_action(phone: Phone) -> None:
    ringout = phone.place()
    result = match_call(phone.records(view="Simple"), ringout).answer()
    assert isinstance(result, dict)
    assert result["legs"] == [] and result["answered_by"] == "unknown"


def test_the_same_record_seen_twice_is_one_candidate(phone: Phone) -> None:
    ringout = phone.place()
    records = phone.records()
    assert match_call(records + copy.deepcopy(records), ringout).outcome is MatchOutcome.FOUND


# ------------------------------------------------------- variations of a real record (branches the emulator never writes)


def test_a_record_not_finished_is_in_progress(phone: Phone) -> None:
    ringout = phone.place()
    (record,) = phone.records()
    record["finished"] = False
    match = match_call([record], ringout)
    assert match.outcome is MatchOutcome.IN_PROGRESS and match.answer() is None


def test_formatted_numbers_still_match(phone: Phone) -> None:
    ringout = phone.place()
    (record,) = phone.records()
    for part in (record, *record["legs"]):
        for side in ("from", "to"):
            number = part[side]["phoneNumber"]
            part[side]["phoneNumber"] = f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    assert match_call([record], ringout).outcome is MatchOutcome.FOUND


def test_records_that_are_not_outbound_ringouts_are_skipped(phone: Phone) -> None:
    ringout = phone.place()
    (record,) = phone.records()
    inbound = {**copy.deepcopy(record), "id": "in", "direction": "Inbound"}
    not_ringout = copy.deepcopy(record) | {"id": "pc"}
    for leg in not_ringout["legs"]:
        leg["legType"] = "PstnToSip"
    assert match_call([inbound, not_ringout], ringout).outcome is MatchOutcome.NOT_FOUND
    assert match_call([inbound, not_ringout, record], ringout).outcome is MatchOutcome.FOUND


def test_answered_by_reads_sent_to_voicemail_on_the_record(phone: Phone) -> None:
    phone.place()
    (record,) = phone.records()
    assert answered_by(record) is AnsweredBy.PERSON
    assert answered_by(record | {"result": "Sent to Voicemail"}) is AnsweredBy.VOICEMAIL
    assert call_result({"result": "Busy"})["legs"] == []


# ------------------------------------------------------------------------------------------ the ringout dict


def test_the_ringout_dict_round_trips() -> None:
    placed = PlacedRingOut("123", FROM, TO, datetime(2026, 12, 6, 17, 0, 1, 500000, tzinfo=UTC))
    as_dict = placed.as_dict()
    assert as_dict == {
        "id": "123",
        "from_number": FROM,
        "to_number": TO,
        "placed_at": "2026-12-06T17:00:01.500000+00:00",
    }
    assert PlacedRingOut.from_dict(as_dict) == placed
    assert PlacedRingOut.from_dict({**as_dict, "placed_at": "2026-12-06T17:00:01.5Z"}) == placed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"id": "1", "from_number": FROM, "to_number": TO}, "lacks placed_at"),
        ({"id": "1", "from_number": FROM, "to_number": TO, "placed_at": 5}, "ISO 8601"),
        ({"id": "1", "from_number": FROM, "to_number": TO, "placed_at": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_a_bad_ringout_dict_is_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PlacedRingOut.from_dict(data)

"""The emulator's call log (``testing/emulator/calllog.py``), exercised over real HTTP with ``requests`` (no mocks)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_ringout.testing import (
    CallScript,
    Outcome,
    RingCentralEmulator,
)
from airflow_provider_ringout.testing.emulator.calllog import ISYNC_LIMIT
from tests.emulator_api import api

if TYPE_CHECKING:
    from collections.abc import Iterator

BASE = "/restapi/v1.0/account/~/extension/~"
FROM, TO = "+14155550100", "+14155550123"
BUSY_TO, NO_ANSWER_TO, REJECT_TO, VOICEMAIL_TO, PENDING_TO = (
    "+14155550131",
    "+14155550132",
    "+14155550133",
    "+14155550134",
    "+14155550135",
)
VOICEMAIL_FROM = "+14155550160"  # this first-leg phone's voicemail answers
TIMEOUT = 5
WAIT = 10.0  # upper bound of a condition wait, never a pause


def ended_at_once(outcome: Outcome | str = Outcome.ANSWERED) -> CallScript:
    """A call that has ended by the time the POST is answered (so its end never depends on the clock)."""
    return CallScript(outcome=Outcome(outcome), after=0, talk=0, linger=30)


@pytest.fixture
def emu() -> Iterator[RingCentralEmulator]:
    """An emulator whose calls end at once and whose call log writes them at once (no rate limits)."""
    with RingCentralEmulator(default_script=ended_at_once(), call_log_delay=0) as emulator:
        emulator.script(BUSY_TO, ended_at_once(Outcome.BUSY))
        emulator.script(NO_ANSWER_TO, ended_at_once(Outcome.NO_ANSWER))
        emulator.script(REJECT_TO, ended_at_once(Outcome.REJECTED))
        emulator.script(VOICEMAIL_TO, ended_at_once(Outcome.VOICEMAIL))
        emulator.script(PENDING_TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
        emulator.script_caller(VOICEMAIL_FROM, ended_at_once(Outcome.VOICEMAIL))
        yield emulator


def place(session: requests.Session, emulator: RingCentralEmulator, to: str = TO, frm: str = FROM, **body: Any) -> str:
    """POST a RingOut; its id."""
    payload = {"from": {"phoneNumber": frm}, "to": {"phoneNumber": to}, **body}
    response = session.post(f"{emulator.url}{BASE}/ring-out", json=payload, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def call_log(session: requests.Session, emulator: RingCentralEmulator, **params: Any) -> requests.Response:
    """GET .../call-log."""
    return session.get(f"{emulator.url}{BASE}/call-log", params=params, timeout=TIMEOUT)


def sync(session: requests.Session, emulator: RingCentralEmulator, **params: Any) -> requests.Response:
    """GET .../call-log-sync."""
    return session.get(f"{emulator.url}{BASE}/call-log-sync", params=params, timeout=TIMEOUT)


def detailed(session: requests.Session, emulator: RingCentralEmulator) -> list[dict[str, Any]]:
    """Every record, Detailed, newest first (one page)."""
    response = call_log(session, emulator, view="Detailed", perPage="max")
    assert response.status_code == 200, response.text
    return list(response.json()["records"])


def record_to(session: requests.Session, emulator: RingCentralEmulator, to: str) -> dict[str, Any]:
    """The one record of the call to ``to``."""
    (record,) = [r for r in detailed(session, emulator) if r["to"].get("phoneNumber") == to]
    return record


def legs(record: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(legType, result, reason) of each leg, in order."""
    return [(leg["legType"], leg["result"], leg.get("reason")) for leg in record["legs"]]


def error_code(response: requests.Response) -> tuple[str, str | None]:
    """The first error's code and parameter name."""
    error = response.json()["errors"][0]
    return error["errorCode"], error.get("parameterName")


# ------------------------------------------------------------------------------------------ when records appear


def test_a_record_waits_for_the_delay_then_appears(emu: RingCentralEmulator) -> None:
    emu.call_log.delay = 3600  # far longer than any test: the record is held back, however slow the host
    session = api(emu)
    ringout_id = place(session, emu)
    assert emu.session_status(ringout_id) == {
        "callStatus": "Finished",
        "callerStatus": "Finished",
        "calleeStatus": "Finished",
    }
    assert detailed(session, emu) == []
    assert sync(session, emu, recordCount=10).json()["records"] == []
    emu.call_log.delay = 0  # the delay is over: the next request writes it
    (record,) = detailed(session, emu)
    assert record["to"] == {"phoneNumber": TO}


def test_a_short_delay_writes_the_record_by_itself(emu: RingCentralEmulator) -> None:
    emu.call_log.delay = 0.2
    session = api(emu)
    place(session, emu)
    deadline = time.monotonic() + WAIT
    while not (records := detailed(session, emu)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(records) == 1


def test_a_call_that_has_not_ended_has_no_record(emu: RingCentralEmulator) -> None:
    session = api(emu)
    ringout_id = place(session, emu, to=PENDING_TO)
    place(session, emu)  # a later call that ended: proves the log was written meanwhile
    assert [r["to"]["phoneNumber"] for r in detailed(session, emu)] == [TO]
    assert emu.session_status(ringout_id) is not None


def test_the_delay_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="call_log_delay"):
        RingCentralEmulator(call_log_delay=-1)


# ------------------------------------------------------------------------------------------ what records say


def test_a_connected_call_has_both_ringout_legs_and_its_durations(emu: RingCentralEmulator) -> None:
    emu.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0.2, talk=0.4))
    session = api(emu)
    place(session, emu)
    deadline = time.monotonic() + WAIT
    while not (records := detailed(session, emu)) and time.monotonic() < deadline:
        time.sleep(0.05)
    (record,) = records
    assert record["type"] == "Voice" and record["direction"] == "Outbound" and record["action"] == "RingOut Web"
    assert (record["result"], record["reason"], record["finished"]) == ("Call connected", "Accepted", True)
    assert (record["durationMs"], record["duration"]) == (600, 1)  # after + talk, from the script
    assert legs(record) == [
        ("RingOutWebToCaller", "Call connected", "Accepted"),
        ("RingOutWebToSubscriber", "Call connected", "Accepted"),
    ]
    first, second = record["legs"]
    assert (first["durationMs"], second["durationMs"]) == (600, 500)  # the second leg rings from after / 2
    assert (first["to"], second["to"]) == ({"phoneNumber": FROM}, {"phoneNumber": TO})
    assert record["from"] == {"phoneNumber": FROM} and record["to"] == {"phoneNumber": TO}
    assert first["telephonySessionId"] == second["telephonySessionId"] == record["telephonySessionId"]
    assert record["telephonySessionId"].startswith("s-") and record["sessionId"].isdigit()
    assert record["uri"].endswith(f"/call-log/{record['id']}")


@pytest.mark.parametrize(
    ("to", "result", "reason", "first_leg"),
    [
        (BUSY_TO, "Busy", "Line Busy", ("RingOutWebToCaller", "Call connected", "Accepted")),
        (NO_ANSWER_TO, "No Answer", "No Answer", ("RingOutWebToCaller", "No Answer", "No Answer")),
        (REJECT_TO, "Rejected", None, ("RingOutWebToCaller", "Rejected", None)),
    ],
)
def test_a_failed_call_leaves_one_leg(
    emu: RingCentralEmulator, to: str, result: str, reason: str | None, first_leg: tuple[str, str, str | None]
) -> None:
    session = api(emu)
    place(session, emu, to=to)
    record = record_to(session, emu, to)
    assert (record["result"], record.get("reason")) == (result, reason)
    assert legs(record) == [first_leg]


def test_a_voicemail_on_the_first_leg_says_voicemail(emu: RingCentralEmulator) -> None:
    session = api(emu)
    place(session, emu, frm=VOICEMAIL_FROM)
    (record,) = detailed(session, emu)
    assert (record["result"], record["reason"]) == ("Voicemail", "Connected")
    assert legs(record) == [
        ("RingOutWebToCaller", "Voicemail", "Connected"),
        ("RingOutWebToSubscriber", "Call connected", "Accepted"),
    ]


def test_a_voicemail_on_the_first_leg_with_a_prompt_never_ends_so_writes_nothing(emu: RingCentralEmulator) -> None:
    session = api(emu)
    ringout_id = place(session, emu, frm=VOICEMAIL_FROM, playPrompt=True)
    place(session, emu)
    assert [r["from"]["phoneNumber"] for r in detailed(session, emu)] == [FROM]
    assert emu.session_status(ringout_id) == {
        "callStatus": "InProgress",
        "callerStatus": "Success",
        "calleeStatus": "InProgress",
    }


def test_a_voicemail_on_the_second_leg_is_connected_not_accepted(emu: RingCentralEmulator) -> None:
    session = api(emu)
    place(session, emu, to=VOICEMAIL_TO)
    record = record_to(session, emu, VOICEMAIL_TO)
    assert (record["result"], record["reason"]) == ("Call connected", "Connected")
    assert legs(record)[1] == ("RingOutWebToSubscriber", "Call connected", "Connected")


def test_a_cancelled_call_is_logged_when_cancelled(emu: RingCentralEmulator) -> None:
    session = api(emu)
    ringout_id = place(session, emu, to=PENDING_TO)
    assert detailed(session, emu) == []
    assert session.delete(f"{emu.url}{BASE}/ring-out/{ringout_id}", timeout=TIMEOUT).status_code == 204
    record = record_to(session, emu, PENDING_TO)
    assert (record["result"], record["reason"]) == ("Hang Up", "Hang Up")
    assert legs(record) == [("RingOutWebToCaller", "Hang Up", "Hang Up")]


def test_two_calls_to_the_same_numbers_give_two_records_newest_first(emu: RingCentralEmulator) -> None:
    session = api(emu)
    place(session, emu)
    place(session, emu)
    newer, older = detailed(session, emu)
    assert newer["id"] != older["id"] and newer["telephonySessionId"] != older["telephonySessionId"]
    assert newer["startTime"] >= older["startTime"]
    assert (newer["from"], newer["to"]) == (older["from"], older["to"])


# ------------------------------------------------------------------------------------------ GET call-log


def test_the_simple_view_has_no_legs(emu: RingCentralEmulator) -> None:
    session = api(emu)
    place(session, emu)
    (simple,) = call_log(session, emu).json()["records"]
    assert "legs" not in simple and simple["result"] == "Call connected"


def test_the_list_filters_by_time_number_and_pages(emu: RingCentralEmulator) -> None:
    session = api(emu)
    for to in (TO, BUSY_TO, NO_ANSWER_TO):
        place(session, emu, to=to)
    every = detailed(session, emu)
    assert [r["to"]["phoneNumber"] for r in every] == [NO_ANSWER_TO, BUSY_TO, TO]
    oldest = every[-1]["startTime"]
    until_oldest = {r["id"] for r in call_log(session, emu, dateTo=oldest).json()["records"]}
    assert every[-1]["id"] in until_oldest  # and any call started in the same millisecond
    assert until_oldest == {r["id"] for r in every if r["startTime"] <= oldest}
    assert call_log(session, emu, dateFrom="2099-01-01T00:00:00Z").json()["records"] == []
    by_number = call_log(session, emu, phoneNumber=BUSY_TO.lstrip("+")).json()["records"]
    assert [r["id"] for r in by_number] == [every[1]["id"]]
    page = call_log(session, emu, perPage=1, page=2).json()
    assert [r["id"] for r in page["records"]] == [every[1]["id"]]
    assert page["paging"] == {
        "perPage": 1,
        "page": 2,
        "totalPages": 3,
        "totalElements": 3,
        "pageStart": 1,
        "pageEnd": 1,
    }
    assert set(page["navigation"]) == {"firstPage", "lastPage", "previousPage", "nextPage"}


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"dateFrom": "yesterday"}, "dateFrom"), ({"view": "Full"}, "view"), ({"perPage": "0"}, "perPage")],
)
def test_a_bad_list_parameter_is_a_400_naming_it(
    emu: RingCentralEmulator, params: dict[str, str], parameter: str
) -> None:
    response = call_log(api(emu), emu, **params)
    assert response.status_code == 400
    assert error_code(response) == ("CMN-101", parameter)


# ------------------------------------------------------------------------------------------ call-log-sync


def test_isync_gives_only_the_records_written_since_the_token(emu: RingCentralEmulator) -> None:
    session = api(emu)
    place(session, emu, to=BUSY_TO)
    full = sync(session, emu, syncType="FSync", recordCount=10, view="Detailed").json()
    assert [r["to"]["phoneNumber"] for r in full["records"]] == [BUSY_TO]
    assert full["syncInfo"]["syncType"] == "FSync"
    first_token = full["syncInfo"]["syncToken"]
    place(session, emu)
    step = sync(session, emu, syncType="ISync", syncToken=first_token, view="Detailed").json()
    assert [r["to"]["phoneNumber"] for r in step["records"]] == [TO]
    assert step["syncInfo"]["syncType"] == "ISync" and step["records"][0]["legs"]
    quiet = sync(session, emu, syncType="ISync", syncToken=step["syncInfo"]["syncToken"]).json()
    assert quiet["records"] == []
    place(session, emu, to=NO_ANSWER_TO)
    again = sync(session, emu, syncType="ISync", syncToken=first_token).json()
    assert [r["to"]["phoneNumber"] for r in again["records"]] == [NO_ANSWER_TO, TO]


def test_a_held_back_record_reaches_isync_once_written(emu: RingCentralEmulator) -> None:
    emu.call_log.delay = 3600
    session = api(emu)
    token = sync(session, emu, recordCount=1).json()["syncInfo"]["syncToken"]
    place(session, emu)
    assert sync(session, emu, syncType="ISync", syncToken=token).json()["records"] == []
    emu.call_log.delay = 0
    assert len(sync(session, emu, syncType="ISync", syncToken=token).json()["records"]) == 1


def test_isync_past_the_limit_answers_as_a_full_sync(emu: RingCentralEmulator) -> None:
    session = api(emu)
    token = sync(session, emu, recordCount=1).json()["syncInfo"]["syncToken"]
    for _ in range(ISYNC_LIMIT + 1):
        place(session, emu)
    body = sync(session, emu, syncType="ISync", syncToken=token).json()
    assert body["syncInfo"]["syncType"] == "FSync"
    assert len(body["records"]) == ISYNC_LIMIT


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"syncType": "FSync"}, "recordCount"),
        ({"syncType": "ISync"}, "syncToken"),
        ({"syncType": "ISync", "syncToken": "not-a-token"}, "syncToken"),
        ({"syncType": "Partial", "recordCount": "1"}, "syncType"),
    ],
)
def test_a_bad_sync_parameter_is_a_400_naming_it(
    emu: RingCentralEmulator, params: dict[str, str], parameter: str
) -> None:
    response = sync(api(emu), emu, **params)
    assert response.status_code == 400
    assert error_code(response) == ("CMN-101", parameter)


def test_a_token_from_before_a_reset_is_refused(emu: RingCentralEmulator) -> None:
    token = sync(api(emu), emu, recordCount=1).json()["syncInfo"]["syncToken"]
    emu.reset()
    response = sync(api(emu), emu, syncType="ISync", syncToken=token)
    assert response.status_code == 400 and error_code(response) == ("CMN-101", "syncToken")


# ------------------------------------------------------------------------------------------ lifecycle, control plane


def test_a_restart_keeps_the_log_and_a_reset_clears_it(emu: RingCentralEmulator) -> None:
    emu.call_log.delay = 3600
    place(api(emu), emu)
    emu.restart()  # forgets the RingOut session, not the call it was
    emu.call_log.delay = 0
    assert len(detailed(api(emu), emu)) == 1
    emu.reset()
    assert detailed(api(emu), emu) == []


def test_the_control_plane_lists_the_records(emu: RingCentralEmulator) -> None:
    place(api(emu), emu, to=BUSY_TO)
    (record,) = requests.get(f"{emu.url}/_emulator/call-log", timeout=TIMEOUT).json()
    assert record["result"] == "Busy" and record["legs"]
    assert emu.count(kind="call-log") == 0  # the control plane is not recorded


# ------------------------------------------------------------------------------------------ Heavy group, permission


def test_call_log_requests_spend_the_heavy_budget_shared_with_the_post() -> None:
    with RingCentralEmulator.with_real_limits(default_script=ended_at_once(), call_log_delay=0) as emu:
        session = api(emu)
        place(session, emu)  # Heavy 1 of 10
        listed = call_log(session, emu)
        synced = sync(session, emu, recordCount=5)
        assert listed.headers["X-Rate-Limit-Group"] == synced.headers["X-Rate-Limit-Group"] == "Heavy"
        assert (listed.headers["X-Rate-Limit-Remaining"], synced.headers["X-Rate-Limit-Remaining"]) == ("8", "7")
        for _ in range(7):
            assert call_log(session, emu).status_code == 200
        refused = session.post(
            f"{emu.url}{BASE}/ring-out",
            json={"from": {"phoneNumber": FROM}, "to": {"phoneNumber": TO}},
            timeout=TIMEOUT,
        )
        assert refused.status_code == 429  # the call log spent the slots the next call needed
        assert emu.count(kind="call-log") == 8 and emu.count(kind="call-log-sync") == 1
        assert {r.rate_group for r in emu.requests if r.kind in ("call-log", "call-log-sync")} == {"Heavy"}


def test_an_app_without_read_call_log_gets_403_naming_it() -> None:
    with RingCentralEmulator(scope="ReadAccounts RingOut", default_script=ended_at_once(), call_log_delay=0) as emu:
        session = api(emu)
        place(session, emu)  # RingOut is granted
        for response in (call_log(session, emu), sync(session, emu, recordCount=1)):
            assert response.status_code == 403
            body = response.json()
            assert body["errorCode"] == "InsufficientPermissions"
            assert body["errors"][0]["errorCode"] == "CMN-401"
            assert "[ReadCallLog]" in body["errors"][0]["message"]


def test_read_call_log_alone_does_not_place_calls() -> None:
    with RingCentralEmulator(scope="ReadAccounts ReadCallLog", call_log_delay=0) as emu:
        session = api(emu)
        assert call_log(session, emu).status_code == 200
        refused = session.post(
            f"{emu.url}{BASE}/ring-out",
            json={"from": {"phoneNumber": FROM}, "to": {"phoneNumber": TO}},
            timeout=TIMEOUT,
        )
        assert refused.status_code == 403 and "[RingOut]" in refused.json()["message"]


def test_only_get_reaches_the_call_log(emu: RingCentralEmulator) -> None:
    response = api(emu).delete(f"{emu.url}{BASE}/call-log", timeout=TIMEOUT)
    assert response.status_code == 404
    assert emu.count(kind="call-log") == 0

"""The RingCentral emulator, exercised over real HTTP with ``requests`` (no mocks)."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_ringout.testing import (
    TEST_CLIENT_ID,
    TEST_CLIENT_SECRET,
    TEST_JWT,
    CallScript,
    Outcome,
    RingCentralEmulator,
)
from airflow_provider_ringout.testing.emulator import scripted_status
from tests.emulator_api import JWT_GRANT, api, get_token

if TYPE_CHECKING:
    from collections.abc import Iterator

RING_OUT = "/restapi/v1.0/account/~/extension/~/ring-out"
FROM = "+14155550100"
TO = "+14155550123"
TIMEOUT = 5


@pytest.fixture
def emu() -> Iterator[RingCentralEmulator]:
    """A plain emulator with a short default timeline."""
    with RingCentralEmulator(default_script=CallScript(after=0.4, talk=0.6, linger=0.6)) as emulator:
        yield emulator


def place(session: requests.Session, emulator: RingCentralEmulator, to: str = TO, **body: Any) -> requests.Response:
    """POST a RingOut."""
    payload = {"from": {"phoneNumber": FROM}, "to": {"phoneNumber": to}, **body}
    return session.post(f"{emulator.url}{RING_OUT}", json=payload, timeout=TIMEOUT)


def status(session: requests.Session, emulator: RingCentralEmulator, ringout_id: str) -> requests.Response:
    """GET a RingOut status."""
    return session.get(f"{emulator.url}{RING_OUT}/{ringout_id}", timeout=TIMEOUT)


def statuses(response: requests.Response) -> tuple[str, str, str]:
    """The three status fields of a 200 answer."""
    body = response.json()["status"]
    return body["callStatus"], body["callerStatus"], body["calleeStatus"]


def sleep_until(start: float, offset: float) -> None:
    """Sleep until ``offset`` seconds after ``start`` (monotonic)."""
    time.sleep(max(0.0, start + offset - time.monotonic()))


def error_codes(response: requests.Response) -> list[str]:
    """The errorCode of every entry in ``errors``."""
    return [e["errorCode"] for e in response.json()["errors"]]


# ------------------------------------------------------------------------------------------------ public API


def test_test_jwt_is_three_base64url_segments() -> None:
    header, payload, signature = TEST_JWT.split(".")

    def pad(segment: str) -> str:
        return segment + "=" * (-len(segment) % 4)

    assert json.loads(base64.urlsafe_b64decode(pad(header))) == {"alg": "RS256", "typ": "JWT"}
    claims = json.loads(base64.urlsafe_b64decode(pad(payload)))
    assert {"iss", "sub", "aud", "exp"} <= claims.keys()
    assert claims["exp"] > time.time() + 10 * 365 * 86400
    assert signature
    assert "=" not in TEST_JWT


def test_connection_json_overrides_top_level_and_merges_extra(emu: RingCentralEmulator) -> None:
    conn = json.loads(emu.connection_json())
    assert conn == {
        "conn_type": "ringcentral",
        "host": emu.url,
        "login": TEST_CLIENT_ID,
        "password": TEST_CLIENT_SECRET,
        "extra": {"jwt_token": TEST_JWT},
    }
    changed = json.loads(emu.connection_json(password="wrong", extra={"from_number": FROM}))
    assert changed["password"] == "wrong"
    assert changed["extra"] == {"jwt_token": TEST_JWT, "from_number": FROM}


def test_scripted_timeline_is_exact_at_the_boundaries() -> None:
    script = CallScript(Outcome.ANSWERED, after=1.0, talk=2.0, linger=1.0)
    assert scripted_status(script, 0.49) == ("InProgress", "InProgress", "InProgress")
    assert scripted_status(script, 0.5) == ("InProgress", "Success", "InProgress")
    assert scripted_status(script, 1.0) == ("Success", "Success", "Success")
    assert scripted_status(script, 3.0) == ("Finished", "Finished", "Finished")
    assert scripted_status(script, 4.0) is None
    assert scripted_status(CallScript(Outcome.NO_ANSWER, after=1, linger=1), 1.5) == (
        "NoAnswer",
        "NoAnswer",
        "InProgress",
    )
    assert scripted_status(CallScript(Outcome.REJECTED, after=1, linger=1), 1.5) == (
        "CannotReach",
        "Rejected",
        "InProgress",
    )
    assert scripted_status(CallScript(Outcome.NEVER_ANSWERS), 1e9) == ("InProgress", "InProgress", "InProgress")
    assert scripted_status(CallScript(Outcome.FIRST_LEG_UP, after=1), 1e9) == ("InProgress", "Success", "InProgress")
    assert scripted_status(CallScript(Outcome.SESSION_DISAPPEARS, after=1), 0.99) == ("InProgress",) * 3
    assert scripted_status(CallScript(Outcome.SESSION_DISAPPEARS, after=1), 1.0) is None
    # Scripted by reads, the clock no longer ends it.
    assert scripted_status(CallScript(Outcome.SESSION_DISAPPEARS, vanish_after_reads=2), 1e9) == ("InProgress",) * 3
    with pytest.raises(ValueError, match="after"):
        CallScript(after=-1)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="vanish_after_reads"):
            CallScript(vanish_after_reads=bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------- OAuth


def test_token_grant_returns_token_info(emu: RingCentralEmulator) -> None:
    response = get_token(emu)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert "RingOut" in body["scope"].split()
    assert body["owner_id"] == "256440016"
    assert {"access_token", "refresh_token", "refresh_token_expires_in", "endpoint_id", "session_id"} <= body.keys()
    assert emu.issued_tokens == [body["access_token"], body["refresh_token"]]
    recorded = emu.requests[-1]
    assert (recorded.kind, recorded.status, recorded.rate_group) == ("token", 200, "Auth")
    assert recorded.form is not None
    assert recorded.form["grant_type"] == JWT_GRANT


def test_token_without_or_with_wrong_client_auth_is_invalid_client(emu: RingCentralEmulator) -> None:
    data = {"grant_type": JWT_GRANT, "assertion": TEST_JWT}
    missing = requests.post(f"{emu.url}/restapi/oauth/token", data=data, timeout=TIMEOUT)
    assert missing.status_code == 401
    assert missing.json()["error"] == "invalid_client"
    assert error_codes(missing) == ["OAU-123"]
    wrong = requests.post(f"{emu.url}/restapi/oauth/token", data=data, auth=(TEST_CLIENT_ID, "nope"), timeout=TIMEOUT)
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert emu.issued_tokens == []


def test_token_with_bad_or_rejected_jwt_is_invalid_grant(emu: RingCentralEmulator) -> None:
    bad = get_token(emu, assertion="a.b.c")
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_grant"
    assert error_codes(bad) == ["OAU-140"]
    emu.reject_jwt()
    rejected = get_token(emu)
    assert rejected.status_code == 400
    assert error_codes(rejected) == ["OAU-140"]
    emu.reject_jwt(False)
    assert get_token(emu).status_code == 200


def test_wrong_grant_type_is_unsupported(emu: RingCentralEmulator) -> None:
    response = get_token(emu, grant_type="password")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert error_codes(response) == ["OAU-250"]


def test_refresh_rotates_the_pair_and_kills_the_old_access_token(emu: RingCentralEmulator) -> None:
    first = get_token(emu).json()
    refreshed = get_token(emu, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert refreshed.status_code == 200
    second = refreshed.json()
    assert second["session_id"] == first["session_id"]
    assert status(api(emu, first["access_token"]), emu, "1").status_code == 401
    assert status(api(emu, second["access_token"]), emu, "1").status_code == 404
    reused = get_token(emu, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"


def test_api_calls_need_a_live_token(emu: RingCentralEmulator) -> None:
    anonymous = requests.get(f"{emu.url}{RING_OUT}/1", timeout=TIMEOUT)
    assert anonymous.status_code == 401
    assert anonymous.json()["errorCode"] == "TokenInvalid"
    assert error_codes(anonymous) == ["OAU-213"]
    assert status(api(emu, "made-up"), emu, "1").status_code == 401
    token = get_token(emu).json()["access_token"]
    revoke = requests.post(
        f"{emu.url}/restapi/oauth/revoke",
        data={"token": token},
        auth=(TEST_CLIENT_ID, TEST_CLIENT_SECRET),
        timeout=TIMEOUT,
    )
    assert revoke.status_code == 200
    assert revoke.content == b""
    revoked = status(api(emu, token), emu, "1")
    assert revoked.status_code == 401
    assert error_codes(revoked) == ["OAU-213"]
    other = get_token(emu).json()["access_token"]
    emu.revoke_all_tokens()
    assert error_codes(status(api(emu, other), emu, "1")) == ["OAU-213"]


def test_expired_token_is_oau_128() -> None:
    with RingCentralEmulator(token_ttl=0.3) as emulator:
        session = api(emulator)
        assert status(session, emulator, "1").status_code == 404
        time.sleep(0.35)
        expired = status(session, emulator, "1")
        assert expired.status_code == 401
        assert error_codes(expired) == ["OAU-128"]


def test_missing_ringout_permission_is_403() -> None:
    with RingCentralEmulator(scope="ReadAccounts") as emulator:
        response = place(api(emulator), emulator)
        assert response.status_code == 403
        assert response.json()["errorCode"] == "InsufficientPermissions"
        assert error_codes(response) == ["CMN-401"]
        assert emulator.sessions == {}


def test_session_cap_evicts_the_oldest_login() -> None:
    with RingCentralEmulator(max_sessions=2) as emulator:
        tokens = [get_token(emulator).json()["access_token"] for _ in range(3)]
        oldest = status(api(emulator, tokens[0]), emulator, "1")
        assert oldest.status_code == 401
        assert error_codes(oldest) == ["OAU-213"]
        assert [status(api(emulator, t), emulator, "1").status_code for t in tokens[1:]] == [404, 404]


# ------------------------------------------------------------------------------------------------- RingOut


def test_create_validates_numbers(emu: RingCentralEmulator) -> None:
    session = api(emu)
    bad_to = place(session, emu, to="4155550123")
    assert bad_to.status_code == 400
    assert bad_to.json()["errors"] == [
        {
            "errorCode": "CMN-101",
            "message": "Parameter [to.phoneNumber] value is invalid",
            "parameterName": "to.phoneNumber",
        }
    ]
    no_from = session.post(f"{emu.url}{RING_OUT}", json={"to": {"phoneNumber": TO}}, timeout=TIMEOUT)
    assert no_from.status_code == 400
    assert no_from.json()["errors"][0]["parameterName"] == "from.phoneNumber"
    to_list = session.post(
        f"{emu.url}{RING_OUT}", json={"from": {"phoneNumber": FROM}, "to": [{"phoneNumber": TO}]}, timeout=TIMEOUT
    )
    assert to_list.status_code == 400
    assert emu.sessions == {}


def test_create_answers_a_status_body_with_string_id(emu: RingCentralEmulator) -> None:
    response = place(api(emu), emu)
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["id"], str)
    assert re.fullmatch(r"\d{9,12}", body["id"])
    assert body["uri"].startswith(emu.url)
    assert body["uri"].endswith(f"/ring-out/{body['id']}")
    assert statuses(response) == ("InProgress", "InProgress", "InProgress")
    numeric = api(emu).post(
        f"{emu.url}/restapi/v1.0/account/37439510/extension/256440016/ring-out",
        json={"from": {"phoneNumber": FROM}, "to": {"phoneNumber": TO}},
        timeout=TIMEOUT,
    )
    assert numeric.status_code == 200
    assert emu.count("POST", "ring-out-create") == 2
    assert emu.count(kind="ring-out") == 2


def test_answered_timeline(emu: RingCentralEmulator) -> None:
    emu.script(TO, Outcome.ANSWERED, after=0.4, talk=0.6, linger=0.6)
    session = api(emu)
    start = time.monotonic()
    ringout_id = place(session, emu).json()["id"]
    # phases: <0.2 ringing, 0.2-0.4 first leg up, 0.4-1.0 connected, 1.0-1.6 finished, then gone
    sleep_until(start, 0.3)
    assert statuses(status(session, emu, ringout_id)) == ("InProgress", "Success", "InProgress")
    sleep_until(start, 0.7)
    assert statuses(status(session, emu, ringout_id)) == ("Success", "Success", "Success")
    sleep_until(start, 1.3)
    assert statuses(status(session, emu, ringout_id)) == ("Finished", "Finished", "Finished")
    sleep_until(start, 1.75)
    gone = status(session, emu, ringout_id)
    assert gone.status_code == 404
    assert error_codes(gone) == ["CMN-102"]


def test_busy_timeline(emu: RingCentralEmulator) -> None:
    emu.script(TO, "busy", after=0.2, linger=0.4)
    session = api(emu)
    start = time.monotonic()
    ringout_id = place(session, emu).json()["id"]
    assert statuses(status(session, emu, ringout_id)) == ("InProgress", "InProgress", "InProgress")
    sleep_until(start, 0.4)
    assert statuses(status(session, emu, ringout_id)) == ("CannotReach", "Success", "Busy")
    sleep_until(start, 0.7)
    assert status(session, emu, ringout_id).status_code == 404


def test_session_disappears(emu: RingCentralEmulator) -> None:
    emu.script(None, CallScript(Outcome.SESSION_DISAPPEARS, vanish_after_reads=1))
    session = api(emu)
    ringout_id = place(session, emu, to="+442071838750").json()["id"]
    assert emu.sessions[ringout_id].status is not None  # inspecting is not a read
    assert status(session, emu, ringout_id).status_code == 200
    assert status(session, emu, ringout_id).status_code == 404
    assert emu.sessions[ringout_id].status is None


def test_vanish_after_reads_counts_gets_only(emu: RingCentralEmulator) -> None:
    control = f"{emu.url}/_emulator/script"
    script = {"to_number": TO, "outcome": "answered", "after": 0, "vanish_after_reads": 2}
    assert requests.post(control, json=script, timeout=TIMEOUT).status_code == 200  # the control plane takes it too
    session = api(emu)
    ringout_id = place(session, emu).json()["id"]
    assert emu.session_status(ringout_id) is not None  # inspecting is not a read
    assert statuses(status(session, emu, ringout_id)) == ("Success", "Success", "Success")  # the timeline, read 1
    assert statuses(status(session, emu, ringout_id)) == ("Success", "Success", "Success")  # read 2
    assert status(session, emu, ringout_id).status_code == 404  # read 3: gone
    assert session.delete(f"{emu.url}{RING_OUT}/{ringout_id}", timeout=TIMEOUT).status_code == 404
    emu.script(TO, Outcome.BUSY, after=0, vanish_after_reads=0)
    assert status(session, emu, place(session, emu).json()["id"]).status_code == 404  # gone at the first read


def test_unknown_status_then_answered(emu: RingCentralEmulator) -> None:
    emu.script(TO, Outcome.UNKNOWN_STATUS, after=0.2)
    session = api(emu)
    start = time.monotonic()
    ringout_id = place(session, emu).json()["id"]
    assert status(session, emu, ringout_id).json()["status"]["callStatus"] == "SomethingNew2027"
    sleep_until(start, 0.3)
    assert statuses(status(session, emu, ringout_id)) == ("Success", "Success", "Success")


def test_delete_before_first_leg_stops_the_call(emu: RingCentralEmulator) -> None:
    emu.script(TO, Outcome.ANSWERED, after=2)
    session = api(emu)
    ringout_id = place(session, emu).json()["id"]
    deleted = session.delete(f"{emu.url}{RING_OUT}/{ringout_id}", timeout=TIMEOUT)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert status(session, emu, ringout_id).status_code == 404
    assert emu.sessions[ringout_id].cancelled
    again = session.delete(f"{emu.url}{RING_OUT}/{ringout_id}", timeout=TIMEOUT)
    assert again.status_code == 404


def test_delete_after_first_leg_up_changes_nothing(emu: RingCentralEmulator) -> None:
    emu.script(TO, Outcome.FIRST_LEG_UP, after=0.1)
    session = api(emu)
    ringout_id = place(session, emu).json()["id"]
    time.sleep(0.2)
    assert session.delete(f"{emu.url}{RING_OUT}/{ringout_id}", timeout=TIMEOUT).status_code == 204
    assert statuses(status(session, emu, ringout_id)) == ("InProgress", "Success", "InProgress")
    assert not emu.sessions[ringout_id].cancelled


def test_play_prompt_leaves_the_call_waiting_on_the_first_leg(emu: RingCentralEmulator) -> None:
    emu.script(TO, Outcome.ANSWERED, after=0.2, talk=0.1, linger=0.1)
    session = api(emu)
    ringout_id = place(session, emu, playPrompt=True).json()["id"]
    time.sleep(0.5)
    assert statuses(status(session, emu, ringout_id)) == ("InProgress", "Success", "InProgress")


def test_unknown_id_is_404(emu: RingCentralEmulator) -> None:
    session = api(emu)
    response = status(session, emu, "999999999")
    assert response.status_code == 404
    assert response.json()["errors"][0]["parameterName"] == "ringoutId"
    assert session.delete(f"{emu.url}{RING_OUT}/999999999", timeout=TIMEOUT).status_code == 404


def test_set_status_overrides_the_timeline(emu: RingCentralEmulator) -> None:
    session = api(emu)
    ringout_id = place(session, emu).json()["id"]
    emu.set_status(ringout_id, "NoSessionFound", "NosuchUser", "Unknown")
    assert statuses(status(session, emu, ringout_id)) == ("NoSessionFound", "NosuchUser", "Unknown")
    assert emu.session_status(ringout_id) == {
        "callStatus": "NoSessionFound",
        "callerStatus": "NosuchUser",
        "calleeStatus": "Unknown",
    }
    with pytest.raises(KeyError):
        emu.set_status("nope", "Success", "Success", "Success")


def test_keep_alive_http_1_1(emu: RingCentralEmulator) -> None:
    session = api(emu)
    for _ in range(3):
        response = place(session, emu)
        assert response.raw.version == 11
        assert int(response.headers["Content-Length"]) == len(response.content)
    assert len(emu.sessions) == 3


# ---------------------------------------------------------------------------------------------- rate limits


def test_rate_limit_penalty_restarts_on_every_request() -> None:
    limits = {"Heavy": 2, "Light": 50, "Auth": 5}
    with RingCentralEmulator(rate_limits=limits, rate_window=1) as emulator:
        session = api(emulator)
        first, second = place(session, emulator), place(session, emulator)
        assert [first.status_code, second.status_code] == [200, 200]
        assert first.headers["X-Rate-Limit-Group"] == "Heavy"
        assert first.headers["X-Rate-Limit-Limit"] == "2"
        assert [first.headers["X-Rate-Limit-Remaining"], second.headers["X-Rate-Limit-Remaining"]] == ["1", "0"]
        assert first.headers["X-Rate-Limit-Window"] == "1"
        start = time.monotonic()
        refused = place(session, emulator)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert error_codes(refused) == ["CMN-301"]
        assert len(emulator.sessions) == 2
        # Light is a separate budget, and auth errors carry the headers too.
        light = status(session, emulator, first.json()["id"])
        assert light.status_code == 200
        assert light.headers["X-Rate-Limit-Group"] == "Light"
        assert status(api(emulator, "bad"), emulator, "1").headers["X-Rate-Limit-Group"] == "Light"
        sleep_until(start, 0.6)
        assert place(session, emulator).status_code == 429  # restarts the penalty: now until ~1.6
        sleep_until(start, 1.2)
        assert place(session, emulator).status_code == 429  # the first penalty alone would be over
        sleep_until(start, 2.35)
        assert place(session, emulator).status_code == 200
        assert emulator.count("POST", "ring-out-create", status=429) == 3
        assert len(emulator.sessions) == 3


def test_no_rate_headers_when_rate_limiting_is_off(emu: RingCentralEmulator) -> None:
    response = place(api(emu), emu)
    assert "X-Rate-Limit-Group" not in response.headers
    assert emu.requests[-1].rate_group == "Heavy"


# --------------------------------------------------------------------------------------------------- faults


def test_fault_429_and_5xx_are_not_processed(emu: RingCentralEmulator) -> None:
    session = api(emu)
    emu.inject("429", path="ring-out-create", retry_after=7)
    emu.inject("429", path="ring-out-create", retry_after=None)
    emu.inject("503", path="ring-out-create")
    emu.inject("500", method="POST", path="ring-out")
    first = place(session, emu)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "7"
    second = place(session, emu)
    assert second.status_code == 429
    assert "Retry-After" not in second.headers
    unavailable = place(session, emu)
    assert unavailable.status_code == 503
    assert error_codes(unavailable) == ["CMN-201"]
    assert place(session, emu).status_code == 500
    assert emu.sessions == {}
    assert place(session, emu).status_code == 200
    assert [r.fault for r in emu.requests[-5:]] == ["429", "429", "503", "500", None]


def test_fault_reset_closes_without_processing(emu: RingCentralEmulator) -> None:
    session = api(emu)
    emu.inject("reset", path="ring-out-create")
    with pytest.raises(requests.ConnectionError):
        place(session, emu)
    assert emu.sessions == {}
    assert emu.requests[-1].status == 0
    assert place(session, emu).status_code == 200


def test_fault_drop_after_processing_places_the_call(emu: RingCentralEmulator) -> None:
    session = api(emu)
    emu.inject("drop_after_processing", method="POST", path="ring-out-create")
    with pytest.raises(requests.ConnectionError):
        place(session, emu)
    assert len(emu.sessions) == 1
    assert emu.requests[-1].status == 200
    assert emu.requests[-1].fault == "drop_after_processing"


def test_fault_slow_delays_the_answer(emu: RingCentralEmulator) -> None:
    session = api(emu)
    ringout_id = place(session, emu).json()["id"]
    emu.inject("slow", path="ring-out-get", delay=0.3)
    start = time.monotonic()
    assert status(session, emu, ringout_id).status_code == 200
    assert time.monotonic() - start >= 0.3
    emu.inject("slow", path="ring-out-get", delay=0.5)
    with pytest.raises(requests.Timeout):
        session.get(f"{emu.url}{RING_OUT}/{ringout_id}", timeout=0.2)


def test_fault_malformed_json_and_html(emu: RingCentralEmulator) -> None:
    session = api(emu)
    emu.inject("malformed_json", path="ring-out-create")
    malformed = place(session, emu)
    assert malformed.status_code == 200
    assert malformed.headers["Content-Type"] == "application/json"
    with pytest.raises(requests.JSONDecodeError):
        malformed.json()
    assert emu.sessions == {}
    emu.inject("html", path="any")
    html = status(session, emu, "1")
    assert html.status_code == 502
    assert html.headers["Content-Type"] == "text/html"
    assert "502 Bad Gateway" in html.text


def test_fault_401_with_error_code_and_times(emu: RingCentralEmulator) -> None:
    session = api(emu)
    ringout_id = place(session, emu).json()["id"]
    emu.inject("401", method="GET", path="ring-out-status", times=2, error_code="OAU-128")
    assert [error_codes(status(session, emu, ringout_id)) for _ in range(2)] == [["OAU-128"], ["OAU-128"]]
    assert status(session, emu, ringout_id).status_code == 200


def test_fault_matches_method_and_kind_only(emu: RingCentralEmulator) -> None:
    session = api(emu)
    emu.inject("503", method="DELETE", path="ring-out-status")
    emu.inject("503", path="token")
    ringout_id = place(session, emu).json()["id"]
    assert status(session, emu, ringout_id).status_code == 200
    assert session.delete(f"{emu.url}{RING_OUT}/{ringout_id}", timeout=TIMEOUT).status_code == 503
    assert get_token(emu).status_code == 503
    assert get_token(emu).status_code == 200
    with pytest.raises(ValueError, match="method"):
        emu.inject("503", method="GET", path="ring-out-create")
    with pytest.raises(ValueError, match="unknown fault"):
        emu.inject("teapot")


# -------------------------------------------------------------------------------------------- control plane


def test_control_plane_drives_the_emulator(emu: RingCentralEmulator) -> None:
    control = f"{emu.url}/_emulator"
    assert requests.get(f"{control}/health", timeout=TIMEOUT).json() == {"ok": True, "url": emu.url}
    script = {"to_number": TO, "outcome": "busy", "after": 0, "linger": 5}
    assert requests.post(f"{control}/script", json=script, timeout=TIMEOUT).status_code == 200
    session = api(emu)
    assert statuses(place(session, emu)) == ("CannotReach", "Success", "Busy")
    fault = {"fault": "503", "path": "ring-out-create", "times": 1}
    assert requests.post(f"{control}/faults", json=fault, timeout=TIMEOUT).status_code == 200
    assert place(session, emu).status_code == 503
    bad = requests.post(f"{control}/faults", json={"fault": "teapot"}, timeout=TIMEOUT)
    assert bad.status_code == 400

    recorded = requests.get(f"{control}/requests", timeout=TIMEOUT).json()
    assert [(r["method"], r["kind"], r["status"]) for r in recorded] == [
        ("POST", "token", 200),
        ("POST", "ring-out-create", 200),
        ("POST", "ring-out-create", 503),
    ]
    assert recorded[1]["json"]["to"] == {"phoneNumber": TO}
    assert recorded[1]["rate_group"] == "Heavy"
    assert isinstance(recorded[1]["time"], float)
    tokens = requests.get(f"{control}/tokens", timeout=TIMEOUT).json()
    assert tokens == emu.issued_tokens
    assert len(tokens) == 2
    sessions = requests.get(f"{control}/sessions", timeout=TIMEOUT).json()
    (ringout_id,) = sessions
    assert sessions[ringout_id]["outcome"] == "busy"

    override = {"id": ringout_id, "callStatus": "Success", "callerStatus": "Success", "calleeStatus": "Success"}
    assert requests.post(f"{control}/status", json=override, timeout=TIMEOUT).status_code == 200
    assert statuses(status(session, emu, ringout_id)) == ("Success", "Success", "Success")

    assert requests.post(f"{control}/revoke-tokens", timeout=TIMEOUT).status_code == 200
    assert status(session, emu, ringout_id).status_code == 401
    assert requests.post(f"{control}/reject-jwt", json={"rejected": True}, timeout=TIMEOUT).status_code == 200
    assert get_token(emu).status_code == 400
    assert requests.post(f"{control}/reject-jwt", json={"rejected": False}, timeout=TIMEOUT).status_code == 200

    session = api(emu)
    assert requests.post(f"{control}/restart", timeout=TIMEOUT).status_code == 200
    assert status(session, emu, ringout_id).status_code == 401  # tokens forgotten
    session = api(emu)
    assert status(session, emu, ringout_id).status_code == 404  # sessions forgotten
    assert emu.count() > 0

    assert requests.post(f"{control}/reset", timeout=TIMEOUT).status_code == 200
    assert emu.count() == 0
    assert emu.requests == []
    assert emu.issued_tokens == []
    assert requests.get(f"{control}/requests", timeout=TIMEOUT).json() == []
    assert requests.get(f"{control}/nope", timeout=TIMEOUT).status_code == 404


def test_stop_frees_the_port_and_start_reuses_it() -> None:
    emulator = RingCentralEmulator().start()
    url = emulator.url
    session = api(emulator)
    start = time.monotonic()
    emulator.stop()
    assert time.monotonic() - start < 1
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/_emulator/health", timeout=TIMEOUT)
    with emulator:
        assert emulator.url == url
        assert status(session, emulator, "1").status_code == 404  # the token survived the outage


# ---------------------------------------------------------------------------------------- fixtures and CLI


def test_fixtures(ringcentral_conn_env: RingCentralEmulator, ringcentral_emulator: RingCentralEmulator) -> None:
    assert ringcentral_conn_env is ringcentral_emulator
    conn = json.loads(os.environ["AIRFLOW_CONN_RINGCENTRAL_DEFAULT"])
    assert conn["host"] == ringcentral_emulator.url
    assert get_token(ringcentral_emulator).status_code == 200


def test_cli_prints_its_url_and_stops_on_sigterm() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_ringout.testing", "--port", "0", "--outcome", "busy"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"RingCentral emulator listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        url = match.group(1)
        assert int(match.group(2)) > 0
        token = requests.post(
            f"{url}/restapi/oauth/token",
            data={"grant_type": JWT_GRANT, "assertion": TEST_JWT},
            auth=(TEST_CLIENT_ID, TEST_CLIENT_SECRET),
            timeout=TIMEOUT,
        ).json()["access_token"]
        created = requests.post(
            f"{url}{RING_OUT}",
            json={"from": {"phoneNumber": FROM}, "to": {"phoneNumber": TO}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )
        assert created.status_code == 200
        sessions = requests.get(f"{url}/_emulator/sessions", timeout=TIMEOUT).json()
        assert sessions[created.json()["id"]]["outcome"] == "busy"
        # one vocabulary with rc.sessions (SessionInfo): from_number/to_number, status None once gone
        assert sessions[created.json()["id"]]["to_number"] == TO
        assert "from" not in sessions[created.json()["id"]]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

"""RingCentralHook against the emulator over real HTTP: OAuth, token sharing, pacing, retries, errors, secrets."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import stat
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_ringout.exceptions import (
    RingCentralAPIError,
    RingCentralAuthError,
    RingCentralConfigError,
    RingCentralRateLimitError,
    RingOutUnconfirmedError,
)
from airflow_provider_ringout.hooks.ringcentral import (
    RingCentralHook,
    normalize_server_url,
    parse_connection,
    parse_error_body,
)
from airflow_provider_ringout.state.tokens import TokenCache
from airflow_provider_ringout.status import CancelOutcome, RingOutState
from airflow_provider_ringout.testing import TEST_CLIENT_SECRET, TEST_JWT, CallScript, Outcome, RingCentralEmulator

TO, FROM = "+14155550199", "+14155550100"


def use(monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator, **overrides: Any) -> RingCentralHook:
    monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", emulator.connection_json(**overrides))
    return RingCentralHook(backoff_factor=0.05)


@pytest.fixture
def emulator(ringcentral_emulator: RingCentralEmulator) -> RingCentralEmulator:
    return ringcentral_emulator


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator) -> RingCentralHook:
    return use(monkeypatch, emulator, extra={"from_number": FROM})


def api_requests(emulator: RingCentralEmulator) -> list[Any]:
    return [r for r in emulator.requests if r.kind.startswith("ring-out")]


# --- place, read, cancel -------------------------------------------------------------------------------------


def test_place_read_cancel(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    emulator.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    body = hook.place_ringout(to_number=TO, caller_id="+14155550111", country_id=1)
    assert isinstance(body["id"], str) and body["id"]
    post = [r for r in emulator.requests if r.kind == "ring-out-create"]
    assert len(post) == 1
    assert post[0].json == {
        "from": {"phoneNumber": FROM},
        "to": {"phoneNumber": TO},
        "playPrompt": False,
        "callerId": {"phoneNumber": "+14155550111"},
        "country": {"id": "1"},
    }
    assert post[0].headers["User-Agent"].startswith("airflow-provider-ringout/")
    assert hook.get_ringout(body["id"])["status"]["callStatus"] == "InProgress"
    assert hook.get_status(body["id"]).state is RingOutState.PENDING
    assert hook.cancel_ringout(body["id"]) is True
    assert hook.get_status(body["id"]).state is RingOutState.GONE
    assert hook.cancel_ringout(body["id"]) is False  # already gone: 404 is "nothing to cancel"
    with pytest.raises(RingCentralAPIError) as err:
        hook.get_ringout(body["id"])
    assert err.value.status_code == 404


def test_answered_call_reads_connected(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    deadline = time.monotonic() + 5
    while hook.get_status(ringout_id).state is RingOutState.PENDING and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hook.get_status(ringout_id).state is RingOutState.CONNECTED


def test_cancel_and_confirm_tells_whether_the_call_stopped(
    hook: RingCentralHook, emulator: RingCentralEmulator
) -> None:
    emulator.script("+14155550001", CallScript(outcome=Outcome.NEVER_ANSWERS))
    emulator.script("+14155550002", CallScript(outcome=Outcome.FIRST_LEG_UP, after=0.1))
    stoppable = hook.place_ringout(to_number="+14155550001")["id"]
    assert hook.cancel_and_confirm(stoppable) is CancelOutcome.STOPPED
    assert hook.cancel_and_confirm(stoppable) is CancelOutcome.NOTHING_TO_STOP
    leg_up = hook.place_ringout(to_number="+14155550002")["id"]
    time.sleep(0.3)
    assert hook.cancel_and_confirm(leg_up) is CancelOutcome.FIRST_LEG_UP
    assert hook.get_status(leg_up).state is RingOutState.PENDING  # the DELETE did not stop it


def test_from_number_falls_back_to_connection_and_is_required(
    monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator
) -> None:
    hook = use(monkeypatch, emulator)  # no from_number in the connection
    with pytest.raises(RingCentralConfigError, match="from_number"):
        hook.place_ringout(to_number=TO)
    assert emulator.requests == []
    assert hook.place_ringout(to_number=TO, from_number=FROM)["id"]


# --- bad input: refused before any request --------------------------------------------------------------------

BAD_NUMBERS = [
    "",
    None,
    "hello",
    "+1 415 555 0199",
    "+1-415-555-0199",
    "4155550199",
    "+0415555",
    "+1234567890123456",
    ["+14155550199"],
    "{{ params.to }}",
    "+1",
]


@pytest.mark.parametrize("number", BAD_NUMBERS)
def test_bad_to_number_sends_nothing(hook: RingCentralHook, emulator: RingCentralEmulator, number: Any) -> None:
    with pytest.raises(RingCentralConfigError, match="to_number") as err:
        hook.place_ringout(to_number=number)
    assert "+14155550100" in str(err.value)  # shows the expected form
    assert emulator.requests == []


@pytest.mark.parametrize("field", ["from_number", "caller_id"])
def test_bad_other_numbers_send_nothing(hook: RingCentralHook, emulator: RingCentralEmulator, field: str) -> None:
    with pytest.raises(RingCentralConfigError, match=field):
        hook.place_ringout(to_number=TO, **{field: "555-0100"})
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("host", "fragment"),
    [
        ("http://platform.ringcentral.com", "clear text"),
        ("http://10.0.0.5:8080", "clear text"),
        ("https://platform.ringcentral.com/restapi", "without path"),
        ("https://platform.ringcentral.com/?x=1", "without path"),
        ("ftp://platform.ringcentral.com", "not supported"),
        ("https://user:pw@platform.ringcentral.com", "login/password"),
    ],
)
def test_bad_server_urls_are_refused(host: str, fragment: str) -> None:
    with pytest.raises(RingCentralConfigError, match="Server URL") as err:
        normalize_server_url(host)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (None, None, "https://platform.ringcentral.com"),
        ("", None, "https://platform.ringcentral.com"),
        ("platform.ringcentral.biz", None, "https://platform.ringcentral.biz"),
        ("http://127.0.0.1:8080", None, "http://127.0.0.1:8080"),
        ("http://localhost", 9000, "http://localhost:9000"),
        ("http://[::1]:8080/", None, "http://[::1]:8080"),
        # The scheme's default port (typed in the form's Port field for the Test button) is left out.
        ("platform.ringcentral.com", 443, "https://platform.ringcentral.com"),
        ("https://platform.ringcentral.com:443", None, "https://platform.ringcentral.com"),
        ("https://platform.ringcentral.biz", 8443, "https://platform.ringcentral.biz:8443"),
    ],
)
def test_server_urls_are_normalised(host: str | None, port: int | None, expected: str) -> None:
    assert normalize_server_url(host, port) == expected


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"login": ""}, "Client ID"),
        ({"password": ""}, "Client secret"),
        ({"extra": {"jwt_token": ""}}, "'jwt_token' is empty"),
        ({"extra": {"jwt_token": "my-jwt-credential"}}, "not a JWT"),
        ({"host": "http://example.com"}, "clear text"),
        ({"extra": {"from_number": "0800 123"}}, "from_number"),
    ],
)
def test_bad_connections_fail_before_any_request(
    monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator, overrides: dict[str, Any], fragment: str
) -> None:
    hook = use(monkeypatch, emulator, **overrides)
    with pytest.raises(RingCentralConfigError, match="Connection 'ringcentral_default'") as err:
        hook.place_ringout(to_number=TO, from_number=FROM)
    assert fragment in str(err.value)
    ok, message = RingCentralHook().test_connection()
    assert ok is False and fragment in message
    assert emulator.requests == []


@pytest.mark.parametrize(("extra", "fragment"), [("not json", "not valid JSON"), ('["a"]', "JSON object")])
def test_extra_must_be_a_json_object(extra: str, fragment: str) -> None:
    # Built directly: some Airflow versions already refuse such a connection when loading it.
    conn = SimpleNamespace(conn_id="rc", host="", port=None, login="id", password="secret", extra=extra)
    with pytest.raises(RingCentralConfigError, match=fragment):
        parse_connection(conn)


def test_connection_uri_form_with_encoded_http_host(
    monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator
) -> None:
    from urllib.parse import quote

    conn = json.loads(emulator.connection_json())
    uri = (
        f"ringcentral://{quote(conn['login'], safe='')}:{quote(conn['password'], safe='')}@"
        f"{quote(emulator.url, safe='')}/?jwt_token={quote(TEST_JWT, safe='')}&from_number={quote(FROM, safe='')}"
    )
    monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", uri)
    assert RingCentralHook().place_ringout(to_number=TO)["id"]


# --- OAuth: one login, shared, renewed ------------------------------------------------------------------------


def test_one_login_for_many_hooks_and_threads(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    hooks = [RingCentralHook() for _ in range(8)]
    threads = [threading.Thread(target=h.place_ringout, kwargs={"to_number": TO}) for h in hooks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert emulator.count(kind="token") == 1
    assert emulator.count(kind="ring-out-create") == 8
    token_request = next(r for r in emulator.requests if r.kind == "token")
    assert token_request.headers["Authorization"].startswith("Basic ")
    assert "client_secret" not in token_request.body.decode()  # client credentials go in the header


def _place_in_child(conn_json: str, cache_dir: str, barrier: Any) -> None:
    os.environ["AIRFLOW_CONN_RINGCENTRAL_DEFAULT"] = conn_json
    os.environ["AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR"] = cache_dir
    barrier.wait()
    RingCentralHook().place_ringout(to_number=TO)


def test_one_login_across_processes(emulator: RingCentralEmulator, isolated_token_cache: Path) -> None:
    ctx = multiprocessing.get_context("fork")  # a spawned child imports Airflow again: seconds each, on a busy machine
    barrier = ctx.Barrier(4)
    conn = emulator.connection_json(extra={"from_number": FROM})
    procs = [ctx.Process(target=_place_in_child, args=(conn, str(isolated_token_cache), barrier)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert emulator.count(kind="ring-out-create") == 4
    assert emulator.count(kind="token") == 1


def test_other_credentials_never_ride_on_a_token(
    monkeypatch: pytest.MonkeyPatch, ringcentral_emulator_factory: Any
) -> None:
    first = ringcentral_emulator_factory()
    use(monkeypatch, first, extra={"from_number": FROM}).place_ringout(to_number=TO)
    other_jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvdGhlciJ9.c2lnbmF0dXJl"
    second = ringcentral_emulator_factory(jwt=other_jwt)
    use(monkeypatch, second, extra={"from_number": FROM, "jwt_token": other_jwt}).place_ringout(to_number=TO)
    assert first.count(kind="token") == 1
    assert second.count(kind="token") == 1


def test_token_renewed_once_after_401(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.revoke_all_tokens()
    assert hook.get_status(ringout_id).state in (RingOutState.PENDING, RingOutState.CONNECTED)
    assert emulator.count(kind="token") == 2
    assert [r.status for r in emulator.requests if r.kind == "ring-out-get"] == [401, 200]


def test_token_renewed_ahead_of_expiry(monkeypatch: pytest.MonkeyPatch, ringcentral_emulator_factory: Any) -> None:
    emulator = ringcentral_emulator_factory(token_ttl=2)
    hook = use(monkeypatch, emulator, extra={"from_number": FROM})
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    time.sleep(1.7)  # past 4/5 of the lifetime: renewed before the server would refuse it
    hook.get_status(ringout_id)
    assert emulator.count(kind="token") == 2
    assert all(r.status != 401 for r in emulator.requests)


def test_revoked_jwt_fails_clearly(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.revoke_all_tokens()
    emulator.reject_jwt()
    with pytest.raises(RingCentralAuthError) as err:
        hook.get_status(ringout_id)
    assert "invalid_grant" in str(err.value)
    assert TEST_JWT not in str(err.value)


# --- rate limits, retries, faults --------------------------------------------------------------------------


def test_429_waits_retry_after_and_sends_nothing_meanwhile(
    hook: RingCentralHook, emulator: RingCentralEmulator
) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.inject("429", path="ring-out-get", retry_after=1)
    started = time.monotonic()
    hook.get_status(ringout_id)
    assert time.monotonic() - started >= 1.0
    gets = [r for r in emulator.requests if r.kind == "ring-out-get"]
    assert [r.status for r in gets] == [429, 200]
    assert gets[1].time - gets[0].time >= 1.0


def test_429_on_post_is_resent_once_after_the_wait(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    emulator.inject("429", path="ring-out-create", retry_after=1)
    hook.place_ringout(to_number=TO)
    assert [r.status for r in emulator.requests if r.kind == "ring-out-create"] == [429, 200]
    assert len(emulator.sessions) == 1


def test_429_wait_is_shared_by_other_hooks(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.inject("429", path="ring-out-get", retry_after=1)
    with pytest.raises(RingCentralRateLimitError):
        RingCentralHook(rate_limit_budget=0).get_status(ringout_id)
    started = time.monotonic()
    hook.get_status(ringout_id)  # a different hook must wait out the penalty before sending
    assert time.monotonic() - started >= 0.8
    assert [r.status for r in emulator.requests if r.kind == "ring-out-get"] == [429, 200]


def test_429_is_resent_past_max_attempts_within_the_budget(
    monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator
) -> None:
    """max_attempts bounds 5xx and connect failures only: a 429 (nothing processed) is resent, spread out."""
    use(monkeypatch, emulator)
    emulator.inject("429", path="ring-out-create", retry_after=0, times=2)
    RingCentralHook(max_attempts=1).place_ringout(to_number=TO, from_number=FROM)
    posts = [r for r in emulator.requests if r.kind == "ring-out-create"]
    assert [r.status for r in posts] == [429, 429, 200]
    assert len(emulator.sessions) == 1


def test_429_gives_up_when_the_budget_is_spent(monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator) -> None:
    use(monkeypatch, emulator)
    emulator.inject("429", path="ring-out-create", retry_after=0, times=50)
    started = time.monotonic()
    with pytest.raises(RingCentralRateLimitError, match="nothing was processed"):
        RingCentralHook(rate_limit_budget=2).place_ringout(to_number=TO, from_number=FROM)
    assert time.monotonic() - started <= 2.5  # never sleeps past the budget
    assert 2 <= emulator.count(kind="ring-out-create") < 50
    assert emulator.sessions == {}


def test_5xx_burst_on_get_is_retried(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.inject("503", path="ring-out-get", times=3)
    assert hook.get_status(ringout_id).state is not RingOutState.GONE
    assert [r.status for r in emulator.requests if r.kind == "ring-out-get"] == [503, 503, 503, 200]


def test_connection_reset_on_get_is_retried(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.inject("reset", path="ring-out-get")
    assert hook.get_status(ringout_id).state is not RingOutState.GONE
    assert emulator.count(kind="ring-out-get") == 2


def test_post_not_resent_after_timeout(monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator) -> None:
    hook = use(monkeypatch, emulator, extra={"from_number": FROM, "request_timeout": 0.5})
    emulator.inject("slow", path="ring-out-create", delay=1.5)
    with pytest.raises(RingOutUnconfirmedError, match="may have been placed"):
        hook.place_ringout(to_number=TO)
    time.sleep(1.2)
    assert emulator.count(kind="ring-out-create") == 1


def test_post_not_resent_after_dropped_answer(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    emulator.inject("drop_after_processing", path="ring-out-create")
    with pytest.raises(RingOutUnconfirmedError, match="may have been placed"):
        hook.place_ringout(to_number=TO)
    assert emulator.count(kind="ring-out-create") == 1
    assert len(emulator.sessions) == 1  # the call was placed once, and only once


def test_malformed_and_html_answers_raise_clear_errors(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.inject("malformed_json", path="ring-out-get")
    assert hook.get_status(ringout_id).state is not RingOutState.GONE  # read again: a garbled 200 is transient
    assert emulator.count(kind="ring-out-get") == 2
    emulator.inject("malformed_json", path="ring-out-get", times=2)
    with pytest.raises(RingCentralAPIError, match="not a RingOut status"):
        RingCentralHook(max_attempts=2, backoff_factor=0.01).get_status(ringout_id)
    emulator.inject("html", path="ring-out-get", times=5)
    with pytest.raises(RingCentralAPIError, match="non-RingCentral body"):
        RingCentralHook(max_attempts=1).get_status(ringout_id)


def test_missing_permission_is_explained(monkeypatch: pytest.MonkeyPatch, ringcentral_emulator_factory: Any) -> None:
    emulator = ringcentral_emulator_factory(scope="ReadAccounts")
    hook = use(monkeypatch, emulator, extra={"from_number": FROM})
    with pytest.raises(RingCentralAPIError, match="RingOut' permission") as err:
        hook.place_ringout(to_number=TO)
    assert err.value.status_code == 403 and err.value.has_code("CMN-401")


# --- test_connection ------------------------------------------------------------------------------------------


def test_test_connection_success_places_no_call(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    ok, message = hook.test_connection()
    assert ok is True, message
    assert "RingOut permission" in message
    assert api_requests(emulator) == []


@pytest.mark.parametrize(
    ("emulator_settings", "conn_overrides", "fragment"),
    [
        ({}, {"password": "wrong-secret"}, "client ID or client secret"),
        ({}, {"extra": {"jwt_token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}}, "rejected the JWT"),
        ({"scope": "ReadAccounts"}, {}, "lacks the 'RingOut' permission"),
    ],
)
def test_test_connection_explains_failures(
    monkeypatch: pytest.MonkeyPatch,
    ringcentral_emulator_factory: Any,
    emulator_settings: dict[str, Any],
    conn_overrides: dict[str, Any],
    fragment: str,
) -> None:
    emulator = ringcentral_emulator_factory(**emulator_settings)
    ok, message = use(monkeypatch, emulator, **conn_overrides).test_connection()
    assert ok is False
    assert fragment in message
    assert api_requests(emulator) == []


def test_test_connection_wrong_server(monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator) -> None:
    emulator.inject("html", path="token", times=10)
    ok, message = use(monkeypatch, emulator).test_connection()
    assert ok is False and "did not answer like RingCentral" in message
    monkeypatch.setenv(
        "AIRFLOW_CONN_RINGCENTRAL_DEFAULT", emulator.connection_json(host="http://127.0.0.1:9")
    )  # nothing listens there
    started = time.monotonic()
    ok, message = RingCentralHook().test_connection()  # the Test button answers at once: one attempt
    assert time.monotonic() - started < 3
    assert ok is False
    assert message.startswith("Could not reach http://127.0.0.1:9 ")
    assert message.count("could not reach") == 0  # said once


def test_test_connection_rate_limited(monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator) -> None:
    emulator.inject("429", path="token", retry_after=60)
    ok, message = use(monkeypatch, emulator).test_connection()
    assert ok is False and "rate limiting" in message
    assert emulator.count(kind="token") == 1  # does not hammer the Auth group


# --- secrets ---------------------------------------------------------------------------------------------------


def test_no_secret_in_logs_or_errors(
    hook: RingCentralHook, emulator: RingCentralEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = []
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    hook.get_status(ringout_id)
    emulator.revoke_all_tokens()
    emulator.reject_jwt()
    for call in (lambda: hook.get_status(ringout_id), lambda: hook.place_ringout(to_number=TO)):
        with pytest.raises(Exception) as err:  # noqa: PT011 (any error: its text is what is checked)
            call()
        texts.append(str(err.value))
        texts.append(repr(err.value))
    texts.append(caplog.text)
    texts.append(repr(hook.credentials))
    secrets = [TEST_CLIENT_SECRET, TEST_JWT, *emulator.issued_tokens]
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_token_cache_file_is_private_and_holds_no_credential(
    hook: RingCentralHook, emulator: RingCentralEmulator, isolated_token_cache: Path
) -> None:
    hook.place_ringout(to_number=TO)
    assert stat.S_IMODE(isolated_token_cache.stat().st_mode) == 0o700
    files = list(isolated_token_cache.glob("*.json"))
    assert files
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        text = file.read_text()
        assert TEST_JWT not in text and TEST_CLIENT_SECRET not in text
        for token in emulator.issued_tokens[1::2]:  # never a refresh token
            assert token not in text


@pytest.mark.parametrize("content", ["{not json", '{"key": "someone-else", "access_token": "x"}', "[]"])
def test_corrupt_or_foreign_cache_is_ignored(
    hook: RingCentralHook, emulator: RingCentralEmulator, isolated_token_cache: Path, content: str
) -> None:
    hook.place_ringout(to_number=TO)
    (token_file,) = isolated_token_cache.glob("token-*.json")
    token_file.write_text(content)
    TokenCache._memory.clear()
    RingCentralHook().place_ringout(to_number=TO)
    assert emulator.count(kind="token") == 2
    assert all(r.status == 200 for r in emulator.requests)


def test_cache_readable_by_others_is_not_trusted(
    hook: RingCentralHook, emulator: RingCentralEmulator, isolated_token_cache: Path
) -> None:
    hook.place_ringout(to_number=TO)
    (token_file,) = isolated_token_cache.glob("token-*.json")
    os.chmod(token_file, 0o644)
    TokenCache._memory.clear()
    RingCentralHook().place_ringout(to_number=TO)
    assert emulator.count(kind="token") == 2


# --- small pure pieces -----------------------------------------------------------------------------------------


def test_error_body_parsing() -> None:
    codes, message = parse_error_body(
        json.dumps(
            {
                "errorCode": "InsufficientPermissions",
                "message": "needs RingOut",
                "errors": [{"errorCode": "CMN-401", "message": "needs [RingOut]", "parameterName": "x"}],
            }
        )
    )
    assert codes == ["InsufficientPermissions", "CMN-401"]
    assert "needs [RingOut] (parameter x)" in message
    codes, message = parse_error_body('{"error": "invalid_grant", "error_description": "bad jwt"}')
    assert codes == ["invalid_grant"] and message == "bad jwt"
    assert parse_error_body("<html>502</html>", "text/html")[0] == []


def test_ui_field_behaviour_matches_provider_info() -> None:
    behaviour = RingCentralHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == ["schema"]  # the port is shown: the Test button of 3.3.1-3.3.2 needs it
    assert behaviour["relabeling"]["port"] == "Port (for the Test button)"
    assert "Test button" in behaviour["placeholders"]["port"] and "443" in behaviour["placeholders"]["port"]
    assert behaviour["relabeling"]["host"] == "Server URL"
    assert behaviour["placeholders"]["host"] == "https://platform.ringcentral.com"


@given(st.text(max_size=200), st.sampled_from(["application/json", "text/html", ""]))
def test_any_error_body_parses(text: str, content_type: str) -> None:
    codes, message = parse_error_body(text, content_type)
    assert isinstance(codes, list) and all(isinstance(c, str) for c in codes)
    assert isinstance(message, str) and message


@given(
    st.dictionaries(
        st.sampled_from(["errorCode", "message", "error", "error_description", "errors"]),
        st.one_of(
            st.text(max_size=10),
            st.integers(),
            st.none(),
            st.lists(st.dictionaries(st.text(max_size=12), st.text(max_size=8)), max_size=3),
        ),
    )
)
def test_any_json_error_body_parses(data: dict[str, Any]) -> None:
    codes, message = parse_error_body(json.dumps(data), "application/json")
    assert all(isinstance(c, str) for c in codes) and isinstance(message, str)


def test_429_on_token_and_delete_waits_and_succeeds(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    emulator.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    emulator.inject("429", path="token", retry_after=1)
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    assert [r.status for r in emulator.requests if r.kind == "token"] == [429, 200]
    emulator.inject("429", path="ring-out-delete", retry_after=1)
    assert hook.cancel_ringout(ringout_id) is True
    deletes = [r for r in emulator.requests if r.kind == "ring-out-delete"]
    assert [r.status for r in deletes] == [429, 204]
    assert deletes[1].time - deletes[0].time >= 1.0


def test_429_without_retry_after_blocks_the_group_for_30_seconds(
    monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator, isolated_token_cache: Path
) -> None:
    hook = use(monkeypatch, emulator, extra={"from_number": FROM})
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.inject("429", path="ring-out-get", retry_after=None)
    started = time.time()
    with pytest.raises(RingCentralRateLimitError):
        RingCentralHook(rate_limit_budget=0).get_status(ringout_id)
    (rate_file,) = isolated_token_cache.glob("rate-*.json")
    blocked_until = json.loads(rate_file.read_text())["Light"]["blocked_until"]
    assert 29 <= blocked_until - started <= 31  # host-wide: no process sends in this group meanwhile
    assert "Retry-After" not in next(r for r in emulator.requests if r.status == 429).headers


def test_get_slower_than_the_timeout_is_read_again(
    monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator
) -> None:
    hook = use(monkeypatch, emulator, extra={"from_number": FROM, "request_timeout": 0.5})
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.inject("slow", path="ring-out-get", delay=1.5)
    assert hook.get_status(ringout_id).state is not RingOutState.GONE
    time.sleep(1.2)  # the slow request is recorded when its handler finishes
    assert emulator.count(kind="ring-out-get") == 2


def test_unlimited_group_is_paced_without_rewriting_the_shared_file(
    hook: RingCentralHook, emulator: RingCentralEmulator, isolated_token_cache: Path
) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    hook.get_status(ringout_id)  # the first answer has no X-Rate-Limit-* headers: the group is marked unlimited
    (rate_file,) = isolated_token_cache.glob("rate-*.json")
    before = rate_file.stat().st_mtime_ns
    for _ in range(5):
        hook.get_status(ringout_id)
    assert rate_file.stat().st_mtime_ns == before
    assert json.loads(rate_file.read_text())["Light"]["unlimited"] is True


def test_learned_limit_paces_sends_host_wide(
    monkeypatch: pytest.MonkeyPatch, ringcentral_emulator_factory: Any
) -> None:
    emulator = ringcentral_emulator_factory(
        rate_limits={"Heavy": 3, "Light": 50, "Auth": 5, "Medium": 40}, rate_window=2
    )
    hook = use(monkeypatch, emulator, extra={"from_number": FROM})
    emulator.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    # A slow login before the first send: the pacer must time that send from when it left, not from before the login.
    emulator.inject("slow", path="token", delay=0.6)
    started = time.monotonic()
    for _ in range(5):
        RingCentralHook().place_ringout(to_number=TO)
    hook.place_ringout(to_number=TO)
    assert emulator.count(kind="ring-out-create", status=429) == 0  # paced from X-Rate-Limit-*: never refused
    assert emulator.count(kind="ring-out-create", status=200) == 6
    assert time.monotonic() - started >= 2.0  # six calls at three per 2 s window need a second window

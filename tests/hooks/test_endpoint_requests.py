"""
``RingCentralHook.request``/``arequest`` and the endpoint table's rules, against the emulator over real HTTP.

Any endpoint of the table goes through the pacer, the retries, the token handling and the error mapping of the
built-in calls; what may be resent, and what a 404 or a 403 means, comes from the endpoint's row.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout.exceptions import (
    RingCentralAPIError,
    RingCentralConfigError,
    RingCentralWaitEndedError,
    RingOutUnconfirmedError,
)
from airflow_provider_ringout.hooks._transport import within_wait
from airflow_provider_ringout.hooks.endpoints import Endpoint
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_ringout.testing import RingCentralEmulator

FROM, TO = "+14155550100", "+14155550199"
CALL_LOG_SCOPE = "ReadAccounts RingOut ReadCallLog"
LIMITS = {"Light": 50, "Medium": 40, "Heavy": 2, "Auth": 5}


def use(monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator) -> RingCentralHook:
    monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", emulator.connection_json(extra={"from_number": FROM}))
    return RingCentralHook(backoff_factor=0.05)


@pytest.fixture
def emulator(ringcentral_emulator: RingCentralEmulator) -> RingCentralEmulator:
    ringcentral_emulator.scope = CALL_LOG_SCOPE
    return ringcentral_emulator


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator) -> RingCentralHook:
    return use(monkeypatch, emulator)


def call(hook: RingCentralHook, mode: str) -> Callable[..., Any]:
    """``hook.request``, or ``hook.arequest`` run on a fresh event loop (as a trigger would)."""
    if mode == "sync":
        return hook.request
    return lambda *args, **kwargs: asyncio.run(hook.arequest(*args, **kwargs))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_request_reads_the_call_log(hook: RingCentralHook, emulator: RingCentralEmulator, mode: str) -> None:
    """The decoded JSON comes back; path, query, token and group are the row's."""
    page = call(hook, mode)("call-log", params={"view": "Detailed", "perPage": 20, "showDeleted": False})
    assert page["records"] == [] and page["paging"]["perPage"] == 20
    sync = call(hook, mode)(Endpoint.CALL_LOG_SYNC, params={"syncType": "FSync", "recordCount": 10})
    assert sync["syncInfo"]["syncType"] == "FSync" and sync["syncInfo"]["syncToken"]
    listed, synced = (r for r in emulator.requests if r.kind != "token")
    assert (listed.method, listed.path, listed.kind, listed.rate_group) == (
        "GET",
        "/restapi/v1.0/account/~/extension/~/call-log",
        "call-log",
        "Heavy",
    )
    assert listed.query == {"view": "Detailed", "perPage": "20", "showDeleted": "false"}
    assert listed.headers["Authorization"].startswith("Bearer ")
    assert (synced.kind, synced.rate_group) == ("call-log-sync", "Heavy")
    assert emulator.count(kind="token") == 1  # one login serves both


def test_request_spends_the_heavy_budget_shared_with_the_ringout_calls(
    monkeypatch: pytest.MonkeyPatch, ringcentral_emulator_factory: Any
) -> None:
    """
    Paced like the built-in calls: a call-log read spends the Heavy group the RingOut POST spends, so once the
    budget is gone a further Heavy request waits for the pacer instead of earning a 429 (get_conn() is unpaced).
    """
    emulator: RingCentralEmulator = ringcentral_emulator_factory(
        rate_limits=LIMITS, rate_window=600, scope=CALL_LOG_SCOPE
    )
    hook = use(monkeypatch, emulator)
    hook.place_ringout(to_number=TO)  # Heavy 1 of 2
    hook.request(Endpoint.CALL_LOG)  # Heavy 2 of 2: the answer says Remaining 0
    with within_wait(time.monotonic() + 1), pytest.raises(RingCentralWaitEndedError, match="Heavy rate limit"):
        hook.request(Endpoint.CALL_LOG)  # the pacer holds it back past the wait's end; nothing is sent
    with within_wait(time.monotonic() + 1), pytest.raises(RingCentralWaitEndedError, match="Heavy rate limit"):
        hook.place_ringout(to_number=TO)
    assert emulator.count(kind="call-log") == 1 and emulator.count(kind="ring-out-create") == 1
    assert emulator.count(status=429) == 0
    hook.get_status(next(iter(emulator.sessions)))  # the Light group is not held back
    # get_conn() skips the pacer: the same read goes out and RingCentral refuses it.
    unpaced = hook.get_conn().get(hook.credentials.server_url + Endpoint.CALL_LOG.path(), timeout=10)
    assert unpaced.status_code == 429 and emulator.count(kind="call-log", status=429) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_request_resends_a_429_after_retry_after(
    hook: RingCentralHook, emulator: RingCentralEmulator, mode: str
) -> None:
    """A 429 was not processed: the read is sent again once Retry-After has passed, and succeeds."""
    emulator.inject("429", path="call-log", retry_after=1)
    assert call(hook, mode)(Endpoint.CALL_LOG)["records"] == []
    refused, answered = (r for r in emulator.requests if r.kind == "call-log")
    assert (refused.status, answered.status) == (429, 200)
    assert answered.time - refused.time >= 1.0  # not before Retry-After


@pytest.mark.parametrize("fault", ["503", "drop_after_processing"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_possible_processing_is_not_resent_on_a_non_resendable_endpoint(
    hook: RingCentralHook, emulator: RingCentralEmulator, fault: str, mode: str
) -> None:
    """The ring-out POST's row says it may not be resent: a 503 or a lost answer is final and says why."""
    emulator.inject(fault, path=Endpoint.RING_OUT_CREATE)
    body = hook.build_ringout_request(to_number=TO)
    with pytest.raises(RingOutUnconfirmedError, match="the call may have been placed, so it is not sent again"):
        call(hook, mode)(Endpoint.RING_OUT_CREATE, json=body)
    (posted,) = [r for r in emulator.requests if r.kind == "ring-out-create"]
    assert posted.json == body and posted.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("fault", ["503", "reset"])
def test_a_resendable_endpoint_is_resent_after_a_5xx_or_a_reset(
    hook: RingCentralHook, emulator: RingCentralEmulator, fault: str
) -> None:
    """A call-log read may be repeated: a 503 or a reset connection is sent again and the read succeeds."""
    emulator.inject(fault, path=Endpoint.CALL_LOG)
    assert hook.request(Endpoint.CALL_LOG)["records"] == []
    assert emulator.count(kind="call-log") == 2


def test_a_403_names_the_rows_permission(monkeypatch: pytest.MonkeyPatch, ringcentral_emulator: Any) -> None:
    """An app without ReadCallLog: RingCentral's 403 CMN-401 says which permission to add."""
    ringcentral_emulator.scope = "ReadAccounts RingOut"  # an app created without ReadCallLog
    hook = use(monkeypatch, ringcentral_emulator)
    with pytest.raises(RingCentralAPIError, match="add the 'ReadCallLog' permission to the app") as caught:
        hook.request(Endpoint.CALL_LOG)
    assert caught.value.status_code == 403 and caught.value.has_code("CMN-401")
    assert ringcentral_emulator.count(kind="call-log") == 1  # a 403 is final


def test_a_404_means_what_the_row_says(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    """A RingOut session that is gone reads as None (its rows: gone); an unknown extension's call log is an error."""
    assert hook.request(Endpoint.RING_OUT_GET, path_params={"ringoutId": "123456789"}) is None
    assert hook.request(Endpoint.RING_OUT_DELETE, path_params={"ringoutId": "123456789"}) is None
    with pytest.raises(RingCentralAPIError, match="extensionId") as caught:
        hook.request(Endpoint.CALL_LOG, path_params={"extensionId": "404"})
    assert caught.value.status_code == 404 and caught.value.has_code("CMN-102")


@pytest.mark.parametrize(
    ("endpoint", "path_params", "match"),
    [
        ("no-such-endpoint", None, "unknown endpoint 'no-such-endpoint'"),
        ("token", None, "takes the app's client credentials"),
        (Endpoint.RING_OUT_GET, None, "missing: ringoutId"),
        (Endpoint.RING_OUT_GET, {"ringoutId": "../../call-log"}, "not a plain path segment: ringoutId"),
        (Endpoint.CALL_LOG, {"ringoutId": "1"}, "unknown: ringoutId"),
    ],
)
def test_a_bad_request_is_refused_before_anything_is_sent(
    hook: RingCentralHook, emulator: RingCentralEmulator, endpoint: Any, path_params: Any, match: str
) -> None:
    with pytest.raises(RingCentralConfigError, match=match):
        hook.request(endpoint, path_params=path_params)
    assert emulator.requests == []

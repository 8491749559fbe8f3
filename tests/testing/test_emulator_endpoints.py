"""The emulator's side of the endpoint table: routes, handlers, permissions and groups by row, and the call log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout.hooks.endpoints import Endpoint
from airflow_provider_ringout.testing import RingCentralEmulator
from airflow_provider_ringout.testing.emulator.routes import REQUEST_KINDS, route
from tests.emulator_api import api

if TYPE_CHECKING:
    from collections.abc import Iterator

CALL_LOG = "/restapi/v1.0/account/~/extension/~/call-log"
TIMEOUT = 5


@pytest.fixture
def emu() -> Iterator[RingCentralEmulator]:
    with RingCentralEmulator(scope="ReadAccounts RingOut ReadCallLog") as emulator:
        yield emulator


def test_every_row_is_routed_by_its_method_and_path_and_nothing_else() -> None:
    for endpoint in Endpoint:
        params = {"ringoutId": "123"} if "ringoutId" in endpoint.placeholders else {}
        path = endpoint.path(params)
        expected = {name: {"accountId": "~", "extensionId": "~", **params}[name] for name in endpoint.placeholders}
        assert route(endpoint.method, path) == (endpoint, expected)
        assert route("PUT", path) == (None, {})
    assert route("GET", "/restapi/v1.0/account/1/extension/2/ring-out/9")[1] == {
        "accountId": "1",
        "extensionId": "2",
        "ringoutId": "9",
    }
    assert route("GET", "/restapi/v1.0/account/~/extension/~/ring-out/9/x")[0] is None
    assert set(REQUEST_KINDS) == {e.value for e in Endpoint} | {"other"}


def test_a_row_without_a_handler_is_refused_at_construction() -> None:
    """One row each side: an endpoint the emulator cannot answer fails at once, naming it."""

    class Partial(RingCentralEmulator):
        def _endpoint_handlers(self) -> dict[Endpoint, Any]:
            handlers = super()._endpoint_handlers()
            del handlers[Endpoint.CALL_LOG_SYNC]
            return handlers

    with pytest.raises(NotImplementedError, match=r"no handler for endpoint\(s\) call-log-sync"):
        Partial()


def test_call_log_answers_an_empty_page_in_the_heavy_group(emu: RingCentralEmulator) -> None:
    emu.rate_limits = {"Heavy": 10, "Light": 50, "Auth": 5}
    answer = api(emu).get(f"{emu.url}{CALL_LOG}", params={"view": "Detailed", "perPage": "max"}, timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.json()["records"] == [] and answer.json()["paging"]["perPage"] == 1000
    assert answer.headers["X-Rate-Limit-Group"] == "Heavy" and answer.headers["X-Rate-Limit-Remaining"] == "9"
    (recorded,) = [r for r in emu.requests if r.kind == "call-log"]
    assert (recorded.rate_group, recorded.query) == ("Heavy", {"view": "Detailed", "perPage": "max"})
    assert emu.count(kind=Endpoint.CALL_LOG) == 1


@pytest.mark.parametrize(
    ("path", "query", "parameter"),
    [
        ("call-log", {"perPage": "0"}, "perPage"),
        ("call-log", {"page": "x"}, "page"),
        ("call-log", {"view": "Everything"}, "view"),
        ("call-log-sync", {"syncType": "Partial"}, "syncType"),
        ("call-log-sync", {"syncType": "ISync"}, "syncToken"),
    ],
)
def test_call_log_checks_its_query(emu: RingCentralEmulator, path: str, query: dict[str, str], parameter: str) -> None:
    answer = api(emu).get(f"{emu.url}/restapi/v1.0/account/~/extension/~/{path}", params=query, timeout=TIMEOUT)
    assert answer.status_code == 400
    assert answer.json()["errors"][0] == {
        "errorCode": "CMN-101",
        "message": f"Parameter [{parameter}] value is invalid",
        "parameterName": parameter,
    }


def test_call_log_sync_gives_a_token_for_the_next_sync(emu: RingCentralEmulator) -> None:
    session = api(emu)
    url = f"{emu.url}/restapi/v1.0/account/~/extension/~/call-log-sync"
    full = session.get(url, params={"syncType": "FSync", "recordCount": "50"}, timeout=TIMEOUT).json()
    assert full["records"] == [] and full["syncInfo"]["syncType"] == "FSync"
    token = full["syncInfo"]["syncToken"]
    incremental = session.get(url, params={"syncType": "ISync", "syncToken": token}, timeout=TIMEOUT).json()
    assert incremental["syncInfo"]["syncType"] == "ISync" and incremental["syncInfo"]["syncTime"].endswith("Z")


def test_each_row_needs_its_own_permission(emu: RingCentralEmulator) -> None:
    """The app's scope is checked against the row's permission: RingOut for the calls, ReadCallLog for the log."""
    emu.scope = "ReadAccounts RingOut"
    denied = api(emu).get(f"{emu.url}{CALL_LOG}", timeout=TIMEOUT)
    assert denied.status_code == 403 and denied.json()["errorCode"] == "InsufficientPermissions"
    assert "[ReadCallLog]" in denied.json()["message"]
    emu.scope = "ReadCallLog"
    ringout = api(emu).get(f"{emu.url}/restapi/v1.0/account/~/extension/~/ring-out/1", timeout=TIMEOUT)
    assert ringout.status_code == 403 and "[RingOut]" in ringout.json()["message"]
    assert api(emu).get(f"{emu.url}{CALL_LOG}", timeout=TIMEOUT).status_code == 200


def test_faults_match_the_new_rows_by_name(emu: RingCentralEmulator) -> None:
    emu.inject("503", path="call-log-sync")
    with pytest.raises(ValueError, match="no 'call-log' request uses method POST"):
        emu.inject("503", method="POST", path="call-log")
    session = api(emu)
    assert session.get(f"{emu.url}{CALL_LOG}", timeout=TIMEOUT).status_code == 200
    assert session.get(f"{emu.url}{CALL_LOG}-sync", timeout=TIMEOUT).status_code == 503

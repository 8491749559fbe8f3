"""Hostile or broken input and answers: ids, URLs, headers, bodies, state files, clocks and event loops."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from airflow_provider_ringout.exceptions import (
    RingCentralAPIError,
    RingCentralAuthError,
    RingCentralConfigError,
    RingCentralRateLimitError,
)
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook, normalize_server_url
from airflow_provider_ringout.state import pacer, tokens
from airflow_provider_ringout.status import RingOutState
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator

TO, FROM = "+14155550199", "+14155550100"


@pytest.fixture
def emulator(ringcentral_emulator: RingCentralEmulator) -> RingCentralEmulator:
    ringcentral_emulator.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    return ringcentral_emulator


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator) -> RingCentralHook:
    monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", emulator.connection_json(extra={"from_number": FROM}))
    return RingCentralHook(backoff_factor=0.05)


def _rate_file(cache: Path, hook: RingCentralHook) -> Path:
    return cache / f"rate-{hook.credentials.cache_key}.json"


def _write_private(path: Path, data: Any) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)


# --- 6: RingOut ids are plain path segments -------------------------------------------------------------------

BAD_IDS = [".", "..", "../..", "a/b", "/", "%2e%2e", "12 34", "12?x=1", "12#", "١٢٣", "1" * 65]


@pytest.mark.parametrize("ringout_id", BAD_IDS)
def test_ringout_ids_that_are_not_plain_segments_send_nothing(
    hook: RingCentralHook, emulator: RingCentralEmulator, ringout_id: str
) -> None:
    calls = [
        lambda: hook.get_ringout(ringout_id),
        lambda: hook.get_status(ringout_id),
        lambda: hook.cancel_ringout(ringout_id),
        lambda: hook.cancel_and_confirm(ringout_id),
        lambda: asyncio.run(hook.aget_status(ringout_id)),
        lambda: asyncio.run(hook.acancel_ringout(ringout_id)),
        lambda: asyncio.run(hook.acancel_and_confirm(ringout_id)),
    ]
    for call in calls:
        with pytest.raises(RingCentralConfigError, match="ringout_id"):
            call()
    assert emulator.requests == []


def test_numeric_ids_still_work(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    assert ringout_id.isdigit()
    assert hook.get_status(int(ringout_id)).state is RingOutState.PENDING  # type: ignore[arg-type]
    assert asyncio.run(hook.aget_status(ringout_id)).state is RingOutState.PENDING


# --- 9: a secret in the Server URL is never echoed ------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "https://:s3cr3t-pw@[::1",
        "https://:s3cr3t-pw@",
        "https://user:s3cr3t-pw@platform.ringcentral.com:99999",
        "https://:s3cr3t-pw@platform.ringcentral.com/path",
        ":s3cr3t-pw@platform.ringcentral.com",
        "ftp://:s3cr3t-pw@platform.ringcentral.com",
    ],
)
def test_secret_in_the_server_url_is_never_echoed(host: str) -> None:
    with pytest.raises(RingCentralConfigError, match="Server URL") as err:
        normalize_server_url(host)
    assert "s3cr3t-pw" not in str(err.value)


# --- 7: the pacer caps waits, parses defensively, ignores malformed state -------------------------------------


def test_huge_retry_after_is_capped(
    hook: RingCentralHook, emulator: RingCentralEmulator, isolated_token_cache: Path
) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.inject("429", path="ring-out-get", retry_after=86400)
    started = time.time()
    with pytest.raises(RingCentralRateLimitError):
        RingCentralHook(rate_limit_budget=0).get_status(ringout_id)
    blocked_until = json.loads(_rate_file(isolated_token_cache, hook).read_text())["Light"]["blocked_until"]
    assert blocked_until - started <= pacer.MAX_RATE_LIMIT_WAIT + 1  # five minutes, not a day


def test_unparseable_retry_after_means_the_default(
    hook: RingCentralHook, emulator: RingCentralEmulator, isolated_token_cache: Path
) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.inject("429", path="ring-out-get", retry_after="soon")
    started = time.time()
    with pytest.raises(RingCentralRateLimitError):
        RingCentralHook(rate_limit_budget=0).get_status(ringout_id)
    blocked_until = json.loads(_rate_file(isolated_token_cache, hook).read_text())["Light"]["blocked_until"]
    assert 29 <= blocked_until - started <= 31


@pytest.mark.parametrize(
    "state",
    [
        {"Light": [], "Heavy": "x", "Auth": 3},
        {"Light": {"blocked_until": "soon", "sent": "x", "limit": "3", "window": []}},
        {"Light": {"sent": [None, "a", {}], "limit": 2, "window": "NaN"}},
        {"Heavy": {"limit": True, "window": 0, "sent": [1e300]}, "Light": {"unlimited": "yes", "limit": -1}},
        {"Auth": {"blocked_until": 1e12}, "Heavy": {"blocked_until": float("1e308")}},
    ],
)
def test_malformed_rate_state_is_ignored(
    hook: RingCentralHook, emulator: RingCentralEmulator, isolated_token_cache: Path, state: dict[str, Any]
) -> None:
    _write_private(_rate_file(isolated_token_cache, hook), state)
    ok, message = RingCentralHook().test_connection()  # never waits on the Auth group: answers at once
    assert ok, message
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    assert hook.get_status(ringout_id).state is RingOutState.PENDING


def test_wall_clock_stepped_back_after_a_penalty(
    hook: RingCentralHook, emulator: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.inject("429", path="ring-out-get", retry_after=1)
    with pytest.raises(RingCentralRateLimitError):
        RingCentralHook(rate_limit_budget=0).get_status(ringout_id)
    real_time = time.time
    stepped = SimpleNamespace(**{name: getattr(time, name) for name in ("monotonic", "sleep")})
    stepped.time = lambda: real_time() - 120  # an NTP step back of two minutes
    monkeypatch.setattr(pacer, "time", stepped)
    monkeypatch.setattr(tokens, "time", stepped)
    done = threading.Event()

    def read() -> None:
        hook.get_status(ringout_id)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(8), "the 1 s penalty was stretched by the clock step"


# --- 8: one HTTP client per live event loop, none per dead one ------------------------------------------------


def test_event_loops_do_not_leak_http_clients(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]

    def alive() -> int:
        gc.collect()
        return sum(type(o) is httpx.AsyncClient for o in gc.get_objects())  # type() triggers no lazy import

    before_clients, before_fds = alive(), len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        assert asyncio.run(hook.aget_status(ringout_id)).state is RingOutState.PENDING
    assert alive() - before_clients <= 1
    assert len(os.listdir("/proc/self/fd")) - before_fds <= 3


def test_one_client_is_shared_within_a_loop(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]

    async def twice() -> bool:
        await hook.aget_status(ringout_id)
        first = await hook._async_client()
        await RingCentralHook().aget_status(ringout_id)
        return first is await hook._async_client() and not first.is_closed

    assert asyncio.run(twice())


# --- 10: token POST retried on 5xx; deep JSON; -----------------------------------------------------------------


def test_token_post_is_retried_on_500_and_502(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    emulator.inject("500", path="token")
    emulator.inject("html", path="token")  # a proxy's 502 page
    assert hook.place_ringout(to_number=TO)["id"]
    assert [r.status for r in emulator.requests if r.kind == "token"] == [500, 502, 200]
    assert emulator.count(kind="ring-out-create") == 1


def test_deeply_nested_json_gives_a_clear_error(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    emulator.inject("deep_json", path="token")
    with pytest.raises(RingCentralAuthError, match="not a JSON object"):
        hook.place_ringout(to_number=TO)
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.inject("deep_json", path="ring-out-get", times=5)
    with pytest.raises(RingCentralAPIError, match="not a RingOut status"):
        hook.get_ringout(ringout_id)
    emulator.inject("deep_json", path="ring-out-get", times=5)
    with pytest.raises(RingCentralAPIError, match="not a RingOut status"):
        asyncio.run(hook.aget_status(ringout_id))
    emulator.inject("deep_json", path="ring-out-delete", status=400)
    with pytest.raises(RingCentralAPIError) as err:
        hook.cancel_ringout(ringout_id)
    assert err.value.status_code == 400


@pytest.mark.parametrize("country_id", ["²", "\u0661", "1²", "01 ", True])
def test_country_id_is_ascii_digits(hook: RingCentralHook, emulator: RingCentralEmulator, country_id: Any) -> None:
    with pytest.raises(RingCentralConfigError, match="country_id"):
        hook.place_ringout(to_number=TO, country_id=country_id)
    assert emulator.requests == []


def test_intervals_must_be_positive_everywhere() -> None:
    from airflow_provider_ringout.notifications.ringout import RingOutNotifier
    from airflow_provider_ringout.operators.ringout import RingOutOperator
    from airflow_provider_ringout.sensors.ringout import RingOutSensor
    from airflow_provider_ringout.triggers.ringout import RingOutTrigger

    for bad in (0, 0.0):  # Airflow itself refuses a negative poke_interval
        with pytest.raises(RingCentralConfigError, match="poke_interval"):
            RingOutSensor(task_id="s", ringout_id="1", deferrable=True, poke_interval=bad)
    for bad in (0, -1, 0.0):
        with pytest.raises(RingCentralConfigError, match="poll_interval"):
            RingOutTrigger(ringout_id="1", end_time=time.time() + 60, poll_interval=bad)
        with pytest.raises(RingCentralConfigError, match="poll_interval"):
            RingOutOperator(task_id="o", to_number=TO, poll_interval=bad)
        with pytest.raises(RingCentralConfigError, match="poll_interval"):
            RingOutNotifier(to_numbers=[TO], poll_interval=bad)


# --- 12: no redirects followed, bounded bodies ------------------------------------------------------------------


def test_token_post_redirect_is_not_followed(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    emulator.inject("redirect", path="token", status=307, location="/elsewhere/token")
    with pytest.raises(RingCentralAuthError, match="redirect") as err:
        hook.place_ringout(to_number=TO)
    assert "Server URL" in str(err.value)
    assert [r.path for r in emulator.requests] == ["/restapi/oauth/token"]  # the JWT went nowhere else


@pytest.mark.parametrize("status", [307, 308])
def test_api_redirects_are_not_followed(hook: RingCentralHook, emulator: RingCentralEmulator, status: int) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.inject("redirect", path="ring-out-delete", status=status, location="/elsewhere")
    with pytest.raises(RingCentralAPIError, match="redirect"):
        hook.cancel_ringout(ringout_id)
    emulator.inject("redirect", path="ring-out-delete", status=status, location="/elsewhere")
    with pytest.raises(RingCentralAPIError, match="redirect"):
        asyncio.run(hook.acancel_ringout(ringout_id))
    assert not [r for r in emulator.requests if r.path.startswith("/elsewhere")]


def test_oversized_answers_are_not_read(hook: RingCentralHook, emulator: RingCentralEmulator) -> None:
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    emulator.inject("huge_body", path="ring-out-get", times=5)
    with pytest.raises(RingCentralAPIError, match="ResponseTooLarge"):
        hook.get_ringout(ringout_id)
    emulator.inject("huge_body", path="ring-out-get", times=5)
    with pytest.raises(RingCentralAPIError, match="ResponseTooLarge"):
        asyncio.run(hook.aget_status(ringout_id))
    emulator.inject("huge_body", path="ring-out-get", size=1000)  # a small padded answer is fine
    assert hook.get_ringout(ringout_id)["id"] == "1"

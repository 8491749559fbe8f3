"""
The one retry core (``hooks/_transport.py``) behind the requests loop and the httpx loop.

Real sockets on loopback: a port nobody listens on (the connection is refused) and a listener that accepts and
never answers (the request was sent; only the answer is missing).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import time
from typing import TYPE_CHECKING

import httpx
import pytest
import requests

from airflow_provider_ringout.exceptions import RingCentralAPIError
from airflow_provider_ringout.hooks._transport import Attempts, is_connect_failure, rate_limit_wait
from airflow_provider_ringout.hooks.endpoints import Endpoint
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.state.pacer import MAX_RATE_LIMIT_WAIT
from airflow_provider_ringout.testing import CallScript

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_ringout.testing import RingCentralEmulator

TO, FROM = "+14155550123", "+14155550100"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback listener that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


def raised(call: object) -> BaseException:
    try:
        call()  # type: ignore[operator]
    except Exception as exc:
        return exc
    raise AssertionError("no error")


def test_one_connect_failure_question_for_both_clients(silent_server: str) -> None:
    """Refused before sending: safe to resend (even a POST). Sent, then no answer: not a connect failure."""
    refused = f"http://127.0.0.1:{closed_port()}/"
    assert is_connect_failure(raised(lambda: requests.post(refused, timeout=2)))
    assert is_connect_failure(raised(lambda: httpx.post(refused, timeout=2)))
    assert not is_connect_failure(raised(lambda: requests.post(silent_server, timeout=0.3)))
    assert not is_connect_failure(raised(lambda: httpx.post(silent_server, timeout=0.3)))


def test_sync_and_async_loops_retry_and_give_up_alike(
    ringcentral_conn_env: RingCentralEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """RingCentral gone mid-wait: both loops log each retry and give up with the same message."""
    ringcentral_conn_env.script(TO, CallScript(after=30))
    hook = RingCentralHook(max_attempts=2, backoff_factor=0)
    ringout_id = hook.place_ringout(to_number=TO, from_number=FROM)["id"]
    ringcentral_conn_env.stop()
    capsys.readouterr()
    with pytest.raises(RingCentralAPIError) as sync_error:
        hook.get_status(ringout_id)
    sync_retries = retries(capsys.readouterr().out)
    with pytest.raises(RingCentralAPIError) as async_error:
        asyncio.run(hook.aget_status(ringout_id))
    async_retries = retries(capsys.readouterr().out)
    assert "could not reach" in str(sync_error.value) and "after 2 attempt(s)" in str(sync_error.value)
    assert unnamed(str(async_error.value)) == unnamed(str(sync_error.value))  # but for the client's error name
    assert len(sync_retries) == len(async_retries) == 1  # the async loop no longer retries silently
    assert unnamed(sync_retries[0]) == unnamed(async_retries[0])


def retries(output: str) -> list[str]:
    """The hook's "retrying" warnings in the task log output (without the log format's prefix)."""
    return re.findall(r"GET \S+ failed \(\w+\); retrying in [0-9.]+ s\.", output)


def unnamed(message: str) -> str:
    """``message`` without the exception's class name (requests' ``ConnectionError``, httpx's ``ConnectError``)."""
    return re.sub(r"\((Connection|Connect)Error\)", "(...)", message)


def test_429_waits_grow_with_full_jitter_and_are_capped() -> None:
    """Retry-After plus a random extra from 0 up to Retry-After doubled per earlier 429; never past the cap."""
    rng = random.Random(7)
    waits = {n: [rate_limit_wait(60.0, n, rng) for _ in range(400)] for n in range(1, 7)}
    for n, drawn in waits.items():
        assert all(60.0 <= w <= min(MAX_RATE_LIMIT_WAIT, 60.0 + 60.0 * 2 ** (n - 1)) for w in drawn)
        assert len(set(drawn)) == len(drawn)  # jittered: hosts that got the same 429 do not resend together
    tops = [max(waits[n]) for n in (1, 2, 3)]
    assert tops[0] < 120 < tops[1] < 180 < tops[2]  # the spread doubles with each further 429
    assert max(waits[6]) == pytest.approx(MAX_RATE_LIMIT_WAIT, abs=5) and max(waits[6]) <= MAX_RATE_LIMIT_WAIT
    assert 0 <= rate_limit_wait(0.0, 1, rng) <= 1.0  # no Retry-After to grow from: 1 s to start with
    assert rate_limit_wait(MAX_RATE_LIMIT_WAIT, 3, rng) == MAX_RATE_LIMIT_WAIT
    # A request that must be sent by a deadline (a callback's call) draws its extra within the time left.
    assert all(8.0 <= rate_limit_wait(8.0, 1, rng, limit=9.0) <= 9.0 for _ in range(100))
    assert rate_limit_wait(8.0, 1, rng, limit=5.0) == 8.0  # Retry-After itself does not fit: the caller gives up


class _Answer:
    """A bare 429 answer (what both clients' responses offer)."""

    status_code = 429
    headers = {"Retry-After": "2"}
    text = ""
    is_redirect = False


def attempts(**kwargs: object) -> Attempts:
    settings: dict[str, object] = {"server": "http://rc", "attempts": 2, "backoff_factor": 0}
    settings.update(kwargs)
    endpoint = Endpoint.RING_OUT_CREATE
    return Attempts(endpoint, endpoint.path(), log=logging.getLogger("test"), scrub=str, **settings)  # type: ignore[arg-type]


def test_429s_are_resent_past_max_attempts_spread_out_and_within_the_budget() -> None:
    """max_attempts (2 here) bounds 5xx and connect failures; 429s go on, each wait longer on average."""
    core = attempts()
    waits = [core.after_answer(_Answer()) for _ in range(12)]
    assert all(w is not None and 2.0 <= w <= MAX_RATE_LIMIT_WAIT for w in waits)
    assert len(set(waits)) == len(waits)
    assert max(waits[8:]) > max(waits[:2])  # type: ignore[type-var]
    assert attempts(rate_limit_budget=0).after_answer(_Answer()) is None  # no budget: the 429 is final
    assert attempts(wait=False).after_answer(_Answer()) is None  # the Test button: one attempt, no wait
    core = attempts(rate_limit_budget=30)
    assert [w for w in (core.after_answer(_Answer()) for _ in range(40)) if w is None]  # a wait past the budget


def test_sync_and_async_loops_resend_429s_alike(ringcentral_conn_env: RingCentralEmulator) -> None:
    ringcentral_conn_env.script(TO, CallScript(after=30))
    hook = RingCentralHook(max_attempts=1)
    ringout_id = hook.place_ringout(to_number=TO, from_number=FROM)["id"]
    ringcentral_conn_env.inject("429", path="ring-out-get", retry_after=0, times=2)
    hook.get_status(ringout_id)
    ringcentral_conn_env.inject("429", path="ring-out-get", retry_after=0, times=2)
    asyncio.run(hook.aget_status(ringout_id))
    gets = [r.status for r in ringcentral_conn_env.requests if r.kind == "ring-out-get"]
    assert gets == [429, 429, 200] * 2


def test_a_status_read_is_bounded_by_what_is_left_of_the_wait(ringcentral_conn_env: RingCentralEmulator) -> None:
    """
    With 503s and a 30 s back-off, a read with 1 s of its wait left gives up instead of sleeping past the wait:
    urllib3 resends once at once (its first back-off is 0), then the next back-off (60 s) would outlast the wait,
    so two GETs per read, sync and async. Unbounded, the read would sleep 60 s and more (the test's timeout).
    """
    from airflow_provider_ringout.status import RingOutWatch
    from airflow_provider_ringout.triggers.ringout import RingOutTrigger

    emulator = ringcentral_conn_env
    emulator.script("+14155550199", CallScript(after=60))
    params = {"max_attempts": 20, "backoff_factor": 30}
    hook = RingCentralHook(**params)  # type: ignore[arg-type]
    ringout_id = hook.place_ringout(to_number="+14155550199", from_number="+14155550100")["id"]
    emulator.inject("503", path="ring-out-get", times=1000)

    with pytest.raises(RingCentralAPIError, match="503"):
        hook.wait_for_ringout(RingOutWatch(ringout_id), timeout=1, poll_interval=0.1)
    assert emulator.count(kind="ring-out-get") == 2

    trigger = RingOutTrigger.from_watch(
        RingOutWatch(ringout_id),
        end_time=time.time() + 1,
        poll_interval=0.1,
        ringcentral_conn_id="ringcentral_default",
        cancel_on_kill=False,
        cancel_on_timeout=False,
        hook_params=params,
    )

    async def first_event() -> dict[str, object]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    event = asyncio.run(asyncio.wait_for(first_event(), 20))
    assert event["status"] == "error" and "503" in str(event["message"])
    assert emulator.count(kind="ring-out-get") == 4


def test_a_requests_timeout_is_cut_to_what_is_left_of_the_wait() -> None:
    """Inside a wait, a request's socket timeout never outlasts the wait (at least 1 s); outside, it is as set."""
    from airflow_provider_ringout.hooks._transport import bounded_timeout, within_wait

    assert bounded_timeout(30.0) == 30.0
    with within_wait(time.monotonic() + 5):
        assert 1.0 <= bounded_timeout(30.0) <= 5.0
        assert bounded_timeout(0.5) == 0.5
    with within_wait(time.monotonic() - 10):  # the wait is over: a last read still gets a second
        assert bounded_timeout(30.0) == 1.0


def test_a_slow_status_read_ends_with_the_wait(ringcentral_conn_env: RingCentralEmulator) -> None:
    """
    A GET held 20 s by the server, under the connection's 30 s request timeout, with 2 s of wait left: the read
    is cut at the wait's end and the wait fails (unbounded, the read would get its answer after 20 s and the
    wait would end PENDING, as if nothing were wrong).
    """
    from airflow_provider_ringout.status import RingOutWatch

    emulator = ringcentral_conn_env
    emulator.script("+14155550199", CallScript(after=60))
    hook = RingCentralHook()
    ringout_id = hook.place_ringout(to_number="+14155550199", from_number="+14155550100")["id"]
    emulator.inject("slow", path="ring-out-get", times=10, delay=20)
    with pytest.raises(RingCentralAPIError):
        hook.wait_for_ringout(RingOutWatch(ringout_id), timeout=2, poll_interval=0.5)

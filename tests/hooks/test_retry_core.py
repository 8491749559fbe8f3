"""
The one retry core (``hooks/_transport.py``) behind the requests loop and the httpx loop.

Real sockets on loopback: a port nobody listens on (the connection is refused) and a listener that accepts and
never answers (the request was sent; only the answer is missing).
"""

from __future__ import annotations

import asyncio
import re
import socket
from typing import TYPE_CHECKING

import httpx
import pytest
import requests

from airflow_provider_ringout.exceptions import RingCentralAPIError
from airflow_provider_ringout.hooks._transport import is_connect_failure
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
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

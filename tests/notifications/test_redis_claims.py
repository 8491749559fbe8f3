"""
One escalation per incident across hosts: alert claims in Redis (``[ringcentral] shared_state = redis``).

A real ``redis-server`` on a free loopback port and the RingCentral emulator. A "host" is its own token cache
folder (where the file claims live) and an empty in-process claim memory; the two-host test runs two real
processes.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_ringout.notifications.ringout import RingOutNotifier
from airflow_provider_ringout.state import claims as _dedup
from airflow_provider_ringout.state import reset_process_state
from airflow_provider_ringout.state.files import StateDir
from airflow_provider_ringout.state.tokens import TokenCache
from airflow_provider_ringout.testing import CallScript, Outcome
from airflow_provider_ringout.testing.redis_server import RedisServer, redis_server_path
from tests.hooks.test_redis_state import REDIS_LOGGER, redis_server
from tests.notifications.test_ringout_alert_design import alert_at_once
from tests.notifications.test_ringout_notifier import FIRST, FROM, created, logs, make_context

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_ringout.testing import RingCentralEmulator

__all__ = ["logs", "redis_server"]  # the fixture, re-used from the Redis backend's test module

pytestmark = pytest.mark.skipif(
    redis_server_path() is None or importlib.util.find_spec("redis") is None,
    reason="needs redis-server (apt-get install redis-server) and airflow-provider-ringout[redis]",
)

CLAIM_KEY = re.compile(rb"ringout:\{alert-claims\}:claim:[0-9a-f]{32}")


@pytest.fixture
def claims_in_redis(redis_server: RedisServer) -> Iterator[RedisServer]:
    """Redis chosen as the shared state, and this process's claim memory and warnings forgotten."""
    reset_process_state()
    yield redis_server
    reset_process_state()


def on_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> Path:
    """Act as a new process on host ``name``: its own state folder, nothing claimed or cached in memory."""
    folder = tmp_path / f"host-{name}"
    monkeypatch.setenv("AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR", str(folder))
    monkeypatch.setattr(_dedup, "_memory", _dedup.MemoryClaims())
    TokenCache._memory.clear()
    return folder


def claim_keys(server: RedisServer) -> list[bytes]:
    return sorted(server.client().keys("ringout:{alert-claims}:*"))


@pytest.mark.e2e
@pytest.mark.parametrize(("backend", "calls"), [("redis", 1), ("file", 2)])
def test_two_hosts_alerting_for_one_run_at_once_place_one_escalation(
    claims_in_redis: RedisServer,
    ringcentral_conn_env: RingCentralEmulator,
    tmp_path: Path,
    backend: str,
    calls: int,
) -> None:
    """Two processes, each with its own folder, fail tasks of one run together: Redis groups them; files cannot."""
    alert_at_once(
        tmp_path,
        {
            task: {
                "AIRFLOW__RINGCENTRAL__SHARED_STATE": backend,
                "AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR": str(tmp_path / f"host-{name}"),
            }
            for name, task in (("a", "extract"), ("b", "load"))
        },
    )

    assert created(ringcentral_conn_env) == [FIRST] * calls
    if backend == "file":
        assert claim_keys(claims_in_redis) == []
        return
    client = claims_in_redis.client()
    (key,) = claim_keys(claims_in_redis)
    assert CLAIM_KEY.fullmatch(key)  # an HMAC of the incident: no run id, no phone number
    assert client.get(key).endswith(b"|D")  # delivered
    assert 3_590_000 < client.pttl(key) <= 3_600_000  # kept for dedup_window (1 hour by default)


def test_the_cluster_claim_expires_after_dedup_window(
    claims_in_redis: RedisServer,
    ringcentral_conn_env: RingCentralEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notifier = RingOutNotifier(to_numbers=[FIRST], from_number=FROM, dedup_window=600)
    run = make_context()
    on_host(monkeypatch, tmp_path, "a")
    notifier(run)
    on_host(monkeypatch, tmp_path, "b")
    notifier(run)  # another host, same incident: grouped by Redis
    (key,) = claim_keys(claims_in_redis)
    client = claims_in_redis.client()
    assert 0 < client.pttl(key) <= 600_000

    client.pexpire(key, 1)  # the window passes, on Redis's clock
    while claim_keys(claims_in_redis):
        time.sleep(0.01)
    on_host(monkeypatch, tmp_path, "c")
    notifier(run)

    assert created(ringcentral_conn_env) == [FIRST, FIRST]


def test_a_dead_holders_lease_lapses_in_redis_and_the_next_host_rings(
    claims_in_redis: RedisServer,
    ringcentral_conn_env: RingCentralEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logs: Callable[[], str],
) -> None:
    """A lease is not a delivery: while it is live other hosts hold back ("in progress"), once it lapses they ring."""
    notifier = RingOutNotifier(to_numbers=[FIRST], from_number=FROM, dedup_window=600)
    run = make_context()
    on_host(monkeypatch, tmp_path, "a")
    claims = notifier._claims_state()
    assert claims is not None
    lease = _dedup.acquire(
        notifier._incident_key(run, [FIRST]), window=600, lease=600, state=claims[0], secret=claims[1]
    )
    assert isinstance(lease, _dedup.Lease)  # host a's escalation; host a then dies
    (key,) = claim_keys(claims_in_redis)
    assert claims_in_redis.client().get(key).endswith(b"|L")
    on_host(monkeypatch, tmp_path, "b")
    notifier(run)
    assert created(ringcentral_conn_env) == []
    assert "in progress elsewhere" in logs() and "already" not in logs()

    claims_in_redis.client().pexpire(key, 1)  # the dead holder's lease lapses, on Redis's clock
    while claim_keys(claims_in_redis):
        time.sleep(0.01)
    on_host(monkeypatch, tmp_path, "c")
    notifier(run)

    assert created(ringcentral_conn_env) == [FIRST]


def test_nobody_reached_releases_the_cluster_claim_at_once(
    claims_in_redis: RedisServer,
    ringcentral_conn_env: RingCentralEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ringcentral_conn_env.script(FIRST, CallScript(outcome=Outcome.NO_ANSWER, after=0.2))
    notifier = RingOutNotifier(
        to_numbers=[FIRST], from_number=FROM, wait_for_connection=True, per_number_timeout=10, poll_interval=0.1
    )
    run = make_context()
    on_host(monkeypatch, tmp_path, "a")
    notifier(run)  # rung, not reached
    assert claim_keys(claims_in_redis) == []  # released in Redis (and in the host's copy)
    assert _dedup.FileClaims(StateDir(tmp_path / "host-a")).take("x", "probe", 1) is None
    host_copy = json.loads((tmp_path / "host-a" / f"{_dedup.CLAIMS_FILE}.json").read_text())["claims"]
    assert len(host_copy) == 1  # only the probe: the host's copy of the incident's claim was released too
    on_host(monkeypatch, tmp_path, "b")
    notifier(run)  # another host: rings

    assert created(ringcentral_conn_env) == [FIRST, FIRST]  # before: 1 (the claim held for dedup_window)


def test_redis_down_claims_fall_back_to_the_hosts_files_with_one_warning(
    claims_in_redis: RedisServer,
    ringcentral_conn_env: RingCentralEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    claims_in_redis.stop()
    notifier = RingOutNotifier(to_numbers=[FIRST], from_number=FROM)
    run = make_context()
    with caplog.at_level(logging.WARNING):
        folder = on_host(monkeypatch, tmp_path, "a")
        notifier(run)  # the alert is placed although Redis is down
        on_host(monkeypatch, tmp_path, "a")
        notifier(run)  # another process of the host: grouped by the host's files
        notifier(make_context())  # another incident: alerted

    assert created(ringcentral_conn_env) == [FIRST, FIRST]
    claims = json.loads((folder / f"{_dedup.CLAIMS_FILE}.json").read_text())["claims"]
    assert len(claims) == 2 and FIRST not in json.dumps(claims)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    (redis_warning,) = [w for w in warnings if "Redis" in w]
    assert [r.name for r in caplog.records if r.getMessage() == redis_warning] == [REDIS_LOGGER]
    assert "[ringcentral] shared_state" in redis_warning and "alert grouping" in redis_warning
    assert not [r for r in caplog.records if r.name == _dedup.__name__]  # the files worked: no second warning


def test_a_claim_won_in_redis_still_groups_the_host_when_redis_dies(
    claims_in_redis: RedisServer,
    ringcentral_conn_env: RingCentralEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notifier = RingOutNotifier(to_numbers=[FIRST], from_number=FROM)
    run = make_context()
    on_host(monkeypatch, tmp_path, "a")
    notifier(run)
    assert len(claim_keys(claims_in_redis)) == 1
    claims_in_redis.stop()
    on_host(monkeypatch, tmp_path, "a")
    notifier(run)  # Redis gone: the host's copy of the claim holds

    assert created(ringcentral_conn_env) == [FIRST]


def test_an_invalid_shared_state_setting_leaves_claims_on_the_hosts_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook refuses the setting when it places the call; grouping must not raise before that."""
    monkeypatch.setenv("AIRFLOW__RINGCENTRAL__SHARED_STATE", "memcached")
    monkeypatch.setattr(_dedup, "_memory", _dedup.MemoryClaims())
    state = StateDir(tmp_path / "host")
    assert isinstance(_dedup.acquire("incident", window=60, lease=60, state=state, secret=b"s"), _dedup.Lease)
    monkeypatch.setattr(_dedup, "_memory", _dedup.MemoryClaims())
    assert _dedup.acquire("incident", window=60, lease=60, state=state, secret=b"s") == _dedup.Held(delivered=False)

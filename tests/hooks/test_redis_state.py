"""
``[ringcentral] shared_state = redis``: one login and one rate budget for a cluster, against a real redis-server.

Each test starts its own ``redis-server`` on a free loopback port and the emulator (with RingCentral's real
limits where it matters). A "host" is a hook with its own token cache folder and an empty in-process token
memory; the multi-host tests run real separate processes.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.hooks import _transport
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.state import redis as redis_state
from airflow_provider_ringout.state import reset_process_state
from airflow_provider_ringout.state.files import StateDir
from airflow_provider_ringout.state.pacer import RatePacer
from airflow_provider_ringout.state.redis import RedisLink, RedisRatePacer, RedisTokenCache
from airflow_provider_ringout.state.tokens import Token, TokenCache
from airflow_provider_ringout.testing import TEST_CLIENT_SECRET, TEST_JWT, CallScript, RingCentralEmulator
from airflow_provider_ringout.testing.redis_server import RedisServer, redis_server_path

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.skipif(
    redis_server_path() is None or importlib.util.find_spec("redis") is None,
    reason="needs redis-server (apt-get install redis-server) and airflow-provider-ringout[redis]",
)

TO, FROM = "+14155550123", "+14155550100"
FAST = CallScript(after=0.3, talk=2, linger=5)
REDIS_LOGGER = "airflow_provider_ringout.state.redis"


@pytest.fixture
def redis_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A fresh redis-server, chosen as the shared state; every per-process memory forgotten before and after."""
    reset_process_state()
    with RedisServer() as server:
        monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", server.url)
        monkeypatch.setenv("AIRFLOW__RINGCENTRAL__SHARED_STATE", "redis")
        yield server
    reset_process_state()


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[RingCentralEmulator]:
    """The emulator throttling as RingCentral does, set as ``ringcentral_default``."""
    with RingCentralEmulator.with_real_limits(default_script=FAST) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", emulator.connection_json(extra={"from_number": FROM}))
        yield emulator


def host(tmp_path: Path, name: str) -> RingCentralHook:
    """A hook as a task on another host would build it: its own cache folder, no token in memory."""
    TokenCache._memory.clear()
    return RingCentralHook(token_cache_dir=tmp_path / f"host-{name}")


def pacer(tmp_path: Path, name: str, key: str = "k" * 32) -> RedisRatePacer:
    return RedisRatePacer(RatePacer(StateDir(tmp_path / f"pacer-{name}"), key), RedisLink("redis_default", key))


def learn(p: RedisRatePacer, group: str, limit: int, window: int) -> None:
    p.observe(group, {"X-Rate-Limit-Limit": str(limit), "X-Rate-Limit-Window": str(window)})


# --- token ---------------------------------------------------------------------------------------------------


def _task_on_own_host(conn: str, redis_url: str, backend: str, home: str, barrier: Any, results: Any) -> None:
    """One task process on its own "host" (own cache folder): wait for the others, place a call, poll it."""
    os.environ.update(
        AIRFLOW_CONN_RINGCENTRAL_DEFAULT=conn,
        AIRFLOW_CONN_REDIS_DEFAULT=redis_url,
        AIRFLOW__RINGCENTRAL__SHARED_STATE=backend,
        AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR=home,
    )
    from airflow_provider_ringout.status import RingOutState

    hook = RingCentralHook()
    hook.credentials  # noqa: B018 - read the connection before the start line, as a task does
    barrier.wait()
    ringout_id = hook.place_ringout(to_number=TO)["id"]
    while (state := hook.get_status(ringout_id).state) is RingOutState.PENDING:
        time.sleep(0.5)
    results.put(state.value)


@pytest.mark.e2e
@pytest.mark.parametrize(("backend", "logins"), [("redis", 1), ("file", 4)])
def test_hosts_starting_together_log_in_once(
    redis_server: RedisServer, emulator: RingCentralEmulator, tmp_path: Path, backend: str, logins: int
) -> None:
    """4 hosts (processes with their own folders) at once: one login with Redis; one per host with files."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    conn = emulator.connection_json(extra={"from_number": FROM})
    procs = [
        ctx.Process(
            target=_task_on_own_host,
            args=(conn, redis_server.url, backend, str(tmp_path / f"h{i}"), barrier, results),
        )
        for i in range(4)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert outcomes == ["connected"] * 4
    assert emulator.count(kind="token") == logins
    assert emulator.count(status=429) == 0


def test_token_at_rest_is_sealed_namespaced_and_expires(
    redis_server: RedisServer, emulator: RingCentralEmulator, tmp_path: Path
) -> None:
    hook = host(tmp_path, "a")
    hook.place_ringout(to_number=TO)
    client = redis_server.client()
    keys = client.keys("*")
    assert keys and all(k.startswith(f"ringout:{{{hook.credentials.cache_key}}}:".encode()) for k in keys)
    assert all(client.pttl(k) > 0 for k in keys)  # nothing piles up
    dump = b"".join(client.dump(k) or b"" for k in keys) + b"".join(
        client.get(k) or b"" for k in keys if b"rate" not in k
    )
    for secret in [*emulator.issued_tokens, TEST_JWT, TEST_CLIENT_SECRET]:
        assert secret.encode() not in dump
    token_file = next((tmp_path / "host-a").glob("token-*.json"), None)
    assert token_file is None  # Redis holds the token; nothing written to the host


def test_token_file_is_sealed_too(emulator: RingCentralEmulator, tmp_path: Path) -> None:
    hook = host(tmp_path, "files")
    hook.place_ringout(to_number=TO)
    (token_file,) = (tmp_path / "host-files").glob("token-*.json")
    record = json.loads(token_file.read_text())
    assert set(record) == {"key", "format", "nonce", "sealed"}
    for secret in [*emulator.issued_tokens, TEST_JWT, TEST_CLIENT_SECRET]:
        assert secret not in token_file.read_text()
    TokenCache._memory.clear()
    RingCentralHook(token_cache_dir=tmp_path / "host-files").place_ringout(to_number=TO)
    assert emulator.count(kind="token") == 1  # the sealed file opens for the same credential


def test_tampered_or_foreign_record_is_not_used(
    redis_server: RedisServer, emulator: RingCentralEmulator, tmp_path: Path
) -> None:
    hook = host(tmp_path, "a")
    hook.place_ringout(to_number=TO)
    client = redis_server.client()
    (key,) = client.keys("*:token")
    record = json.loads(client.get(key))
    record["sealed"] = record["sealed"][:-4] + ("AAAA" if not record["sealed"].endswith("AAAA") else "BBBB")
    client.set(key, json.dumps(record))
    host(tmp_path, "b").place_ringout(to_number=TO)
    assert emulator.count(kind="token") == 2
    assert all(r.status < 400 for r in emulator.requests)


def test_401_seen_by_every_host_renews_once(
    redis_server: RedisServer, emulator: RingCentralEmulator, tmp_path: Path
) -> None:
    first = host(tmp_path, "a")
    ringout_id = first.place_ringout(to_number=TO)["id"]
    refused = first._tokens.peek()
    assert refused is not None
    emulator.revoke_all_tokens()
    for name in "abc":  # each host still holds the refused token in memory and sees the 401
        hook = host(tmp_path, name)
        TokenCache._memory[hook.credentials.cache_key] = refused
        hook.get_status(ringout_id)
    assert emulator.count(kind="token") == 2
    assert emulator.count(status=401) == 3


def test_renewal_ahead_of_expiry_by_one_holder(redis_server: RedisServer, tmp_path: Path) -> None:
    from airflow_provider_ringout.state.sealing import TokenSealer

    key = "r" * 32
    sealer = TokenSealer(key, "secret", "jwt")
    link = RedisLink("redis_default", key)
    now = time.time()
    ageing = Token("old-token", expires_at=now + 100, issued_at=now - 3500)  # valid, not fresh: renew now
    logins: list[int] = []

    def login() -> Token:
        logins.append(1)
        return Token(f"new-{len(logins)}", expires_at=time.time() + 3600, issued_at=time.time())

    cache = RedisTokenCache(TokenCache(StateDir(tmp_path / "x"), key, sealer), link, sealer)
    cache.store(ageing)
    client = redis_server.client()
    client.set(f"{link.prefix}:login-lock", "another-host", px=5000)  # another host is renewing
    TokenCache._memory.clear()
    assert cache.get(login).access_token == "old-token"  # still valid: used meanwhile, no second login
    client.delete(f"{link.prefix}:login-lock")
    TokenCache._memory.clear()
    assert cache.get(login).access_token == "new-1"
    TokenCache._memory.clear()
    assert cache.get(login).access_token == "new-1"
    assert len(logins) == 1


def test_urgent_cancel_waits_on_another_hosts_login_lock_two_seconds_at_most(
    redis_server: RedisServer, emulator: RingCentralEmulator, tmp_path: Path
) -> None:
    """on_kill's cancel (``urgent``) with no token in hand while another host holds the login lock: ~2 s, not 95."""
    worker = host(tmp_path, "worker")
    ringout_id = worker.place_ringout(to_number=TO)["id"]
    client = redis_server.client()
    (token_key,) = client.keys("*:token")
    client.delete(token_key)  # expired on the whole cluster...
    client.set(token_key.decode().replace(":token", ":login-lock"), "another-host", px=60_000)  # ...being renewed
    TokenCache._memory.clear()
    outcomes: list[Any] = []
    started = time.monotonic()
    canceller = threading.Thread(
        target=lambda: outcomes.append(worker.cancel_and_confirm(ringout_id, urgent=True)), daemon=True
    )
    canceller.start()
    canceller.join(timeout=15)
    assert not canceller.is_alive(), "the urgent cancel waited on the other host's login lock"
    assert outcomes and time.monotonic() - started < 10
    assert emulator.count(kind="token") == 2  # after the bound it logged in itself rather than wait
    assert emulator.count(method="DELETE") == 1


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from airflow_provider_ringout.state.redis import RedisLink, RedisTokenCache
from airflow_provider_ringout.state.files import StateDir
from airflow_provider_ringout.state.tokens import TokenCache
from airflow_provider_ringout.state.sealing import TokenSealer

folder = Path(sys.argv[1])
sealer = TokenSealer("d" * 32, "secret", "jwt")
cache = RedisTokenCache(TokenCache(StateDir(folder / "holder"), "d" * 32, sealer), RedisLink("redis_default", "d" * 32), sealer)

def login():  # holds the login lock: say so, and hang here until SIGKILLed
    (folder / "logging-in").touch()
    while True:
        time.sleep(1)

cache.get(login)
"""


def test_a_login_lock_owner_killed_mid_login_stalls_the_others_a_few_seconds_at_most(
    redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The owner renews its short-lived lock while it logs in; SIGKILLed, its lock lapses and a waiter logs in."""
    from airflow_provider_ringout.state.sealing import TokenSealer

    script = tmp_path / "holder.py"
    script.write_text(LOCK_HOLDER)
    path = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")]))
    holder = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env={**os.environ, "PYTHONPATH": path})
    client = redis_server.client()
    lock = f"{RedisLink('redis_default', 'd' * 32).prefix}:login-lock"
    sealer = TokenSealer("d" * 32, "secret", "jwt")
    cache = RedisTokenCache(
        TokenCache(StateDir(tmp_path / "waiter"), "d" * 32, sealer), RedisLink("redis_default", "d" * 32), sealer
    )
    logins: list[int] = []

    def login() -> Token:
        logins.append(1)
        return Token("after-the-dead-owner", expires_at=time.time() + 3600, issued_at=time.time())

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if "login lock" in r.getMessage()]

    tokens: list[Token] = []
    waiter = threading.Thread(target=lambda: tokens.append(cache.get(login)), daemon=True)
    caplog.set_level(logging.INFO, logger=REDIS_LOGGER)
    try:
        deadline = time.monotonic() + 90
        while not (tmp_path / "logging-in").exists() and holder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (tmp_path / "logging-in").exists(), "the holder never took the login lock"
        assert 0 < client.pttl(lock) <= redis_state.LOCK_TTL * 1000  # a short expiry...
        seen = client.pttl(lock)
        while client.pttl(lock) <= seen and time.monotonic() < deadline:  # ...that its live owner renews
            seen = min(seen, client.pttl(lock))
            time.sleep(0.05)
        assert client.pttl(lock) > seen
        TokenCache._memory.clear()
        waiter.start()  # another host needs a token while the owner logs in
        while not said() and time.monotonic() < deadline:
            time.sleep(0.01)
        while client.pttl(lock) <= seen and time.monotonic() < deadline:  # the owner renews once more meanwhile
            seen = min(seen, client.pttl(lock))
            time.sleep(0.05)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    waiter.join(timeout=45)  # before: the dead owner's lock held every other host for 90 s

    assert not waiter.is_alive(), "the waiter was stalled by a dead owner's login lock"
    assert [t.access_token for t in tokens] == ["after-the-dead-owner"] and logins == [1]
    assert len(said()) == 1  # said once, although it looked many times


def test_trigger_path_shares_the_token_and_budget(
    redis_server: RedisServer, emulator: RingCentralEmulator, tmp_path: Path
) -> None:
    """The async reads of a trigger (another host: the triggerer) use the cluster's token and pacer, off the loop."""
    import asyncio

    ringout_id = host(tmp_path, "worker").place_ringout(to_number=TO)["id"]
    triggerer = host(tmp_path, "triggerer")

    async def read_twice() -> list[str]:
        return [(await triggerer.aget_status(ringout_id)).call_status for _ in range(2)]

    assert len(asyncio.run(read_twice())) == 2
    assert emulator.count(kind="token") == 1
    client = redis_server.client()
    (sent,) = client.keys("*:rate:Light:sent")
    assert client.zcard(sent) == 2  # both reads were counted in the shared budget


def test_a_renewal_never_overwrites_a_newer_token_another_host_stored(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The store after a login is a compare-and-set over what was read: a newer token stored meanwhile stays."""
    from airflow_provider_ringout.state.sealing import TokenSealer

    key = "c" * 32
    sealer = TokenSealer(key, "secret", "jwt")
    cache = RedisTokenCache(
        TokenCache(StateDir(tmp_path / "host"), key, sealer), RedisLink("redis_default", key), sealer
    )
    newer = Token("newer-from-another-host", expires_at=time.time() + 3600, issued_at=time.time())

    def login() -> Token:
        # Another host (its lock expired) stores its token while this host's login is in flight.
        redis_server.client().set(cache._redis_key, json.dumps(sealer.seal(newer)))
        return Token("mine", expires_at=time.time() + 3600, issued_at=time.time())

    assert cache.get(login).access_token == "newer-from-another-host"
    stored = sealer.open(json.loads(redis_server.client().get(cache._redis_key)))
    assert stored is not None and stored.access_token == "newer-from-another-host"


def test_redis_dying_during_the_login_costs_no_second_login(redis_server: RedisServer, tmp_path: Path) -> None:
    from airflow_provider_ringout.state.sealing import TokenSealer

    key = "d" * 32
    sealer = TokenSealer(key, "secret", "jwt")
    files = TokenCache(StateDir(tmp_path / "host"), key, sealer)
    cache = RedisTokenCache(files, RedisLink("redis_default", key), sealer)
    logins: list[int] = []

    def login() -> Token:
        logins.append(1)
        redis_server.stop()  # Redis goes away while RingCentral answers
        return Token(f"token-{len(logins)}", expires_at=time.time() + 3600, issued_at=time.time())

    assert cache.get(login).access_token == "token-1"
    TokenCache._memory.clear()
    assert cache.get(login).access_token == "token-1"  # kept in the host's files, Redis still down
    assert len(logins) == 1


# --- rate budget ---------------------------------------------------------------------------------------------


def test_429_holds_back_every_host(redis_server: RedisServer, tmp_path: Path) -> None:
    a, b = pacer(tmp_path, "a"), pacer(tmp_path, "b")
    learn(a, "Heavy", 10, 60)
    a.observe("Heavy", {"Retry-After": "30"}, penalty=30.0)
    assert 29 < b.reserve("Heavy") <= 30
    assert b.reserve("Light") == 0  # other groups are not held back


def test_budget_is_shared_and_spent_by_someone_else_blocks(redis_server: RedisServer, tmp_path: Path) -> None:
    a, b = pacer(tmp_path, "a"), pacer(tmp_path, "b")
    learn(a, "Heavy", 2, 60)
    assert a.reserve("Heavy") == 0
    assert b.reserve("Heavy") == 0
    assert 59 < a.reserve("Heavy") <= 63  # two sends in the window, cluster-wide
    c = pacer(tmp_path, "c")
    c.observe("Light", {"X-Rate-Limit-Limit": "50", "X-Rate-Limit-Window": "60", "X-Rate-Limit-Remaining": "0"})
    assert c.reserve("Light") > 55  # the budget went elsewhere (another app instance): wait the window out


def test_unknown_limits_assume_ringcentrals_until_told(redis_server: RedisServer, tmp_path: Path) -> None:
    pacers = [pacer(tmp_path, str(i)) for i in range(12)]
    granted = sum(1 for p in pacers if p.reserve("Heavy") == 0)
    assert granted == 10  # Heavy 10 a minute, before any answer said so
    free = pacer(tmp_path, "free", key="f" * 32)
    free.observe("Heavy", {})  # answers without limit headers: unlimited
    assert all(free.reserve("Heavy") == 0 for _ in range(20))


def test_waiting_callers_are_served_in_arrival_order(redis_server: RedisServer, tmp_path: Path) -> None:
    a, b, c = pacer(tmp_path, "a"), pacer(tmp_path, "b"), pacer(tmp_path, "c")
    learn(a, "Light", 2, 2)
    assert a.reserve("Light") == 0
    time.sleep(0.3)
    assert b.reserve("Light") == 0
    wait_c = c.reserve("Light")  # c waits first
    wait_a = a.reserve("Light")  # a polls again, behind c
    assert 0 < wait_c < wait_a
    time.sleep(wait_c)
    assert a.reserve("Light") > 0  # the freed slot is c's, though a asked again
    assert c.reserve("Light") == 0
    time.sleep(max(0.0, wait_a - wait_c))
    assert a.reserve("Light") == 0


def test_concurrent_polls_share_the_light_budget_fairly(redis_server: RedisServer, tmp_path: Path) -> None:
    """A greedy poller that asks every few milliseconds does not crowd out callers that wait as told."""
    pacers = [pacer(tmp_path, str(i)) for i in range(4)]
    learn(pacers[0], "Light", 4, 1)
    sends = [0] * 4
    stop = time.monotonic() + 4.2

    def poll(i: int) -> None:
        while time.monotonic() < stop:
            delay = pacers[i].reserve("Light")
            if delay == 0:
                sends[i] += 1
            time.sleep(0.003 if i == 0 else max(delay, 0.02))  # poller 0 ignores the wait it is told

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(sends) <= 4 * 5 + 1
    assert max(sends) - min(sends) <= 3, sends  # each gets its share; nobody starves


# --- failure -------------------------------------------------------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == REDIS_LOGGER and r.levelno == logging.WARNING]


def test_redis_down_falls_back_to_files_with_one_warning(
    redis_server: RedisServer, emulator: RingCentralEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.stop()
    with caplog.at_level(logging.WARNING, logger=REDIS_LOGGER):
        hook = host(tmp_path, "a")
        ringout_id = hook.place_ringout(to_number=TO)["id"]
        hook.get_status(ringout_id)
        host(tmp_path, "a").place_ringout(to_number=TO)
    assert emulator.count(kind="ring-out-create") == 2
    assert emulator.count(kind="token") == 1  # the host's files share the token meanwhile
    (warning,) = _warnings(caplog)
    assert "[ringcentral] shared_state" in warning and "'redis_default'" in warning
    assert TEST_CLIENT_SECRET not in caplog.text and TEST_JWT not in caplog.text


def test_redis_dying_mid_wait_does_not_lose_the_call(
    redis_server: RedisServer,
    emulator: RingCentralEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis dies while a task waits its turn: the turn Redis gave is kept (hosts ahead own the earlier slots)."""
    monkeypatch.setattr(_transport, "PACER_RECHECK", 1.0)  # the hook wakes up well before the penalty ends
    hook = host(tmp_path, "a")
    hook.credentials  # noqa: B018
    hook._pacer.observe("Heavy", {"X-Rate-Limit-Limit": "10", "X-Rate-Limit-Window": "60"}, penalty=4.0)
    started = time.monotonic()  # the emulator records monotonic times
    placed: list[str] = []
    with caplog.at_level(logging.WARNING, logger=REDIS_LOGGER):
        worker = threading.Thread(target=lambda: placed.append(hook.place_ringout(to_number=TO)["id"]))
        worker.start()
        time.sleep(0.5)
        assert not placed  # waiting out the cluster-wide penalty
        redis_server.stop()
        worker.join(40)
    assert len(placed) == 1 and emulator.count(kind="ring-out-create") == 1
    (post,) = [r for r in emulator.requests if r.kind == "ring-out-create"]
    assert post.time >= started + 3.5  # not at the hook's 1 s wake-up: the cluster's turn still held
    assert len(_warnings(caplog)) == 1


def test_redis_flushed_or_restarted_logs_in_once_and_goes_on(
    redis_server: RedisServer, emulator: RingCentralEmulator, tmp_path: Path
) -> None:
    host(tmp_path, "a").place_ringout(to_number=TO)
    redis_server.stop()
    redis_server.start()  # empty, as after a restart without persistence
    for name in "bcd":
        host(tmp_path, name).place_ringout(to_number=TO)
    assert emulator.count(kind="token") == 2
    assert emulator.count(kind="ring-out-create") == 4


def test_unknown_backend_is_refused_before_any_request(
    emulator: RingCentralEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__RINGCENTRAL__SHARED_STATE", "memcached")
    with pytest.raises(RingCentralConfigError, match=r"\[ringcentral\] shared_state must be 'file' or 'redis'"):
        host(tmp_path, "a").place_ringout(to_number=TO)
    assert emulator.requests == []


def test_file_backend_imports_nothing_of_redis(emulator: RingCentralEmulator, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from airflow_provider_ringout.hooks.ringcentral import RingCentralHook\n"
        f"RingCentralHook(token_cache_dir={str(tmp_path / 'x')!r}).place_ringout(to_number={TO!r})\n"
        "assert not [m for m in sys.modules if m == 'redis' or m.startswith('redis.')]\n"
        "assert 'airflow_provider_ringout.state.redis' not in sys.modules\n"
    )
    env = {**os.environ, "AIRFLOW__RINGCENTRAL__SHARED_STATE": "file"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert emulator.count(kind="ring-out-create") == 1


# --- visible to the people who run the cluster ---------------------------------------------------------------


def test_the_test_button_says_redis_answers_and_holds_the_token(
    redis_server: RedisServer, emulator: RingCentralEmulator, tmp_path: Path
) -> None:
    hook = host(tmp_path, "a")
    ok, message = hook.test_connection()

    assert ok, message
    assert "Shared state: Redis (connection 'redis_default') answers" in message
    assert "holds the cluster's token" in message
    token = hook._tokens.peek()
    assert token is not None and token.access_token not in message  # never shown
    assert TEST_CLIENT_SECRET not in message and TEST_JWT not in message


def test_the_test_button_says_redis_is_down_and_the_fix(
    redis_server: RedisServer, emulator: RingCentralEmulator, tmp_path: Path
) -> None:
    redis_server.stop()
    ok, message = host(tmp_path, "a").test_connection()

    assert ok, message  # calls still work, on the host's files
    assert "shared_state = redis, but Redis ([ringcentral] redis_conn_id = 'redis_default') cannot be used" in message
    assert "falls back to its own files" in message and "to fix it" in message


def test_the_test_button_says_file_shared_state(emulator: RingCentralEmulator, tmp_path: Path) -> None:
    ok, message = host(tmp_path, "a").test_connection()

    assert ok, message
    assert "Shared state: this host's files ([ringcentral] shared_state = file)" in message


def test_a_missing_redis_connection_is_said_once_plainly_with_the_fix(
    redis_server: RedisServer,
    emulator: RingCentralEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW__RINGCENTRAL__REDIS_CONN_ID", "no_such_redis")
    with caplog.at_level(logging.WARNING, logger=REDIS_LOGGER):
        hook = host(tmp_path, "a")
        hook.get_status(hook.place_ringout(to_number=TO)["id"])
        host(tmp_path, "b").place_ringout(to_number=TO)

    assert emulator.count(kind="ring-out-create") == 2  # the calls go on, on the host's files
    (warning,) = _warnings(caplog)
    assert "[ringcentral] shared_state" in warning and "[ringcentral] redis_conn_id = 'no_such_redis'" in warning
    assert "to fix it, create the Airflow connection 'no_such_redis'" in warning
    assert warning.count("is not usable") == 0 and warning.count("AirflowNotFoundException") == 1

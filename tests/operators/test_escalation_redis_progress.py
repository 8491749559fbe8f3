"""
An escalation's saved progress in Redis (``[ringcentral] shared_state = redis``): a triggerer on another host resumes.

A real ``redis-server`` on a free loopback port and the RingCentral emulator. A "host" is its own state folder
(``[ringcentral] token_cache_dir``) and no token in memory; a triggerer restart is the trigger's task cancelled
mid-call and a new trigger built from ``serialize()``'s kwargs (as in ``test_escalation_operator.py``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout.state import reset_process_state
from airflow_provider_ringout.state.files import StateDir
from airflow_provider_ringout.state.progress import (
    PROGRESS_FILE,
    RESUMABLE_FOR,
    load_progress,
    save_progress,
)
from airflow_provider_ringout.state.tokens import TokenCache
from airflow_provider_ringout.testing.redis_server import RedisServer, redis_server_path
from tests.hooks.test_redis_state import REDIS_LOGGER, redis_server
from tests.notifications.test_ringout_notifier import FIRST, SECOND, THIRD, make_context
from tests.operators.test_escalation_operator import (
    assert_resumed,
    deferred_trigger,
    finish,
    in_file,
    stop_while_the_second_rings,
    voicemail_no_answer_acknowledges,
)

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_ringout.testing import RingCentralEmulator

__all__ = ["redis_server"]  # the fixture, re-used from the Redis backend's test module

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        redis_server_path() is None or importlib.util.find_spec("redis") is None,
        reason="needs redis-server (apt-get install redis-server) and airflow-provider-ringout[redis]",
    ),
]

PROGRESS_KEYS = "ringout:{escalation-progress}:*"


def on_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> Path:
    """Act as a triggerer on host ``name``: its own state folder, no token in memory."""
    folder = tmp_path / f"host-{name}"
    monkeypatch.setenv("AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR", str(folder))
    TokenCache._memory.clear()
    return folder


def in_redis(server: RedisServer, key: str) -> dict[str, Any] | None:
    raw = server.client().get(f"ringout:{{escalation-progress}}:progress:{key}")
    return json.loads(raw) if raw else None


def test_a_trigger_picked_up_on_another_host_resumes_from_redis(
    redis_server: RedisServer,
    ringcentral_conn_env: RingCentralEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator = ringcentral_conn_env
    voicemail_no_answer_acknowledges(emulator)
    first = on_host(monkeypatch, tmp_path, "a")
    trigger = deferred_trigger(make_context(), per_number_timeout=3)
    _, kwargs = trigger.serialize()
    key = trigger.progress_key

    # Saved in Redis (the host's copy is written after it, so either says Redis has it, when Redis is used).
    stop_while_the_second_rings(trigger, lambda: in_redis(redis_server, key) or in_file(first, key))
    other = on_host(monkeypatch, tmp_path, "b")
    assert in_file(other, key) is None  # host b's folder knows nothing: what it resumes from is Redis
    event = finish(kwargs)

    assert_resumed(emulator, event)
    client = redis_server.client()
    (redis_key,) = client.keys(PROGRESS_KEYS)
    assert redis_key == f"ringout:{{escalation-progress}}:progress:{key}".encode()
    assert 0 < client.pttl(redis_key) <= RESUMABLE_FOR * 1000  # expires a day after the last save
    stored = client.get(redis_key).decode()
    assert not any(number in stored for number in (FIRST, SECOND, THIRD))  # positions, not numbers
    assert json.loads(stored)["calls"][-1]["number"] == 2  # the third number, by its position


def test_redis_down_keeps_the_progress_in_the_hosts_folder_with_one_warning(
    redis_server: RedisServer,
    ringcentral_conn_env: RingCentralEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator = ringcentral_conn_env
    voicemail_no_answer_acknowledges(emulator)
    redis_server.stop()
    folder = on_host(monkeypatch, tmp_path, "a")
    with caplog.at_level(logging.WARNING):
        trigger = deferred_trigger(make_context(), per_number_timeout=3)
        _, kwargs = trigger.serialize()
        stop_while_the_second_rings(trigger, lambda: in_file(folder, trigger.progress_key))
        on_host(monkeypatch, tmp_path, "a")  # restarted on the same host, Redis still down
        event = finish(kwargs)

    assert_resumed(emulator, event)
    redis_warnings = [r.getMessage() for r in caplog.records if "Redis" in r.getMessage()]
    assert len(redis_warnings) == 1  # said once
    assert [r.name for r in caplog.records if "Redis" in r.getMessage()] == [REDIS_LOGGER]
    assert "saved progress" in redis_warnings[0] and "[ringcentral] shared_state" in redis_warnings[0]
    assert not [r for r in caplog.records if "progress cannot be saved" in r.getMessage()]  # the folder took it
    assert FIRST not in (folder / f"{PROGRESS_FILE}.json").read_text()


def test_a_save_only_the_host_got_while_redis_was_down_wins_over_redis_older_one(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    state = StateDir(tmp_path / "host-a")
    older, newer, newest = ({"index": i, "calls": []} for i in (0, 1, 2))
    assert save_progress(state, "k", older)
    redis_server.stop()
    assert save_progress(state, "k", newer)  # the host's folder only
    redis_server.start()
    redis_server.client().set("ringout:{escalation-progress}:progress:k", json.dumps(older))  # Redis kept the old
    reset_process_state()  # a new process: Redis is tried at once

    assert load_progress(state, "k") == newer
    assert save_progress(state, "k", newest)
    assert load_progress(state, "k") == newest
    assert load_progress(StateDir(tmp_path / "host-b"), "k") == newest  # another host: from Redis

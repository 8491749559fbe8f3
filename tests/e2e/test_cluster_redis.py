"""
End to end: a real Airflow cluster sharing one RingCentral login and rate budget through Redis.

CeleryExecutor with a real ``redis-server`` as the broker and as ``[ringcentral] shared_state``; two Celery
workers, each with its own home folder and token cache (two "hosts", nothing shared on disk); api-server,
scheduler and dag-processor as in ``tests/e2e/standalone.py``. A mapped DAG places 12 calls at once against the
emulator throttling as RingCentral does (Auth 5, Heavy 10, Light 50 a minute, 60 s penalty, 5 sessions). The
cluster must log in once, never be answered 429, and connect all 12 calls (the 11th and 12th wait their Heavy
slot, they do not fail). With files per host instead, each worker would log in and pace on its own.

Run: ``pytest tests/e2e/test_cluster_redis.py -q -p no:cacheprovider -x`` (about three minutes).
"""

from __future__ import annotations

import importlib.util
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_ringout.testing import TEST_CLIENT_SECRET, TEST_JWT, CallScript, RingCentralEmulator
from airflow_provider_ringout.testing.redis_server import RedisServer, redis_server_path
from tests.e2e.cluster import CeleryCluster
from tests.e2e.cluster_dags.ringout_cluster import NUMBERS

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        redis_server_path() is None
        or importlib.util.find_spec("airflow.providers.celery") is None
        or importlib.util.find_spec("airflow.providers.redis") is None,
        reason="needs redis-server (apt-get install redis-server) and the celery and redis providers (test extra)",
    ),
]

DAGS_FOLDER = Path(__file__).resolve().parent / "cluster_dags"
DAG_ID = "ringout_cluster"
TERMINAL = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def emulator() -> Iterator[RingCentralEmulator]:
    with RingCentralEmulator.with_real_limits(default_script=CallScript(after=3, talk=600, linger=600)) as rc:
        yield rc


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, emulator: RingCentralEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryCluster]:
    home = tmp_path_factory.mktemp("airflow-cluster")
    env = {
        "AIRFLOW_CONN_RINGCENTRAL_DEFAULT": emulator.connection_json(),
        "AIRFLOW_CONN_REDIS_DEFAULT": redis_server.url,
        "AIRFLOW__RINGCENTRAL__SHARED_STATE": "redis",
    }
    airflow = CeleryCluster(home, DAGS_FOLDER, redis_server.url, env, workers=2, concurrency=6)
    with airflow.serving([DAG_ID], parse_timeout=180):
        yield airflow


def test_twelve_calls_on_two_hosts_one_login_no_429(cluster: CeleryCluster, emulator: RingCentralEmulator) -> None:
    run_id = f"cluster-{uuid.uuid4().hex[:8]}"
    cluster.api("POST", f"/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": None})

    def finished() -> list[dict[str, object]] | None:
        cluster.watch_children()
        tis = cluster.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]
        done = [ti for ti in tis if ti["state"] in TERMINAL]
        return tis if len(done) == len(NUMBERS) else None

    started = time.monotonic()
    tis = cluster.wait_for("12 mapped calls to finish", finished, timeout=420, interval=2)
    elapsed = time.monotonic() - started
    states = sorted(str(ti["state"]) for ti in tis)
    assert states == ["success"] * len(NUMBERS), (states, cluster.log_tails(60))

    requests = emulator.requests
    assert sum(1 for r in requests if r.kind == "token") == 1
    assert sum(1 for r in requests if r.status == 429) == 0
    created = [r for r in requests if r.kind == "ring-out-create" and r.status == 200]
    assert len(created) == len(NUMBERS)
    assert {s.to_number for s in emulator.sessions.values()} == set(NUMBERS)
    assert all((s.status or {}).get("callStatus") == "Success" for s in emulator.sessions.values())
    # Both hosts took tasks, and neither wrote a token to its own disk: the token lives (sealed) in Redis.
    for name in cluster.worker_names:
        assert "execute_workload" in cluster.worker_log(name) or "received" in cluster.worker_log(name), name
        assert not list((cluster.worker_homes[name] / "ringcentral-cache").glob("token-*.json"))
    assert emulator.evictions == 0
    print(f"12 calls on 2 Celery workers: {elapsed:.0f} s, {len(requests)} requests to the emulator")


def test_no_secret_in_any_log(cluster: CeleryCluster, emulator: RingCentralEmulator) -> None:
    secrets = [TEST_CLIENT_SECRET, TEST_JWT, *emulator.issued_tokens]
    for path in [*cluster.service_logs(), *cluster.task_logs()]:
        text = path.read_text(errors="replace")
        assert not [s for s in secrets if s in text], path

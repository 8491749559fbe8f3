"""
Claims that cannot silence an alert: a lease for the attempt, kept for ``dedup_window`` only once delivered.

Everything talks to the RingCentral emulator over loopback; the dead-holder test SIGKILLs a real second process
frozen (by a ready-file barrier) while its first engineer rings. The Redis backend's cases are in
``test_redis_claims.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout.notifications.ringout import RingOutNotifier
from airflow_provider_ringout.state import claims as _dedup
from airflow_provider_ringout.state.sealing import claim_secret
from airflow_provider_ringout.testing import CallScript, Outcome
from tests.notifications.test_ringout_alert_design import REPO
from tests.notifications.test_ringout_notifier import (
    FIRST,
    FROM,
    SECOND,
    created,
    deleted_ids,
    fast,
    logs,
    make_context,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_ringout.testing import RingCentralEmulator

__all__ = ["logs"]


def claims_file(folder: Path) -> dict[str, Any]:
    path = folder / f"{_dedup.CLAIMS_FILE}.json"
    return json.loads(path.read_text())["claims"] if path.exists() else {}


def key_and_claims(notifier: RingOutNotifier, run: Any) -> tuple[str, Any, bytes]:
    """The incident key the notifier computes for ``run``, its state folder and its claim secret."""
    claims = notifier._claims_state()
    assert claims is not None
    return notifier._incident_key(run, notifier._numbers()), *claims


# --- nobody reached: released at once -------------------------------------------------------------------------


def test_ringcentral_unreachable_for_the_first_alert_then_back_the_next_alert_rings(
    ringcentral_conn_env: RingCentralEmulator, isolated_token_cache: Path, logs: Callable[[], str]
) -> None:
    emulator = ringcentral_conn_env
    notifier = fast(to_numbers=[FIRST], hook_params={"max_attempts": 1})
    run = make_context()
    emulator.stop()
    notifier(run)  # nobody could be called
    assert created(emulator) == []
    assert "nobody was reached" in logs()
    assert claims_file(isolated_token_cache) == {}  # released at once
    emulator.start()
    notifier(run)  # the next failing task of the run

    assert created(emulator) == [FIRST]  # before: 0 calls ("already sent ... not calling again")
    assert "already" not in logs()


def test_nobody_answered_releases_the_claim_and_a_delivered_alert_keeps_it(
    ringcentral_conn_env: RingCentralEmulator, isolated_token_cache: Path, logs: Callable[[], str]
) -> None:
    emulator = ringcentral_conn_env
    emulator.script(FIRST, CallScript(outcome=Outcome.NO_ANSWER, after=0.2))
    notifier = fast(to_numbers=[FIRST], wait_for_connection=True, per_number_timeout=10)
    run = make_context()
    notifier(run)  # rung, not reached
    assert claims_file(isolated_token_cache) == {}
    emulator.script(FIRST, CallScript(outcome=Outcome.ANSWERED, after=0.2))
    notifier(run)  # rings again, and is answered
    notifier(run)  # delivered: grouped

    assert created(emulator) == [FIRST, FIRST]  # before: 1 call (the second alert was "already sent")
    (entry,) = claims_file(isolated_token_cache).values()
    assert entry["delivered"] is True and entry["until"] > time.time() + 3500  # kept for dedup_window
    assert "was delivered within dedup_window" in logs()


def test_no_valid_number_releases_at_once(
    ringcentral_conn_env: RingCentralEmulator, isolated_token_cache: Path
) -> None:
    run = make_context()
    fast(to_numbers=["not-a-number"])(run)
    assert claims_file(isolated_token_cache) == {}


def test_an_escalation_in_progress_elsewhere_is_not_called_already_sent(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    notifier = fast(to_numbers=[FIRST])
    run = make_context()
    key, state, secret = key_and_claims(notifier, run)
    lease = _dedup.acquire(key, window=3600, lease=600, state=state, secret=secret)  # a live holder elsewhere
    assert isinstance(lease, _dedup.Lease)
    notifier(run)
    assert created(ringcentral_conn_env) == []
    assert "an escalation of this incident is in progress elsewhere" in logs()
    assert "delivered" not in logs() and "already" not in logs()
    lease.release()  # the holder reached nobody
    notifier(run)

    assert created(ringcentral_conn_env) == [FIRST]


# --- a holder that dies mid-escalation ---------------------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from types import SimpleNamespace
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.state import claims as _dedup
from airflow_provider_ringout.notifications.ringout import RingOutNotifier

run_id, folder = sys.argv[1], Path(sys.argv[2])
_dedup.LEASE_MARGIN = 1.0  # a short lease: per_number_timeout (1 s) + 1 s

def ringing(self, *args, **kwargs):  # engineer 1 rings: say so, and freeze here until SIGKILLed
    (folder / "ringing").touch()
    while True:
        time.sleep(1)

RingCentralHook.wait_for_ringout = ringing
ti = SimpleNamespace(dag_id="alerting_dag", run_id=run_id, task_id="extract", map_index=-1, try_number=1)
RingOutNotifier(
    to_numbers=sys.argv[3:], from_number="+14155550100", wait_for_connection=True, per_number_timeout=1
).notify({"ti": ti, "run_id": run_id})
"""


def test_a_holder_killed_while_engineer_1_rings_loses_the_claim_and_a_later_alert_rings(
    ringcentral_conn_env: RingCentralEmulator, tmp_path: Path, logs: Callable[[], str]
) -> None:
    emulator = ringcentral_conn_env
    emulator.script(FIRST, CallScript(outcome=Outcome.NEVER_ANSWERS))
    emulator.script(SECOND, CallScript(outcome=Outcome.ANSWERED, after=0.2))
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    run = make_context()
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    holder = subprocess.Popen(
        [sys.executable, str(script), run["run_id"], str(tmp_path), FIRST, SECOND],
        env={**os.environ, "PYTHONPATH": path},
    )
    try:
        deadline = time.monotonic() + 90
        while not (tmp_path / "ringing").exists() and holder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (tmp_path / "ringing").exists(), "the holder never rang engineer 1"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    (orphan,) = emulator.sessions  # engineer 1's call, left by the dead holder
    notifier = fast(to_numbers=[FIRST, SECOND], wait_for_connection=True, per_number_timeout=1)

    deadline = time.monotonic() + 60
    while len(created(emulator)) == 1 and time.monotonic() < deadline:  # until the dead holder's lease lapses
        notifier(run)
        time.sleep(0.2)

    assert created(emulator) == [FIRST, FIRST, SECOND]  # before: only the dead holder's call, ever
    (own,) = [rid for rid, info in emulator.sessions.items() if info.to_number == FIRST and rid != orphan]
    assert deleted_ids(emulator) == [own]  # its own unanswered call; not the one it did not place
    assert "already" not in logs()


# --- claim ids -------------------------------------------------------------------------------------------------

CLAIM_ID = """
import sys
from airflow_provider_ringout.state.sealing import claim_secret
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.state.claims import claim_id

credentials = RingCentralHook().credentials
print(claim_id(sys.argv[1], claim_secret(credentials.client_secret, credentials.jwt)))
"""


def test_claim_ids_are_keyed_by_the_connection(
    ringcentral_conn_env: RingCentralEmulator, isolated_token_cache: Path, tmp_path: Path
) -> None:
    notifier = RingOutNotifier(to_numbers=[FIRST], from_number=FROM)
    run = make_context()
    notifier(run)
    key, _state, _secret = key_and_claims(notifier, run)
    (stored,) = claims_file(isolated_token_cache)

    digest = hashlib.sha256(key.encode()).hexdigest()
    assert stored not in (key, digest, digest[:32])  # not reproducible from the key or its SHA-256
    assert FIRST not in json.dumps(claims_file(isolated_token_cache))
    script = tmp_path / "claim_id.py"
    script.write_text(CLAIM_ID)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    other_host = subprocess.run(
        [sys.executable, str(script), key],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=True,
    )
    assert other_host.stdout.split()[-1] == stored  # the same connection computes the same id in another process
    other_connection = claim_secret("another client secret", "another.jwt")
    assert _dedup.claim_id(key, other_connection) != stored


def test_a_lease_round_trips_through_json_and_acts_only_for_its_owner(
    ringcentral_conn_env: RingCentralEmulator, isolated_token_cache: Path
) -> None:
    notifier = fast(to_numbers=[FIRST])
    run = make_context()
    key, state_dir, secret = key_and_claims(notifier, run)
    lease = _dedup.acquire(key, window=3600, lease=600, state=state_dir, secret=secret)
    assert isinstance(lease, _dedup.Lease)
    data = json.loads(json.dumps(lease.to_dict()))
    assert secret.hex() not in json.dumps(data)
    with pytest.raises(ValueError, match="not made with this connection"):
        _dedup.Lease.from_dict(data, state_dir, claim_secret("another client secret", "another.jwt"))
    assert _dedup.acquire(key, window=3600, lease=600, state=state_dir, secret=secret) == _dedup.Held(False)

    other = {**data, "owner": "someone else", "check": _dedup._check(secret, lease.claim_id, "someone else", 3600.0)}
    _dedup.Lease.from_dict(other, state_dir, secret).release()  # not the owner: nothing happens
    assert _dedup.acquire(key, window=3600, lease=600, state=state_dir, secret=secret) == _dedup.Held(False)
    resumed = _dedup.Lease.from_dict(data, state_dir, secret)  # e.g. in a restarted triggerer
    resumed.deliver()
    assert _dedup.acquire(key, window=3600, lease=600, state=state_dir, secret=secret) == _dedup.Held(True)


# --- a dedup_key that fails to render ----------------------------------------------------------------------------


def test_a_dedup_key_that_fails_to_render_falls_back_to_the_default_key_and_rings(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    notifier = fast(to_numbers=[FIRST], dedup_key="{{ params.team_that_is_not_defined }}-{{ run_id }}")
    run = make_context(params={})
    notifier(run)  # before: "templates could not be rendered; no call was placed"
    first = logs()
    notifier(run)  # the default key (this run and these numbers) groups the second alert

    assert created(ringcentral_conn_env) == [FIRST]
    assert first.count("dedup_key could not be rendered") == 1 and "using the default key" in first
    assert "no call was placed" not in logs()


def test_other_templates_that_fail_to_render_still_say_no_call_was_placed(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    notifier = fast(to_numbers="{{ params.nobody }}", dedup_key="{{ params.nothing }}")
    notifier(make_context(params={}))

    assert created(ringcentral_conn_env) == []
    assert "no call was placed" in logs() and "using the default key" not in logs()

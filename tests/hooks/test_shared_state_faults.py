"""
Shared state that is unwell never stops a call: read-only and full file systems, symlinks, held locks.

The file-system tests mount a real small tmpfs in a private mount namespace (``unshare -m``, as root, as CI
runs) and place a real call through the emulator from a process inside it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.state.files import StateDir
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator

TO, FROM = "+14155550199", "+14155550100"

# Runs in a child process: places a call, reads and cancels it with two hooks, reports what it saw.
_CALL_SCRIPT = textwrap.dedent(
    """
    import json, logging, os, sys
    records = []
    class Keep(logging.Handler):
        def emit(self, record):
            records.append((record.levelname, record.getMessage()))
    logging.getLogger("airflow_provider_ringout").addHandler(Keep())
    logging.getLogger("airflow_provider_ringout").setLevel(logging.INFO)
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
    cache = sys.argv[1]
    hook = RingCentralHook(token_cache_dir=cache, backoff_factor=0.05)
    ringout_id = hook.place_ringout(to_number="+14155550199")["id"]
    hook.get_status(ringout_id)
    RingCentralHook(token_cache_dir=cache, backoff_factor=0.05).cancel_ringout(ringout_id)
    print(json.dumps({
        "id": ringout_id,
        "warnings": [m for level, m in records if level == "WARNING"],
        "files": sorted(os.listdir(cache)),
    }))
    """
)


def _in_private_tmpfs(tmp_path: Path, emulator: RingCentralEmulator, prepare: str) -> dict[str, Any]:
    """Mount a 256 KiB tmpfs at ``tmp_path/mnt`` in a private namespace, run ``prepare``, then place a call."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a real read-only or full file system needs root and unshare(1) to mount a private tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    shell = (
        f"mount -t tmpfs -o size=256k,mode=0755 tmpfs {mnt} && mkdir -m 700 {mnt}/cache && {prepare} && "
        f'exec "{sys.executable}" -c "$CALL_SCRIPT" {mnt}/cache'
    )
    env = {
        **os.environ,
        "CALL_SCRIPT": _CALL_SCRIPT,
        "AIRFLOW_CONN_RINGCENTRAL_DEFAULT": emulator.connection_json(extra={"from_number": FROM}),
    }
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a private mount namespace here: {probe.stderr.decode().strip()}")
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", shell],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["cache"] = f"{mnt}/cache"
    return result


def _assert_call_went_ahead(result: dict[str, Any], emulator: RingCentralEmulator) -> None:
    assert emulator.count(kind="ring-out-create") == 1
    assert emulator.count(kind="ring-out-delete") == 1
    unusable = [w for w in result["warnings"] if "not usable" in w]
    assert len(unusable) == 1, result["warnings"]  # one WARNING per process, naming the folder
    assert result["cache"] in unusable[0]
    assert not [f for f in result["files"] if f.endswith(".tmp")], result["files"]


def test_read_only_file_system_falls_back_and_calls(tmp_path: Path, ringcentral_emulator: RingCentralEmulator) -> None:
    result = _in_private_tmpfs(tmp_path, ringcentral_emulator, f"mount -o remount,ro {tmp_path}/mnt")
    _assert_call_went_ahead(result, ringcentral_emulator)
    assert "Read-only file system" in next(w for w in result["warnings"] if "not usable" in w)


def test_full_file_system_falls_back_and_calls(tmp_path: Path, ringcentral_emulator: RingCentralEmulator) -> None:
    fill = f"(dd if=/dev/zero of={tmp_path}/mnt/fill bs=4096 2>/dev/null; true)"
    result = _in_private_tmpfs(tmp_path, ringcentral_emulator, fill)
    _assert_call_went_ahead(result, ringcentral_emulator)
    assert "No space left on device" in next(w for w in result["warnings"] if "not usable" in w)


# --- symlinks: never followed; anything odd means "do not share" ----------------------------------------------


def _hook(monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator, cache: Path) -> RingCentralHook:
    monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", emulator.connection_json(extra={"from_number": FROM}))
    return RingCentralHook(token_cache_dir=cache, backoff_factor=0.05)


def _unusable_warnings(caplog: pytest.LogCaptureFixture, folder: Path) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "not usable" in r.getMessage() and str(folder) in r.getMessage()
    ]


def test_symlinked_cache_folder_is_not_followed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ringcentral_emulator: RingCentralEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = tmp_path / "somebody-elses-folder"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)  # noqa: S103 (a folder that must stay as it was)
    link = tmp_path / "cache"
    link.symlink_to(target)
    hook = _hook(monkeypatch, ringcentral_emulator, link)
    assert hook.place_ringout(to_number=TO)["id"]
    RingCentralHook(token_cache_dir=link).place_ringout(to_number=TO, from_number=FROM)
    assert os.stat(target).st_mode & 0o777 == 0o755  # the link's target was not chmodded
    assert list(target.iterdir()) == []  # nor written to
    assert len(_unusable_warnings(caplog, link)) == 1
    assert ringcentral_emulator.count(kind="ring-out-create") == 2


def test_planted_lock_symlink_creates_nothing_and_the_call_goes_ahead(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ringcentral_emulator: RingCentralEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = tmp_path / "cache"
    hook = _hook(monkeypatch, ringcentral_emulator, cache)
    key = hook.credentials.cache_key
    cache.mkdir(mode=0o700)
    victims = [tmp_path / "victim-token", tmp_path / "victim-rate"]
    (cache / f"token-{key}.lock").symlink_to(victims[0])
    (cache / f"rate-{key}.lock").symlink_to(victims[1])
    assert hook.place_ringout(to_number=TO)["id"]
    assert not any(v.exists() for v in victims)  # a planted link never creates its target
    assert len(_unusable_warnings(caplog, cache)) == 1
    assert ringcentral_emulator.count(kind="ring-out-create") == 1


def test_symlink_at_the_temp_file_name_falls_back(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ringcentral_emulator: RingCentralEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = tmp_path / "cache"
    hook = _hook(monkeypatch, ringcentral_emulator, cache)
    key = hook.credentials.cache_key
    cache.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    (cache / f".token-{key}.{os.getpid()}.{threading.get_ident()}.tmp").symlink_to(victim)
    assert hook.place_ringout(to_number=TO)["id"]
    assert not victim.exists()
    assert len(_unusable_warnings(caplog, cache)) == 1
    assert ringcentral_emulator.count(kind="ring-out-create") == 1


def test_unusable_folder_state_is_kept_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ringcentral_emulator: RingCentralEmulator
) -> None:
    """Falling back loses no sharing inside the process: one login for several hooks."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "cache"
    link.symlink_to(target)
    for _ in range(3):
        _hook(monkeypatch, ringcentral_emulator, link).place_ringout(to_number=TO)
    assert ringcentral_emulator.count(kind="token") == 1
    assert StateDir(link).usable is False


# --- on_kill during a token renewal ---------------------------------------------------------------------------

_KILL_SCRIPT = textwrap.dedent(
    """
    import dataclasses, logging, os, signal, sys, time
    from airflow_provider_ringout._task_mixin import RingCentralTaskMixin
    from airflow_provider_ringout.state.tokens import TokenCache
    from airflow_provider_ringout.status import RingOutWatch

    class Task(RingCentralTaskMixin):
        ringcentral_conn_id = "ringcentral_default"
        cancel_on_kill = True
        log = logging.getLogger("task")

    task = Task()
    hook = task.hook
    ringout_id = hook.place_ringout(to_number="+14155550199")["id"]
    task._watch = RingOutWatch(ringout_id)
    # The token in hand is due for renewal (near the end of its life) but still valid at the server.
    token = TokenCache._memory[hook.credentials.cache_key]
    now = time.time()
    hook._tokens.store(dataclasses.replace(token, issued_at=now - 3500, expires_at=now + 100))

    def on_sigterm(signum, frame):  # what Airflow's task runner does on SIGTERM
        task.on_kill()
        print("on_kill returned", flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    print("ready", flush=True)
    sys.stdin.readline()
    hook.get_status(ringout_id)  # renews the token: its POST gets 429 and waits, holding the token lock
    print("renewal finished first", flush=True)
    """
)


def test_sigterm_during_a_token_renewal_cancels_within_seconds(
    tmp_path: Path, ringcentral_emulator: RingCentralEmulator
) -> None:
    emulator = ringcentral_emulator
    emulator.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    env = {
        **os.environ,
        "AIRFLOW_CONN_RINGCENTRAL_DEFAULT": emulator.connection_json(extra={"from_number": FROM}),
        "AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR": str(tmp_path / "cache"),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        for line in child.stdout:  # Airflow may log to stdout first
            if line.strip() == "ready":
                break
        else:
            pytest.fail(f"the child never got ready: {child.communicate(timeout=10)[1][-2000:]}")
        emulator.inject("429", path="token", retry_after=60, times=20)
        child.stdin.write("go\n")
        child.stdin.flush()
        deadline = time.monotonic() + 20
        while emulator.count(kind="token", status=429) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert emulator.count(kind="token", status=429) == 1
        time.sleep(0.5)  # well inside the 60 s wait, which holds the token lock
        child.send_signal(signal.SIGTERM)
        killed = time.monotonic()
        while emulator.count(kind="ring-out-delete") == 0 and time.monotonic() - killed < 10:
            time.sleep(0.05)
        assert emulator.count(kind="ring-out-delete") == 1, "on_kill never sent the DELETE"
        assert time.monotonic() - killed < 5
        out, err = child.communicate(timeout=15)
        assert "on_kill returned" in out, err[-2000:]
        assert emulator.count(kind="token", status=429) == 1  # the cancel used the token in hand
        assert emulator.count(kind="ring-out-delete", status=204) == 1  # the call was stopped
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

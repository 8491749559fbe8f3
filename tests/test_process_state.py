"""reset_process_state(): one call forgets what this process kept, and the provider then behaves as in a new process."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.state import reset_process_state
from airflow_provider_ringout.state.claims import Held, Lease, acquire
from airflow_provider_ringout.state.files import StateDir, _unusable_dirs
from airflow_provider_ringout.state.tokens import TokenCache
from airflow_provider_ringout.status import classify
from airflow_provider_ringout.testing import RingCentralEmulator

TO, FROM = "+14155550199", "+14155550100"


def test_after_the_reset_a_hook_logs_in_again_and_a_broken_folder_is_said_again(
    ringcentral_conn_env: RingCentralEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    folder = blocker / "cache"  # under a file: never usable

    def a_call() -> None:
        RingCentralHook(token_cache_dir=folder).place_ringout(to_number=TO, from_number=FROM)

    with caplog.at_level(logging.WARNING, logger="airflow_provider_ringout.state.files"):
        a_call()
        a_call()  # the token in memory is used; the folder is not said again
        assert ringcentral_conn_env.count(kind="token") == 1
        assert str(folder) in _unusable_dirs and TokenCache._memory
        assert reset_process_state()
        assert not _unusable_dirs and not TokenCache._memory
        a_call()
    assert ringcentral_conn_env.count(kind="token") == 2  # nothing in memory any more: it logged in again
    assert len([r for r in caplog.records if "is not usable" in r.getMessage()]) == 2


def test_after_the_reset_this_process_holds_no_claim_and_says_an_unknown_status_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = acquire("incident", window=60, lease=60, state=None, secret=b"s")  # held in this process only
    assert isinstance(first, Lease)
    assert acquire("incident", window=60, lease=60, state=None, secret=b"s") == Held(delivered=False)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_ringout.status"):
        classify({"status": {"callStatus": "BrandNewValue"}})
        classify({"status": {"callStatus": "BrandNewValue"}})
        reset_process_state()
        classify({"status": {"callStatus": "BrandNewValue"}})
    assert len([r for r in caplog.records if "BrandNewValue" in r.getMessage()]) == 2
    assert isinstance(acquire("incident", window=60, lease=60, state=StateDir(tmp_path), secret=b"s"), Lease)

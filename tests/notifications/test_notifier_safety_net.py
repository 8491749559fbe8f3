"""
The notifier's last line of defence: a fault no inner handler expects (an odd template result, a hook that breaks
in a way nobody planned for) is logged, and never raised into Airflow's callback machinery.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.notifications.ringout import RingOutNotifier
from airflow_provider_ringout.testing import RingCentralEmulator

FROM, FIRST, SECOND, THIRD = "+14155550100", "+14155550101", "+14155550102", "+14155550103"


def failure_context() -> dict[str, Any]:
    """A failure-callback context for a run of its own."""
    ti = SimpleNamespace(
        dag_id="alerting_dag", run_id=f"manual__{uuid.uuid4()}", task_id="load", map_index=-1, try_number=1
    )
    ti.state = "failed"
    return {"ti": ti, "task_instance": ti, "run_id": ti.run_id}


def logged(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What was logged (Airflow's structlog writes to the process's output; stdlib logging to caplog)."""
    out, err = capfd.readouterr()
    return out + err + caplog.text


def test_a_nested_list_in_to_numbers_is_logged_not_raised(
    ringcentral_conn_env: RingCentralEmulator, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # A natural slip: an escalation list put inside the list, e.g. to_numbers=[PRIMARY, BACKUPS].
    notifier = RingOutNotifier(to_numbers=[FIRST, [SECOND, THIRD]], from_number=FROM)

    notifier(failure_context())  # as Airflow calls it: renders the templates, then notifies; must not raise

    assert "RingOut alert FAILED" in logged(capfd, caplog)
    assert ringcentral_conn_env.count(kind="ring-out-create") == 0


def test_a_hook_that_breaks_unexpectedly_is_logged_not_raised(
    ringcentral_conn_env: RingCentralEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No server can make the hook itself fail to build (say, a broken install): only a patch reaches it.
    def broken(self: RingCentralHook, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the hook could not be built")

    monkeypatch.setattr(RingCentralHook, "__init__", broken)
    notifier = RingOutNotifier(to_numbers=[FIRST, SECOND], from_number=FROM, wait_for_connection=True)

    notifier.notify(failure_context())  # must not raise

    text = logged(capfd, caplog)
    assert "RingOut alert FAILED" in text
    assert "the hook could not be built" in text  # the log says what went wrong
    assert ringcentral_conn_env.requests == []

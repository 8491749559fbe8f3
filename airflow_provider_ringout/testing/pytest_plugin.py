"""
pytest fixtures for the RingCentral emulator (registered through the ``pytest11`` entry point).

``ringcentral_emulator`` is a started emulator with fast call timelines (answer after 0.3 s, talk 1 s, linger
2 s); ``ringcentral_emulator_factory`` builds more with any constructor settings (rate limits, token TTL, ...);
``ringcentral_conn_env`` also points ``AIRFLOW_CONN_RINGCENTRAL_DEFAULT`` at the emulator. Everything is
stopped at teardown. Each test that uses them starts and ends with none of the provider's process state (tokens
in memory, pacer state, alert claims, warnings said once: ``airflow_provider_ringout.state.reset_process_state``),
so no test rides on an earlier test's emulator. The emulator module is imported only when a fixture runs, to keep
pytest start-up cheap.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_ringout.testing.emulator import RingCentralEmulator

CONN_ENV_VAR = "AIRFLOW_CONN_RINGCENTRAL_DEFAULT"
FAST_AFTER, FAST_TALK, FAST_LINGER = 0.3, 1.0, 2.0


@pytest.fixture
def ringcentral_emulator_factory() -> Iterator[Callable[..., RingCentralEmulator]]:
    """A function ``make(**settings)`` that starts an emulator (fast timeline unless ``default_script`` given)."""
    from airflow_provider_ringout.state import reset_process_state
    from airflow_provider_ringout.testing.emulator import CallScript, RingCentralEmulator

    reset_process_state()
    started: list[RingCentralEmulator] = []

    def make(**settings: Any) -> RingCentralEmulator:
        settings.setdefault("default_script", CallScript(after=FAST_AFTER, talk=FAST_TALK, linger=FAST_LINGER))
        emulator = RingCentralEmulator(**settings).start()
        started.append(emulator)
        return emulator

    try:
        yield make
    finally:
        for emulator in started:
            emulator.stop()
        reset_process_state()


@pytest.fixture
def ringcentral_emulator(
    ringcentral_emulator_factory: Callable[..., RingCentralEmulator],
) -> RingCentralEmulator:
    """A started emulator with fast timelines and no rate limiting, stopped after the test."""
    return ringcentral_emulator_factory()


@pytest.fixture
def ringcentral_conn_env(
    ringcentral_emulator: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch
) -> RingCentralEmulator:
    """
    The emulator, with ``AIRFLOW_CONN_RINGCENTRAL_DEFAULT`` set to its connection JSON for the test.

    Airflow asks a configured secrets backend before environment variables, so the connection is resolved the
    way the hook resolves it, and the fixture fails at once unless it points at this emulator: a test must never
    reach a real RingCentral account.
    """
    monkeypatch.setenv(CONN_ENV_VAR, ringcentral_emulator.connection_json())
    assert_connection_targets(ringcentral_emulator)
    return ringcentral_emulator


def assert_connection_targets(emulator: RingCentralEmulator, conn_id: str = "ringcentral_default") -> None:
    """Fail the test unless ``conn_id``, as the hook resolves it, points at ``emulator``."""
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook, normalize_server_url

    conn = RingCentralHook.get_connection(conn_id)
    try:
        server = normalize_server_url(conn.host, conn.port, conn_id=conn_id)
    except Exception as exc:
        server = f"an unusable host ({type(exc).__name__})"
    if server != emulator.url:
        pytest.fail(
            f"Connection {conn_id!r} resolves to {server}, not to the emulator at {emulator.url}: a secrets backend "
            f"({os.environ.get('AIRFLOW__SECRETS__BACKEND') or 'configured in airflow.cfg'}) answers before "
            f"{CONN_ENV_VAR}. Unset [secrets] backend for the tests, so they cannot reach a real RingCentral account.",
            pytrace=False,
        )

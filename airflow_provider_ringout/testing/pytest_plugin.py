"""
pytest fixtures for the RingCentral emulator (registered through the ``pytest11`` entry point).

``ringcentral_emulator`` is a started emulator with fast call timelines (answer after 0.3 s, talk 1 s, linger
2 s); ``ringcentral_emulator_factory`` builds more with any constructor settings (rate limits, token TTL, ...);
``ringcentral_conn_env`` also points ``AIRFLOW_CONN_RINGCENTRAL_DEFAULT`` at the emulator. Everything is
stopped at teardown. The emulator module is imported only when a fixture runs, to keep pytest start-up cheap.
"""

from __future__ import annotations

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
    from airflow_provider_ringout.testing.emulator import CallScript, RingCentralEmulator

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
    """The emulator, with ``AIRFLOW_CONN_RINGCENTRAL_DEFAULT`` set to its connection JSON for the test."""
    monkeypatch.setenv(CONN_ENV_VAR, ringcentral_emulator.connection_json())
    return ringcentral_emulator

"""
Test tooling: a local RingCentral emulator (a real HTTP server on loopback) and pytest fixtures.

Use it to exercise the hook, operators, sensors and triggers end to end without a RingCentral account::

    from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator

    with RingCentralEmulator() as rc:
        rc.script("+14155550123", Outcome.BUSY, after=0.5)
        conn_json = rc.connection_json()  # put it in AIRFLOW_CONN_RINGCENTRAL_DEFAULT
        ...
        assert rc.count("POST", "ring-out-create") == 1

The fixtures ``ringcentral_emulator``, ``ringcentral_emulator_factory`` and ``ringcentral_conn_env`` come from
:mod:`airflow_provider_ringout.testing.pytest_plugin`; ``python -m airflow_provider_ringout.testing`` runs the
emulator stand-alone, driven over HTTP through ``/_emulator/``.

Names are loaded on first use, so importing this package (as pytest does for the plugin) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_ringout.testing.emulator import (
        TEST_ACCOUNT_ID,
        TEST_CLIENT_ID,
        TEST_CLIENT_SECRET,
        TEST_EXTENSION_ID,
        TEST_JWT,
        CallScript,
        Outcome,
        RecordedRequest,
        RingCentralEmulator,
        SessionInfo,
    )

__all__ = [
    "TEST_ACCOUNT_ID",
    "TEST_CLIENT_ID",
    "TEST_CLIENT_SECRET",
    "TEST_EXTENSION_ID",
    "TEST_JWT",
    "CallScript",
    "Outcome",
    "RecordedRequest",
    "RingCentralEmulator",
    "SessionInfo",
]


def __getattr__(name: str) -> Any:
    """Import the emulator module only when one of its names is asked for."""
    if name in __all__:
        from airflow_provider_ringout.testing import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

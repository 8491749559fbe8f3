"""Make the emulator fixtures available even when the package (and its pytest11 entry point) is not installed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_ringout.testing import pytest_plugin

if TYPE_CHECKING:
    import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin module unless the entry point already did."""
    if not config.pluginmanager.is_registered(pytest_plugin):
        config.pluginmanager.register(pytest_plugin, "ringcentral_emulator_local")

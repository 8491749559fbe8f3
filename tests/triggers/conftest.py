"""Trigger tests get a short timeout of their own: a deadline measured on the wrong clock must fail, not hang."""

from __future__ import annotations

from pathlib import Path

import pytest

TRIGGER_TEST_TIMEOUT = 30  # seconds; each trigger test waits a few at most
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test of this folder the short timeout, unless it sets its own."""
    for item in items:
        if HERE in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TRIGGER_TEST_TIMEOUT))

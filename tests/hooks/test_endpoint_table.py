"""The endpoint table itself: one row per endpoint, and the retry core reading its rules (no I/O here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_provider_ringout.hooks._transport import retry_policy
from airflow_provider_ringout.hooks.endpoints import Endpoint, NotFound, RateGroup

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_ringout"


def test_no_request_rule_is_keyed_by_the_http_method() -> None:
    """What may be resent and what an answer means come from the table, never from ``method == "POST"``."""
    keyed = re.compile(r"""[!=]= *["'](POST|GET|DELETE)["']""")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "endpoints.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if keyed.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize("endpoint", list(Endpoint))
def test_the_retry_policy_follows_the_rows_resend_rule(endpoint: Endpoint) -> None:
    policy = retry_policy(endpoint, attempts=3, backoff_factor=0)
    assert policy.is_retry(endpoint.method, 503) is endpoint.resendable


def test_the_rows() -> None:
    """The facts each row states (RingCentral's docs and spec; the spec check is tests/test_contract.py)."""
    rows = {e.value: (e.method, e.group, e.permission, e.resendable, e.rules.not_found) for e in Endpoint}
    assert rows == {
        "token": ("POST", "Auth", None, True, NotFound.ERROR),
        "revoke": ("POST", "Auth", None, False, NotFound.ERROR),
        "ring-out-create": ("POST", "Heavy", "RingOut", False, NotFound.ERROR),
        "ring-out-get": ("GET", "Light", "RingOut", True, NotFound.GONE),
        "ring-out-delete": ("DELETE", "Heavy", "RingOut", True, NotFound.GONE),
        "call-log": ("GET", "Heavy", "ReadCallLog", True, NotFound.ERROR),
        "call-log-sync": ("GET", "Heavy", "ReadCallLog", True, NotFound.ERROR),
    }
    assert Endpoint.named("call-log") is Endpoint.CALL_LOG is Endpoint.named(Endpoint.CALL_LOG)
    assert Endpoint.CALL_LOG == "call-log" and f"{Endpoint.CALL_LOG}" == "call-log"
    assert {e.rules.group for e in Endpoint} <= set(RateGroup)
    assert Endpoint.CALL_LOG.path({"extensionId": 62}) == "/restapi/v1.0/account/~/extension/62/call-log"

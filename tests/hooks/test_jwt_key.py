"""
The JWT's extra key: ``jwt_token``, which Airflow redacts by name, and the legacy ``jwt``, still read with a warning.

Airflow hides a connection extra's value when its key contains a sensitive word (``token``, ``secret``, ...):
these tests check that Airflow's own rules, with no ``sensitive_var_conn_names`` setting, hide the key we store the
JWT under, and that connections saved by earlier releases keep placing calls while saying, once per process, how
to move the JWT out of sight.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout import JWT_FIELD, get_provider_info
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.testing import TEST_CLIENT_SECRET, TEST_JWT

if TYPE_CHECKING:
    from airflow_provider_ringout.testing import RingCentralEmulator

TO, FROM = "+14155550199", "+14155550100"
OTHER_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvdGhlciJ9.c2lnbmF0dXJl"  # well-formed, not the emulator's
HOOK_LOGGER = "airflow_provider_ringout.hooks._connection"


@pytest.fixture(autouse=True)
def fresh_process_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """The once-per-process warning is reset with the rest of the process state (conftest)."""
    monkeypatch.delenv("AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES", raising=False)


def set_connection(monkeypatch: pytest.MonkeyPatch, emulator: RingCentralEmulator, extra: dict[str, Any]) -> None:
    """``ringcentral_default`` for the emulator with exactly this ``extra`` (nothing merged in)."""
    conn = json.loads(emulator.connection_json())
    conn["extra"] = extra
    monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", json.dumps(conn))


def legacy_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and "extra key 'jwt'" in r.getMessage()]


def test_everything_shipped_names_jwt_token() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    assert JWT_FIELD == "jwt_token"
    assert set(conn_type["conn-fields"]) == {"jwt_token", "from_number"}
    assert "jwt_token" in conn_type["ui-field-behaviour"]["placeholders"]
    assert "jwt" not in conn_type["conn-fields"] and "jwt" not in conn_type["ui-field-behaviour"]["placeholders"]


def test_airflow_redacts_jwt_token_with_no_setting() -> None:
    """Airflow's own REST API model (what GET /api/v2/connections/{id} returns) hides jwt_token, not jwt."""
    from airflow.api_fastapi.core_api.datamodels.connections import ConnectionResponse

    def shown(extra: dict[str, str]) -> dict[str, str]:
        response = ConnectionResponse.model_validate(
            {
                "conn_id": "ringcentral_default",
                "conn_type": "ringcentral",
                "description": None,
                "host": None,
                "login": "client-id",
                "schema": None,
                "port": None,
                "password": TEST_CLIENT_SECRET,
                "team_name": None,  # Airflow 3.3 adds it; older models ignore it
                "extra": json.dumps(extra),
            }
        )
        assert response.password == "***"
        return json.loads(response.extra or "{}")

    # A JWT no earlier test registered with this process's masker (a registered value is hidden whatever its key).
    jwt = f"eyJhbGciOiJSUzI1NiJ9.eyJ{uuid.uuid4().hex}.c2ln"
    assert shown({JWT_FIELD: jwt, "from_number": FROM}) == {JWT_FIELD: "***", "from_number": FROM}
    # Why the key changed: the old one is returned in clear to everyone who may read connections.
    assert shown({"jwt": jwt}) == {"jwt": jwt}


def test_jwt_token_places_a_call_without_warning(
    monkeypatch: pytest.MonkeyPatch, ringcentral_emulator: RingCentralEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    set_connection(monkeypatch, ringcentral_emulator, {JWT_FIELD: TEST_JWT, "from_number": FROM})
    with caplog.at_level(logging.WARNING, logger=HOOK_LOGGER):
        assert RingCentralHook().place_ringout(to_number=TO)["id"]
    assert ringcentral_emulator.count("POST", "ring-out-create") == 1
    assert legacy_warnings(caplog) == []


@pytest.mark.parametrize("legacy_key", ["jwt", "extra__ringcentral__jwt"])
def test_legacy_key_still_places_a_call_and_warns_once(
    monkeypatch: pytest.MonkeyPatch,
    ringcentral_emulator: RingCentralEmulator,
    caplog: pytest.LogCaptureFixture,
    legacy_key: str,
) -> None:
    set_connection(monkeypatch, ringcentral_emulator, {legacy_key: TEST_JWT, "from_number": FROM})
    with caplog.at_level(logging.WARNING, logger=HOOK_LOGGER):
        for _ in range(3):  # three hooks in one process (a notifier, a mapped task...): one warning
            assert RingCentralHook().place_ringout(to_number=TO)["id"]
    assert ringcentral_emulator.count("POST", "ring-out-create", 200) == 3
    (warning,) = legacy_warnings(caplog)
    text = warning.getMessage()
    assert "'ringcentral_default'" in text
    assert "jwt_token" in text and "REST API" in text
    assert TEST_JWT not in text


def test_jwt_token_wins_over_the_legacy_key(
    monkeypatch: pytest.MonkeyPatch, ringcentral_emulator: RingCentralEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Both keys: the new one is used; the old one still shows in clear, so the warning still asks to delete it."""
    set_connection(monkeypatch, ringcentral_emulator, {JWT_FIELD: TEST_JWT, "jwt": OTHER_JWT})
    with caplog.at_level(logging.WARNING, logger=HOOK_LOGGER):
        ok, message = RingCentralHook().test_connection()
    assert ok is True, message
    assert len(legacy_warnings(caplog)) == 1


def test_errors_name_the_key_that_was_read(monkeypatch: pytest.MonkeyPatch, ringcentral_emulator: Any) -> None:
    set_connection(monkeypatch, ringcentral_emulator, {})
    ok, message = RingCentralHook().test_connection()
    assert ok is False and "extra field 'jwt_token' is empty" in message
    set_connection(monkeypatch, ringcentral_emulator, {"jwt": "my-jwt-name"})
    ok, message = RingCentralHook().test_connection()
    assert ok is False and "extra field 'jwt' is not a JWT" in message
    assert ringcentral_emulator.requests == []

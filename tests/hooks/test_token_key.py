"""
A token belongs to one credential: server, client ID *and* JWT. Two connections to one emulator, same server and
app, different JWTs: the second never rides on the first one's token.
"""

from __future__ import annotations

import pytest

from airflow_provider_ringout.exceptions import RingCentralAuthError
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.testing import TEST_JWT, RingCentralEmulator

TO, FROM = "+14155550199", "+14155550100"
OTHER_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvdGhlciJ9.c2lnbmF0dXJl"
OTHER_CONN_ID = "ringcentral_other"


def connection_with_jwt(emulator: RingCentralEmulator, jwt: str) -> str:
    """The emulator's own connection JSON (same server, client ID and secret), holding ``jwt`` instead."""
    accepted = emulator.jwt
    emulator.jwt = jwt  # connection_json() writes the emulator's JWT wherever the hook reads it
    try:
        return emulator.connection_json(extra={"from_number": FROM})
    finally:
        emulator.jwt = accepted


@pytest.fixture
def first(monkeypatch: pytest.MonkeyPatch, ringcentral_emulator: RingCentralEmulator) -> RingCentralHook:
    """The default connection, logged in and with a call placed: its token is in the cache."""
    monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", connection_with_jwt(ringcentral_emulator, TEST_JWT))
    hook = RingCentralHook()
    hook.place_ringout(to_number=TO)
    assert ringcentral_emulator.count(kind="token") == 1
    return hook


def logins(emulator: RingCentralEmulator) -> list[tuple[str | None, int]]:
    """Each token request: the JWT it presented, and the answer's status."""
    return [((r.form or {}).get("assertion"), r.status) for r in emulator.requests if r.kind == "token"]


def test_another_jwt_of_the_same_app_logs_in_on_its_own(
    first: RingCentralHook, ringcentral_emulator: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = ringcentral_emulator
    monkeypatch.setenv(f"AIRFLOW_CONN_{OTHER_CONN_ID.upper()}", connection_with_jwt(emulator, OTHER_JWT))
    emulator.jwt = OTHER_JWT  # the server now accepts the other credential (say, the JWT was rotated)

    RingCentralHook(ringcentral_conn_id=OTHER_CONN_ID).place_ringout(to_number=TO)

    assert logins(emulator) == [(TEST_JWT, 200), (OTHER_JWT, 200)]
    assert emulator.count(kind="ring-out-create", status=200) == 2
    first.place_ringout(to_number=TO)  # the first connection keeps its own token: no third login
    assert emulator.count(kind="token") == 2


def test_a_bad_jwt_is_refused_even_though_the_app_holds_a_token(
    first: RingCentralHook, ringcentral_emulator: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = ringcentral_emulator
    monkeypatch.setenv(f"AIRFLOW_CONN_{OTHER_CONN_ID.upper()}", connection_with_jwt(emulator, OTHER_JWT))

    with pytest.raises(RingCentralAuthError, match="invalid_grant"):
        RingCentralHook(ringcentral_conn_id=OTHER_CONN_ID).place_ringout(to_number=TO)

    assert logins(emulator) == [(TEST_JWT, 200), (OTHER_JWT, 400)]
    assert emulator.count(kind="ring-out-create") == 1  # nothing was placed on the first connection's token
    first.place_ringout(to_number=TO)  # and the refusal cost the first connection nothing
    assert emulator.count(kind="token") == 2

"""Talking to the emulator over HTTP as a RingCentral client would, for tests that check the emulator itself."""

from __future__ import annotations

import requests

from airflow_provider_ringout.testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET, TEST_JWT, RingCentralEmulator

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TIMEOUT = 10


def get_token(emulator: RingCentralEmulator, **form: str) -> requests.Response:
    """POST the JWT grant with Basic client auth (form fields may be overridden)."""
    data = {"grant_type": JWT_GRANT, "assertion": TEST_JWT, **form}
    return requests.post(
        f"{emulator.url}/restapi/oauth/token",
        data=data,
        auth=(TEST_CLIENT_ID, TEST_CLIENT_SECRET),
        timeout=TIMEOUT,
    )


def api(emulator: RingCentralEmulator, token: str | None = None) -> requests.Session:
    """A session carrying a fresh (or the given) bearer token."""
    if token is None:
        answer = get_token(emulator)
        answer.raise_for_status()
        token = answer.json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session

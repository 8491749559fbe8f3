"""The emulated account and the credentials it accepts: constants a test can put in a connection."""

from __future__ import annotations

import base64
import json

TEST_CLIENT_ID = "emulator-client-id"
TEST_CLIENT_SECRET = "emulator-client-secret-7d1f0c9b5a3e"
TEST_ACCOUNT_ID = "37439510"
TEST_EXTENSION_ID = "256440016"

JWT_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REFRESH_TOKEN_TTL = 604800


def _b64url(data: bytes) -> str:
    """Base64url without padding, as JWT segments are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _make_test_jwt() -> str:
    """A syntactically valid (but unsigned) JWT credential; deterministic so it can be a constant."""
    header = {"alg": "RS256", "typ": "JWT"}
    payload = {
        "iss": "https://platform.ringcentral.com",
        "sub": TEST_EXTENSION_ID,
        "aud": "https://platform.ringcentral.com/restapi/oauth/token",
        "iat": 1700000000,
        "exp": 4102444800,  # 2100-01-01: never expires during a test run
        "jti": "emulator-test-jwt",
    }
    segments = [
        _b64url(json.dumps(header, separators=(",", ":")).encode()),
        _b64url(json.dumps(payload, separators=(",", ":")).encode()),
        _b64url(b"emulator-fake-signature-not-verifiable"),
    ]
    return ".".join(segments)


TEST_JWT = _make_test_jwt()

"""
Access tokens at rest, sealed with AES-GCM under a key only the connection's holder can derive.

The key is HKDF-SHA256 (:func:`derive_key`, which also keys alert claim ids, with its own label) over the client
secret and the JWT (salted with the credential's cache key), so a reader of the token cache folder or of Redis
who lacks the connection learns nothing usable: not the token, and not whether two records hold the same one
(every seal has a fresh nonce). The record is bound to its credential by the cache key as associated data, so a
record copied under another credential's name does not open.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from airflow_provider_ringout.state.tokens import Token

if TYPE_CHECKING:
    from collections.abc import Mapping

FORMAT = "aes-256-gcm/hkdf-sha256/v1"
_INFO = b"airflow-provider-ringout access token at rest v1"
_CLAIM_INFO = b"airflow-provider-ringout alert claim ids v1"


def derive_key(client_secret: str, jwt: str, *, salt: bytes, info: bytes) -> bytes:
    """A 32-byte key from the connection's secrets (HKDF-SHA256): only a holder of the connection can derive it."""
    material = f"{client_secret}\n{jwt}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(material)


def claim_secret(client_secret: str, jwt: str) -> bytes:
    """The key of alert claim ids (see :mod:`.claims`): the same for one connection on every host."""
    return derive_key(client_secret, jwt, salt=b"", info=_CLAIM_INFO)


class TokenSealer:
    """
    Seals and opens :class:`Token` records of one credential.

    :param key: the credential's cache key (names and binds the records).
    :param client_secret: the connection's client secret (key material).
    :param jwt: the connection's JWT (key material).
    """

    def __init__(self, key: str, client_secret: str, jwt: str) -> None:
        self.key = key
        self._aead = AESGCM(derive_key(client_secret, jwt, salt=key.encode(), info=_INFO))

    def __repr__(self) -> str:
        return f"TokenSealer(key={self.key!r})"

    def seal(self, token: Token) -> dict[str, Any]:
        """A JSON-ready record of ``token``: the credential's key, the format, a nonce and the ciphertext."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, json.dumps(asdict(token)).encode(), self.key.encode())
        return {
            "key": self.key,
            "format": FORMAT,
            "nonce": base64.b64encode(nonce).decode(),
            "sealed": base64.b64encode(sealed).decode(),
        }

    def open(self, record: Mapping[str, Any] | None) -> Token | None:
        """The token in a record made by :meth:`seal`; None if absent, foreign, tampered with or plaintext."""
        if not record or record.get("key") != self.key or record.get("format") != FORMAT:
            return None
        try:
            nonce = base64.b64decode(str(record["nonce"]), validate=True)
            plain = self._aead.decrypt(nonce, base64.b64decode(str(record["sealed"]), validate=True), self.key.encode())
            data = json.loads(plain)
        except (KeyError, ValueError, InvalidTag):
            return None
        return Token.from_cache(data) if isinstance(data, dict) else None

"""
The access token, and its cache shared by the threads of a process and the processes of a host.

:class:`Token` is what RingCentral said about an access token (never the JWT, the client secret or a refresh
token). :class:`TokenCache` keeps one per credential: in this process's memory, and in the host's state folder
(:mod:`.files`), written only sealed (:mod:`.sealing`), so N tasks starting together log in once and never evict
each other's sessions.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from airflow_provider_ringout._process import process_cache
from airflow_provider_ringout.state.files import urgent

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_ringout.state.files import StateDir


class Sealer(Protocol):
    """Seals a token for storage and opens it again (:class:`~.sealing.TokenSealer`)."""

    def seal(self, token: Token) -> dict[str, Any]: ...

    def open(self, record: Mapping[str, Any] | None) -> Token | None: ...


@dataclass(frozen=True)
class Token:
    """An access token and what RingCentral said about it. Never holds the JWT, the client secret or a refresh token."""

    access_token: str
    expires_at: float
    issued_at: float
    scope: str = ""
    owner_id: str | None = None
    session_id: str | None = None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())

    def fresh(self, now: float | None = None) -> bool:
        """Valid for a while yet: renewal starts a fifth of the lifetime (at most 5 min) before expiry."""
        now = time.time() if now is None else now
        margin = min(300.0, (self.expires_at - self.issued_at) / 5)
        return now < self.expires_at - margin

    @classmethod
    def from_cache(cls, data: Mapping[str, Any]) -> Token | None:
        try:
            token = cls(
                access_token=str(data["access_token"]),
                expires_at=float(data["expires_at"]),
                issued_at=float(data["issued_at"]),
                scope=str(data.get("scope") or ""),
                owner_id=None if data.get("owner_id") is None else str(data["owner_id"]),
                session_id=None if data.get("session_id") is None else str(data["session_id"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return token if token.access_token and math.isfinite(token.expires_at) else None


class TokenCache:
    """One access token per credential, shared by the threads of this process and the processes of this host."""

    # credential key -> its token, for every hook of this process
    _memory: ClassVar[dict[str, Token]] = process_cache(__name__, "TokenCache._memory", {})

    def __init__(self, state: StateDir, key: str, sealer: Sealer | None = None) -> None:
        self.state = state
        self.key = key
        self.name = f"token-{key}"
        self.sealer = sealer  # the hook always passes one: the token is then written only encrypted

    def _open(self, cached: Mapping[str, Any] | None) -> Token | None:
        if self.sealer is not None:
            return self.sealer.open(cached)
        return Token.from_cache(cached) if cached and cached.get("key") == self.key else None

    def _record(self, token: Token) -> dict[str, Any]:
        return self.sealer.seal(token) if self.sealer is not None else {"key": self.key, **asdict(token)}

    def peek(self) -> Token | None:
        """The in-process token if still fresh; no I/O, safe on an event loop."""
        token = self._memory.get(self.key)
        return token if token is not None and token.fresh() else None

    def in_hand(self) -> Token | None:
        """The in-process token if not yet expired, even when due for renewal (for :func:`bounded_waits`)."""
        token = self._memory.get(self.key)
        return token if token is not None and time.time() < token.expires_at else None

    def get(self, login: Any, *, invalid: str | None = None) -> Token:
        """
        A fresh token: from memory, else from the host-wide file, else by calling ``login()`` under the lock.

        ``invalid`` is an access token the server refused: it is never handed out again, but a newer token
        another process already fetched is used instead of logging in once more. Inside :func:`bounded_waits`
        a token in hand that has not expired is used rather than renewing (a renewal may hold the lock).
        """
        token = self.in_hand() if urgent() else self.peek()
        if token is not None and token.access_token != invalid:
            return token
        with self.state.locked(self.name):
            cached = self.state.read(self.name)
            token = self._open(cached)
            if token is None or not token.fresh() or token.access_token == invalid:
                token = login()
                self.state.write(self.name, self._record(token))
            self._memory[self.key] = token
            return token

    def store(self, token: Token) -> None:
        """Share a token obtained outside :meth:`get` (a connection test)."""
        with self.state.locked(self.name):
            self.state.write(self.name, self._record(token))
            self._memory[self.key] = token

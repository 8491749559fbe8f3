"""
Host-wide state shared by every process that uses the same RingCentral credential.

Two small JSON files per credential, each guarded by an ``flock``: the access token (so N tasks starting
together log in once, and never evict each other's sessions) and the rate-limit pacer (so processes on one
host share RingCentral's per-user budget and nobody sends during a 429 penalty, which would extend it).
Files are 0600 in a 0700 folder; a file that is corrupt, foreign or readable by others is ignored, never trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import stat
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from airflow_provider_ringout.hooks._token_crypto import TokenSealer

log = logging.getLogger(__name__)

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def default_cache_dir() -> Path:
    """``[ringcentral] token_cache_dir`` if set, else ``~/.cache/airflow-provider-ringout``."""
    from airflow.providers.common.compat.sdk import conf

    configured = conf.get("ringcentral", "token_cache_dir", fallback="") or ""
    if configured.strip():
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "airflow-provider-ringout"


class StateDir:
    """A private folder (0700, owned by us) holding lock-guarded JSON files; unusable folders disable sharing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.usable = self._prepare()

    def _prepare(self) -> bool:
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.path.stat()
            if info.st_uid != os.getuid():
                log.warning("Token cache folder %s belongs to another user; not sharing tokens.", self.path)
                return False
            if stat.S_IMODE(info.st_mode) & 0o077:
                os.chmod(self.path, 0o700)
            return True
        except OSError as exc:
            log.warning("Token cache folder %s is not usable (%s); not sharing tokens.", self.path, exc)
            return False

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """Hold the host-wide lock ``name`` (and a thread lock, as flock alone does not order threads)."""
        with _thread_locks_guard:
            thread_lock = _thread_locks.setdefault(f"{self.path}/{name}", threading.Lock())
        with thread_lock:
            if not self.usable:
                yield
                return
            fd = os.open(self.path / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def read(self, name: str) -> dict[str, Any] | None:
        """The JSON object in ``name``, or None if absent, corrupt, foreign or not private."""
        if not self.usable:
            return None
        file = self.path / f"{name}.json"
        try:
            fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("Ignoring cache file %s: %s", file, exc)
            return None
        try:
            info = os.fstat(fd)
            if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
                log.warning("Ignoring cache file %s: not private to this user (mode must be 0600).", file)
                return None
            with os.fdopen(fd, "rb", closefd=False) as handle:
                data = json.loads(handle.read(1 << 20))
        except (OSError, ValueError) as exc:
            log.warning("Ignoring unreadable cache file %s: %s", file, type(exc).__name__)
            return None
        finally:
            os.close(fd)
        return data if isinstance(data, dict) else None

    def write(self, name: str, data: Mapping[str, Any]) -> None:
        """Replace ``name`` atomically with a 0600 file."""
        if not self.usable:
            return
        tmp = self.path / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, self.path / f"{name}.json")


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

    _memory: dict[str, Token] = {}

    def __init__(self, state: StateDir, key: str, sealer: TokenSealer | None = None) -> None:
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

    def get(self, login: Any, *, invalid: str | None = None) -> Token:
        """
        A fresh token: from memory, else from the host-wide file, else by calling ``login()`` under the lock.

        ``invalid`` is an access token the server refused: it is never handed out again, but a newer token
        another process already fetched is used instead of logging in once more.
        """
        token = self.peek()
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


class RatePacer:
    """
    Keeps one credential within RingCentral's per-group limits, host-wide.

    Limits and windows are learned from the ``X-Rate-Limit-*`` headers; a 429 blocks its group for
    ``Retry-After`` seconds for every process. Sends are logged per group so the budget of a window is used
    fully but not exceeded. A group whose answers carry no such headers (the emulator without limits) is marked
    unlimited, and then costs one ``stat()`` per request instead of a locked rewrite of the shared file.
    """

    # Our clock starts a little before the server's: wait this much longer than the window to stay inside it.
    SLACK = 0.05
    # Sends remembered while the limit is unknown (it is learned from the first answer's headers).
    MAX_TRACKED = 100

    def __init__(self, state: StateDir, key: str) -> None:
        self.state = state
        self.name = f"rate-{key}"
        self._memory: dict[str, Any] = {}
        self._view: dict[str, Any] = {}
        self._seen: tuple[int, int, int] | str | None = "never read"

    def _load(self) -> dict[str, Any]:
        data = self.state.read(self.name) if self.state.usable else self._memory
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, Any]) -> None:
        if self.state.usable:
            self.state.write(self.name, data)
        else:
            self._memory = data

    def _peek(self) -> dict[str, Any]:
        """The shared state without the lock, re-read only when the file changed (writers replace it atomically)."""
        if not self.state.usable:
            return self._memory
        try:
            info = os.stat(self.state.path / f"{self.name}.json")
            signature: tuple[int, int, int] | None = (info.st_ino, info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            signature = None
        if signature != self._seen:
            self._view = (self.state.read(self.name) or {}) if signature else {}
            self._seen = signature
        return self._view

    def reserve_nowait(self, group: str) -> float | None:
        """0 when ``group`` is unlimited and not blocked (no lock, no write, safe on an event loop); else None."""
        entry = self._peek().get(group) or {}
        if entry.get("unlimited") and not entry.get("limit") and time.time() >= float(entry.get("blocked_until", 0)):
            return 0.0
        return None

    def reserve(self, group: str) -> float:
        """Record a send in ``group`` and return 0, or return how long to wait before trying again."""
        fast = self.reserve_nowait(group)
        if fast is not None:
            return fast
        with self.state.locked(self.name):
            data = self._load()
            entry = data.setdefault(group, {})
            now = time.time()
            blocked_until = float(entry.get("blocked_until", 0))
            if now < blocked_until:
                return blocked_until - now
            limit, window = entry.get("limit"), float(entry.get("window", 60))
            sent = [t for t in entry.get("sent", []) if t > now - window - self.SLACK * window]
            if limit and len(sent) >= int(limit):
                return float(sent[len(sent) - int(limit)] + window * (1 + self.SLACK) - now)
            sent.append(now)
            entry["sent"] = sent[-(int(limit) if limit else self.MAX_TRACKED) :]
            self._save(data)
            return 0.0

    def observe(self, group: str, headers: Mapping[str, str], *, penalty: float | None = None) -> None:
        """Learn the limit from a response's headers; ``penalty`` (a 429's wait) blocks the group host-wide."""
        limit, window = headers.get("X-Rate-Limit-Limit"), headers.get("X-Rate-Limit-Window")
        remaining = headers.get("X-Rate-Limit-Remaining")
        if penalty is None and limit is None:
            entry = self._peek().get(group) or {}
            if not entry.get("unlimited") and not entry.get("limit"):
                with self.state.locked(self.name):
                    data = self._load()
                    data.setdefault(group, {})["unlimited"] = True
                    self._save(data)
            return
        with self.state.locked(self.name):
            data = self._load()
            entry = data.setdefault(group, {})
            now = time.time()
            with contextlib.suppress(ValueError):
                if limit is not None:
                    entry["limit"] = int(limit)
                    entry.pop("unlimited", None)
                if window is not None:
                    entry["window"] = float(window)
                if remaining is not None and int(remaining) <= 0 and penalty is None:
                    # Someone else (another host) used the budget: wait out the window from our oldest send.
                    win = float(entry.get("window", 60))
                    sent = [t for t in entry.get("sent", []) if t > now - win] or [now]
                    entry["blocked_until"] = max(float(entry.get("blocked_until", 0)), sent[0] + win)
            if penalty is not None:
                entry["blocked_until"] = max(float(entry.get("blocked_until", 0)), now + penalty)
            self._save(data)

    def needs_lock(self, group: str, headers: Mapping[str, str], status: int) -> bool:
        """Whether :meth:`observe` of this answer may take the file lock (then keep it off an event loop)."""
        if status == 429 or headers.get("X-Rate-Limit-Limit") is not None:
            return True
        entry = self._peek().get(group) or {}
        return not entry.get("unlimited") and not entry.get("limit")

"""
Host-wide state shared by every process that uses the same RingCentral credential.

Two small JSON files per credential, each guarded by an ``flock``: the access token (so N tasks starting
together log in once, and never evict each other's sessions) and the rate-limit pacer (so processes on one
host share RingCentral's per-user budget and nobody sends during a 429 penalty, which would extend it).
Files are 0600 in a 0700 folder; a file that is corrupt, foreign or readable by others is ignored, never trusted.

Sharing is an optimisation, never a condition for a call: any OS error in the folder (read-only or full file
system, permissions) and anything odd in it (a symlink, a file of another user) switch this process to
in-process state for that folder, with one WARNING. Nothing in the folder is opened through a symlink.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
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
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard

from airflow_provider_ringout.hooks._wait_end import lock_wait

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from airflow_provider_ringout.hooks._token_crypto import TokenSealer

log = logging.getLogger(__name__)

# No pacer wait is ever longer than this (RingCentral's penalty is 60 s): a bogus Retry-After, a corrupt file or
# a wall clock stepped back cannot block a group for hours.
MAX_WAIT = 300.0
# Locks held by code a signal interrupted (on_kill runs in Airflow's SIGTERM handler) are waited on this long.
URGENT_LOCK_WAIT = 2.0

# dict.setdefault is atomic under the GIL: no guard lock that a signal handler could find held.
_thread_locks: dict[str, threading.Lock] = {}
_lock_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar("ringout_lock_timeout", default=None)
# Folders that failed in this process (and were warned about once): in-process state from then on.
_unusable_dirs: set[str] = set()


def default_cache_dir() -> Path:
    """``[ringcentral] token_cache_dir`` if set, else ``~/.cache/airflow-provider-ringout``."""
    from airflow.providers.common.compat.sdk import conf

    configured = conf.get("ringcentral", "token_cache_dir", fallback="") or ""
    if configured.strip():
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "airflow-provider-ringout"


@contextlib.contextmanager
def bounded_waits(seconds: float = URGENT_LOCK_WAIT) -> Iterator[None]:
    """
    Within this block no shared-state lock is waited on longer than ``seconds``, and a token in hand is used.

    For code that may run on top of an interrupted frame holding those locks (a signal handler): after the
    wait it goes ahead without the lock rather than deadlock.
    """
    reset = _lock_timeout.set(seconds)
    try:
        yield
    finally:
        _lock_timeout.reset(reset)


def urgent() -> bool:
    """Whether the caller is inside :func:`bounded_waits`."""
    return _lock_timeout.get() is not None


class _UnsafeState(OSError):
    """Something in the folder is not what we created (a symlink, another owner, not a regular file)."""


class StateDir:
    """A private folder (0700, owned by us) holding lock-guarded JSON files; unusable folders disable sharing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.usable = str(path) not in _unusable_dirs and self._prepare()

    def _give_up(self, exc: BaseException | str) -> None:
        """Stop sharing through this folder in this process; the first time, say why in one WARNING."""
        self.usable = False
        why = exc if isinstance(exc, str) else (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
        if str(self.path) not in _unusable_dirs:
            _unusable_dirs.add(str(self.path))
            log.warning(
                "Token cache folder %s is not usable (%s): this process keeps its RingCentral token and "
                "rate-limit state in memory instead of sharing them host-wide. Calls go ahead.",
                self.path,
                why,
            )

    def _prepare(self) -> bool:
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = self._open_dir(fix_mode=True)
        except OSError as exc:
            self._give_up(exc)
            return False
        os.close(fd)
        return True

    def _open_dir(self, *, fix_mode: bool = False) -> int:
        """The folder, opened without following a symlink and checked to be ours and private."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and self.path.is_symlink():
                raise _UnsafeState("it is a symbolic link, which is never followed") from None
            raise
        try:
            info = os.fstat(fd)
            if info.st_uid != os.getuid():
                raise _UnsafeState("it belongs to another user")
            if stat.S_IMODE(info.st_mode) & 0o077:
                if not fix_mode:
                    raise _UnsafeState("other users may open it")
                os.fchmod(fd, 0o700)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def _dir(self) -> Iterator[int]:
        fd = self._open_dir()
        try:
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """
        Hold the host-wide lock ``name`` (and a thread lock, as flock alone does not order threads).

        Inside :func:`bounded_waits`, or a request's bounded wait (``_wait_end.within_wait``), each lock is waited
        on for a bounded time, then the body runs without it.
        """
        timeout = lock_wait(_lock_timeout.get())
        thread_lock = _thread_locks.setdefault(f"{self.path}/{name}", threading.Lock())
        held = thread_lock.acquire(timeout=-1 if timeout is None else timeout)
        try:
            fd = self._flock(name, timeout) if self.usable else None
            try:
                yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
        finally:
            if held:
                thread_lock.release()

    def _flock(self, name: str, timeout: float | None) -> int | None:
        """The locked lock file's descriptor; None when not locked (folder unusable, or a bounded wait ran out)."""
        try:
            with self._dir() as dir_fd:
                flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                fd = os.open(f"{name}.lock", flags, 0o600, dir_fd=dir_fd)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise _UnsafeState(f"{name}.lock is not a regular file")
        except OSError as exc:
            self._give_up(exc)
            return None
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return fd
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.01)

    def signature(self, name: str) -> tuple[int, int, int] | None:
        """Identity of the current ``name`` file (inode, mtime, size) without opening it; None if absent."""
        try:
            info = os.stat(self.path / f"{name}.json", follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._give_up(exc)
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def read(self, name: str) -> dict[str, Any] | None:
        """The JSON object in ``name``, or None if absent, corrupt, foreign or not private."""
        if not self.usable:
            return None
        file = self.path / f"{name}.json"
        try:
            with self._dir() as dir_fd:
                fd = os.open(f"{name}.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._give_up(exc)
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
                log.warning("Ignoring cache file %s: not a file private to this user (mode must be 0600).", file)
                return None
            with os.fdopen(fd, "rb", closefd=False) as handle:
                data = json.loads(handle.read(1 << 20))
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("Ignoring unreadable cache file %s: %s", file, type(exc).__name__)
            return None
        finally:
            os.close(fd)
        return data if isinstance(data, dict) else None

    def write(self, name: str, data: Mapping[str, Any]) -> None:
        """Replace ``name`` atomically with a 0600 file; on any OS error stop sharing (no temp file is left)."""
        if not self.usable:
            return
        tmp = f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with self._dir() as dir_fd:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
                try:
                    with os.fdopen(fd, "w") as handle:
                        json.dump(data, handle)
                    os.replace(tmp, f"{name}.json", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=dir_fd)
                    raise
        except OSError as exc:
            self._give_up(exc)


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


def _number(value: Any) -> TypeGuard[float]:
    """A finite int or float (not a bool): the only numbers a state file may hold."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _clean_entry(entry: Any, now: float, max_tracked: int) -> dict[str, Any]:
    """
    A group's pacer state with only well-typed, plausible values: a malformed or hostile file never raises.

    A block ending more than :data:`MAX_WAIT` from now (a corrupt value, or a wall clock stepped back) is
    dropped; so are sends recorded in the future.
    """
    if not isinstance(entry, dict):
        return {}
    clean: dict[str, Any] = {}
    limit = entry.get("limit")
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit <= 100_000:
        clean["limit"] = limit
    window = entry.get("window")
    if _number(window) and 0 < window <= MAX_WAIT:
        clean["window"] = float(window)
    if entry.get("unlimited") is True:
        clean["unlimited"] = True
    blocked_until = entry.get("blocked_until")
    if _number(blocked_until) and now < blocked_until <= now + MAX_WAIT:
        clean["blocked_until"] = float(blocked_until)
    sent = entry.get("sent")
    if isinstance(sent, list):
        clean["sent"] = [float(t) for t in sent[-max_tracked:] if _number(t) and t <= now]
    return clean


def capped_wait(seconds: Any, default: float) -> float:
    """A server-given wait as seconds in [0, :data:`MAX_WAIT`]; ``default`` when it is not a usable number."""
    return min(float(seconds), MAX_WAIT) if _number(seconds) and seconds >= 0 else default


class RatePacer:
    """
    Keeps one credential within RingCentral's per-group limits, host-wide.

    Limits and windows are learned from the ``X-Rate-Limit-*`` headers; a 429 blocks its group for
    ``Retry-After`` seconds (at most :data:`MAX_WAIT`) for every process. Sends are logged per group so the
    budget of a window is used fully but not exceeded. A group whose answers carry no such headers (the emulator
    without limits) is marked unlimited, and then costs one ``stat()`` per request instead of a locked rewrite of
    the shared file. Penalties this process learned itself are timed on the monotonic clock.
    """

    # Our clock starts a little before the server's: wait this much longer than the window to stay inside it.
    SLACK = 0.05
    # Sends remembered while the limit is unknown (it is learned from the first answer's headers).
    MAX_TRACKED = 100
    # In-process state of folders that cannot be shared, per credential (shared by this process's hooks).
    _memories: ClassVar[dict[str, dict[str, Any]]] = {}
    # (file name, group) -> (the blocked_until this process wrote, when it ends on the monotonic clock)
    _own_blocks: ClassVar[dict[tuple[str, str], tuple[float, float]]] = {}

    def __init__(self, state: StateDir, key: str) -> None:
        self.state = state
        self.name = f"rate-{key}"
        self._view: dict[str, Any] = {}
        self._seen: tuple[int, int, int] | str | None = "never read"

    @property
    def _memory(self) -> dict[str, Any]:
        return self._memories.setdefault(self.name, {})

    def _load(self) -> dict[str, Any]:
        data = self.state.read(self.name) if self.state.usable else self._memory
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, Any]) -> None:
        self.state.write(self.name, data)
        if not self.state.usable:  # also when this very write failed
            self._memories[self.name] = data

    def _peek(self) -> dict[str, Any]:
        """The shared state without the lock, re-read only when the file changed (writers replace it atomically)."""
        if not self.state.usable:
            return self._memory
        signature = self.state.signature(self.name)
        if not self.state.usable:
            return self._memory
        if signature != self._seen:
            self._view = (self.state.read(self.name) or {}) if signature else {}
            self._seen = signature
        return self._view

    def _entry(self, data: Mapping[str, Any], group: str, now: float) -> dict[str, Any]:
        return _clean_entry(data.get(group), now, self.MAX_TRACKED)

    def _blocked_for(self, group: str, entry: Mapping[str, Any], now: float) -> float:
        """Seconds left of the group's block: on the monotonic clock when the block is ours, else the wall clock."""
        blocked_until = entry.get("blocked_until", 0.0)
        own = self._own_blocks.get((self.name, group))
        if own is not None and own[0] == blocked_until:
            return max(0.0, own[1] - time.monotonic())
        return max(0.0, blocked_until - now)

    def reserve_nowait(self, group: str) -> float | None:
        """0 when ``group`` is unlimited and not blocked (no lock, no write, safe on an event loop); else None."""
        now = time.time()
        entry = self._entry(self._peek(), group, now)
        if entry.get("unlimited") and not entry.get("limit") and self._blocked_for(group, entry, now) <= 0:
            return 0.0
        return None

    def reserve(self, group: str) -> float:
        """Record a send in ``group`` and return 0, or return how long to wait (at most :data:`MAX_WAIT`)."""
        fast = self.reserve_nowait(group)
        if fast is not None:
            return fast
        with self.state.locked(self.name):
            data = self._load()
            now = time.time()
            entry = data[group] = self._entry(data, group, now)
            blocked = self._blocked_for(group, entry, now)
            if blocked > 0:
                return blocked
            limit, window = entry.get("limit"), entry.get("window", 60.0)
            sent = [t for t in entry.get("sent", []) if t > now - window - self.SLACK * window]
            if limit and len(sent) >= limit:
                return min(MAX_WAIT, sent[len(sent) - limit] + window * (1 + self.SLACK) - now)
            sent.append(now)
            entry["sent"] = sent[-(limit or self.MAX_TRACKED) :]
            self._save(data)
            return 0.0

    def observe(self, group: str, headers: Mapping[str, str], *, penalty: float | None = None) -> None:
        """Learn the limit from a response's headers; ``penalty`` (a 429's wait) blocks the group host-wide."""
        limit, window = headers.get("X-Rate-Limit-Limit"), headers.get("X-Rate-Limit-Window")
        remaining = headers.get("X-Rate-Limit-Remaining")
        if penalty is None and limit is None:
            entry = self._entry(self._peek(), group, time.time())
            if not entry.get("unlimited") and not entry.get("limit"):
                with self.state.locked(self.name):
                    data = self._load()
                    entry = data[group] = self._entry(data, group, time.time())
                    entry["unlimited"] = True
                    self._save(data)
            return
        with self.state.locked(self.name):
            data = self._load()
            now = time.time()
            entry = data[group] = self._entry(data, group, now)
            with contextlib.suppress(ValueError):
                if limit is not None and int(limit) > 0:
                    entry["limit"] = int(limit)
                    entry.pop("unlimited", None)
                if window is not None and 0 < float(window) <= MAX_WAIT:
                    entry["window"] = float(window)
                if remaining is not None and int(remaining) <= 0 and penalty is None:
                    # Someone else (another host) used the budget: wait out the window from our oldest send.
                    win = entry.get("window", 60.0)
                    sent = [t for t in entry.get("sent", []) if t > now - win] or [now]
                    entry["blocked_until"] = max(entry.get("blocked_until", 0.0), sent[0] + win)
            if penalty is not None:
                wait = capped_wait(penalty, MAX_WAIT)
                if now + wait > entry.get("blocked_until", 0.0):
                    entry["blocked_until"] = now + wait
                    self._own_blocks[(self.name, group)] = (now + wait, time.monotonic() + wait)
            self._save(data)

    def needs_lock(self, group: str, headers: Mapping[str, str], status: int) -> bool:
        """Whether :meth:`observe` of this answer may take the file lock (then keep it off an event loop)."""
        if status == 429 or headers.get("X-Rate-Limit-Limit") is not None:
            return True
        entry = self._entry(self._peek(), group, time.time())
        return not entry.get("unlimited") and not entry.get("limit")

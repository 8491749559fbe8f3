"""
The host's private state folder, shared by every process on the host that uses the provider.

Small JSON files, each guarded by an ``flock`` (and a thread lock, as flock alone does not order threads): the
access token (:mod:`.tokens`), the rate-limit pacer (:mod:`.pacer`), the alert claims (:mod:`.claims`) and an
escalation's saved progress (:mod:`.progress`). Files are 0600 in a 0700 folder; a file that is corrupt, foreign or
readable by others is ignored, never trusted.

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
import os
import stat
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout._process import process_cache
from airflow_provider_ringout._wait_end import lock_wait

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

log = logging.getLogger(__name__)

# Locks held by code a signal interrupted (on_kill runs in Airflow's SIGTERM handler) are waited on this long.
URGENT_LOCK_WAIT = 2.0

# dict.setdefault is atomic under the GIL: no guard lock that a signal handler could find held.
_thread_locks: dict[str, threading.Lock] = process_cache(__name__, "_thread_locks", {})
_lock_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar("ringout_lock_timeout", default=None)
# Folders that failed in this process (and were warned about once): in-process state from then on.
_unusable_dirs: set[str] = process_cache(__name__, "_unusable_dirs", set())


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

"""
A throw-away ``redis-server`` on a free loopback port, for tests and benchmarks of ``shared_state = redis``.

Uses the system's ``redis-server`` binary (Debian's ``redis-server`` package); no persistence, its own folder.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

REDIS_SERVER = "redis-server"


def redis_server_path() -> str | None:
    """The ``redis-server`` binary on PATH (or Debian's /usr/bin), or None when it is not installed."""
    return shutil.which(REDIS_SERVER) or (str(p) if (p := Path("/usr/bin/redis-server")).exists() else None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """
    ``redis-server`` bound to 127.0.0.1 on a free port; :meth:`stop` kills it, :meth:`start` brings it back empty.

    :param port: the port (0: a free one, kept across restarts).
    """

    def __init__(self, port: int = 0) -> None:
        binary = redis_server_path()
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = port or _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="ringout-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``, the form ``AIRFLOW_CONN_REDIS_DEFAULT`` takes."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start (or restart, empty) and wait until it accepts connections."""
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """Kill the server (as a crash would) and wait for it to go."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> Any:
        """A redis-py client of this server (for assertions)."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

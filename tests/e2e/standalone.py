"""
Run Airflow's long-lived services (api-server, scheduler, dag-processor, triggerer) as separate processes.

Why: the deferrable path only really happens with a scheduler handing the task to an executor, a triggerer
running the trigger, and an API server serving both the task runner's Execution API and the users' REST API.
``airflow dags test`` runs triggers in line and cannot show a triggerer restart or a user marking a deferred
task failed. ``airflow standalone`` would do, but it cannot restart one service alone, so each service is
started here on its own, which also gives each its own log file.

Everything listens on loopback on free ports; the environment is built from scratch (nothing inherited from
the caller's shell) over a throw-away AIRFLOW_HOME with a SQLite database and the LocalExecutor (what
``airflow standalone`` uses with SQLite too). Each process starts a session of its own, so teardown can end
the whole process group, and every descendant psutil saw is killed too, even one that left the group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import requests

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from types import TracebackType

    from airflow_provider_ringout.testing import RingCentralEmulator

AIRFLOW = Path(sys.executable).with_name("airflow")
SERVICE_NAMES = ("api-server", "scheduler", "dag-processor", "triggerer")
# Names of the components in GET /api/v2/monitor/health, by service.
HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}


# Fast loops, so a test waits seconds, not minutes (``airflow_defaults=True`` leaves Airflow's own values).
FAST_LOOPS = {
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
    "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "5",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "600",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
}


class ServiceError(RuntimeError):
    """A service did not start, died, or did not become healthy in time; the message carries its log tail."""


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now (the usual bind-to-0 trick; racy but good enough)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail_file(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file (empty if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Service:
    """One running (or ended) service process and the file its stdout and stderr go to."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    descendants: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The service's main process id (also its process group id)."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the main process still runs."""
        return self.process.poll() is None

    def remember_descendants(self) -> None:
        """Note the current children (executor workers, task supervisors, trigger runner) to kill at teardown."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children(recursive=True):
                self.descendants.setdefault(child.pid, child)


class AirflowServices:
    """
    A throw-away Airflow installation and its services: start, restart, stop, health, REST API, logs.

    Use as a context manager (or call :meth:`close`): every process it started is ended on exit.

    :param home: the AIRFLOW_HOME to create (the SQLite database, task logs and service logs go there).
    :param dags_folder: the DAG files to serve.
    :param extra_env: more variables for every service (connections, provider settings).
    :param airflow_defaults: leave the scheduler's, DAG processor's and triggerer's loops at Airflow's defaults
        instead of :data:`FAST_LOOPS` (for figures and scenarios that must hold as deployed).
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        extra_env: Mapping[str, str] | None = None,
        *,
        airflow_defaults: bool = False,
    ) -> None:
        self.home = home
        self.dags_folder = dags_folder
        self.log_dir = home / "service-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.services: dict[str, Service] = {}
        self.ended: list[Service] = []
        self._generation: dict[str, int] = {}
        self._token: str | None = None
        self._http = requests.Session()
        self.env: dict[str, str] = {
            "PATH": os.pathsep.join([str(AIRFLOW.parent), "/usr/bin", "/bin"]),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
            "PYTHONUNBUFFERED": "1",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # The task runner reaches the Execution API here, and tokens signed by the scheduler must be
            # accepted by the API server: one secret for all (otherwise each airflow.cfg reader could differ).
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-standalone-jwt-secret-not-a-ringcentral-secret",
            "AIRFLOW__API_AUTH__JWT_ISSUER": "airflow-provider-ringout-e2e",  # PyJWT 2.10+ refuses a token without one
            "AIRFLOW__API__SECRET_KEY": "e2e-standalone-api-secret-key",
            **({} if airflow_defaults else FAST_LOOPS),
            # Ports of the log servers, in case a service starts one despite --skip-serve-logs.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # A checkout tested with another checkout's environment puts itself first on PYTHONPATH: keep it so.
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
            **(extra_env or {}),
        }

    # --- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> AirflowServices:
        """Nothing to do: :meth:`start_all` is explicit, so a failing migration is reported as such."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """End every process, whatever happened."""
        self.close()

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` CLI command in this installation; stdout and stderr together."""
        return subprocess.run(
            [str(AIRFLOW), *args],
            env=self.env,
            cwd=self.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )

    def migrate(self) -> None:
        """Create the metadata database (``airflow db migrate``)."""
        result = self.cli("db", "migrate")
        if result.returncode != 0:
            raise ServiceError(f"airflow db migrate failed ({result.returncode}):\n{result.stdout[-5000:]}")

    def _argv(self, name: str) -> list[str]:
        if name == "api-server":
            return [str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        if name in ("scheduler", "triggerer"):
            return [str(AIRFLOW), name, "--skip-serve-logs"]
        if name == "dag-processor":
            return [str(AIRFLOW), "dag-processor"]
        raise ValueError(f"unknown service {name!r}; choose from {SERVICE_NAMES}")

    def start(self, name: str) -> Service:
        """Start one service in a session of its own; its output goes to ``service-logs/<name>[-<n>].log``."""
        current = self.services.get(name)
        if current is not None and current.alive():
            raise ServiceError(f"{name} is already running (pid {current.pid})")
        generation = self._generation.get(name, 0) + 1
        self._generation[name] = generation
        log_path = self.log_dir / (f"{name}.log" if generation == 1 else f"{name}-{generation}.log")
        argv = self._argv(name)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name=name, argv=argv, log_path=log_path, process=process)
        self.services[name] = service
        return service

    def start_all(self, timeout: float = 180) -> None:
        """Start the four services and wait until the API server reports each of them healthy."""
        for name in SERVICE_NAMES:
            self.start(name)
        self.wait_healthy(timeout=timeout)

    def start_services(self) -> None:
        """Start what this deployment runs, healthy (:meth:`start_all` here)."""
        self.start_all()

    @contextlib.contextmanager
    def serving(self, dag_ids: Iterable[str], *, parse_timeout: float = 120) -> Iterator[None]:
        """
        Migrate, start the services (:meth:`start_services`) and unpause ``dag_ids`` once parsed; stop all on leaving.

        A failure while starting prints the end of every service log before it is raised.
        """
        try:
            self.migrate()
            self.start_services()
            self.unpause_when_parsed(dag_ids, timeout=parse_timeout)
            yield
        except BaseException:
            print(self.log_tails(80))
            raise
        finally:
            self.close()

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM, *, timeout: float = 30) -> int:
        """
        Stop one service the way a process manager does: ``sig`` to the main process, then SIGKILL to its group.

        Returns the main process's exit status. The service's children are killed too if they outlive it.
        """
        service = self.services.pop(name)
        service.remember_descendants()
        if service.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(service.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=timeout)
        self._kill_everything(service)
        self.ended.append(service)
        return int(service.process.returncode)

    def _kill_everything(self, service: Service) -> None:
        """SIGKILL the group and every remembered descendant that still runs; reap the main process."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(service.pid, signal.SIGKILL)
        for child in service.descendants.values():
            with contextlib.suppress(psutil.Error):
                if child.is_running():
                    child.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.process.wait(timeout=10)

    def close(self) -> None:
        """Stop every service: SIGTERM to all main processes at once, a grace period, then SIGKILL to all."""
        running = list(self.services.values())
        self.services.clear()
        for service in running:
            service.remember_descendants()
            if service.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(service.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for service in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            self._kill_everything(service)
            self.ended.append(service)
        self._http.close()

    def watch_children(self) -> None:
        """Note each service's current descendants (call while tasks run, so teardown can find stray workers)."""
        for service in self.services.values():
            service.remember_descendants()

    # --- health --------------------------------------------------------------------------------------

    def check_alive(self) -> None:
        """Raise :class:`ServiceError` with the log tail if a service that should run has exited."""
        for service in self.services.values():
            if not service.alive():
                raise ServiceError(
                    f"{service.name} exited with {service.process.returncode}:\n{tail_file(service.log_path)}"
                )

    def health(self) -> dict[str, Any] | None:
        """GET /api/v2/monitor/health, or None while the API server does not answer."""
        try:
            response = self._http.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return None
        return response.json() if response.status_code == 200 else None

    def wait_healthy(self, names: Iterable[str] = SERVICE_NAMES, *, timeout: float = 180) -> dict[str, Any]:
        """Wait until the API server answers and reports the named services healthy (recent heartbeats)."""
        wanted = [HEALTH_KEYS[n] for n in names if n in HEALTH_KEYS]
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            self.check_alive()
            last = self.health()
            if last is not None and all(
                (last.get(key) or {}).get("status") == "healthy" for key in ["metadatabase", *wanted]
            ):
                return last
            time.sleep(1)
        raise ServiceError(f"services not healthy after {timeout:.0f} s: {json.dumps(last)}\n{self.log_tails()}")

    def wait_new_triggerer(self, after_job_id: int | None, *, timeout: float = 90) -> int:
        """Wait until a TriggererJob newer than ``after_job_id`` is running and heartbeating; returns its id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            rows = self.query(
                "SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' AND end_date IS NULL "
                "AND id > ? ORDER BY id DESC",
                (after_job_id or 0,),
            )
            if rows:
                return int(rows[0][0])
            time.sleep(0.5)
        raise ServiceError(f"no new triggerer job after {timeout:.0f} s\n{self.log_tails()}")

    def running_triggerer_job(self) -> int | None:
        """The id of the newest running TriggererJob, if any."""
        rows = self.query(
            "SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' ORDER BY id DESC LIMIT 1"
        )
        return int(rows[0][0]) if rows else None

    # --- REST API and database ----------------------------------------------------------------------

    def token(self) -> str:
        """A bearer token for the REST API (simple auth manager, all admins: GET /auth/token needs no login)."""
        if self._token is None:
            response = self._http.get(f"{self.base_url}/auth/token", timeout=30)
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, body: Any = None, *, expect: Iterable[int] = (200,)) -> Any:
        """One REST API call (``path`` under /api/v2); raises with the answer unless its status is expected."""
        response = self._http.request(
            method,
            f"{self.base_url}/api/v2{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
        )
        if response.status_code not in tuple(expect):
            raise ServiceError(f"{method} {path} answered {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def wait_for(self, what: str, probe: Callable[[], Any], *, timeout: float, interval: float = 0.5) -> Any:
        """Call ``probe`` until it returns something truthy; raise with the services' log tails on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            result = probe()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise ServiceError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.log_tails()}")
            time.sleep(interval)

    def unpause_when_parsed(self, dag_ids: Iterable[str], *, timeout: float = 120) -> None:
        """Wait until the DAG processor has parsed each DAG, then unpause it."""
        for dag_id in dag_ids:
            self.wait_for(
                f"DAG {dag_id} to be parsed",
                lambda dag_id=dag_id: self.api("GET", f"/dags/{dag_id}", expect=(200, 404)).get("dag_id"),
                timeout=timeout,
            )
            assert self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})["is_paused"] is False

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the metadata database directly (read-only, waiting out the services' write locks)."""
        db = sqlite3.connect(f"file:{self.home / 'airflow.db'}?mode=ro", uri=True, timeout=30)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    # --- logs ----------------------------------------------------------------------------------------

    def service_logs(self) -> list[Path]:
        """Every service log file written so far (restarted services have one file per start)."""
        return sorted(self.log_dir.glob("*.log"))

    def task_logs(self) -> list[Path]:
        """Every file under AIRFLOW_HOME/logs: task attempts, trigger logs, dag-processor logs."""
        root = self.home / "logs"
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []

    def log_tails(self, lines: int = 40) -> str:
        """The end of every service log, for failure messages."""
        parts = [
            f"----- {path.name} (last {lines} lines) -----\n{tail_file(path, lines)}" for path in self.service_logs()
        ]
        return "\n".join(parts)


@contextlib.contextmanager
def services_on_emulator(
    emulator: RingCentralEmulator,
    home: Path,
    dags_folder: Path,
    dag_ids: Iterable[str],
    extra_env: Mapping[str, str] | None = None,
    *,
    airflow_defaults: bool = False,
) -> Iterator[AirflowServices]:
    """
    The four services over a fresh ``home``, healthy, with ``dag_ids`` parsed and unpaused, stopped on leaving
    (``airflow_defaults``: see :class:`AirflowServices`).

    The default connection points at ``emulator``, and the provider's host-wide state (tokens, claims, saved
    escalations) is a folder of ``home``, shared by every service as it would be on one host.
    """
    env = {
        "AIRFLOW_CONN_RINGCENTRAL_DEFAULT": emulator.connection_json(),
        "AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR": str(home / "ringcentral-cache"),
        **(extra_env or {}),
    }
    airflow = AirflowServices(home, dags_folder, env, airflow_defaults=airflow_defaults)
    with airflow.serving(dag_ids):
        yield airflow

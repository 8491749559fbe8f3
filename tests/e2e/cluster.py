"""
A real Airflow cluster on one machine: CeleryExecutor with Redis as the broker, and Celery workers that each
have their own home folder (two "hosts"), beside the api-server, scheduler and dag-processor of
:mod:`tests.e2e.standalone`.

Each worker gets its own ``HOME`` and ``[ringcentral] token_cache_dir``, so nothing is shared between them through
the disk: what they share goes through Redis (the broker, and ``[ringcentral] shared_state = redis``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.e2e.standalone import AIRFLOW, AirflowServices, Service

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

CLUSTER_SERVICES = ("api-server", "scheduler", "dag-processor")


class CeleryCluster(AirflowServices):
    """
    :class:`AirflowServices` with the CeleryExecutor and ``workers`` Celery workers on their own home folders.

    :param redis_url: the broker and result backend (``redis://127.0.0.1:PORT/0``).
    :param workers: how many workers (hosts) to start, named ``worker-1`` ...
    :param concurrency: task slots per worker.
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        redis_url: str,
        extra_env: Mapping[str, str] | None = None,
        *,
        workers: int = 2,
        concurrency: int = 6,
    ) -> None:
        super().__init__(home, dags_folder, extra_env)
        self.env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(workers * concurrency),
                "AIRFLOW__CELERY__BROKER_URL": redis_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": redis_url,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
                "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            }
        )
        self.concurrency = concurrency
        self.worker_names = [f"worker-{i + 1}" for i in range(workers)]
        self.worker_homes = {name: home / f"host-{name}" for name in self.worker_names}

    def _argv(self, name: str) -> list[str]:
        if name in self.worker_names:
            return [
                str(AIRFLOW),
                "celery",
                "worker",
                "--concurrency",
                str(self.concurrency),
                "--celery-hostname",
                f"{name}@%h",
                "--skip-serve-logs",
                "--without-gossip",
                "--without-mingle",
            ]
        return super()._argv(name)

    def start(self, name: str) -> Service:
        """Start a service; a worker runs with its own HOME and token cache folder (its own "host")."""
        if name not in self.worker_names:
            return super().start(name)
        folder = self.worker_homes[name]
        (folder / "ringcentral-cache").mkdir(parents=True, exist_ok=True)
        shared = self.env
        self.env = {
            **shared,
            "HOME": str(folder),
            "AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR": str(folder / "ringcentral-cache"),
        }
        try:
            return super().start(name)
        finally:
            self.env = shared

    def start_cluster(self, timeout: float = 240) -> None:
        """Start the api-server, scheduler, dag-processor and the workers; wait until the first three are healthy."""
        for name in (*CLUSTER_SERVICES, *self.worker_names):
            self.start(name)
        self.wait_healthy(CLUSTER_SERVICES, timeout=timeout)

    def start_services(self) -> None:
        """Start the cluster (:meth:`start_cluster`)."""
        self.start_cluster()

    def worker_log(self, name: str) -> str:
        """A worker's log so far."""
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

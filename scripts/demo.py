"""Run example 1 (``example_ringout_call``) in real Airflow against the emulator and say what happened."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import airflow_provider_ringout
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator

ROOT = Path(__file__).resolve().parent.parent
TO, FROM = "+14155550199", "+14155550100"
CHOICES = {"answered": Outcome.ANSWERED, "busy": Outcome.BUSY, "never_answers": Outcome.NEVER_ANSWERS}


DEMO_PREFIX = "ringout-demo-"
KEEP = 3  # the newest demo folders kept, this run's included, so the last logs can still be read
IN_USE = 600  # seconds: a folder touched this recently may belong to a demo still running, it stays


def remove_old_demo_folders(parent: Path) -> None:
    """Delete this user's demo folders but the newest ``KEEP`` (and any touched in the last ``IN_USE`` s)."""
    mine = []
    for path in parent.glob(f"{DEMO_PREFIX}*"):
        try:
            info = path.lstat()
        except OSError:
            continue
        if path.is_dir() and not path.is_symlink() and info.st_uid == os.getuid():
            mine.append((info.st_mtime, path))
    mine.sort(reverse=True)
    for mtime, path in mine[KEEP:]:
        if time.time() - mtime > IN_USE:
            shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("outcome", nargs="?", default="answered", choices=sorted(CHOICES))
    parser.add_argument("--wait-timeout", type=float, default=8.0, help="seconds the task waits for the connection")
    parser.add_argument("--dags-folder", type=Path, default=ROOT / "example_dags", help="where example 1 is")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix=DEMO_PREFIX))
    remove_old_demo_folders(home.parent)
    airflow = str(Path(sys.executable).parent / "airflow")
    with RingCentralEmulator(default_script=CallScript(outcome=CHOICES[args.outcome], after=3, talk=20)) as emulator:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(args.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR": str(home / "token-cache"),
            "AIRFLOW_CONN_RINGCENTRAL_DEFAULT": emulator.connection_json(),
            "RINGOUT_EXAMPLE_WAIT_TIMEOUT": str(args.wait_timeout),
        }
        version = importlib.metadata.version("airflow-provider-ringout")
        package = Path(airflow_provider_ringout.__file__).parent
        print(f"Provider:       airflow-provider-ringout {version} from {package}")
        print(f"Emulator at {emulator.url}; AIRFLOW_HOME={home}; scripted outcome: {args.outcome}")
        print("Setting up Airflow's SQLite database...", flush=True)
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
        print("Running `airflow dags test example_ringout_call`...", flush=True)
        run = subprocess.run(
            [
                airflow,
                "dags",
                "test",
                "example_ringout_call",
                "-c",
                f'{{"to_number": "{TO}", "from_number": "{FROM}"}}',
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        log_file = home / "dags-test.log"
        log_file.write_text(run.stdout + run.stderr)
        statuses = re.findall(
            r"RingOut \S+ status: (callStatus=\S+, callerStatus=\S+, calleeStatus=\w+)", run.stdout + run.stderr
        )
        deletes = emulator.count(kind="ring-out-delete")
        state = re.findall(r"DagRun Finished: .*?state=(\w+)", run.stdout + run.stderr)

    print()
    placed = re.findall(r"Placed RingOut (\S+) from", run.stdout + run.stderr)
    print(f"RingOut id:     {placed[0] if placed else 'none (no call placed)'}")
    print("Statuses seen:  " + (" -> ".join(dict.fromkeys(statuses)) or "none"))
    print(f"Cancel sent:    {'yes' if deletes else 'no'}")
    print(f"DAG run:        {state[-1] if state else 'unknown'} (full log: {log_file})")
    why = re.findall(r"exceptions\.(RingOut\w+Error: .+)", run.stdout + run.stderr)
    if why:
        print(f"Why:            {why[-1]}")
    return 0 if state and (state[-1] == "success") == (args.outcome == "answered") else 1


if __name__ == "__main__":
    sys.exit(main())

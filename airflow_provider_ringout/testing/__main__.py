"""
Run the RingCentral emulator stand-alone: ``python -m airflow_provider_ringout.testing --port 8765``.

It prints ``RingCentral emulator listening on http://HOST:PORT`` once it accepts connections (``--port 0`` picks
a free port), then serves until SIGINT or SIGTERM. Drive it over HTTP through ``/_emulator/``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout.testing.emulator import CallScript, Outcome, RingCentralEmulator
from airflow_provider_ringout.testing.emulator.calllog import DEFAULT_CALL_LOG_DELAY

if TYPE_CHECKING:
    from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_ringout.testing",
        description="Local RingCentral RingOut/OAuth emulator for tests and demos (loopback, no auth on /_emulator/).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind; 0 picks a free one (default 8765)")
    parser.add_argument(
        "--outcome",
        choices=[o.value for o in Outcome],
        default=Outcome.ANSWERED.value,
        help="how every call unfolds unless scripted per number (default answered)",
    )
    parser.add_argument("--answer-after", type=float, default=1.0, help="seconds until the scripted event (default 1)")
    parser.add_argument("--talk", type=float, default=30.0, help="seconds a connected call lasts (default 30)")
    parser.add_argument("--linger", type=float, default=5.0, help="seconds an ended session stays readable (default 5)")
    parser.add_argument("--token-ttl", type=float, default=3600, help="access token lifetime (default 3600)")
    parser.add_argument(
        "--rate-limits",
        choices=["default", "off"],
        default="off",
        help="'default': RingCentral's per-minute limits (Light 50, Medium 40, Heavy 10, Auth 5); default off",
    )
    parser.add_argument("--rate-window", type=float, default=60.0, help="rate-limit window seconds (default 60)")
    parser.add_argument("--rate-penalty", type=float, default=None, help="penalty seconds (default: the window)")
    parser.add_argument("--max-sessions", type=int, default=5, help="parallel OAuth sessions kept (default 5)")
    parser.add_argument("--scope", default="ReadAccounts RingOut ReadCallLog", help="scope granted to tokens")
    parser.add_argument(
        "--call-log-delay",
        type=float,
        default=DEFAULT_CALL_LOG_DELAY,
        help=f"seconds from a call's end to its call-log record (default {DEFAULT_CALL_LOG_DELAY}; RingCentral: 15-30)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Start the emulator, print its URL, serve until SIGINT/SIGTERM."""
    args = _parser().parse_args(argv)
    emulator = RingCentralEmulator(
        host=args.host,
        port=args.port,
        token_ttl=args.token_ttl,
        scope=args.scope,
        default_script=CallScript(
            outcome=Outcome(args.outcome), after=args.answer_after, talk=args.talk, linger=args.linger
        ),
        rate_limits=dict(RingCentralEmulator.DEFAULT_RATE_LIMITS) if args.rate_limits == "default" else None,
        rate_window=args.rate_window,
        rate_penalty=args.rate_penalty,
        max_sessions=args.max_sessions,
        verbose=args.verbose,
        call_log_delay=args.call_log_delay,
    )
    stopping = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        emulator.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"RingCentral emulator listening on {emulator.url}", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

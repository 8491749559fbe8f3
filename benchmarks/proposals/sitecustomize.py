"""Applies ratepacer_fast_path.py at interpreter start when RINGOUT_PROPOSED_PACER is set (experiments only)."""

from __future__ import annotations

import os
import sys

if os.environ.get("RINGOUT_PROPOSED_PACER"):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import ratepacer_fast_path  # noqa: F401

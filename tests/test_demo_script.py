"""scripts/demo.py's housekeeping: old demo folders are removed, the newest and any still in use are kept."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from types import ModuleType

DEMO = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ringout_demo_script", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_old_demo_folders_are_removed_keeping_the_newest_and_those_in_use(tmp_path: Path) -> None:
    demo = load_demo()
    now = time.time()
    ages = {"a": 5000, "b": 4000, "c": 1000, "z": 300, "y": 200, "x": 100, "w": 60}  # seconds old
    for name, age in ages.items():
        folder = tmp_path / f"{demo.DEMO_PREFIX}{name}"
        folder.mkdir()
        os.utime(folder, (now - age, now - age))
    (tmp_path / "someone-else").mkdir()
    (tmp_path / f"{demo.DEMO_PREFIX}file").write_text("not a folder")

    demo.remove_old_demo_folders(tmp_path)

    left = sorted(p.name.removeprefix(demo.DEMO_PREFIX) for p in tmp_path.iterdir())
    # w, x, y: the newest 3; z: older, but touched within IN_USE (a demo may still run in it); a, b, c: removed.
    assert left == ["file", "someone-else", "w", "x", "y", "z"]

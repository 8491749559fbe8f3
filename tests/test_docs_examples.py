"""
Every ```python example in README.md and docs/*.md runs: it imports, and each DAG it builds has tasks.

Each fenced block whose info string starts with ``python`` is executed on its own, in a fresh module (so
``__file__`` is the Markdown file and tracebacks point at the right line of it), with AIRFLOW_HOME and a
private token cache already set by ``tests/conftest.py``. Environment variables an example sets are undone
afterwards. Blocks marked ``python-fragment`` (or any other ``python-…`` info string) are not run: use that, rarely,
for a fragment that cannot stand alone. Examples that define pytest tests are only imported here, not run.
A block for newer Airflow cores says so in its info string (```` ```python airflow>=3.1 ````) and is skipped, with
that reason, on older ones.
"""

from __future__ import annotations

import os
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OPENING = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")


@dataclass(frozen=True)
class Example:
    """One fenced code block."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    info: str = ""

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def fenced_blocks(path: Path) -> Iterator[Example]:
    """The fenced code blocks of a Markdown file, in order; an unclosed fence is an error."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = OPENING.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        language = opening["info"].split()[0] if opening["info"] else ""
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            stripped = lines[end].strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                break
            line = lines[end]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            end += 1
        else:
            raise AssertionError(f"{path.relative_to(REPO)}:{index + 1}: code fence never closed")
        yield Example(path, index + 1, language, "\n".join(body) + "\n", opening["info"])
        index = end + 1


def python_examples() -> list[Example]:
    return [block for path in DOC_FILES for block in fenced_blocks(path) if block.language == "python"]


EXAMPLES = python_examples()


def test_documentation_has_python_examples() -> None:
    documented = {example.path.name for example in EXAMPLES}
    assert {"connection.md", "operators.md", "emulator.md", "troubleshooting.md"} <= documented, documented


@pytest.fixture
def restored_environment() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)


@pytest.mark.usefixtures("restored_environment")
@pytest.mark.parametrize("example", EXAMPLES, ids=[example.name for example in EXAMPLES])
def test_python_example_runs(example: Example) -> None:
    from airflow.sdk import DAG
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    from airflow_provider_ringout.version_compat import get_base_airflow_version_tuple

    needs = re.search(r"airflow>=(\d+)\.(\d+)", example.info)
    core = get_base_airflow_version_tuple()
    if needs and core < (int(needs[1]), int(needs[2]), 0):
        pytest.skip(f"{example.name} needs Airflow {needs[1]}.{needs[2]}+; this core is {'.'.join(map(str, core))}")

    module_name = "docs_example_" + re.sub(r"\W", "_", example.name)
    module = types.ModuleType(module_name)
    module.__file__ = str(example.path)
    # Blank lines first, so line numbers in a traceback are the Markdown file's.
    code = compile("\n" * example.line + example.code, str(example.path), "exec")
    sys.modules[module_name] = module
    previous_module = DagContext.current_autoregister_module_name
    DagContext.current_autoregister_module_name = module_name  # collects `with DAG(...):` blocks without `as`
    try:
        exec(code, module.__dict__)  # noqa: S102 (documentation examples from this repository)
        registered = [dag for dag, mod in DagContext.autoregistered_dags if mod is module]
    finally:
        DagContext.current_autoregister_module_name = previous_module
        DagContext.autoregistered_dags = {(d, m) for d, m in DagContext.autoregistered_dags if m is not module}
        sys.modules.pop(module_name, None)

    dags = {id(dag): dag for dag in [*registered, *(v for v in vars(module).values() if isinstance(v, DAG))]}
    for dag in dags.values():
        assert dag.task_dict, f"{example.name}: DAG {dag.dag_id!r} has no tasks"


@pytest.mark.e2e
def test_readme_dag_runs_against_the_emulator(tmp_path: Path) -> None:
    """The README's "Use" DAG, exactly as printed, run by ``airflow dags test`` against the emulator: it defers."""
    from airflow_provider_ringout.testing import CallScript, RingCentralEmulator
    from tests.airflow_runner import AirflowHome

    (readme_dag,) = [e for e in EXAMPLES if e.path.name == "README.md" and 'dag_id="ringout_hello"' in e.code]
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "ringout_hello.py").write_text(readme_dag.code, encoding="utf-8")
    home = AirflowHome(tmp_path / "home", dags)
    # As the README's emulator answers: after 1 s, so the first check finds the phone ringing and the task defers.
    with RingCentralEmulator(default_script=CallScript(after=1.0, talk=60, linger=60)) as emulator:
        result = home.dags_test("ringout_hello", env={"AIRFLOW_CONN_RINGCENTRAL_DEFAULT": emulator.connection_json()})
        (ringout_id,) = emulator.sessions
    assert result.states["call"] == "success", result.output[-3000:]
    assert result.xcom("call") == ringout_id
    assert "Pausing task as DEFERRED" in result.output  # deferrable=True really waited in the triggerer
    assert emulator.count("POST", "ring-out-create") == 1

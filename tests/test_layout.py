"""
The package's layout, read from its own source: the import graph has no circle and no arrow back up, and every
process-wide cache is registered with the one reset call.

The graph is drawn from the AST of every module: each ``import`` and ``from ... import``, at any depth (inside
functions and ``TYPE_CHECKING`` blocks too: a lazy import is still a dependency), relative ones resolved, each
resolved to the package module it names (``from pkg import sub`` to ``pkg.sub`` when that is a module).
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import airflow_provider_ringout
from airflow_provider_ringout._process import Clearable, process_cache, registered_caches
from airflow_provider_ringout.state import reset_process_state

PACKAGE = "airflow_provider_ringout"
ROOT = Path(airflow_provider_ringout.__file__).parent

# Each module's layer, by the first part of its name below the package; a module may import its own layer and the
# layers below, never one above. A new top-level module or package must be placed here.
LAYERS: dict[str, int] = {
    # 0, the base: words and values every layer uses; imports nothing above.
    "": 0,  # the package's __init__ (get_provider_info, connection field names)
    "_process": 0,
    "_wait_end": 0,
    "call_result": 0,  # the pure call-log matcher
    "exceptions": 0,
    "phone": 0,
    "request": 0,
    "status": 0,
    "version_compat": 0,
    # 1, the shared state: host files, Redis, sealing, alert claims, the backend's choice.
    "state": 1,
    # 2, the hook: everything that talks to RingCentral.
    "hooks": 2,
    # 3, what Airflow runs: tasks, triggers, the notifier, and the escalation engine they share.
    "_params": 3,
    "_result_wait": 3,
    "_task_mixin": 3,
    "_wait": 3,
    "escalation": 3,
    "notifications": 3,
    "operators": 3,
    "sensors": 3,
    "triggers": 3,
    # 4, test support: may import the package; nothing outside testing/ imports it.
    "testing": 4,
}

# Circles allowed for now, none. Each entry must still be a circle of the graph (the test fails once it is gone, so
# this list cannot go stale).
KNOWN_CYCLES: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def imported(name: str, tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Every package name that ``name``'s code imports (at any depth), with its line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package(name) else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in modules() else target), node.lineno


@cache
def graph() -> dict[str, frozenset[str]]:
    """Module -> the package modules it imports (an import of a missing package module fails the test here)."""
    edges: dict[str, frozenset[str]] = {}
    missing = []
    for name, path in modules().items():
        targets = set()
        for target, line in imported(name, ast.parse(path.read_text(), str(path))):
            if target != PACKAGE and not target.startswith(f"{PACKAGE}."):
                continue
            if target not in modules():
                missing.append(f"{path.relative_to(ROOT.parent)}:{line} imports {target}, which does not exist")
            elif target != name:
                targets.add(target)
        edges[name] = frozenset(targets)
    assert not missing, "\n".join(missing)
    return edges


def strongly_connected(edges: dict[str, frozenset[str]]) -> list[frozenset[str]]:
    """The graph's circles: its strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def a_cycle(component: frozenset[str], edges: dict[str, frozenset[str]]) -> list[str]:
    """One circle through the component's first module, as a path that ends where it starts."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(edges[node] & component):
            if child == start:
                return [*paths[node], start]
            if child not in paths:
                paths[child] = [*paths[node], child]
                queue.append(child)
    raise AssertionError(f"no circle through {start}")  # pragma: no cover (a component of >1 has one)


def layer(name: str) -> int:
    top = name[len(PACKAGE) + 1 :].split(".")[0] if name != PACKAGE else ""
    assert top in LAYERS, f"{name} has no layer: place {top!r} in LAYERS (tests/test_layout.py)"
    return LAYERS[top]


def upward_imports(edges: dict[str, frozenset[str]]) -> list[str]:
    return [f"{a} -> {b}" for a in sorted(edges) for b in sorted(edges[a]) if layer(b) > layer(a)]


# --- the import graph ------------------------------------------------------------------------------------------


def test_the_graph_sees_imports_at_any_depth() -> None:
    """The graph is drawn from lazy and type-only imports too (else a circle could hide in a function)."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from airflow_provider_ringout.state.files import StateDir\n"
        "class A:\n    def f(self):\n        import airflow_provider_ringout.state.pacer\n"
        "def g():\n    from airflow_provider_ringout.state import claims as c, reset_process_state\n"
    )
    assert {target for target, _ in imported(f"{PACKAGE}.hooks.ringcentral", tree)} == {
        "typing",
        f"{PACKAGE}.state.files",
        f"{PACKAGE}.state.pacer",
        f"{PACKAGE}.state.claims",  # `from pkg import module`: the module
        f"{PACKAGE}.state",  # `from pkg import name`: the package
    }
    assert f"{PACKAGE}.state.redis" in graph()[f"{PACKAGE}.state.claims"]  # in the real graph: inside a method


def test_a_relative_import_is_resolved() -> None:
    tree = ast.parse("from . import files\nfrom ..hooks import ringcentral\nfrom .claims import Lease\n")
    assert {target for target, _ in imported(f"{PACKAGE}.state.backend", tree)} == {
        f"{PACKAGE}.state.files",
        f"{PACKAGE}.hooks.ringcentral",
        f"{PACKAGE}.state.claims",
    }


def test_no_new_circle_and_no_stale_known_one() -> None:
    edges = graph()
    circles = strongly_connected(edges)
    new = [" -> ".join(a_cycle(c, edges)) for c in circles if c not in KNOWN_CYCLES]
    assert not new, "circles in the import graph (imports inside functions count):\n" + "\n".join(new)
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in circles]
    assert not gone, f"these KNOWN_CYCLES are gone (or changed): remove them from tests/test_layout.py: {gone}"


def test_no_import_runs_back_up_a_layer() -> None:
    upward = upward_imports(graph())
    assert not upward, "imports that run back up a layer (see LAYERS in tests/test_layout.py):\n" + "\n".join(upward)


def test_the_state_package_imports_nothing_above_it() -> None:
    """Said on its own, as the issue asks it: state/ imports no hook, notifier, operator, sensor or trigger."""
    above = ("hooks", "notifications", "operators", "sensors", "triggers", "testing", "_task_mixin", "escalation")
    edges = graph()
    reaching = sorted(
        f"{a} -> {b}"
        for a in edges
        if a.startswith(f"{PACKAGE}.state")
        for b in edges[a]
        if b[len(PACKAGE) + 1 :].split(".")[0] in above
    )
    assert not reaching


def test_the_checks_catch_a_circle_and_an_upward_import() -> None:
    """The checks themselves: a made-up graph with a circle through three modules and an arrow from state to hooks."""
    a, b, c, hook = (f"{PACKAGE}.state.a", f"{PACKAGE}.state.b", f"{PACKAGE}.state.c", f"{PACKAGE}.hooks.h")
    edges = {a: frozenset({b}), b: frozenset({c}), c: frozenset({a, hook}), hook: frozenset()}
    (circle,) = strongly_connected(edges)
    assert a_cycle(circle, edges) == [a, b, c, a]
    assert upward_imports(edges) == [f"{c} -> {hook}"]


# --- process-wide caches ---------------------------------------------------------------------------------------

MUTATORS = {"add", "append", "clear", "discard", "extend", "insert", "pop", "popitem", "remove", "setdefault", "update"}
CONTAINERS = {"dict", "set", "list", "OrderedDict", "defaultdict", "deque", "WeakValueDictionary", "process_cache"}

# Process-wide state that is deliberately not reset, or not yet registered, with why. Each entry must still be
# found by the scan below (the test fails once it is gone, so this list cannot go stale).
NOT_RESET = {
    # the registry itself
    f"{PACKAGE}._process._registry",
    # one HTTP client per running event loop, dropped when its loop dies; emptying it would leak open clients
    f"{PACKAGE}.hooks._http._clients",
}


def _mutated_names(tree: ast.AST) -> set[str]:
    """Names (module globals or attributes) this module changes in place, or rebinds through ``global``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            names.update(node.names)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
            owner = node.func.value
            names.add(owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", ""))
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                if isinstance(target, ast.Subscript):
                    owner = target.value
                    names.add(owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", ""))
    return names


def _holds_state(value: ast.expr | None) -> bool:
    if isinstance(value, (ast.Dict, ast.Set, ast.List)):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        return (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")) in CONTAINERS
    return isinstance(value, ast.Constant) and isinstance(value.value, bool)  # a flag a `global` flips


def _memoised(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Decorated with ``functools.cache`` or ``lru_cache`` (a process-wide cache; ``cached_property`` is not)."""
    for decorator in function.decorator_list:
        called = decorator.func if isinstance(decorator, ast.Call) else decorator
        if (called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")) in {"cache", "lru_cache"}:
            return True
    return False


def process_wide_state() -> dict[str, tuple[str, str]]:
    """``module.name`` -> (module, attribute path) of each module- or class-level value the module changes."""
    found: dict[str, tuple[str, str]] = {}
    for module, path in modules().items():
        if module.startswith(f"{PACKAGE}.testing"):
            continue  # the emulator's own state lives in its instances; nothing of it is the provider's
        tree = ast.parse(path.read_text())
        changed = _mutated_names(tree)
        scopes: list[tuple[str, list[ast.stmt]]] = [("", tree.body)]
        scopes += [(f"{node.name}.", node.body) for node in tree.body if isinstance(node, ast.ClassDef)]
        for prefix, body in scopes:
            for node in body:
                if isinstance(node, (ast.Assign, ast.AnnAssign)) and _holds_state(node.value):
                    target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                    if isinstance(target, ast.Name) and target.id in changed:
                        found[f"{module}.{prefix}{target.id}"] = (module, f"{prefix}{target.id}")
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _memoised(node):
                    found[f"{module}.{prefix}{node.name}"] = (module, f"{prefix}{node.name}")
    return found


def _value(module: str, attribute: str) -> object:
    value: object = importlib.import_module(module)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


def test_every_process_wide_cache_is_registered_for_the_reset() -> None:
    state = process_wide_state()
    registered = {id(cache) for cache in _import_everything().values()}
    unregistered = sorted(
        name for name, where in state.items() if name not in NOT_RESET and id(_value(*where)) not in registered
    )
    assert not unregistered, (
        "module-level state that reset_process_state() does not empty: create it through "
        f"airflow_provider_ringout._process.process_cache(__name__, name, ...): {unregistered}"
    )
    stale = sorted(NOT_RESET - set(state))
    assert not stale, f"NOT_RESET names state that is gone: remove them from tests/test_layout.py: {stale}"


def test_the_scan_finds_a_module_cache_a_class_cache_and_a_flag() -> None:
    tree = ast.parse(
        "_seen = set()\n_said = False\nclass C:\n    _memo = {}\n"
        "def f(x):\n    global _said\n    _said = True\n    _seen.add(x)\n    C._memo[x] = 1\n"
    )
    changed = _mutated_names(tree)
    assert {"_seen", "_said", "_memo"} <= changed


def _import_everything() -> dict[str, Clearable]:
    """Every module of the package but the test support imported, so every cache is registered; the registry."""
    for module in modules():
        if not module.startswith(f"{PACKAGE}.testing"):
            importlib.import_module(module)
    return dict(registered_caches())


def test_reset_process_state_empties_every_registered_cache() -> None:
    caches = _import_everything()
    # the registry and the scan agree, name for name: the scan sees each registered cache (it is not blind)
    assert sorted(caches) == sorted(set(process_wide_state()) - NOT_RESET)
    for name, held in caches.items():
        _warm(name, held)
    assert [name for name, held in caches.items() if len(held) == 0] == []
    assert reset_process_state() == sorted(caches)
    assert {name: len(held) for name, held in caches.items()} == dict.fromkeys(caches, 0)


def _warm(name: str, cache: object) -> None:
    from airflow_provider_ringout.state.claims import MemoryClaims

    if isinstance(cache, MemoryClaims):
        assert cache.take("an incident", "an owner", 60.0) is None
    elif isinstance(cache, dict):
        cache[("warmed", name)] = object()
    elif isinstance(cache, set):
        cache.add(("warmed", name))
    else:  # pragma: no cover (a new kind of cache: teach this test to warm it)
        pytest.fail(f"{name}: cannot warm a {type(cache).__name__}")


def test_a_new_cache_is_registered_by_process_cache() -> None:
    seen: set[str] = process_cache(__name__, "seen", set())
    try:
        seen.add("x")
        assert f"{__name__}.seen" in reset_process_state()
        assert not seen
    finally:
        from airflow_provider_ringout import _process

        _process._registry.pop(f"{__name__}.seen", None)

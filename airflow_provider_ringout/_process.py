"""
The provider's process-wide caches, in one registry, and the one call that empties them all.

A module that keeps something for the life of the process (a token in memory, a folder found unusable, a Redis
client, a warning said once) creates it through :func:`process_cache`, which registers it under its module and
name. :func:`reset_process_state` then clears every registered cache, so a test (or an embedding application)
starts over with one call instead of knowing each cache by name; it is public as
``airflow_provider_ringout.state.reset_process_state``. ``tests/test_layout.py`` finds module-level caches in the
package's source and fails on one that is not registered here. This module sits at the bottom of the package
(it imports nothing of it), so any module may register its caches.
"""

from __future__ import annotations

import threading
from typing import Protocol, TypeVar


class Clearable(Protocol):
    """A cache: it can be emptied, and says how much it holds."""

    def __len__(self) -> int: ...

    def clear(self) -> None: ...


C = TypeVar("C", bound=Clearable)

# "module.name" -> the cache object; filled at import time by each module that owns a cache.
_registry: dict[str, Clearable] = {}
_registry_lock = threading.Lock()


def process_cache(owner: str, name: str, cache: C) -> C:
    """
    Register ``cache`` (anything with ``clear()`` and ``len()``) as ``owner.name`` and return it.

    :param owner: the owning module's ``__name__``.
    :param name: the name it is kept under (``Class.attr`` for a class attribute).
    """
    with _registry_lock:
        _registry[f"{owner}.{name}"] = cache
    return cache


def registered_caches() -> dict[str, Clearable]:
    """The registered caches by ``module.name`` (of the modules imported so far)."""
    with _registry_lock:
        return dict(_registry)


def reset_process_state() -> list[str]:
    """
    Empty every process-wide cache of the provider (tokens in memory, pacer state, Redis clients, alert claims held
    in this process, warnings said once). Meant for tests and for tools that reuse one process; not for a process
    that has calls in flight.

    :return: the names of the caches emptied.
    """
    caches = registered_caches()
    for cache in caches.values():
        cache.clear()
    return sorted(caches)

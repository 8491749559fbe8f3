"""
Request kinds: which endpoint a method and path reach, by the hook's own endpoint table, and the names tests match on.

A request kind is an :class:`~airflow_provider_ringout.hooks.endpoints.Endpoint` name (``"ring-out-create"``,
``"call-log"``, ...) or ``"other"`` (no endpoint: answered 404). The routes are drawn from the table's path
templates, so a new row there is routed here without a change.
"""

from __future__ import annotations

import re

from airflow_provider_ringout.hooks.endpoints import Endpoint

OTHER = "other"  # the kind of a request that reaches no endpoint
REQUEST_KINDS = (*(endpoint.value for endpoint in Endpoint), OTHER)
KIND_METHOD = {endpoint.value: endpoint.method for endpoint in Endpoint}
KIND_ALIASES: dict[str, frozenset[str]] = {
    "any": frozenset(REQUEST_KINDS),
    "ring-out": frozenset({Endpoint.RING_OUT_CREATE.value}),
    "ring-out-status": frozenset({Endpoint.RING_OUT_GET.value, Endpoint.RING_OUT_DELETE.value}),
    **{kind: frozenset({kind}) for kind in REQUEST_KINDS},
}
# Placeholders the emulator's ids can take: the account and extension are "~" or digits, other ids one segment.
_OWNER = {"accountId", "extensionId"}


def _pattern(template: str) -> re.Pattern[str]:
    """A path template of the table (``.../ring-out/{ringoutId}``) as a regular expression naming its placeholders."""
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>~|\\d+)" if part in _OWNER else f"(?P<{part}>[^/]+)"
        for i, part in enumerate(parts)
    )
    return re.compile(regex + "/?")


_ROUTES = [(endpoint, _pattern(endpoint.rules.path)) for endpoint in Endpoint]


def kinds_of(alias: str, label: str = "path kind") -> frozenset[str]:
    """The request kinds an alias ("any", "ring-out", "ring-out-status" or a kind) stands for; ValueError if none."""
    kinds = KIND_ALIASES.get(alias)
    if kinds is None:
        raise ValueError(f"unknown {label} {alias!r}; choose from {sorted(KIND_ALIASES)}")
    return kinds


def route(method: str, path: str) -> tuple[Endpoint | None, dict[str, str]]:
    """The endpoint a request reaches (None: none, kind "other") and its path parameters."""
    for endpoint, pattern in _ROUTES:
        match = pattern.fullmatch(path)
        if match is not None and endpoint.method == method:
            return endpoint, match.groupdict()
    return None, {}

"""Request kinds: which emulated endpoint a method and path reach, and the kind names tests match on."""

from __future__ import annotations

import re

from airflow_provider_ringout.testing.emulator.calllog import CALL_LOG_KINDS, route_call_log

REQUEST_KINDS = ("token", "revoke", "ring-out-create", "ring-out-get", "ring-out-delete", *CALL_LOG_KINDS, "other")
KIND_METHOD = {
    "token": "POST",
    "revoke": "POST",
    "ring-out-create": "POST",
    "ring-out-get": "GET",
    "ring-out-delete": "DELETE",
    **dict.fromkeys(CALL_LOG_KINDS, "GET"),
}
KIND_ALIASES: dict[str, frozenset[str]] = {
    "any": frozenset(REQUEST_KINDS),
    "ring-out": frozenset({"ring-out-create"}),
    "ring-out-status": frozenset({"ring-out-get", "ring-out-delete"}),
    **{kind: frozenset({kind}) for kind in REQUEST_KINDS},
}
_RING_OUT_PATH = re.compile(r"/restapi/v1\.0/account/(~|\d+)/extension/(~|\d+)/ring-out(?:/([^/]+))?/?")
_OAUTH_PATHS = {"/restapi/oauth/token": "token", "/restapi/oauth/revoke": "revoke"}


def kinds_of(alias: str, label: str = "path kind") -> frozenset[str]:
    """The request kinds an alias ("any", "ring-out", "ring-out-status" or a kind) stands for; ValueError if none."""
    kinds = KIND_ALIASES.get(alias)
    if kinds is None:
        raise ValueError(f"unknown {label} {alias!r}; choose from {sorted(KIND_ALIASES)}")
    return kinds


def route(method: str, path: str) -> tuple[str, re.Match[str] | None]:
    """The request kind and, for RingOut paths, the path match (account, extension, ringout id)."""
    oauth_kind = _OAUTH_PATHS.get(path)
    if oauth_kind is not None:
        return (oauth_kind if method == "POST" else "other"), None
    if call_log := route_call_log(method, path):
        return call_log
    match = _RING_OUT_PATH.fullmatch(path)
    if match is None:
        return "other", None
    if match.group(3) is None:
        return ("ring-out-create" if method == "POST" else "other"), match
    if method == "GET":
        return "ring-out-get", match
    if method == "DELETE":
        return "ring-out-delete", match
    return "other", match

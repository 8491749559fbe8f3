"""
The RingCentral endpoints the provider calls, each declared once with the rules of its requests.

:class:`Endpoint` is the table: a row's name (the emulator's request kind too), HTTP method, path template (as
RingCentral's OpenAPI spec writes it), throttling group, app permission, whether it may be resent after a
possible processing, what a 404 and a 403 mean, and how it authenticates. The retry core
(:mod:`._transport`), the hook and the emulator read these rules; nothing else decides them from the method.

Adding an endpoint: one row here, one handler in the emulator (``testing/emulator/core.py``); then
``RingCentralHook.request(Endpoint.NEW, ...)`` paces, retries and maps its errors like the built-in calls.

No I/O and no heavy import: the emulator reads this table without Airflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Credential", "Endpoint", "Forbidden", "HttpMethod", "NotFound", "RateGroup", "Rules", "Unconfirmed"]


class HttpMethod(str, Enum):
    """The HTTP methods the table uses."""

    GET = "GET"
    POST = "POST"
    DELETE = "DELETE"


class RateGroup(str, Enum):
    """RingCentral's throttling groups (``x-throttling-group``); budgets are per user and app."""

    AUTH = "Auth"
    HEAVY = "Heavy"
    MEDIUM = "Medium"
    LIGHT = "Light"


class Credential(Enum):
    """How a request authenticates."""

    CLIENT = "client"  # the OAuth endpoints: the app's client ID and secret in HTTP Basic; any error is an auth error
    BEARER = "bearer"  # an API call: the shared access token, renewed once on a 401 token error


class NotFound(Enum):
    """What a 404 answer means."""

    GONE = "gone"  # the resource ended (a RingOut session lives only while the call does): the answer is None
    ERROR = "error"  # an error like any other (wrong account, path or server)


class Forbidden(Enum):
    """What a 403 answer means."""

    PERMISSION = "permission"  # CMN-401 / InsufficientPermissions: the app lacks the row's permission (the error says)
    LOGIN_REFUSED = "login refused"  # the login itself was refused (an auth error, as every other answer but 200)


@dataclass(frozen=True)
class Unconfirmed:
    """
    What a request that may have been processed (a 5xx, a lost answer) may have done: it is not sent again.

    :param effect: what it may have done, e.g. "the call may have been placed".
    :param check: what to look at before sending it again by hand.
    """

    effect: str
    check: str


@dataclass(frozen=True)
class Rules:
    """
    The rules of one endpoint's requests.

    :param method: the HTTP method.
    :param path: the path template, placeholders as in RingCentral's spec (``{accountId}`` and ``{extensionId}``
        default to ``~``, the caller's own account and extension).
    :param group: the throttling group it spends.
    :param permission: the app permission it needs (None: none, the OAuth endpoints).
    :param unconfirmed: None when a request may be resent after it was possibly processed (a 5xx, a lost answer);
        else what such a request may have done, said in the error (``RingOutUnconfirmedError``) raised instead.
    :param not_found: what a 404 means.
    :param forbidden: what a 403 means.
    :param credential: how it authenticates.
    """

    method: HttpMethod
    path: str
    group: RateGroup
    permission: str | None
    unconfirmed: Unconfirmed | None = None
    not_found: NotFound = NotFound.ERROR
    forbidden: Forbidden = Forbidden.PERMISSION
    credential: Credential = Credential.BEARER


_API = "/restapi/v1.0/account/{accountId}/extension/{extensionId}"
_RINGOUT = "RingOut"
_CALL_LOG = "ReadCallLog"


class Endpoint(str, Enum):
    """
    Every RingCentral endpoint the provider calls (and the emulator answers), by name; ``rules`` says how.

    The value is the name, as the emulator records it (``rc.count(kind="call-log")``).
    """

    rules: Rules

    def __new__(cls, name: str, rules: Rules) -> Endpoint:
        member = str.__new__(cls, name)
        member._value_ = name
        member.rules = rules
        return member

    # The JWT grant (what test_connection reads: the answer's scope lists the app's permissions). Resent freely.
    TOKEN = (
        "token",
        Rules(
            method=HttpMethod.POST,
            path="/restapi/oauth/token",
            group=RateGroup.AUTH,
            permission=None,
            forbidden=Forbidden.LOGIN_REFUSED,
            credential=Credential.CLIENT,
        ),
    )
    # Ends the session for every process that shares it: never retried. The emulator answers it; the hook never
    # sends it.
    REVOKE = (
        "revoke",
        Rules(
            method=HttpMethod.POST,
            path="/restapi/oauth/revoke",
            group=RateGroup.AUTH,
            permission=None,
            unconfirmed=Unconfirmed("the session may have been ended", check="whether the token still works"),
            forbidden=Forbidden.LOGIN_REFUSED,
            credential=Credential.CLIENT,
        ),
    )
    RING_OUT_CREATE = (
        "ring-out-create",
        Rules(
            method=HttpMethod.POST,
            path=f"{_API}/ring-out",
            group=RateGroup.HEAVY,
            permission=_RINGOUT,
            # A 503 from a gateway may come after the call was placed.
            unconfirmed=Unconfirmed("the call may have been placed", check="the phone or RingCentral's call log"),
        ),
    )
    RING_OUT_GET = (
        "ring-out-get",
        Rules(
            method=HttpMethod.GET,
            path=f"{_API}/ring-out/{{ringoutId}}",
            group=RateGroup.LIGHT,
            permission=_RINGOUT,
            not_found=NotFound.GONE,  # the session lives only while the call does and a short time after
        ),
    )
    RING_OUT_DELETE = (
        "ring-out-delete",
        Rules(
            method=HttpMethod.DELETE,
            path=f"{_API}/ring-out/{{ringoutId}}",
            group=RateGroup.HEAVY,
            permission=_RINGOUT,
            not_found=NotFound.GONE,  # nothing left to cancel
        ),
    )
    CALL_LOG = (
        "call-log",
        Rules(
            method=HttpMethod.GET,
            path=f"{_API}/call-log",
            group=RateGroup.HEAVY,
            permission=_CALL_LOG,
        ),
    )
    CALL_LOG_SYNC = (
        "call-log-sync",
        Rules(
            method=HttpMethod.GET,
            path=f"{_API}/call-log-sync",
            group=RateGroup.HEAVY,
            permission=_CALL_LOG,
        ),
    )

    def __str__(self) -> str:
        return str(self._value_)

    @classmethod
    def named(cls, name: Endpoint | str) -> Endpoint:
        """
        The endpoint of a name (``"call-log"``) or the endpoint itself.

        :raises ValueError: no endpoint has that name.
        """
        for endpoint in cls:
            if endpoint.value == name:
                return endpoint
        raise ValueError(f"unknown endpoint {name!r}; the table has {', '.join(e.value for e in cls)}")

    @property
    def method(self) -> str:
        """The HTTP method, as a plain string."""
        return self.rules.method.value

    @property
    def group(self) -> str:
        """The throttling group, as the pacer and RingCentral's headers name it."""
        return self.rules.group.value

    @property
    def permission(self) -> str | None:
        """The app permission it needs."""
        return self.rules.permission

    @property
    def resendable(self) -> bool:
        """Whether a request that may have been processed (5xx, lost answer) may be sent again."""
        return self.rules.unconfirmed is None

    @property
    def is_login(self) -> bool:
        """Whether it authenticates with the client credentials (the OAuth endpoints), not an access token."""
        return self.rules.credential is Credential.CLIENT

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The path template's placeholders, in order."""
        return tuple(_PLACEHOLDER.findall(self.rules.path))

    def path(self, path_params: Mapping[str, Any] | None = None) -> str:
        """
        The path of one request: the template filled in (``accountId`` and ``extensionId`` default to ``~``).

        :param path_params: a value for each placeholder; each must be a plain path segment.
        :raises RingCentralConfigError: a placeholder without a value, an unknown one, or a value that is not
            a plain path segment (``..`` or ``/`` would address another resource).
        """
        values = {**_DEFAULT_PARAMS, **(path_params or {})}
        problems = {
            "unknown": sorted(set(values) - set(self.placeholders) - set(_DEFAULT_PARAMS)),
            "missing": [name for name in self.placeholders if values.get(name) in (None, "")],
            "not a plain path segment": [
                name for name in self.placeholders if values.get(name) and not _SEGMENT.fullmatch(str(values[name]))
            ],
        }
        if any(problems.values()):
            from airflow_provider_ringout.exceptions import RingCentralConfigError  # (Airflow: not for the emulator)

            said = "; ".join(f"{what}: {', '.join(names)}" for what, names in problems.items() if names)
            raise RingCentralConfigError(
                f"path_params of {self.value!r} ({self.rules.path}): {said}; expected "
                f"{', '.join(self.placeholders) or 'none'}."
            )
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), self.rules.path)


_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_DEFAULT_PARAMS = {"accountId": "~", "extensionId": "~"}
# A plain path segment: RingCentral's ids are digits ("~": the caller's own account or extension); letters, '-',
# '_' and ',' (a list of ids) are let through too. Never '.', '/' or '%': they would address other resources.
_SEGMENT = re.compile(r"[0-9A-Za-z_~,-]{1,256}")

"""
RingCentralHook: everything that talks to RingCentral, for one ``ringcentral`` connection.

This module holds the hook's public face: its connection form and Test button, ``request``/``arequest`` (any
endpoint of the table, paced) and ``get_conn`` (an unpaced session). The jobs behind it live beside it:
:mod:`.endpoints` (each endpoint's rules, declared once), :mod:`._ringout_calls` (the RingOut methods),
:mod:`._call_results` (``get_call_result``: what happened on a call, from the call log shared by one reader),
:mod:`._core` (credentials, shared token and pacer, one paced request sync and async), :mod:`._connection`
(credentials, URL rules, parsing), :mod:`._oauth` (the JWT grant, bearer auth), :mod:`._transport` (the retry core,
error mapping), :mod:`._http` (body limits, redirects, per-loop clients) and :mod:`..state` (the token and rate budget
shared host- or cluster-wide).
Operators, sensors, triggers and notifiers use this hook and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ringout import JWT_FIELD
from airflow_provider_ringout.exceptions import RingCentralAPIError, RingCentralConfigError
from airflow_provider_ringout.hooks._call_results import CallResults
from airflow_provider_ringout.hooks._connection import (
    LEGACY_JWT_FIELD,
    RingCentralCredentials,
    _mask,
    normalize_server_url,
    parse_connection,
)
from airflow_provider_ringout.hooks._oauth import (
    JWT_GRANT,
    REQUIRED_SCOPE,
    TOKEN_ERROR_CODES,
    TOKEN_PATH,
    BearerAuth,
    explain_login_failure,
)
from airflow_provider_ringout.hooks._ringout import RINGOUT_PATH
from airflow_provider_ringout.hooks._ringout_calls import RingOutCalls
from airflow_provider_ringout.hooks._transport import decode_json, is_connect_failure, parse_error_body
from airflow_provider_ringout.hooks.endpoints import Endpoint, RateGroup

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import requests

__all__ = [
    "JWT_GRANT",
    "LEGACY_JWT_FIELD",
    "REQUIRED_SCOPE",
    "RINGOUT_PATH",
    "TOKEN_ERROR_CODES",
    "TOKEN_PATH",
    "Endpoint",
    "RingCentralCredentials",
    "RingCentralHook",
    "is_connect_failure",
    "normalize_server_url",
    "parse_connection",
    "parse_error_body",
]


class RingCentralHook(RingOutCalls, CallResults):
    """
    Talks to RingCentral for one ``ringcentral`` connection: token, pacing, retries, errors, RingOut calls and
    their results (``get_call_result``).

    :param ringcentral_conn_id: the Airflow connection to use.
    :param max_attempts: how many times a request may be sent in all when RingCentral answers 5xx, or the
        connection fails before the request was sent.
    :param backoff_factor: urllib3's back-off factor between those sends (seconds; 0: resend at once).
    :param rate_limit_budget: seconds (from the first 429) within which a request RingCentral answered 429 is
        resent, each time after ``Retry-After`` plus a growing random extra (0: a 429 is final at once).
    :param token_cache_dir: folder of the host-wide token cache and pacer state; default
        ``[ringcentral] token_cache_dir``.
    """

    conn_name_attr = "ringcentral_conn_id"
    default_conn_name = "ringcentral_default"
    conn_type = "ringcentral"
    hook_name = "RingCentral"

    # RingCentral's throttling groups, by name (read-only: each request's group comes from its Endpoint row).
    GROUP_AUTH: ClassVar[str] = RateGroup.AUTH.value
    GROUP_HEAVY: ClassVar[str] = RateGroup.HEAVY.value
    GROUP_LIGHT: ClassVar[str] = RateGroup.LIGHT.value

    # --- connection and UI ---------------------------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form layout for Airflow cores older than 3.2, which do not read ``conn-fields`` from provider info."""
        from airflow_provider_ringout import get_provider_info

        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """JWT and default From number widgets for Airflow cores older than 3.2."""
        from airflow_provider_ringout.version_compat import AIRFLOW_V_3_2_PLUS

        if AIRFLOW_V_3_2_PLUS:  # the declarative conn-fields are used instead
            return {}
        try:
            from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
            from flask_babel import lazy_gettext
            from wtforms import PasswordField, StringField
        except ImportError:  # no FAB UI installed: nothing can render these widgets anyway
            return {}

        return {
            JWT_FIELD: PasswordField(lazy_gettext("JWT"), widget=BS3PasswordFieldWidget()),
            "from_number": StringField(lazy_gettext("Default From number"), widget=BS3TextFieldWidget()),
        }

    def get_conn(self) -> requests.Session:
        """
        An authorised ``requests`` session, unpaced: prefer :meth:`request`.

        Its requests carry the shared access token (renewed as needed) and refuse redirects and oversized
        answers, but they skip the shared rate pacer (other tasks' budget), the retries and the error mapping:
        a burst through it can earn a 429 penalty that every task on the credential then waits out.

        :return: the session.
        """
        session = self._new_session()
        session.auth = BearerAuth(self._token)
        return session

    # --- any endpoint of the table -------------------------------------------------------------------

    def request(
        self,
        endpoint: Endpoint | str,
        *,
        path_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """
        One request to any endpoint of the table (:class:`~airflow_provider_ringout.hooks.endpoints.Endpoint`),
        with the pacer, retries, token handling and error mapping of the built-in calls.

        :param endpoint: the endpoint, or its name (``"call-log"``).
        :param path_params: values of the path's placeholders (``accountId`` and ``extensionId`` default to ``~``).
        :param params: query parameters (``True``/``False`` are sent as ``true``/``false``).
        :param json: the JSON body.
        :return: the decoded JSON body; None for an answer without body (204) or a 404 the endpoint reads as
            "gone".
        :raises RingCentralConfigError: an unknown endpoint, one the hook logs in to by itself, or bad path_params.
        :raises RingCentralAPIError: (or a subclass) for an error answer; ``RingOutUnconfirmedError`` when the
            endpoint may not be resent and the request may have been processed.
        """
        endpoint, path = self._request_target(endpoint, path_params)
        answer = self._api(endpoint, path, json_body=json, params=self._query(params))
        return decode_json(answer, endpoint, path)

    async def arequest(
        self,
        endpoint: Endpoint | str,
        *,
        path_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Async :meth:`request` (httpx; never blocks the event loop on the network or a lock)."""
        endpoint, path = self._request_target(endpoint, path_params)
        answer = await self._aapi(endpoint, path, json_body=json, params=self._query(params))
        return decode_json(answer, endpoint, path)

    @staticmethod
    def _request_target(endpoint: Endpoint | str, path_params: Mapping[str, Any] | None) -> tuple[Endpoint, str]:
        """The endpoint of a :meth:`request` and its path, checked before anything is sent."""
        try:
            endpoint = Endpoint.named(endpoint)
        except ValueError as exc:
            raise RingCentralConfigError(f"{exc}.") from None
        if endpoint.is_login:
            raise RingCentralConfigError(
                f"{endpoint.value!r} takes the app's client credentials; the hook logs in by itself."
            )
        return endpoint, endpoint.path(path_params)

    @staticmethod
    def _query(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Query values as RingCentral reads them, the same from both clients (requests would send ``True``)."""
        if params is None:
            return None
        return {key: str(value).lower() if isinstance(value, bool) else value for key, value in params.items()}

    # --- Test button ---------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """
        Exchange the credentials for a token and check that the app has the ``RingOut`` permission.

        Never places a call. The message says what is wrong in words a user can act on.

        :return: whether the connection works, and a message for the connection form.
        """
        try:
            creds = parse_connection(self.get_connection(self.ringcentral_conn_id))
            self.__dict__["credentials"] = creds
            token = self._login(wait_on_rate_limit=False, attempts=1)  # a Test button answers at once
        except RingCentralConfigError as exc:
            return False, str(exc)
        except RingCentralAPIError as exc:
            return False, explain_login_failure(exc, self.credentials.server_url)
        except Exception as exc:
            return False, f"Connection test failed: {self._scrub(str(exc))}"
        _mask(token.access_token)
        self._tokens.store(token)
        if REQUIRED_SCOPE.lower() not in {s.lower() for s in token.scopes}:
            return False, (
                f"Logged in to {creds.server_url}, but the app lacks the 'RingOut' permission "
                f"(granted: {token.scope or 'nothing'}). Add 'RingOut' to the app's permissions in the "
                "RingCentral developer console, then test again."
            )
        from airflow_provider_ringout.state.backend import describe_shared_state

        return True, (
            f"Connected to {creds.server_url} as extension {token.owner_id or 'unknown'}; "
            f"the app has the RingOut permission. {self._describe_call_log_permission(token.scopes)} "
            f"{describe_shared_state(self._tokens)}"
        )

    @staticmethod
    def _describe_call_log_permission(scopes: Iterable[str]) -> str:
        """What the Test button says about ``ReadCallLog`` (RingOut works without it; call results do not)."""
        permission = Endpoint.CALL_LOG_SYNC.permission or "ReadCallLog"
        if permission.lower() in {s.lower() for s in scopes}:
            return f"It has {permission} too: call results (get_call_result, wait_for_result) can be read."
        return (
            f"It lacks {permission}: calls work, but their results (get_call_result, wait_for_result, "
            f"RingOutCallResultSensor) cannot be read; add '{permission}' in the RingCentral developer console "
            "to read them."
        )

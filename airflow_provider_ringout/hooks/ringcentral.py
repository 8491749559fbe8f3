"""
RingCentralHook: everything that talks to RingCentral, for one ``ringcentral`` connection.

This module holds the hook's public API (the RingOut calls, ``get_conn``), its connection form and Test button.
The jobs behind it live beside it: :mod:`._connection` (credentials, URL rules, parsing), :mod:`._oauth` (the JWT
grant, bearer auth), :mod:`._transport` (retry decisions, error parsing, body limits, redirects) and
:mod:`._shared_state` / :mod:`._redis_state` (the token and rate budget shared host- or cluster-wide).
Operators, sensors, triggers and notifiers use this hook and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import requests
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_ringout import JWT_FIELD, __version__
from airflow_provider_ringout.exceptions import (
    RingCentralAPIError,
    RingCentralConfigError,
)
from airflow_provider_ringout.hooks._connection import (
    LEGACY_JWT_FIELD,
    RingCentralCredentials,
    _mask,
    _mask_in_process,
    normalize_server_url,
    parse_connection,
)
from airflow_provider_ringout.hooks._oauth import (
    JWT_GRANT,
    REQUIRED_SCOPE,
    TOKEN_ERROR_CODES,
    TOKEN_PATH,
    BearerAuth,
    TokenExchange,
    explain_login_failure,
)
from airflow_provider_ringout.hooks._ringout import (
    RINGOUT_PATH,
    ringout_path,
    ringout_request,
    status_body,
)
from airflow_provider_ringout.hooks._shared_state import (
    RatePacer,
    StateDir,
    Token,
    TokenCache,
    bounded_waits,
    default_cache_dir,
)
from airflow_provider_ringout.hooks._transport import (
    RATE_LIMIT_BUDGET,
    Answer,
    Attempts,
    arequest_limited,
    asend,
    bounded_timeout,
    client_for_running_loop,
    guard_response,
    is_connect_failure,
    parse_error_body,
    send,
    within_wait,
)
from airflow_provider_ringout.phone import mask_phone_number
from airflow_provider_ringout.status import (
    CancelOutcome,
    RingOutState,
    RingOutStatus,
    RingOutWatch,
    cancel_outcome,
    classify,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

    import httpx

    from airflow_provider_ringout.hooks._redis_state import RedisRatePacer, RedisTokenCache
    from airflow_provider_ringout.request import RingOutRequest

__all__ = [
    "JWT_GRANT",
    "LEGACY_JWT_FIELD",
    "REQUIRED_SCOPE",
    "RINGOUT_PATH",
    "TOKEN_ERROR_CODES",
    "TOKEN_PATH",
    "RingCentralCredentials",
    "RingCentralHook",
    "is_connect_failure",
    "normalize_server_url",
    "parse_connection",
    "parse_error_body",
]


class RingCentralHook(BaseHook):
    """
    Talks to RingCentral for one ``ringcentral`` connection: token, pacing, retries, errors, RingOut calls.

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

    # RingCentral's rate-limit (throttling) group of each call we make.
    GROUP_AUTH: ClassVar[str] = "Auth"
    GROUP_HEAVY: ClassVar[str] = "Heavy"
    GROUP_LIGHT: ClassVar[str] = "Light"

    def __init__(
        self,
        ringcentral_conn_id: str = default_conn_name,
        *,
        max_attempts: int = 5,
        backoff_factor: float = 1.0,
        token_cache_dir: str | os.PathLike[str] | None = None,
        rate_limit_budget: float = RATE_LIMIT_BUDGET,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ringcentral_conn_id = ringcentral_conn_id
        self.max_attempts = max(1, int(max_attempts))
        self.backoff_factor = backoff_factor
        self.rate_limit_budget = max(0.0, float(rate_limit_budget))
        self._token_cache_dir = Path(token_cache_dir) if token_cache_dir else None
        self._mask: Callable[[str | None], None] = _mask

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

    @cached_property
    def credentials(self) -> RingCentralCredentials:
        """The connection, checked; secrets are registered with the masker as soon as they are read."""
        return parse_connection(self.get_connection(self.ringcentral_conn_id))

    async def _acredentials(self) -> RingCentralCredentials:
        """The same, read the async way (for triggers)."""
        if "credentials" not in self.__dict__:
            from asgiref.sync import sync_to_async

            from airflow_provider_ringout.version_compat import AIRFLOW_V_3_3_PLUS

            if not AIRFLOW_V_3_3_PLUS:
                self._mask = _mask_in_process
            conn = await sync_to_async(self.get_connection)(self.ringcentral_conn_id)
            self.__dict__["credentials"] = parse_connection(conn, mask=self._mask)
        return self.credentials

    @cached_property
    def _state(self) -> StateDir:
        return StateDir(self._token_cache_dir or default_cache_dir())

    @cached_property
    def _shared(self) -> tuple[TokenCache | RedisTokenCache, RatePacer | RedisRatePacer]:
        """Token cache and pacer on ``[ringcentral] shared_state`` (host files or Redis); the token sealed at rest."""
        from airflow_provider_ringout.hooks._backend import shared_state

        return shared_state(self._state, self.credentials)

    @cached_property
    def _tokens(self) -> TokenCache | RedisTokenCache:
        return self._shared[0]

    @cached_property
    def _pacer(self) -> RatePacer | RedisRatePacer:
        return self._shared[1]

    @cached_property
    def user_agent(self) -> str:
        return f"airflow-provider-ringout/{__version__} python-requests/{requests.__version__}"

    def get_conn(self) -> requests.Session:
        """
        An authorised ``requests`` session for RingCentral calls this hook does not wrap.

        :return: a session whose every request carries the shared access token (renewed as needed) and refuses
            redirects and oversized answers.
        """
        session = self._new_session()
        session.auth = BearerAuth(self._token)
        return session

    @cached_property
    def _session(self) -> requests.Session:
        return self._new_session()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update({"User-Agent": self.user_agent, "Accept": "application/json"})
        session.hooks["response"].append(guard_response)
        return session

    # --- token and sending --------------------------------------------------------------------------

    def _token(self, *, invalid: str | None = None) -> Token:
        token = self._tokens.get(self._login, invalid=invalid)
        self._mask(token.access_token)
        return token

    def _login(self, *, wait_on_rate_limit: bool = True, attempts: int | None = None) -> Token:
        """Exchange the JWT for an access token (JWT bearer grant, client credentials in HTTP Basic)."""
        exchange = TokenExchange(self.credentials, self.user_agent, self._mask)
        started = time.time()
        send(
            self._attempts("POST", TOKEN_PATH, self.GROUP_AUTH, wait_on_rate_limit, attempts),
            self._pacer,
            exchange.send,
        )
        token = exchange.token(started)
        self.log.info("Obtained a RingCentral access token for connection %r.", self.credentials.conn_id)
        return token

    def _attempts(self, method: str, path: str, group: str, wait: bool = True, attempts: int | None = None) -> Attempts:
        """The retry and renewal decisions of one request (the token request when ``path`` is ``TOKEN_PATH``)."""
        auth = path == TOKEN_PATH
        return Attempts(
            method,
            path,
            server=self.credentials.server_url,
            group=group,
            attempts=attempts or self.max_attempts,
            backoff_factor=self.backoff_factor,
            log=self.log,
            scrub=self._scrub,
            wait=wait,
            auth=auth,
            token_error_codes=frozenset() if auth else TOKEN_ERROR_CODES,
            rate_limit_budget=self.rate_limit_budget,
        )

    def _api(
        self, method: str, path: str, *, group: str, json_body: dict[str, Any] | None = None
    ) -> requests.Response | None:
        """
        One authorised API request; renews the token once on a 401 token error. Returns None for 404.

        Every error answer is raised as a specific exception.
        """
        attempts = self._attempts(method, path, group)
        login = functools.partial(self._token_for, attempts)
        return send(attempts, self._pacer, functools.partial(self._authorised, attempts, json_body), login)

    def _token_for(self, attempts: Attempts) -> Token:
        """The access token the next send of ``attempts`` uses (a login when none is in hand)."""
        return self._token(invalid=attempts.refused)

    def _authorised(self, attempts: Attempts, json_body: dict[str, Any] | None) -> requests.Response:
        """Send once with the shared access token (never the one RingCentral refused)."""
        token = self._token_for(attempts).access_token
        attempts.use_token(token)
        return self._session.request(
            attempts.method,
            attempts.url,
            json=json_body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=bounded_timeout(self.credentials.request_timeout),
        )

    def _scrub(self, text: str) -> str:
        """Belt and braces: no secret of ours in any message, even if a server echoed one."""
        if "credentials" in self.__dict__:
            for secret in (self.credentials.client_secret, self.credentials.jwt):
                if secret:
                    text = text.replace(secret, "***")
        token = self._tokens.peek() if "credentials" in self.__dict__ else None
        if token:
            text = text.replace(token.access_token, "***")
        return text

    # --- RingOut -------------------------------------------------------------------------------------

    @staticmethod
    def _ringout_path(ringout_id: Any) -> str:
        return ringout_path(ringout_id)

    @staticmethod
    def validate_ringout_id(ringout_id: Any) -> str:
        """
        Check a RingOut id as every request does, before any is sent.

        :param ringout_id: the id returned by RingOutOperator or :meth:`place_ringout`.
        :return: the id, stripped.
        :raises RingCentralConfigError: empty, an unrendered template, or not a plain RingOut id.
        """
        return RingCentralHook._ringout_path(ringout_id).removeprefix(f"{RINGOUT_PATH}/")

    def build_ringout_request(
        self,
        *,
        to_number: str | None = None,
        from_number: str | None = None,
        caller_id: str | None = None,
        play_prompt: bool = False,
        country_id: str | int | None = None,
        request: RingOutRequest | None = None,
    ) -> dict[str, Any]:
        """
        Validate the numbers and build the POST body; raises before anything is sent.

        :param to_number: the phone connected second (E.164, such as +14155550100).
        :param from_number: the phone rung first; default: the connection's ``from_number``.
        :param caller_id: the number the callee sees (E.164); default: RingCentral's choice.
        :param play_prompt: whether RingCentral asks the ``from`` phone to press 1 first.
        :param country_id: RingCentral's numeric country id of the numbers.
        :param request: the call as one value, already checked, instead of the five fields above.
        :return: the JSON body of the ring-out POST.
        """
        call = ringout_request(
            request,
            to_number=to_number,
            from_number=from_number,
            caller_id=caller_id,
            play_prompt=play_prompt,
            country_id=country_id,
        )
        default = None if call.from_number else self.credentials.from_number  # the connection is read only if needed
        return call.body(default_from_number=default, connection=self.ringcentral_conn_id)

    def place_ringout(
        self,
        *,
        to_number: str | None = None,
        from_number: str | None = None,
        caller_id: str | None = None,
        play_prompt: bool = False,
        country_id: str | int | None = None,
        request: RingOutRequest | None = None,
    ) -> dict[str, Any]:
        """
        Place a two-legged call: ring ``from_number`` (default: the connection's), then connect it to ``to_number``.

        Never sent twice blindly: an answer that leaves the outcome open raises :class:`RingOutUnconfirmedError`.

        :param to_number: the phone connected second (E.164, such as +14155550100).
        :param from_number: the phone rung first; default: the connection's ``from_number``.
        :param caller_id: the number the callee sees (E.164); default: RingCentral's choice.
        :param play_prompt: whether RingCentral asks the ``from`` phone to press 1 first.
        :param country_id: RingCentral's numeric country id of the numbers.
        :param request: the call as one value, already checked, instead of the five fields above.
        :return: RingCentral's status body, with ``id`` always a string.
        """
        body = self.build_ringout_request(
            to_number=to_number,
            from_number=from_number,
            caller_id=caller_id,
            play_prompt=play_prompt,
            country_id=country_id,
            request=request,
        )
        response = self._api("POST", RINGOUT_PATH, group=self.GROUP_HEAVY, json_body=body)
        assert response is not None
        result = status_body(response, "POST", RINGOUT_PATH)
        self.log.info(
            "Placed RingOut %s from %s to %s.",
            result["id"],
            mask_phone_number(body["from"]["phoneNumber"]),
            mask_phone_number(body["to"]["phoneNumber"]),
        )
        return result

    def get_ringout(self, ringout_id: str) -> dict[str, Any]:
        """
        The RingOut status body, as RingCentral sends it.

        :param ringout_id: the id :meth:`place_ringout` returned.
        :return: the body, with ``id`` as a string.
        :raises RingCentralAPIError: with status 404 once the session is gone.
        """
        path = self._ringout_path(ringout_id)
        response = self._api("GET", path, group=self.GROUP_LIGHT)
        if response is None:
            raise RingCentralAPIError(
                "the RingOut session no longer exists",
                status_code=404,
                error_codes=["CMN-102"],
                method="GET",
                path=path,
            )
        return status_body(response, "GET", path)

    def get_status(self, ringout_id: str) -> RingOutStatus:
        """
        What the call's status means now (a gone session reads as ``gone``, not as an error).

        :param ringout_id: the id :meth:`place_ringout` returned.
        :return: the status, classified.
        """
        path = self._ringout_path(ringout_id)
        for attempt in range(self.max_attempts):
            read = self._read_status(self._api("GET", path, group=self.GROUP_LIGHT), path, attempt)
            if isinstance(read, RingOutStatus):
                return read
            time.sleep(read)
        raise AssertionError("unreachable")  # pragma: no cover

    def observe(self, watch: RingOutWatch) -> RingOutState:
        """
        Read the call's status into ``watch``, logging it when it changed.

        :param watch: the call being watched (it remembers whether the call was seen connected).
        :return: what the call resolves to now.
        """
        previous = watch.last
        status = self.get_status(watch.ringout_id)
        state = watch.observe(status)
        if status != previous:
            self.log.info("RingOut %s status: %s", watch.ringout_id, status.describe())
        return state

    def wait_for_ringout(self, watch: RingOutWatch, *, timeout: float, poll_interval: float) -> RingOutState:
        """
        Poll until the call connects or fails, or ``timeout`` seconds pass (then it returns ``PENDING``).

        A session that disappears resolves through ``watch``: connected if it was seen connected, else failed.

        :param watch: the call being watched.
        :param timeout: seconds to poll at most.
        :param poll_interval: seconds between reads.
        :return: the call's state (``PENDING`` when the timeout ran out first).
        """
        deadline = time.monotonic() + timeout
        while (state := self._observe_within(watch, deadline)) is RingOutState.PENDING:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(poll_interval, remaining))
        return state

    def _observe_within(self, watch: RingOutWatch, deadline: float) -> RingOutState:
        """One status read whose resends and waits end with the wait (``deadline``, monotonic)."""
        with within_wait(deadline):
            return self.observe(watch)

    def _read_status(self, response: Answer | None, path: str, attempt: int) -> RingOutStatus | float:
        """Classify a status answer, or say how long to wait before reading again (a garbled 200 is transient)."""
        if response is None:
            return classify(None)
        try:
            return classify(status_body(response, "GET", path))
        except RingCentralAPIError:
            if attempt + 1 >= self.max_attempts:
                raise
            self.log.warning("GET %s answered %s with an unreadable body; reading again.", path, response.status_code)
            return float(self.backoff_factor * 2**attempt)

    def cancel_ringout(self, ringout_id: str) -> bool:
        """
        Ask RingCentral to cancel the call; it only stops a call before its first leg is up (read the status after).

        :param ringout_id: the id :meth:`place_ringout` returned.
        :return: True if the DELETE was accepted, False if the session was already gone.
        """
        path = self._ringout_path(ringout_id)
        return self._cancel_sent(ringout_id, self._api("DELETE", path, group=self.GROUP_HEAVY))

    def _cancel_sent(self, ringout_id: str, response: Answer | None) -> bool:
        accepted = response is not None
        self.log.info("Cancel of RingOut %s %s.", ringout_id, "accepted" if accepted else "found no session")
        return accepted

    def cancel_and_confirm(self, ringout_id: str, *, urgent: bool = False) -> CancelOutcome:
        """
        Cancel, then read the status again to tell honestly whether the call was stopped.

        :param ringout_id: the id :meth:`place_ringout` returned.
        :param urgent: the caller may run on top of interrupted code (``on_kill`` runs in a SIGTERM handler):
            wait on no shared-state lock or rate limit for more than a couple of seconds, and use the access
            token in hand rather than renewing it.
        :return: what the cancel achieved.
        """
        with bounded_waits() if urgent else contextlib.nullcontext():
            accepted = self.cancel_ringout(ringout_id)
            return self._judge_cancel(ringout_id, accepted, self.get_status(ringout_id) if accepted else None)

    def _judge_cancel(self, ringout_id: str, accepted: bool, status: RingOutStatus | None) -> CancelOutcome:
        """What a cancel achieved, from whether it was accepted and the status read after it (None: not read)."""
        outcome = cancel_outcome(accepted, status if status is not None else classify(None))
        self.log.info("Cancel of RingOut %s: %s.", ringout_id, outcome.describe())
        return outcome

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
        from airflow_provider_ringout.hooks._backend import describe_shared_state

        return True, (
            f"Connected to {creds.server_url} as extension {token.owner_id or 'unknown'}; "
            f"the app has the RingOut permission. {describe_shared_state(self._tokens)}"
        )

    # --- async, for triggers ---------------------------------------------------------------------------

    async def _async_client(self) -> httpx.AsyncClient:
        """One HTTP client per event loop, so thousands of triggers share a connection pool."""
        import httpx

        return await client_for_running_loop(
            lambda: httpx.AsyncClient(
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
            )
        )

    async def _atoken(self, *, invalid: str | None = None) -> Token:
        token = self._tokens.peek()
        if token is None or token.access_token == invalid:
            token = await asyncio.to_thread(self._token, invalid=invalid)
        return token

    async def _atoken_for(self, attempts: Attempts) -> Token:
        """Async :meth:`_token_for` (a login runs off the event loop)."""
        return await self._atoken(invalid=attempts.refused)

    async def _aapi(self, method: str, path: str, *, group: str) -> httpx.Response | None:
        """Async :meth:`_api` for GET and DELETE (triggers never POST): the same decisions, httpx for I/O."""
        creds = await self._acredentials()
        client = await self._async_client()
        attempts = self._attempts(method, path, group)
        send_once = functools.partial(self._aauthorised, attempts, client, creds)
        return await asend(attempts, self._pacer, send_once, functools.partial(self._atoken_for, attempts))

    async def _aauthorised(
        self, attempts: Attempts, client: httpx.AsyncClient, creds: RingCentralCredentials
    ) -> httpx.Response:
        """Send once with the shared access token (never the one RingCentral refused), off the event loop's way."""
        token = (await self._atoken_for(attempts)).access_token
        attempts.use_token(token)
        headers = {"Authorization": f"Bearer {token}"}
        return await arequest_limited(
            client, attempts.method, attempts.url, headers=headers, timeout=bounded_timeout(creds.request_timeout)
        )

    async def aget_status(self, ringout_id: str) -> RingOutStatus:
        """
        Async :meth:`get_status`: never blocks the event loop on the network.

        :param ringout_id: the id :meth:`place_ringout` returned.
        :return: the status, classified.
        """
        path = self._ringout_path(ringout_id)
        for attempt in range(self.max_attempts):
            read = self._read_status(await self._aapi("GET", path, group=self.GROUP_LIGHT), path, attempt)
            if isinstance(read, RingOutStatus):
                return read
            await asyncio.sleep(read)
        raise AssertionError("unreachable")  # pragma: no cover

    async def acancel_ringout(self, ringout_id: str) -> bool:
        """
        Async :meth:`cancel_ringout`.

        :param ringout_id: the id :meth:`place_ringout` returned.
        :return: True if the DELETE was accepted, False if the session was already gone.
        """
        path = self._ringout_path(ringout_id)
        return self._cancel_sent(ringout_id, await self._aapi("DELETE", path, group=self.GROUP_HEAVY))

    async def acancel_and_confirm(self, ringout_id: str) -> CancelOutcome:
        """
        Async :meth:`cancel_and_confirm`.

        :param ringout_id: the id :meth:`place_ringout` returned.
        :return: what the cancel achieved.
        """
        accepted = await self.acancel_ringout(ringout_id)
        return self._judge_cancel(ringout_id, accepted, await self.aget_status(ringout_id) if accepted else None)

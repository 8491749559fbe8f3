"""
The I/O of :class:`~airflow_provider_ringout.hooks.ringcentral.RingCentralHook` for one connection.

:class:`HookCore` holds the credentials, the shared token and pacer, the requests session and the per-loop httpx
client, and sends one request to an endpoint of the table (:mod:`.endpoints`) through the retry core
(:mod:`._transport`): :meth:`HookCore._api` with requests, :meth:`HookCore._aapi` with httpx, the same decisions.
The public calls (``request``, the RingOut methods) are built on these two.
"""

from __future__ import annotations

import asyncio
import functools
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_ringout import __version__
from airflow_provider_ringout.hooks._connection import RingCentralCredentials, _mask, _mask_in_process, parse_connection
from airflow_provider_ringout.hooks._http import arequest_limited, client_for_running_loop, guard_response
from airflow_provider_ringout.hooks._oauth import TOKEN_ERROR_CODES, TokenExchange
from airflow_provider_ringout.hooks._transport import (
    RATE_LIMIT_BUDGET,
    Attempts,
    LowPriority,
    asend,
    bounded_timeout,
    send,
)
from airflow_provider_ringout.hooks.endpoints import Endpoint
from airflow_provider_ringout.state.files import StateDir, default_cache_dir

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Mapping

    import httpx

    from airflow_provider_ringout.state.pacer import RatePacer
    from airflow_provider_ringout.state.redis import RedisRatePacer, RedisTokenCache
    from airflow_provider_ringout.state.tokens import Token, TokenCache


class HookCore(BaseHook):
    """
    Credentials, shared token and pacer, and one paced request (sync and async) for one ``ringcentral`` connection.

    The constructor's parameters are :class:`RingCentralHook`'s.
    """

    def __init__(
        self,
        ringcentral_conn_id: str = "ringcentral_default",
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

    # --- connection and shared state -----------------------------------------------------------------

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
        from airflow_provider_ringout.state.backend import shared_state

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

    @cached_property
    def _session(self) -> requests.Session:
        return self._new_session()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update({"User-Agent": self.user_agent, "Accept": "application/json"})
        session.hooks["response"].append(guard_response)
        return session

    # --- token ---------------------------------------------------------------------------------------

    def _token(self, *, invalid: str | None = None) -> Token:
        token = self._tokens.get(self._login, invalid=invalid)
        self._mask(token.access_token)
        return token

    def _login(self, *, wait_on_rate_limit: bool = True, attempts: int | None = None) -> Token:
        """Exchange the JWT for an access token (JWT bearer grant, client credentials in HTTP Basic)."""
        exchange = TokenExchange(self.credentials, self.user_agent, self._mask)
        started = time.time()
        login = self._attempts(Endpoint.TOKEN, Endpoint.TOKEN.path(), wait_on_rate_limit, attempts)
        send(login, self._pacer, exchange.send)
        token = exchange.token(started)
        self.log.info("Obtained a RingCentral access token for connection %r.", self.credentials.conn_id)
        return token

    def _token_for(self, attempts: Attempts) -> Token:
        """The access token the next send of ``attempts`` uses (a login when none is in hand)."""
        return self._token(invalid=attempts.refused)

    async def _atoken(self, *, invalid: str | None = None) -> Token:
        token = self._tokens.peek()
        if token is None or token.access_token == invalid:
            token = await asyncio.to_thread(self._token, invalid=invalid)
        return token

    async def _atoken_for(self, attempts: Attempts) -> Token:
        """Async :meth:`_token_for` (a login runs off the event loop)."""
        return await self._atoken(invalid=attempts.refused)

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

    # --- one request ---------------------------------------------------------------------------------

    def _attempts(self, endpoint: Endpoint, path: str, wait: bool = True, attempts: int | None = None) -> Attempts:
        """The retry and renewal decisions of one request to ``endpoint`` (its rules come from the table)."""
        return Attempts(
            endpoint,
            path,
            server=self.credentials.server_url,
            attempts=attempts or self.max_attempts,
            backoff_factor=self.backoff_factor,
            log=self.log,
            scrub=self._scrub,
            wait=wait,
            token_error_codes=frozenset() if endpoint.is_login else TOKEN_ERROR_CODES,
            rate_limit_budget=self.rate_limit_budget,
        )

    def _api(
        self,
        endpoint: Endpoint,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        low_priority: bool = False,
    ) -> requests.Response | None:
        """
        One authorised, paced API request; renews the token once on a 401 token error.

        :param low_priority: send only if a slot of the endpoint's group is free now and no other request waits
            for one (:class:`._transport.LowPriority`); else raise ``RingCentralRateLimitError`` unsent. A 429 is
            final, and a 5xx is resent once at most.
        :return: the final answer (None: a 404 the endpoint reads as "gone"). Every error answer is raised as a
            specific exception.
        """
        attempts, pacer = self._pacing(endpoint, path, low_priority)
        send_once = functools.partial(self._authorised, attempts, json_body, params)
        return send(attempts, pacer, send_once, functools.partial(self._token_for, attempts))

    def _pacing(self, endpoint: Endpoint, path: str, low_priority: bool) -> tuple[Attempts, Any]:
        """The decisions and the pacer of one request (a low-priority one never waits and never queues)."""
        if low_priority:
            return self._attempts(endpoint, path, wait=False, attempts=min(2, self.max_attempts)), LowPriority(
                self._pacer
            )
        return self._attempts(endpoint, path), self._pacer

    def _authorised(self, attempts: Attempts, json_body: Any, params: Mapping[str, Any] | None) -> requests.Response:
        """Send once with the shared access token (never the one RingCentral refused)."""
        token = self._token_for(attempts).access_token
        attempts.use_token(token)
        return self._session.request(
            attempts.method,
            attempts.url,
            params=params,
            json=json_body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=bounded_timeout(self.credentials.request_timeout),
        )

    async def _async_client(self) -> httpx.AsyncClient:
        """One HTTP client per event loop, so thousands of triggers share a connection pool."""
        import httpx

        return await client_for_running_loop(
            lambda: httpx.AsyncClient(
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
            )
        )

    async def _aapi(
        self,
        endpoint: Endpoint,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        low_priority: bool = False,
    ) -> httpx.Response | None:
        """Async :meth:`_api`: the same decisions, httpx for I/O, the event loop never blocked on a lock."""
        creds = await self._acredentials()
        client = await self._async_client()
        attempts, pacer = self._pacing(endpoint, path, low_priority)
        send_once = functools.partial(self._aauthorised, attempts, client, creds, json_body, params)
        return await asend(attempts, pacer, send_once, functools.partial(self._atoken_for, attempts))

    async def _aauthorised(
        self,
        attempts: Attempts,
        client: httpx.AsyncClient,
        creds: RingCentralCredentials,
        json_body: Any,
        params: Mapping[str, Any] | None,
    ) -> httpx.Response:
        """Send once with the shared access token (never the one RingCentral refused), off the event loop's way."""
        token = (await self._atoken_for(attempts)).access_token
        attempts.use_token(token)
        return await arequest_limited(
            client,
            attempts.method,
            attempts.url,
            params=params,
            json=json_body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=bounded_timeout(creds.request_timeout),
        )

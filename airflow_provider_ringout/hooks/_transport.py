"""
The retry core of the hook, shared by its sync (requests) and async (httpx) paths.

:class:`Attempts` decides for one request (retry, wait for the pacer, renew the token once, give up, what an answer
means) from its endpoint's rules (:mod:`.endpoints`), never from the HTTP method, and does no network or
shared-state I/O; :func:`send` and :func:`asend` are the two loops around it, which only send, sleep and feed the
pacer. :func:`is_connect_failure` is the one "was it sent?" question for both clients. A 429's ``Retry-After`` is
parsed defensively and capped; error bodies of every RingCentral shape are read into specific exceptions.
The wire below (body limits, redirects, per-loop clients) is :mod:`._http`.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import requests
from urllib3.exceptions import ConnectTimeoutError, InvalidHeader, MaxRetryError, ProtocolError
from urllib3.util.retry import Retry

from airflow_provider_ringout._wait_end import bounded_timeout as bounded_timeout  # re-exported (the hook)
from airflow_provider_ringout._wait_end import past_wait_end, send_room
from airflow_provider_ringout._wait_end import within_wait as within_wait  # re-exported (hook, triggers)
from airflow_provider_ringout.exceptions import (
    RingCentralAPIError,
    RingCentralAuthError,
    RingCentralPermissionError,
    RingCentralRateLimitError,
    RingCentralWaitEndedError,
    RingOutUnconfirmedError,
)
from airflow_provider_ringout.hooks._http import RedirectRefused, ResponseTooLarge, loads_json
from airflow_provider_ringout.hooks.endpoints import Forbidden, NotFound
from airflow_provider_ringout.state.files import URGENT_LOCK_WAIT, urgent
from airflow_provider_ringout.state.pacer import MAX_RATE_LIMIT_WAIT, RESERVE_RECHECK, capped_wait

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    import httpx

    from airflow_provider_ringout.hooks.endpoints import Endpoint

# A 429 without a usable Retry-After blocks its group this long.
DEFAULT_RETRY_AFTER = 30.0
# How long one request keeps being resent after 429s (from the first), whatever ``max_attempts`` says.
RATE_LIMIT_BUDGET = 900.0


def rate_limit_wait(
    retry_after: float, refusals: int, rng: random.Random | None = None, *, limit: float = MAX_RATE_LIMIT_WAIT
) -> float:
    """
    How long to wait before resending a request that got its ``refusals``-th 429.

    ``Retry-After`` plus an extra drawn at random from 0 up to ``Retry-After`` (at least 1 s) doubled for each
    earlier 429 of the same request (exponential back-off, full jitter), drawn so that the wait never passes
    ``MAX_RATE_LIMIT_WAIT``.
    RingCentral restarts its penalty on every request sent during it, so hosts that cannot see each other's
    sends (file backend, or Redis down) and all wait exactly ``Retry-After`` keep restarting it for each other;
    spread out, one penalty ends with nobody sending and the next request goes through.
    urllib3's ``Retry`` cannot express this: ``respect_retry_after_header`` sleeps ``Retry-After`` exactly and
    ``backoff_jitter`` adds a fixed-width jitter to ``backoff_factor * 2**n``, not a growing one.

    :param retry_after: the 429's wait (:func:`retry_after`).
    :param refusals: how many 429s this request has had so far (1 for the first).
    :param rng: the random source (default: the ``random`` module's).
    :param limit: the extra is drawn so that the wait does not pass this either (the time left to send a request
        that must be sent by then; see :func:`within_wait`).
    :return: seconds, from ``retry_after`` to ``MAX_RATE_LIMIT_WAIT`` (or ``limit``, if ``retry_after`` fits under it).
    """
    retry_after = min(retry_after, MAX_RATE_LIMIT_WAIT)
    ceiling = max(min(limit, MAX_RATE_LIMIT_WAIT), retry_after)
    # The cap bounds the range drawn from (not the draw): clipped draws would all resend at the cap together.
    spread = min(max(retry_after, 1.0) * 2 ** min(max(refusals - 1, 0), 16), ceiling - retry_after)
    return retry_after + (rng or random).uniform(0, spread)


def retry_after(headers: Mapping[str, str]) -> float:
    """
    A 429's wait: ``Retry-After`` in seconds or as an HTTP date, capped at ``MAX_RATE_LIMIT_WAIT`` (300 s; RingCentral's
    penalty is 60 s). Missing or unparseable: ``DEFAULT_RETRY_AFTER``.
    """
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return DEFAULT_RETRY_AFTER
    try:
        seconds = Retry().parse_retry_after(str(value))
    except (InvalidHeader, ValueError, OverflowError):
        return DEFAULT_RETRY_AFTER
    return capped_wait(seconds, DEFAULT_RETRY_AFTER)


def is_connect_failure(exc: BaseException) -> bool:
    """
    Whether a request failed before reaching the server (no connection made): then even a POST is safe to resend.

    One question for both clients: requests wraps urllib3's ``NewConnectionError``/``ConnectTimeoutError`` (the
    first is a kind of the second) in its ``ConnectionError``; httpx raises ``ConnectError``/``ConnectTimeout``.
    """
    httpx = sys.modules.get("httpx")  # an httpx error exists only once httpx is imported
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (ConnectTimeoutError, requests.ConnectTimeout)):
            return True
        if httpx is not None and isinstance(item, (httpx.ConnectError, httpx.ConnectTimeout)):
            return True
        todo.extend([*item.args[:1], getattr(item, "reason", None), item.__cause__, item.__context__])
    return False


class Answer(Protocol):
    """What both clients' responses offer (``requests.Response``, ``httpx.Response``)."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def text(self) -> str: ...
    @property
    def is_redirect(self) -> bool: ...


def parse_error_body(text: str, content_type: str = "") -> tuple[list[str], str]:
    """
    Error codes and a message from any RingCentral error body (``errors[]``, top-level ``errorCode``, OAuth ``error``).

    Bodies that are not JSON (a proxy's HTML page) give no code and a short description instead.
    """
    try:
        data = loads_json(text) if text else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        kind = (content_type or "").split(";")[0].strip() or "no content type"
        return [], f"the server answered with a non-RingCentral body ({kind}); is the server URL right?"
    codes: list[str] = [data[key] for key in ("error", "errorCode") if isinstance(data.get(key), str)]
    messages: list[str] = []
    errors = data.get("errors")
    for item in errors if isinstance(errors, list) else ():
        if isinstance(item, dict):
            if isinstance(item.get("errorCode"), str):
                codes.append(item["errorCode"])
            if isinstance(item.get("message"), str):
                param = item.get("parameterName")
                messages.append(f"{item['message']} (parameter {param})" if param else item["message"])
    for key in ("error_description", "message"):
        if not messages and isinstance(data.get(key), str):
            messages.append(data[key])
    unique_codes = list(dict.fromkeys(codes))
    return unique_codes, "; ".join(dict.fromkeys(messages)) or "no error message given"


def is_token_error(answer: Answer, token_error_codes: frozenset[str]) -> bool:
    """Whether a 401 says the access token is no good (one of those codes, or no code at all)."""
    codes, _ = parse_error_body(answer.text, answer.headers.get("Content-Type", ""))
    return any(code.lower() in token_error_codes for code in codes) or not codes


def retry_policy(endpoint: Endpoint, attempts: int, backoff_factor: float) -> Retry:
    """
    urllib3's Retry decides the 5xx and connect-failure retries, from the endpoint's rules: an endpoint that may be
    resent after a possible processing (the token POST, the GETs, the DELETE) after any 5xx, the others never (a 503
    from a gateway may come after the call was placed). ``attempts`` sends in all. A 429 is not counted here:
    RingCentral guarantees it was not processed, so any request is resent after it, spread out by
    :func:`rate_limit_wait`, until ``RATE_LIMIT_BUDGET`` runs out.
    """
    return Retry(
        total=attempts - 1,
        allowed_methods=frozenset({endpoint.method}),
        status_forcelist=(500, 502, 503, 504) if endpoint.resendable else (),
        backoff_factor=backoff_factor,
        backoff_max=60,
        raise_on_status=False,
    )


_A = TypeVar("_A", bound=Answer)

# A waiting sender asks the shared pacer again at least this often: another host may have lifted or moved the block.
PACER_RECHECK = RESERVE_RECHECK


class Attempts:
    """
    The decisions of one request, for both send loops of the hook; no network or shared-state I/O.

    It owns the urllib3 ``Retry`` policy, the pacer wait (bounded inside :func:`urgent` code), the access token
    refused once with a 401 (renewed once), and the give-up errors and messages. The loops send, sleep the
    delays it returns, and feed the pacer ``penalty(answer)``.

    :param endpoint: the endpoint (its method, rate-limit group, and what may be resent and what answers mean).
    :param path: the API path (on ``server``).
    :param server: the connection's server URL.
    :param attempts: how many sends in all after 5xx answers and connect failures.
    :param backoff_factor: urllib3's back-off factor between those sends.
    :param log: the hook's logger (retries and waits are logged there, the same way for both loops).
    :param scrub: removes our secrets from a text that goes into an error.
    :param wait: wait out the pacer and a 429 (False: raise at once, for the Test button).
    :param token_error_codes: 401 codes that renew the access token once (empty: no renewal).
    :param rate_limit_budget: seconds from the first 429 within which 429s are resent (0: never).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        path: str,
        *,
        server: str,
        attempts: int,
        backoff_factor: float,
        log: Any,
        scrub: Callable[[str], str],
        wait: bool = True,
        token_error_codes: frozenset[str] = frozenset(),
        rate_limit_budget: float = RATE_LIMIT_BUDGET,
    ) -> None:
        self.endpoint, self.path, self.server = endpoint, path, server
        self.method, self.group, self.auth = endpoint.method, endpoint.group, endpoint.is_login
        self.url = server + path
        self.attempts, self.backoff_factor = attempts, backoff_factor
        self.log, self.scrub, self.wait = log, scrub, wait
        self.token_error_codes = token_error_codes
        self.retry = retry_policy(endpoint, attempts, backoff_factor)
        self.token: str | None = None  # the access token the loop sent last
        self.refused: str | None = None  # the access token RingCentral refused (never sent again)
        self._pacer_deadline: float | None = None
        self.rate_limit_budget = rate_limit_budget
        self.refusals = 0  # 429s so far
        self._first_refusal = 0.0  # when the first came (monotonic)

    def pacer_pause(self, delay: float) -> float:
        """
        The pacer said to wait ``delay`` s before sending: how long to sleep before asking it again.

        :raises RingCentralRateLimitError: waiting is off, or urgent code would wait past its bound.
        :raises RingCentralWaitEndedError: the wait would run past the end of the wait the request serves.
        """
        now = time.monotonic()
        if self._pacer_deadline is None:
            self._pacer_deadline = now + URGENT_LOCK_WAIT
        if self.wait and past_wait_end(delay):
            raise RingCentralWaitEndedError(
                f"RingCentral's {self.group} rate limit is in force for another {delay:.0f} s, past the end of "
                "the wait; not sent",
                status_code=429,
                method=self.method,
                path=self.path,
            )
        if not self.wait or (urgent() and now + delay > self._pacer_deadline):
            raise RingCentralRateLimitError(
                f"RingCentral's {self.group} rate limit is in force for another {delay:.0f} s", status_code=429
            )
        if delay > 1:
            self.log.info("Waiting %.1f s for RingCentral's %s rate limit before sending.", delay, self.group)
        return min(delay, PACER_RECHECK)

    def turn_taken(self) -> None:
        """
        The pacer gave this request its turn (the next wait for a turn has its own bound); the loop sends now.

        :raises RingCentralWaitEndedError: a ring-out POST past the ``send_by`` of its wait: not sent.
        """
        self._pacer_deadline = None
        if not self.endpoint.resendable and past_wait_end(0):
            raise RingCentralWaitEndedError(
                "not sent: the time to place the call ran out before it could be sent",
                method=self.method,
                path=self.path,
            )

    def use_token(self, token: str) -> None:
        """The loop sends now with this access token (the one refused, if RingCentral refuses it)."""
        self.token = token

    def after_failure(self, exc: Exception) -> float:
        """
        The send raised ``exc`` before an answer came: how long to wait before sending again.

        :raises RingCentralAPIError: a redirect, or no attempt left (the give-up message).
        :raises RingCentralWaitEndedError: the next attempt would come after the end of the wait.
        :raises RingOutUnconfirmedError: a request its endpoint may not resend reached RingCentral, maybe (never
            sent twice blindly).
        """
        name = type(exc).__name__
        if isinstance(exc, RedirectRefused):
            raise self.redirect_error(str(exc)) from None
        connect_failed = is_connect_failure(exc)
        unconfirmed = self.endpoint.rules.unconfirmed
        if unconfirmed is not None and not connect_failed:
            raise RingOutUnconfirmedError(
                f"no answer ({name}); {unconfirmed.effect}, so it is not sent again. "
                f"Check {unconfirmed.check} before retrying",
                method=self.method,
                path=self.path,
            ) from None
        error = ConnectTimeoutError() if connect_failed else ProtocolError(name)
        try:
            self.retry = self.retry.increment(self.method, self.url, error=error)
        except MaxRetryError:
            raise RingCentralAPIError(
                f"could not reach {self.server} ({name}) after {self.attempts} attempt(s); check the connection's "
                "Server URL and the network",
                method=self.method,
                path=self.path,
            ) from None
        delay = self.retry.get_backoff_time()
        if past_wait_end(delay):
            raise RingCentralWaitEndedError(
                f"could not reach {self.server} ({name}); the wait ends before the next attempt",
                method=self.method,
                path=self.path,
            ) from None
        self.log.warning("%s %s failed (%s); retrying in %.1f s.", self.method, self.path, name, delay)
        return delay

    @staticmethod
    def penalty(answer: Answer) -> float | None:
        """What a 429 blocks its group for, host- or cluster-wide (the pacer's ``penalty``); None for others."""
        return retry_after(answer.headers) if answer.status_code == 429 else None

    def after_answer(self, answer: Answer) -> float | None:
        """
        An answer came: None if it is final (see :meth:`outcome`), else how long to sleep before sending again.

        A 401 token error renews the token once (0 s; the loop asks for a token other than :attr:`refused`).
        A 429 is resent after :func:`rate_limit_wait` while the ``rate_limit_budget`` lasts (the pacer holds the
        group for ``Retry-After`` meanwhile); in urgent code the sleep is 0 and the pacer's bounded wait decides.
        """
        status = answer.status_code
        renewable = status == 401 and self.refused is None and self.token is not None and self.token_error_codes
        if renewable and is_token_error(answer, self.token_error_codes):
            self.log.warning("RingCentral refused the access token (%s); renewing it once.", status)
            self.refused = self.token
            self.retry = retry_policy(self.endpoint, self.attempts, self.backoff_factor)
            return 0.0
        if status == 429:
            return self._after_refusal(answer)
        if not self.retry.is_retry(self.method, status):
            return None
        try:
            self.retry = self.retry.increment(self.method, self.url)
        except MaxRetryError:
            return None
        delay = self.retry.get_backoff_time()
        if past_wait_end(delay):
            return None  # the wait ends first: this answer is final
        self.log.warning("%s %s answered %s; retrying in %.1f s.", self.method, self.path, status, delay)
        return delay

    def _after_refusal(self, answer: Answer) -> float | None:
        """
        A 429: how long to sleep before resending, or None when waiting is off or the budget is spent.

        :raises RingCentralWaitEndedError: resending would pass the end of the wait (:func:`within_wait`).
        """
        if not self.wait:
            return None
        now = time.monotonic()
        self.refusals += 1
        if self.refusals == 1:
            self._first_refusal = now
        room = send_room()  # a request that must be sent by then draws its extra within the time left
        limit = MAX_RATE_LIMIT_WAIT if room is None else room
        delay = 0.0 if urgent() else rate_limit_wait(retry_after(answer.headers), self.refusals, limit=limit)
        if now + delay - self._first_refusal > self.rate_limit_budget:
            return None
        if past_wait_end(delay):
            raise RingCentralWaitEndedError(
                f"answered 429 (Retry-After {retry_after(answer.headers):.0f} s; nothing was processed); resending "
                f"in {delay:.0f} s would pass the end of the wait",
                status_code=429,
                method=self.method,
                path=self.path,
            )
        self.log.warning(
            "%s %s answered 429 (%d so far); resending in %.1f s.", self.method, self.path, self.refusals, delay
        )
        return delay

    def outcome(self, answer: _A) -> _A | None:
        """
        The final answer, checked: the answer itself, or None for a 404 its endpoint reads as "gone" (a RingOut
        session that ended).

        :raises RingCentralAPIError: (or a subclass) for any error answer and for a redirect.
        :raises RingOutUnconfirmedError: a 5xx to a request its endpoint may not resend (the call may have been
            placed).
        """
        status = answer.status_code
        rules = self.endpoint.rules
        if answer.is_redirect:
            raise self.redirect_error(f"HTTP {status} redirect")
        if self.auth:
            if status != 200:
                self.raise_for_answer(answer, auth=True)
            return answer
        if status == 404 and rules.not_found is NotFound.GONE:
            return None
        if rules.unconfirmed is not None and status >= 500:
            raise unusable_answer(self.endpoint, self.path, status, "")
        if status >= 400:
            self.raise_for_answer(answer)
        return answer

    def redirect_error(self, what: str) -> RingCentralAPIError:
        """A redirect, never followed (it would resend the JWT assertion or the call request elsewhere)."""
        return (RingCentralAuthError if self.auth else RingCentralAPIError)(
            f"answered with a redirect ({what}), which is not followed: it would send the request (and "
            f"credentials) elsewhere. Check the connection's Server URL ({self.server})",
            method=self.method,
            path=self.path,
        )

    def raise_for_answer(self, answer: Answer, *, auth: bool = False) -> None:
        """Raise the specific error of an error answer (codes and message from its body, secrets scrubbed)."""
        codes, message = parse_error_body(answer.text, answer.headers.get("Content-Type", ""))
        message = self.scrub(message)
        status = answer.status_code
        where = {"error_codes": codes, "method": self.method, "path": self.path}
        if status == 429:
            raise RingCentralRateLimitError(
                f"rate limited by RingCentral (429 {max(self.refusals, 1)} time(s); nothing was processed): {message}",
                status_code=status,
                **where,  # type: ignore[arg-type]
            )
        cls = RingCentralAuthError if auth or status == 401 else RingCentralAPIError
        permission = self.endpoint.permission if self.endpoint.rules.forbidden is Forbidden.PERMISSION else None
        if status == 403 and permission and any(c.lower() in ("cmn-401", "insufficientpermissions") for c in codes):
            message += f"; add the '{permission}' permission to the app in the RingCentral developer console"
            raise RingCentralPermissionError(message, permission=permission, status_code=status, **where)
        raise cls(message, status_code=status, **where)  # type: ignore[arg-type]


def unusable_answer(endpoint: Endpoint, path: str, status: int, not_what: str) -> RingCentralAPIError:
    """
    The error of a final answer that cannot be used: a 5xx (``not_what`` empty) or a body that is not ``not_what``.

    A ``RingOutUnconfirmedError`` saying what may have happened when the endpoint may not be resent (the request
    may have been processed), else a ``RingCentralAPIError``.
    """
    what = f"answered {status} with a body that is not {not_what}" if not_what else f"answered {status}"
    where = {"status_code": status, "method": endpoint.method, "path": path}
    unconfirmed = endpoint.rules.unconfirmed
    if unconfirmed is None:
        return RingCentralAPIError(what, **where)  # type: ignore[arg-type]
    return RingOutUnconfirmedError(f"{what}; {unconfirmed.effect}, so it is not sent again", **where)  # type: ignore[arg-type]


def decode_json(answer: Answer | None, endpoint: Endpoint, path: str) -> Any:
    """
    The JSON body of a final answer (None: no answer, a 404 read as "gone", or an empty body such as a 204's).

    :raises RingCentralAPIError: the body is not JSON (``RingOutUnconfirmedError`` if the endpoint may not be resent).
    """
    if answer is None or not answer.text.strip():
        return None
    try:
        return loads_json(answer.text)
    except ValueError:
        raise unusable_answer(endpoint, path, answer.status_code, "JSON") from None


class Pacer(Protocol):
    """The shared rate pacer (``RatePacer`` on the host's files, ``RedisRatePacer`` on Redis)."""

    def reserve(self, group: str) -> float: ...
    def reserve_nowait(self, group: str) -> float | None: ...
    def needs_lock(self, group: str, headers: Mapping[str, str], status: int) -> bool: ...
    def observe(self, group: str, headers: Mapping[str, str], *, penalty: float | None = None) -> None: ...


class LowPriority:
    """
    The pacer as a low-priority request sees it (the call-log reader): a slot only when one is free now and no
    other sender waits for one (``reserve_idle``), so it never takes a slot from a waiting POST or DELETE. Use it
    with ``Attempts(wait=False)``: a slot not free now ends the request with ``RingCentralRateLimitError``, unsent.
    """

    def __init__(self, pacer: Any) -> None:
        self.pacer = pacer

    def reserve(self, group: str) -> float:
        return float(self.pacer.reserve_idle(group))

    def reserve_nowait(self, group: str) -> float | None:
        fast = self.pacer.reserve_nowait(group)
        return fast if fast == 0 else None  # an unlimited group has no waiters to protect

    def needs_lock(self, group: str, headers: Mapping[str, str], status: int) -> bool:
        return bool(self.pacer.needs_lock(group, headers, status))

    def observe(self, group: str, headers: Mapping[str, str], *, penalty: float | None = None) -> None:
        self.pacer.observe(group, headers, penalty=penalty)


def send(
    attempts: Attempts,
    pacer: Pacer,
    send_once: Callable[[], requests.Response],
    prepare: Callable[[], object] | None = None,
) -> requests.Response | None:
    """
    The requests loop: send through the pacer until ``attempts`` says the answer is final.

    :param send_once: sends the request once and returns the answer.
    :param prepare: gets ready to send (a login) before the pacer records the send, so the time it records is
        when the request leaves, not a login earlier.
    :return: the final answer, checked (None: a 404 to a GET or DELETE).
    """
    while True:
        if prepare is not None:
            prepare()
        while (delay := pacer.reserve(attempts.group)) > 0:
            time.sleep(attempts.pacer_pause(delay))
        attempts.turn_taken()
        try:
            response = send_once()
        except requests.RequestException as exc:
            time.sleep(attempts.after_failure(exc))
            continue
        pacer.observe(attempts.group, response.headers, penalty=attempts.penalty(response))
        if (pause := attempts.after_answer(response)) is None:
            return attempts.outcome(response)
        time.sleep(pause)


async def asend(
    attempts: Attempts,
    pacer: Pacer,
    send_once: Callable[[], Awaitable[httpx.Response]],
    prepare: Callable[[], Awaitable[object]] | None = None,
) -> httpx.Response | None:
    """
    The httpx loop: :func:`send` on an event loop, the shared pacer asked off the loop when it takes a lock.

    :param send_once: sends the request once and returns the answer.
    :param prepare: as :func:`send`'s, awaited.
    :return: the final answer, checked (None: a 404 to a GET or DELETE).
    """
    import httpx

    group = attempts.group
    while True:
        if prepare is not None:
            await prepare()
        await _await_turn(attempts, pacer)
        try:
            response = await send_once()
        except (httpx.TransportError, ResponseTooLarge) as exc:
            await asyncio.sleep(attempts.after_failure(exc))
            continue
        penalty = attempts.penalty(response)
        if pacer.needs_lock(group, response.headers, response.status_code):
            await asyncio.to_thread(pacer.observe, group, response.headers, penalty=penalty)
        else:
            pacer.observe(group, response.headers, penalty=penalty)
        if (pause := attempts.after_answer(response)) is None:
            return attempts.outcome(response)
        await asyncio.sleep(pause)


async def _await_turn(attempts: Attempts, pacer: Pacer) -> None:
    """Wait for the pacer's turn; it is asked on the loop only when that takes no lock (then off it)."""
    while True:
        delay = pacer.reserve_nowait(attempts.group)
        if delay is None:
            delay = await asyncio.to_thread(pacer.reserve, attempts.group)
        if delay <= 0:
            attempts.turn_taken()
            return
        await asyncio.sleep(attempts.pacer_pause(delay))

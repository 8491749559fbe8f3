"""
The wire under the hook's two clients (requests and httpx): answers read up to a size limit, redirects refused,
JSON nested too deeply turned into a ``ValueError``, and one httpx client per live event loop, closed when that
loop shuts down. No retry decision here (that is :mod:`._transport`).
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import httpx


def loads_json(text: str | bytes) -> Any:
    """``json.loads`` that raises ``ValueError`` (never ``RecursionError``) for a body nested too deeply."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON body is nested too deeply") from None


# RingOut and token answers are a few hundred bytes; a bigger answer is not read further (a hostile or wrong server).
# A call-log page of many detailed records can pass it: ask for fewer records a page (``perPage``).
MAX_BODY = 1 << 20


class ResponseTooLarge(requests.RequestException):
    """An answer larger than ``MAX_BODY``."""


async def arequest_limited(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """``client.request`` reading at most ``MAX_BODY`` bytes of the body (httpx follows no redirect by default)."""
    import httpx

    async with client.stream(method, url, **kwargs) as streamed:
        body = bytearray()
        async for chunk in streamed.aiter_bytes():
            body += chunk
            if len(body) > MAX_BODY:
                raise ResponseTooLarge(f"answer larger than {MAX_BODY} bytes")
    headers = [
        (k, v) for k, v in streamed.headers.multi_items() if k.lower() not in ("content-encoding", "content-length")
    ]
    return httpx.Response(streamed.status_code, headers=headers, content=bytes(body), request=streamed.request)


class RedirectRefused(requests.RequestException):
    """An answer that redirects: never followed, as it would resend the JWT assertion or a call request."""


def guard_response(response: requests.Response, **_: Any) -> requests.Response:
    """
    requests response hook (it runs before the body is read and before redirects are followed).

    Refuses redirects and reads at most ``MAX_BODY`` bytes of the body.
    """
    if response.is_redirect:
        response.close()
        raise RedirectRefused(f"HTTP {response.status_code} redirect", response=response)
    body = response.raw.read(MAX_BODY + 1, decode_content=True) if response.raw is not None else b""
    if len(body) > MAX_BODY:
        response.close()
        raise ResponseTooLarge(f"answer larger than {MAX_BODY} bytes", response=response)
    response._content = body  # what requests would have read, had it read the body itself
    response._content_consumed = True  # type: ignore[attr-defined]
    return response


# id(loop) -> (the loop, weakly; its client; the async generator that closes the client when the loop shuts down)
_clients: dict[int, tuple[weakref.ref[asyncio.AbstractEventLoop], httpx.AsyncClient, Any]] = {}


async def _close_at_loop_shutdown(client: httpx.AsyncClient) -> AsyncIterator[None]:
    """Suspended for the loop's lifetime; ``loop.shutdown_asyncgens()`` (``asyncio.run`` calls it) closes it."""
    try:
        yield
    finally:
        await client.aclose()


async def client_for_running_loop(make: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    """
    The running loop's client, made by ``make()`` the first time.

    Clients of loops that have closed are forgotten (a per-loop cache keyed by the loop itself would keep every
    loop and its client alive: the client refers to its loop).
    """
    loop = asyncio.get_running_loop()
    for key, (ref, _, _) in list(_clients.items()):
        gone = ref()
        if gone is None or gone.is_closed():
            _clients.pop(key, None)
    entry = _clients.get(id(loop))
    if entry is not None and entry[0]() is loop and not entry[1].is_closed:
        return entry[1]
    client = make()
    closer = _close_at_loop_shutdown(client)
    await closer.__anext__()
    _clients[id(loop)] = (weakref.ref(loop), client, closer)
    return client

"""
The RingOut methods of :class:`~airflow_provider_ringout.hooks.ringcentral.RingCentralHook`: place, read, watch
and cancel a call (and the async twins triggers use), each request sent to its row of the endpoint table
(:mod:`.endpoints`) through :class:`._core.HookCore`. What a status means is :mod:`airflow_provider_ringout.status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout.exceptions import RingCentralAPIError
from airflow_provider_ringout.hooks._core import HookCore
from airflow_provider_ringout.hooks._ringout import RINGOUT_PATH, ringout_path, ringout_request, status_body
from airflow_provider_ringout.hooks._transport import within_wait
from airflow_provider_ringout.hooks.endpoints import Endpoint
from airflow_provider_ringout.phone import mask_phone_number
from airflow_provider_ringout.state.files import bounded_waits
from airflow_provider_ringout.status import (
    CancelOutcome,
    RingOutState,
    RingOutStatus,
    RingOutWatch,
    cancel_outcome,
    classify,
)

if TYPE_CHECKING:
    from airflow_provider_ringout.hooks._transport import Answer
    from airflow_provider_ringout.request import RingOutRequest


class RingOutCalls(HookCore):
    """Place, read, watch and cancel RingOut calls (sync, and async for triggers)."""

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
        return ringout_path(ringout_id).removeprefix(f"{RINGOUT_PATH}/")

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
        response = self._api(Endpoint.RING_OUT_CREATE, RINGOUT_PATH, json_body=body)
        assert response is not None  # a 404 to the POST is an error, never "gone"
        result = status_body(response, Endpoint.RING_OUT_CREATE, RINGOUT_PATH)
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
        response = self._api(Endpoint.RING_OUT_GET, path)
        if response is None:
            raise RingCentralAPIError(
                "the RingOut session no longer exists",
                status_code=404,
                error_codes=["CMN-102"],
                method=Endpoint.RING_OUT_GET.method,
                path=path,
            )
        return status_body(response, Endpoint.RING_OUT_GET, path)

    def get_status(self, ringout_id: str) -> RingOutStatus:
        """
        What the call's status means now (a gone session reads as ``gone``, not as an error).

        :param ringout_id: the id :meth:`place_ringout` returned.
        :return: the status, classified.
        """
        path = self._ringout_path(ringout_id)
        for attempt in range(self.max_attempts):
            read = self._read_status(self._api(Endpoint.RING_OUT_GET, path), path, attempt)
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
            return classify(status_body(response, Endpoint.RING_OUT_GET, path))
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
        return self._cancel_sent(ringout_id, self._api(Endpoint.RING_OUT_DELETE, path))

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

    # --- async twins, for triggers ------------------------------------------------------------------

    async def aget_status(self, ringout_id: str) -> RingOutStatus:
        """
        Async :meth:`get_status`: never blocks the event loop on the network.

        :param ringout_id: the id :meth:`place_ringout` returned.
        :return: the status, classified.
        """
        path = self._ringout_path(ringout_id)
        for attempt in range(self.max_attempts):
            read = self._read_status(await self._aapi(Endpoint.RING_OUT_GET, path), path, attempt)
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
        return self._cancel_sent(ringout_id, await self._aapi(Endpoint.RING_OUT_DELETE, path))

    async def acancel_and_confirm(self, ringout_id: str) -> CancelOutcome:
        """
        Async :meth:`cancel_and_confirm`.

        :param ringout_id: the id :meth:`place_ringout` returned.
        :return: what the cancel achieved.
        """
        accepted = await self.acancel_ringout(ringout_id)
        return self._judge_cancel(ringout_id, accepted, await self.aget_status(ringout_id) if accepted else None)

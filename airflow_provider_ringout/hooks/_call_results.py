"""
What happened on a call: the call-log methods of :class:`~airflow_provider_ringout.hooks.ringcentral.RingCentralHook`.

:meth:`CallResults.get_call_result` (and ``aget_call_result`` for triggers) answers from the call-log records
shared host- or cluster-wide (:mod:`airflow_provider_ringout.state.calllog`), matched by the pure matcher
(:mod:`airflow_provider_ringout.call_result`). When the shared records are older than :attr:`call_log_interval`,
the look-up that takes the reader lease syncs once: ``call-log-sync`` (``FSync`` first, then ``ISync`` with the
stored token), as a low-priority Heavy request that is sent only when a Heavy slot is free now and no POST or
DELETE waits for one (else it is skipped this time, nothing sent). So K waiting results cost about one Heavy request
per interval, not K, and never delay placing or cancelling a call. A 403 (the app lacks ``ReadCallLog``) is
stored for :data:`DENIED_FOR` seconds: every look-up raises it without asking RingCentral again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout.call_result import MatchOutcome, PlacedRingOut, essential, match_call, parse_time
from airflow_provider_ringout.exceptions import (
    RingCentralAPIError,
    RingCentralConfigError,
    RingCentralPermissionError,
    RingCentralRateLimitError,
    RingOutCallResultAmbiguousError,
)
from airflow_provider_ringout.hooks._core import HookCore
from airflow_provider_ringout.hooks._ringout import ringout_path
from airflow_provider_ringout.hooks._transport import decode_json
from airflow_provider_ringout.hooks.endpoints import Endpoint
from airflow_provider_ringout.phone import validate_e164
from airflow_provider_ringout.state.calllog import KEEP, call_log_store
from airflow_provider_ringout.state.config import configured_call_log_interval

if TYPE_CHECKING:
    from airflow_provider_ringout.state.calllog import CallLogStore, Snapshot
    from airflow_provider_ringout.status import RingOutStatus

log = logging.getLogger(__name__)

CALL_LOG_LEASE = 90.0  # a reader that dies mid-sync holds the lease this long (one sync takes far less)
DENIED_FOR = 300.0  # a 403 is repeated from the shared state this long before RingCentral is asked again
FSYNC_RECORDS = 250  # records a full sync asks for (the most an incremental one gives)
_SYNC = Endpoint.CALL_LOG_SYNC
_PERMISSION = _SYNC.permission or "ReadCallLog"


class CallResults(HookCore):
    """The call-log look-ups of one hook (see the module docstring); sync, and async for triggers."""

    _call_log_interval: float | None = None

    if TYPE_CHECKING:  # RingOutCalls's, beside this class in RingCentralHook

        def get_status(self, ringout_id: str) -> RingOutStatus: ...

        async def aget_status(self, ringout_id: str) -> RingOutStatus: ...

    #: Seconds a reader holds the lease at most; a reader that died is replaced after this.
    call_log_lease: float = CALL_LOG_LEASE

    @property
    def call_log_interval(self) -> float:
        """Seconds between syncs of the shared call-log records: ``[ringcentral] call_log_interval`` (20 s)."""
        if self._call_log_interval is None:
            self._call_log_interval = configured_call_log_interval()
        return self._call_log_interval

    @call_log_interval.setter
    def call_log_interval(self, seconds: float) -> None:
        self._call_log_interval = float(seconds)

    @cached_property
    def _call_log(self) -> CallLogStore:
        return call_log_store(self._state, self.credentials.cache_key)

    def get_call_result(
        self, ringout_id: str, *, from_number: str, to_number: str, placed_at: datetime | str
    ) -> dict[str, Any] | None:
        """
        What happened on a RingOut: its call-log record as a plain dict, or None while the record is not there yet
        (RingCentral writes it 15-30 s after the call ends).

        No id links a RingOut to its record: it is matched by the RingOut leg types, both numbers and a window
        around ``placed_at``; a record that fits is taken only once the RingOut's status (read once, then) says the
        call is over, since a call still going on has no record yet. Looks are cheap: they read records shared by every look-up of the host (cluster with
        ``shared_state = redis``), synced at most every :attr:`call_log_interval` seconds by one of them.

        :param ringout_id: the RingOut's id (for messages; the call log does not carry it).
        :param from_number: the phone rung first (E.164).
        :param to_number: the phone connected second (E.164).
        :param placed_at: when the RingOut was placed, taken once ``place_ringout`` returned (a POST may wait for
            the pacer first); an aware datetime, or ISO 8601 (no zone means UTC).
        :return: ``{"result", "reason", "duration", "start_time", "legs": [{"leg_type", "result", "reason",
            "duration"}], "telephony_session_id", "answered_by"}`` (see :func:`..call_result.call_result`), or None.
        :raises RingOutCallResultAmbiguousError: two or more records could be this call, or one could while this
            call still goes on (that one is another call's); never guessed.
        :raises RingCentralPermissionError: the app lacks ``ReadCallLog`` (raised by every look-up for a while,
            asked once).
        :raises RingCentralConfigError: a bad argument, or ``placed_at`` too old for the shared records.
        """
        ringout = self._placed_ringout(ringout_id, from_number, to_number, placed_at)
        store = self._call_log
        seen = store.snapshot()
        if not (seen.fresh(self.call_log_interval) or seen.denied):
            owner = secrets.token_hex(16)
            turn = store.take_turn(owner, self.call_log_interval, self.call_log_lease)
            if turn is not None:
                try:
                    answer = self._api(_SYNC, _SYNC.path(), params=self._sync_params(turn), low_priority=True)
                    body = decode_json(answer, _SYNC, _SYNC.path())
                except Exception as exc:
                    self._sync_failed(store, owner, turn, exc)
                else:
                    self._sync_done(store, owner, body)
                seen = store.snapshot()
        result = self._result_of(seen, ringout)
        if result is not None:  # one status read, once: is this call over, so that the record can be its own?
            self._not_another_calls(ringout, self.get_status(ringout.id))
        return result

    async def aget_call_result(
        self, ringout_id: str, *, from_number: str, to_number: str, placed_at: datetime | str
    ) -> dict[str, Any] | None:
        """Async :meth:`get_call_result` (httpx; the shared state is read off the event loop)."""
        ringout = self._placed_ringout(ringout_id, from_number, to_number, placed_at)
        await self._acredentials()
        store = await asyncio.to_thread(lambda: self._call_log)
        seen = await asyncio.to_thread(store.snapshot)
        if not (seen.fresh(self.call_log_interval) or seen.denied):
            owner = secrets.token_hex(16)
            turn = await asyncio.to_thread(store.take_turn, owner, self.call_log_interval, self.call_log_lease)
            if turn is not None:
                try:
                    answer = await self._aapi(_SYNC, _SYNC.path(), params=self._sync_params(turn), low_priority=True)
                    body = decode_json(answer, _SYNC, _SYNC.path())
                except Exception as exc:
                    await asyncio.to_thread(self._sync_failed, store, owner, turn, exc)
                else:
                    await asyncio.to_thread(self._sync_done, store, owner, body)
                seen = await asyncio.to_thread(store.snapshot)
        result = self._result_of(seen, ringout)
        if result is not None:
            self._not_another_calls(ringout, await self.aget_status(ringout.id))
        return result

    # --- the pieces both share ---------------------------------------------------------------------------

    @staticmethod
    def _placed_ringout(ringout_id: str, from_number: str, to_number: str, placed_at: datetime | str) -> PlacedRingOut:
        """The RingOut to look for, checked before anything is read."""
        rid = ringout_path(ringout_id).rsplit("/", 1)[-1]
        validate_e164(from_number, "from_number")
        validate_e164(to_number, "to_number")
        try:
            moment = parse_time(placed_at) if isinstance(placed_at, str) else placed_at
            ringout = PlacedRingOut(rid, from_number, to_number, moment)
        except (TypeError, ValueError, AttributeError) as exc:
            raise RingCentralConfigError(f"placed_at must be an ISO 8601 time or an aware datetime: {exc}") from None
        age = (datetime.now(UTC) - ringout.placed_at).total_seconds()
        if age > KEEP - 3600:
            raise RingCentralConfigError(
                f"RingOut {rid} was placed {age / 3600:.1f} h ago; the shared call-log records cover the last "
                f"{KEEP / 3600 - 1:.0f} h. Read older calls with RingCentralHook.request(Endpoint.CALL_LOG, ...)."
            )
        return ringout

    @staticmethod
    def _sync_params(turn: Snapshot) -> dict[str, Any]:
        """ISync from the stored token, or (none yet, or refused) FSync of the newest records."""
        if turn.token:
            return {"syncType": "ISync", "syncToken": turn.token, "view": "Detailed"}
        return {"syncType": "FSync", "recordCount": FSYNC_RECORDS, "view": "Detailed"}

    @staticmethod
    def _sync_done(store: CallLogStore, owner: str, body: Any) -> None:
        """Store what one sync gave (only the fields the matcher reads)."""
        body = body if isinstance(body, dict) else {}
        records = [essential(r) for r in body.get("records") or () if isinstance(r, dict)]
        info = body.get("syncInfo") if isinstance(body.get("syncInfo"), dict) else {}
        token = info.get("syncToken") if isinstance(info.get("syncToken"), str) else None
        store.store(owner, records, token, synced=True)

    def _sync_failed(self, store: CallLogStore, owner: str, turn: Snapshot, exc: Exception) -> None:
        """
        A sync that did not complete: no slot free now (skipped, nothing sent), a stale token (a full sync next),
        the permission missing (stored, raised), or any other error (raised).
        """
        if isinstance(exc, RingCentralRateLimitError):
            store.release(owner)
            log.debug("Call-log sync skipped: no Heavy slot free now, or a POST/DELETE waits for one.")
            return
        if isinstance(exc, RingCentralPermissionError):
            store.deny(owner, exc.api_message, DENIED_FOR)
            raise exc
        if isinstance(exc, RingCentralAPIError) and exc.status_code == 400 and turn.token:
            log.info("RingCentral refused the call-log sync token (%s); the next sync is a full one.", exc.api_message)
            store.store(owner, (), None, synced=False)
            return
        store.release(owner)
        raise exc

    def _result_of(self, seen: Snapshot, ringout: PlacedRingOut) -> dict[str, Any] | None:
        """The answer for ``ringout`` from the shared records (see :meth:`get_call_result`)."""
        if seen.denied:
            raise RingCentralPermissionError(
                seen.denied, permission=_PERMISSION, status_code=403, method=_SYNC.method, path=_SYNC.path()
            )
        match = match_call(seen.records, ringout)
        if match.outcome is MatchOutcome.AMBIGUOUS:
            raise _ambiguous(ringout, match.candidates, "the same two numbers more than once around its placing time")
        if match.outcome is not MatchOutcome.FOUND:
            return None
        if seen.synced_at < ringout.placed_at.timestamp():
            return None  # synced before this call was placed: the record is another call's; a later sync decides
        return match.result

    @staticmethod
    def _not_another_calls(ringout: PlacedRingOut, status: RingOutStatus) -> None:
        """
        A record was found, but it is this call's only if this call is over: a RingOut still ringing or talking
        has no record yet, so the one found is another call between the same two numbers, placed moments apart
        (this call's own record will make two). Never taken for this one.
        """
        if status.ongoing:
            why = (
                "a call between the same two numbers, placed moments apart, left a record while this one is still "
                f"going on ({status.describe()}), and this one's will follow"
            )
            raise _ambiguous(ringout, 2, why)


def _ambiguous(ringout: PlacedRingOut, candidates: int, why: str) -> RingOutCallResultAmbiguousError:
    """The error for two call-log records that could be ``ringout``'s, saying why (never guessed)."""
    return RingOutCallResultAmbiguousError(
        f"The result of RingOut {ringout.id} is ambiguous: {candidates} call-log records could be it ({why}), and "
        "no id links a RingOut to its record, so it is not guessed. Read the call log with "
        "RingCentralHook.request(Endpoint.CALL_LOG, ...) to tell them apart, and space calls between the same two "
        "numbers by a minute or more.",
        ringout_id=ringout.id,
        candidates=candidates,
    )

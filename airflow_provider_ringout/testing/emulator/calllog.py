"""
The call log as RingCentral keeps it: a Detailed record for every RingOut once the call is over and the log's
delay has passed, served by ``GET .../call-log`` and ``GET .../call-log-sync`` (Heavy group, permission
``ReadCallLog``; facts in ``../shared/ringcentral/NOTES.md`` and ``openapi-calllog.yaml``).

- When a call ends: a connected call at ``after + talk`` (its script), a failed one (busy, no answer, rejected) at
  ``after``, a cancelled one at its DELETE. A call that never ends (``never_answers``, ``first_leg_up``, a prompt no
  voicemail presses), a ``session_disappears`` call and a call whose statuses a test forced leave no record.
- What a record says (the emulator's reading of the spec's enums; not copied from a live account): the legs are
  ``RingOutWebToCaller`` (the ``from`` phone, rung first) and ``RingOutWebToSubscriber`` (the ``to`` phone);
  a busy callee, a first leg not answered or declined, and a cancelled call leave one leg; a voicemail answering
  the first leg says ``Voicemail``; a voicemail answering the second leg cannot be told from a person by
  RingCentral, so that leg says ``Call connected`` with reason ``Connected`` (answered, not accepted).
- Records are written lazily: every request (and every inspection) first writes the records that are due, in the
  order they fell due, each with the next sequence number; ``call-log-sync`` tokens carry the last number seen,
  so ``ISync`` answers exactly the records written since. Past 250 new records it answers as an ``FSync`` with a
  fresh token (RingCentral's "sporadic resync").
- ``delay`` (the emulator's ``call_log_delay``; ``emulator.call_log.delay``) is read at every request: a test may
  hold records back with a long delay and release them by setting it to 0 (scripted by events, not by the clock).

Only the standard library is used; all state is guarded by the emulator's lock.
"""

from __future__ import annotations

import copy
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

from airflow_provider_ringout.hooks.endpoints import Endpoint
from airflow_provider_ringout.testing.emulator.calls import CallScript, Outcome, Status
from airflow_provider_ringout.testing.emulator.identity import TEST_ACCOUNT_ID, TEST_EXTENSION_ID
from airflow_provider_ringout.testing.emulator.wire import Response, invalid_parameter, json_response, not_found

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterable, Mapping

DEFAULT_CALL_LOG_DELAY = 0.5  # RingCentral: 15-30 s after the end; short by default so tests stay quick
ISYNC_LIMIT = 250
_MAX_PER_PAGE = 1000
_DEFAULT_PER_PAGE = 100
_CONNECTING = (Outcome.ANSWERED, Outcome.CONNECTS_THEN_FINISHES, Outcome.UNKNOWN_STATUS, Outcome.VOICEMAIL)
_ACTION = "RingOut Web"


class LegType(str, Enum):
    """The RingOut leg types the emulator writes (the spec's ``CallLegTypeEnum`` has Client/Device twins)."""

    TO_CALLER = "RingOutWebToCaller"  # first leg: the ``from`` phone
    TO_SUBSCRIBER = "RingOutWebToSubscriber"  # second leg: the ``to`` phone


class SyncType(str, Enum):
    """``syncType`` of ``call-log-sync``."""

    FULL = "FSync"
    INCREMENTAL = "ISync"


@dataclass(frozen=True)
class Verdict:
    """A result and reason of the spec's enums (``CallResultEnum``, ``CallResultReasonEnum``); reason may be absent."""

    result: str
    reason: str | None


CONNECTED = Verdict("Call connected", "Accepted")  # "connected to and accepted by this number"
MACHINE_ANSWERED = Verdict("Call connected", "Connected")  # "answered, but no response on how to handle the call"
VOICEMAIL = Verdict("Voicemail", "Connected")
BUSY = Verdict("Busy", "Line Busy")
NOT_ANSWERED = Verdict("No Answer", "No Answer")  # "you did not answer the call": the first leg
DECLINED = Verdict("Rejected", None)  # the spec has no reason for a declined call
CANCELLED = Verdict("Hang Up", "Hang Up")  # "the caller hung up before the call was answered"
_ONE_LEG_FAILURES = {Outcome.BUSY: BUSY, Outcome.NO_ANSWER: NOT_ANSWERED, Outcome.REJECTED: DECLINED}


class _Site(Protocol):
    """What the call log reads of its emulator."""

    @property
    def url(self) -> str:
        """Base URL of the emulator (the records' ``uri``)."""
        ...


class Call(Protocol):
    """What the call log reads of a RingOut session (``calls._RingOut``); it changes while the call runs."""

    id: str
    created: float
    script: CallScript
    from_number: str | None
    to_number: str
    override: Status | None
    cancelled_at: float | None
    by_caller: bool


@dataclass(frozen=True)
class Leg:
    """One leg of an ended call: its type, when it started (monotonic) and what came of it."""

    leg_type: LegType
    start: float
    verdict: Verdict


@dataclass(frozen=True)
class Ending:
    """How and when (monotonic) a call ended: the record's verdict and its legs."""

    at: float
    verdict: Verdict
    legs: tuple[Leg, ...]


def ending_of(call: Call) -> Ending | None:
    """How ``call`` ends by its script (or its cancel); None while it never ends or when its end is not scripted."""
    created, script = call.created, call.script
    if call.override is not None:
        return None  # statuses forced by a test: the call's end is not scripted
    if call.cancelled_at is not None:
        return Ending(call.cancelled_at, CANCELLED, (Leg(LegType.TO_CALLER, created, CANCELLED),))
    failure = _ONE_LEG_FAILURES.get(script.outcome)
    if failure is not None:
        # The first leg's answer is in the statuses (busy: the caller answered, then the callee was busy).
        first = CONNECTED if script.outcome is Outcome.BUSY else failure
        return Ending(created + script.after, failure, (Leg(LegType.TO_CALLER, created, first),))
    if script.outcome not in _CONNECTING:
        return None
    first = second = verdict = CONNECTED
    if script.outcome is Outcome.VOICEMAIL and call.by_caller:
        first = verdict = VOICEMAIL
    elif script.outcome is Outcome.VOICEMAIL:
        second = verdict = MACHINE_ANSWERED
    legs = (Leg(LegType.TO_CALLER, created, first), Leg(LegType.TO_SUBSCRIBER, created + script.after / 2, second))
    return Ending(created + script.after + script.talk, verdict, legs)


@dataclass
class _Entry:
    """A written record: its sequence number, start (wall clock, for filters) and Detailed body."""

    seq: int
    start: float
    body: dict[str, Any]


def _iso(wall: float) -> str:
    """RingCentral's timestamp form, e.g. ``2026-12-06T17:24:12.123Z``."""
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: str) -> float:
    """Seconds since the epoch of an ISO 8601 time (``Z`` or an offset; no offset is UTC); ValueError if not one."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _digits(number: str | None) -> str:
    """The digits of a phone number (the ``phoneNumber`` filter is E.164 without '+')."""
    return "".join(ch for ch in number or "" if ch.isascii() and ch.isdigit())


def _party(number: str | None) -> dict[str, str]:
    """A CallLogFromParty / CallLogToParty."""
    return {"phoneNumber": number} if number else {"name": "Forwarding number"}


def _parties(body: dict[str, Any]) -> Iterable[str]:
    """The digits of every number on a record and its legs."""
    for part in (body, *body.get("legs", ())):
        for side in ("from", "to"):
            yield _digits(part.get(side, {}).get("phoneNumber"))


class _BadParameter(ValueError):
    """A query parameter RingCentral would refuse with 400 CMN-101."""


class CallLog:
    """
    Every RingOut's call-log record and the two endpoints that serve them (see the module docstring).

    It follows each new session of ``calls`` (through ``on_create``) until it ends, then writes its record once
    ``delay`` seconds have passed. A restart keeps the log (it is RingCentral's store, not a session); reset clears it.
    """

    def __init__(
        self,
        site: _Site,
        lock: threading.RLock,
        on_create: Callable[[Callable[[Call], None]], None],
        delay: float = DEFAULT_CALL_LOG_DELAY,
    ) -> None:
        """An empty log for the emulator ``site``; ``delay`` (seconds, >= 0) may be changed at any time."""
        if delay < 0:
            raise ValueError("call_log_delay must be >= 0")
        self.delay = delay
        self._site = site
        self._lock = lock
        self._epoch = secrets.token_hex(4)  # in every sync token: a token from before a reset is refused
        self._wall_offset = time.time() - time.monotonic()
        self._waiting: list[Call] = []
        self._entries: list[_Entry] = []
        on_create(self._follow)

    def _follow(self, call: Call) -> None:
        """Follow a new call until its record is written (called under the lock)."""
        self._waiting.append(call)

    def reset(self) -> None:
        """No records and no calls followed; sync tokens issued before are refused."""
        with self._lock:
            self._waiting.clear()
            self._entries.clear()
            self._epoch = secrets.token_hex(4)

    # -------------------------------------------------------------------------------------- inspection

    def records(self, view: str = "Detailed") -> list[dict[str, Any]]:
        """Every record written so far (writing those now due), newest start first, as a list would show them."""
        with self._lock:
            self._write_due()
            entries = sorted(self._entries, key=lambda e: (e.start, e.seq), reverse=True)
            return [self._shown(entry, view) for entry in entries]

    # --------------------------------------------------------------------------------------- endpoints

    def answer(self, endpoint: Endpoint, params: Mapping[str, str], query: dict[str, str]) -> Response:
        """Serve ``call-log`` or ``call-log-sync`` (the caller has authorized the request)."""
        for name, known in (("accountId", TEST_ACCOUNT_ID), ("extensionId", TEST_EXTENSION_ID)):
            if params[name] not in ("~", known):  # RingCentral answers 404 for another account or extension
                return not_found(name)
        path = endpoint.path(params)
        uri = f"{self._site.url}{path}" + (f"?{urlencode(query)}" if query else "")
        try:
            with self._lock:
                self._write_due()
                if endpoint is Endpoint.CALL_LOG_SYNC:
                    return self._sync(uri, query)
                return self._list(uri, path, query)
        except _BadParameter as exc:
            return invalid_parameter(str(exc))

    def _list(self, uri: str, path: str, query: dict[str, str]) -> Response:
        """GET .../call-log: the records started in [dateFrom, dateTo] matching the filters, newest first, a page."""
        view = _view(query)
        date_to = _time_param(query, "dateTo", self._now_wall())
        date_from = _time_param(query, "dateFrom", date_to - timedelta(hours=24).total_seconds())
        per_page, page = _per_page(query), _positive_int(query, "page", 1)
        found = [e for e in self._entries if date_from <= e.start <= date_to and _selected(e.body, query)]
        found.sort(key=lambda e: (e.start, e.seq), reverse=True)
        total = len(found)
        shown = found[(page - 1) * per_page : page * per_page]
        pages = max(1, math.ceil(total / per_page))
        paging: dict[str, int] = {"perPage": per_page, "page": page, "totalPages": pages, "totalElements": total}
        if shown:
            paging |= {"pageStart": (page - 1) * per_page, "pageEnd": (page - 1) * per_page + len(shown) - 1}

        def page_uri(number: int) -> dict[str, str]:
            return {"uri": f"{self._site.url}{path}?{urlencode({**query, 'page': number, 'perPage': per_page})}"}

        navigation = {"firstPage": page_uri(1), "lastPage": page_uri(pages)}
        if page > 1:
            navigation["previousPage"] = page_uri(page - 1)
        if page < pages:
            navigation["nextPage"] = page_uri(page + 1)
        records = [self._shown(entry, view) for entry in shown]
        return json_response(200, {"uri": uri, "records": records, "paging": paging, "navigation": navigation})

    def _sync(self, uri: str, query: dict[str, str]) -> Response:
        """GET .../call-log-sync: FSync (newest ``recordCount``) or ISync (every record since the token)."""
        view = _view(query)
        try:
            sync_type = SyncType(query.get("syncType", SyncType.FULL.value))
        except ValueError:
            raise _BadParameter("syncType") from None
        newest_first = sorted(self._entries, key=lambda e: e.seq, reverse=True)
        if sync_type is SyncType.INCREMENTAL:
            since = self._token_seq(query.get("syncToken"))
            found = [e for e in newest_first if e.seq > since]
            if len(found) > ISYNC_LIMIT:  # too many changes: the server answers with a full sync instead
                sync_type, found = SyncType.FULL, found[:ISYNC_LIMIT]
        else:
            count = _positive_int(query, "recordCount", None)
            date_from = _time_param(query, "dateFrom", -math.inf)
            found = [e for e in newest_first if e.start >= date_from][:count]
        last = self._entries[-1].seq if self._entries else 0
        sync_info = {
            "syncType": sync_type.value,
            "syncToken": f"{self._epoch}-{last}",
            "syncTime": _iso(self._now_wall()),
        }
        records = [self._shown(entry, view) for entry in found]
        return json_response(200, {"uri": uri, "records": records, "syncInfo": sync_info})

    # ---------------------------------------------------------------------------------------- internals

    def _token_seq(self, token: str | None) -> int:
        """The last sequence number a sync token saw; 400 for a missing, foreign or stale (pre-reset) token."""
        epoch, _, seq = (token or "").partition("-")
        if epoch != self._epoch or not seq.isascii() or not seq.isdigit():
            raise _BadParameter("syncToken")
        return int(seq)

    def _now_wall(self) -> float:
        """Now on the wall clock the records' times use."""
        return time.monotonic() + self._wall_offset

    def _write_due(self) -> None:
        """Write every followed call's record that is due now, in the order they fell due. Call with the lock."""
        now, delay = time.monotonic(), max(0.0, float(self.delay))
        due: list[tuple[float, Call, Ending]] = []
        for call in self._waiting:
            ending = ending_of(call)
            if ending is not None and ending.at + delay <= now:
                due.append((ending.at, call, ending))
        if not due:
            return
        written = {id(call) for _, call, _ in due}
        self._waiting = [call for call in self._waiting if id(call) not in written]
        for _, call, ending in sorted(due, key=lambda item: (item[0], item[1].created)):
            seq = (self._entries[-1].seq if self._entries else 0) + 1
            start = math.floor((call.created + self._wall_offset) * 1000) / 1000  # as startTime shows it
            self._entries.append(_Entry(seq, start, self._record(call, ending)))

    def _record(self, call: Call, ending: Ending) -> dict[str, Any]:
        """The Detailed CallLogRecord of an ended call."""
        record_id = secrets.token_urlsafe(12).replace("-", "x").replace("_", "y")
        telephony_session_id = f"s-{secrets.token_hex(16)}"
        base = f"{self._site.url}/restapi/v1.0/account/{TEST_ACCOUNT_ID}/extension/{TEST_EXTENSION_ID}"
        extension = {"id": int(TEST_EXTENSION_ID), "uri": base}
        common = {"type": "Voice", "direction": "Outbound", "action": _ACTION, "transport": "PSTN"}
        legs = []
        for index, leg in enumerate(ending.legs):
            first = leg.leg_type is LegType.TO_CALLER
            sides = (call.to_number, call.from_number) if first else (call.from_number, call.to_number)
            legs.append(
                {
                    "startTime": _iso(leg.start + self._wall_offset),
                    **_durations(ending.at - leg.start),
                    **common,
                    **_verdict(leg.verdict),
                    "from": _party(sides[0]),
                    "to": _party(sides[1]),
                    "extension": extension,
                    "telephonySessionId": telephony_session_id,
                    "legType": leg.leg_type.value,
                    "master": index == 0,
                }
            )
        return {
            "uri": f"{base}/call-log/{record_id}",
            "id": record_id,
            "sessionId": str(secrets.randbelow(9 * 10**10) + 10**10),
            "telephonySessionId": telephony_session_id,
            "startTime": _iso(call.created + self._wall_offset),
            **_durations(ending.at - call.created),
            **common,
            "internalType": "RingOut",
            **_verdict(ending.verdict),
            "from": _party(call.from_number),
            "to": _party(call.to_number),
            "extension": extension,
            "finished": True,
            "lastModifiedTime": _iso(self._now_wall()),
            "legs": legs,
        }

    @staticmethod
    def _shown(entry: _Entry, view: str) -> dict[str, Any]:
        """A deep copy of the record in ``view`` (Simple: no legs, no Detailed-only fields); callers may change it."""
        body = copy.deepcopy(entry.body)
        if view != "Detailed":
            for detailed_only in ("legs", "lastModifiedTime", "internalType"):
                body.pop(detailed_only, None)
        return body


def _durations(seconds: float) -> dict[str, int]:
    """``duration`` (whole seconds) and ``durationMs``."""
    seconds = max(0.0, seconds)
    return {"duration": round(seconds), "durationMs": round(seconds * 1000)}


def _verdict(verdict: Verdict) -> dict[str, str]:
    """``result`` and, when there is one, ``reason``."""
    return {"result": verdict.result} | ({"reason": verdict.reason} if verdict.reason else {})


def _view(query: dict[str, str]) -> str:
    """The ``view`` parameter (Simple or Detailed)."""
    view = query.get("view", "Simple")
    if view not in ("Simple", "Detailed"):
        raise _BadParameter("view")
    return view


def _time_param(query: dict[str, str], name: str, default: float) -> float:
    """A date-time parameter as epoch seconds, or ``default`` when absent."""
    value = query.get(name)
    if value is None:
        return default
    try:
        return _parse_time(value)
    except ValueError:
        raise _BadParameter(name) from None


def _positive_int(query: dict[str, str], name: str, default: int | None) -> int:
    """A parameter that must be an integer >= 1 (required when ``default`` is None)."""
    value = query.get(name)
    if value is None and default is not None:
        return default
    if value is None or not value.isascii() or not value.isdigit() or int(value) < 1:
        raise _BadParameter(name)
    return int(value)


def _per_page(query: dict[str, str]) -> int:
    """``perPage``: 1..1000 or ``max``; larger integers mean 1000, as the spec says."""
    if query.get("perPage") == "max":
        return _MAX_PER_PAGE
    return min(_positive_int(query, "perPage", _DEFAULT_PER_PAGE), _MAX_PER_PAGE)


def _selected(body: dict[str, Any], query: dict[str, str]) -> bool:
    """Whether a record passes the list's filters (phoneNumber, direction, type, sessionId, telephonySessionId)."""
    number = query.get("phoneNumber")
    if number is not None and _digits(number) not in set(_parties(body)):
        return False
    fields = ("direction", "type", "sessionId", "telephonySessionId")
    return all(query.get(name) in (None, body.get(name)) for name in fields)

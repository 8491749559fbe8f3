"""
What happened on a call: find a RingOut's record among RingCentral call-log records, and read its result.

No id links a RingOut to its call-log record (``../shared/ringcentral/NOTES.md``), so :func:`match_call` finds
it by what both share: an outbound voice record with a RingOut leg (``legType`` ``RingOut...ToCaller``,
``...ToSubscriber`` or ``RingOutOneLegToCaller``), both phone numbers, and a start time in a window around
the moment the RingOut was placed. Two records that fit are "ambiguous": the matcher never guesses. It is pure
(no I/O, no Airflow): the hook feeds it the records it read (``call-log`` or ``call-log-sync``), and the
result dict it returns is what a task pushes as XCom ``call_result``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# placed_at is taken when the POST returned; the record starts when RingCentral took the POST: a little before,
# give or take the clocks' disagreement. A wider window would take another call between the same two numbers (an
# earlier one, or a later short one whose record is written first) for this one while this one's is not written.
DEFAULT_WINDOW_BEFORE = timedelta(seconds=10)
DEFAULT_WINDOW_AFTER = timedelta(seconds=10)

RINGOUT_LEG_TYPES = frozenset(
    {
        "RingOutWebToCaller",
        "RingOutClientToCaller",
        "RingOutDeviceToCaller",
        "RingOutOneLegToCaller",
        "RingOutWebToSubscriber",
        "RingOutClientToSubscriber",
        "RingOutDeviceToSubscriber",
    }
)
_SUBSCRIBER_LEGS = frozenset(t for t in RINGOUT_LEG_TYPES if t.endswith("ToSubscriber"))
_RINGOUT_ACTIONS = frozenset({"RingOut Web", "RingOut PC", "RingOut Mobile"})
_VOICEMAIL_RESULTS = frozenset({"voicemail", "sent to voicemail"})
_ACCEPTED = "accepted"
_IN_PROGRESS = "in progress"


class MatchOutcome(str, enum.Enum):
    """What the search for a RingOut's record came to."""

    FOUND = "found"  # exactly one finished record fits
    NOT_FOUND = "not_found"  # none yet (RingCentral writes it 15-30 s after the call ends)
    IN_PROGRESS = "in_progress"  # one record fits but says the call is not finished: not there yet
    AMBIGUOUS = "ambiguous"  # two or more fit (the same two numbers twice in the window): never guess


class AnsweredBy(str, enum.Enum):
    """Who answered, as far as the record says (see :func:`answered_by`)."""

    PERSON = "person"
    VOICEMAIL = "voicemail"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PlacedRingOut:
    """
    A RingOut as the task that placed it knows it: its id, both numbers (E.164) and when it was placed (UTC).

    Its dict form (:meth:`as_dict`, XCom key ``ringout``) is ``{"id", "from_number", "to_number", "placed_at"}``
    with ``placed_at`` an ISO 8601 string, so it can travel through XCom and templates.
    """

    id: str
    from_number: str
    to_number: str
    placed_at: datetime

    def __post_init__(self) -> None:
        """Refuse a naive ``placed_at`` (a window around a time in an unknown zone would be wrong)."""
        if self.placed_at.tzinfo is None:
            raise ValueError("placed_at must be timezone-aware (UTC)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlacedRingOut:
        """From the ``ringout`` dict (``placed_at`` an ISO string or a datetime); ValueError names a bad key."""
        missing = [key for key in ("id", "from_number", "to_number", "placed_at") if not data.get(key)]
        if missing:
            raise ValueError(f"the ringout dict lacks {', '.join(missing)}")
        placed_at = data["placed_at"]
        if isinstance(placed_at, str):
            placed_at = parse_time(placed_at)
        if not isinstance(placed_at, datetime):
            raise ValueError(f"placed_at must be an ISO 8601 string or a datetime, got {type(placed_at).__name__}")
        return cls(str(data["id"]), str(data["from_number"]), str(data["to_number"]), placed_at)

    def as_dict(self) -> dict[str, str]:
        """The XCom-friendly dict."""
        placed_at = self.placed_at.astimezone(UTC).isoformat()
        return {"id": self.id, "from_number": self.from_number, "to_number": self.to_number, "placed_at": placed_at}


@dataclass(frozen=True)
class CallMatch:
    """The outcome of :func:`match_call`, the matching record's result (FOUND only) and how many records fit."""

    outcome: MatchOutcome
    result: dict[str, Any] | None = None
    candidates: int = 0

    def answer(self) -> dict[str, Any] | MatchOutcome | None:
        """The issue's answer: the result dict, ``MatchOutcome.AMBIGUOUS`` (equal to "ambiguous"), or None (not yet)."""
        if self.outcome is MatchOutcome.FOUND:
            return self.result
        return MatchOutcome.AMBIGUOUS if self.outcome is MatchOutcome.AMBIGUOUS else None


def parse_time(value: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; none means UTC) as an aware datetime; ValueError if not one."""
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def match_call(
    records: Iterable[Mapping[str, Any]],
    ringout: PlacedRingOut,
    *,
    window_before: timedelta = DEFAULT_WINDOW_BEFORE,
    window_after: timedelta = DEFAULT_WINDOW_AFTER,
) -> CallMatch:
    """
    Find ``ringout``'s record among call-log ``records`` (Detailed view; any order, repeats and updates allowed).

    A record fits when it is outbound voice, is a RingOut (a RingOut leg type; a record without legs, the Simple
    view, by its ``action`` "RingOut Web/PC/Mobile"), names both numbers (on the record or its legs, compared by
    digits), and started within ``[placed_at - window_before, placed_at + window_after]``. One fit: FOUND (or
    IN_PROGRESS while it says the call is not finished); more: AMBIGUOUS; none: NOT_FOUND.
    """
    earliest, latest = ringout.placed_at - window_before, ringout.placed_at + window_after
    fits: dict[str, Mapping[str, Any]] = {}
    for index, record in enumerate(records):
        if _fits(record, ringout, earliest, latest):
            key = str(record.get("id") or f"#{index}")
            if key not in fits or _newer(record, fits[key]):
                fits[key] = record
    if not fits:
        return CallMatch(MatchOutcome.NOT_FOUND)
    if len(fits) > 1:
        return CallMatch(MatchOutcome.AMBIGUOUS, candidates=len(fits))
    (record,) = fits.values()
    if record.get("finished") is False or _lower(record.get("result")) == _IN_PROGRESS:
        return CallMatch(MatchOutcome.IN_PROGRESS, candidates=1)
    return CallMatch(MatchOutcome.FOUND, call_result(record), candidates=1)


def call_result(record: Mapping[str, Any]) -> dict[str, Any]:
    """
    The plain, XCom-friendly result of one call-log record.

    ``{"result", "reason", "duration" (s), "start_time", "legs": [{"leg_type", "result", "reason", "duration"}],
    "telephony_session_id", "answered_by"}``; a field the record lacks is None (``legs`` is empty in the Simple view).
    """
    legs = [leg for leg in record.get("legs") or () if isinstance(leg, Mapping)]
    return {
        "result": record.get("result"),
        "reason": record.get("reason"),
        "duration": _int_or_none(record.get("duration")),
        "start_time": record.get("startTime"),
        "legs": [
            {
                "leg_type": leg.get("legType"),
                "result": leg.get("result"),
                "reason": leg.get("reason"),
                "duration": _int_or_none(leg.get("duration")),
            }
            for leg in legs
        ],
        "telephony_session_id": record.get("telephonySessionId"),
        "answered_by": answered_by(record).value,
    }


_KEPT = ("id", "startTime", "direction", "type", "action", "result", "reason", "duration", "finished")
_KEPT_MORE = ("telephonySessionId", "lastModifiedTime")
_KEPT_LEG = ("legType", "result", "reason", "duration")


def essential(record: Mapping[str, Any]) -> dict[str, Any]:
    """
    The part of a call-log record that :func:`match_call` and :func:`call_result` read (what a shared store
    keeps: about a third of a Detailed record).
    """

    def numbers(part: Mapping[str, Any]) -> dict[str, Any]:
        sides = {"from": part.get("from"), "to": part.get("to")}
        return {side: {"phoneNumber": s.get("phoneNumber")} for side, s in sides.items() if isinstance(s, Mapping)}

    kept: dict[str, Any] = {key: record[key] for key in (*_KEPT, *_KEPT_MORE) if key in record}
    legs = [leg for leg in record.get("legs") or () if isinstance(leg, Mapping)]
    if legs:
        kept["legs"] = [{**{k: leg[k] for k in _KEPT_LEG if k in leg}, **numbers(leg)} for leg in legs]
    return kept | numbers(record)


def answered_by(record: Mapping[str, Any]) -> AnsweredBy:
    """
    Who answered, only where the record says it; RingCentral's spec has no "answered by" field.

    Read from the ``result`` and ``reason`` of the record and its RingOut legs (``CallResultEnum``,
    ``CallResultReasonEnum`` in ``openapi-calllog.yaml``); never seen on a live account:

    - ``voicemail``: the record or a RingOut leg has result ``Voicemail`` or ``Sent to Voicemail`` (RingCentral's
      own voicemail took a leg, e.g. the ``from`` phone's mailbox answered the first leg).
    - ``person``: no voicemail, and the second leg (``...ToSubscriber``) has reason ``Accepted`` ("connected to
      and accepted by this number"). RingCentral cannot hear a carrier's voicemail greeting: "person" means the
      record says accepted, not that a human spoke.
    - ``unknown``: anything else: reason ``Connected`` ("answered, but no response on how to handle the call",
      e.g. a voicemail that did not press 1), a record without the second leg (busy, no answer, Simple view).
    """
    legs = [leg for leg in record.get("legs") or () if isinstance(leg, Mapping)]
    ringout_legs = [leg for leg in legs if leg.get("legType") in RINGOUT_LEG_TYPES]
    if any(_lower(part.get("result")) in _VOICEMAIL_RESULTS for part in (record, *ringout_legs)):
        return AnsweredBy.VOICEMAIL
    second = [leg for leg in ringout_legs if leg.get("legType") in _SUBSCRIBER_LEGS]
    if second and all(_lower(leg.get("reason")) == _ACCEPTED for leg in second):
        return AnsweredBy.PERSON
    return AnsweredBy.UNKNOWN


# ------------------------------------------------------------------------------------------------- internals


def _fits(record: Mapping[str, Any], ringout: PlacedRingOut, earliest: datetime, latest: datetime) -> bool:
    """Whether ``record`` could be ``ringout``'s (see :func:`match_call`)."""
    if _lower(record.get("direction")) != "outbound" or _lower(record.get("type")) != "voice":
        return False
    legs = [leg for leg in record.get("legs") or () if isinstance(leg, Mapping)]
    if legs:
        if not any(leg.get("legType") in RINGOUT_LEG_TYPES for leg in legs):
            return False
    elif record.get("action") not in _RINGOUT_ACTIONS:
        return False
    numbers = {_digits(side.get("phoneNumber")) for part in (record, *legs) for side in _sides(part)}
    if not (_named(ringout.from_number, numbers) and _named(ringout.to_number, numbers)):
        return False
    try:
        started = parse_time(str(record.get("startTime")))
    except ValueError:
        return False
    return earliest <= started <= latest


def _sides(part: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``from`` and ``to`` parties of a record or leg that are objects."""
    return [side for side in (part.get("from"), part.get("to")) if isinstance(side, Mapping)]


def _named(number: str, numbers: set[str]) -> bool:
    """
    Whether the E.164 ``number`` is among the record's ``numbers`` (digits only).

    The spec says a number is "usually" plain digits with the country code but may come formatted, e.g.
    ``(866)123-4567``: a national form of at least 10 digits that ends ours counts too.
    """
    ours = _digits(number)
    return bool(ours) and any(n == ours or (len(n) >= 10 and ours.endswith(n)) for n in numbers)


def _digits(value: Any) -> str:
    """The ASCII digits of a value (``+1 (415) 555-0100`` → ``14155550100``)."""
    return "".join(ch for ch in str(value or "") if ch.isascii() and ch.isdigit())


def _newer(record: Mapping[str, Any], seen: Mapping[str, Any]) -> bool:
    """Whether ``record`` is a later version of ``seen`` (same id; ``lastModifiedTime``, else the later one given)."""
    try:
        return parse_time(str(record.get("lastModifiedTime"))) >= parse_time(str(seen.get("lastModifiedTime")))
    except ValueError:
        return True


def _lower(value: Any) -> str:
    """A string field compared case-insensitively (absent: empty)."""
    return str(value).strip().lower() if value is not None else ""


def _int_or_none(value: Any) -> int | None:
    """Seconds as an int (RingCentral sends integers), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)

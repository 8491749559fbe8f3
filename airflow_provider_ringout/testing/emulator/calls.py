"""
Call scripts and RingOut sessions: how each call unfolds over time, and the RingOut endpoints that show it.

A :class:`CallScript` (per callee, per caller, or the default) gives a session its timeline; :func:`scripted_status`
reads the timeline at an age; :class:`CallDesk` creates, reads and cancels sessions as RingCentral does.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from airflow_provider_ringout.testing.emulator.identity import TEST_ACCOUNT_ID, TEST_EXTENSION_ID
from airflow_provider_ringout.testing.emulator.wire import Response, invalid_parameter, json_response, not_found

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

UNKNOWN_CALL_STATUS = "SomethingNew2027"


class Outcome(str, Enum):
    """How a scripted RingOut call unfolds (see :class:`CallScript`)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    NEVER_ANSWERS = "never_answers"
    CONNECTS_THEN_FINISHES = "connects_then_finishes"
    SESSION_DISAPPEARS = "session_disappears"
    FIRST_LEG_UP = "first_leg_up"
    UNKNOWN_STATUS = "unknown_status"
    VOICEMAIL = "voicemail"  # a machine answers: it connects like a person, but never presses 1 on a prompt


@dataclass(frozen=True)
class CallScript:
    """
    The timeline of one RingOut session, in seconds since the POST that created it.

    ``after`` is when the scripted event happens (answer, failure, disappearance), ``talk`` how long a connected
    call stays ``Success`` before ``Finished``, ``linger`` how long a finished or failed session stays readable
    before GET answers 404. ``outcome`` may be given as a string.

    ``vanish_after_reads`` scripts by events instead of by the clock: the session answers its first N status reads
    (GETs) as its timeline says, then 404 from read N+1 on, however slowly they come. With ``session_disappears``
    it replaces ``after`` (the session stays ``InProgress`` until the reads run out); with any other outcome the
    timeline runs until then.
    """

    outcome: Outcome = Outcome.ANSWERED
    after: float = 1.0
    talk: float = 30.0
    linger: float = 5.0
    vanish_after_reads: int | None = None

    def __post_init__(self) -> None:
        """Accept ``outcome`` as a plain string and refuse negative durations and read counts."""
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        for name in ("after", "talk", "linger"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"CallScript.{name} must be a number >= 0, got {value!r}")
        reads = self.vanish_after_reads
        if reads is not None and (not isinstance(reads, int) or isinstance(reads, bool) or reads < 0):
            raise ValueError(f"CallScript.vanish_after_reads must be an int >= 0 or None, got {reads!r}")

    @classmethod
    def of(cls, script: CallScript | Outcome | str, **kw: Any) -> CallScript:
        """A script from a script (``kw`` replacing its fields) or from an outcome (``kw`` completing it)."""
        if isinstance(script, CallScript):
            return replace(script, **kw) if kw else script
        return cls(outcome=Outcome(script), **kw)


Status = tuple[str, str, str]
_IP = "InProgress"
_OK = "Success"
_FIN = "Finished"
_ALL_IN_PROGRESS: Status = (_IP, _IP, _IP)
_FAILURES: dict[Outcome, Status] = {
    Outcome.BUSY: ("CannotReach", _OK, "Busy"),
    Outcome.NO_ANSWER: ("NoAnswer", "NoAnswer", _IP),
    Outcome.REJECTED: ("CannotReach", "Rejected", _IP),
}
_CONNECTING = (Outcome.ANSWERED, Outcome.CONNECTS_THEN_FINISHES, Outcome.UNKNOWN_STATUS, Outcome.VOICEMAIL)
_E164 = re.compile(r"\+[1-9]\d{1,14}")


def scripted_status(script: CallScript, elapsed: float) -> Status | None:
    """(callStatus, callerStatus, calleeStatus) of a session ``elapsed`` seconds old, or None once it is gone."""
    after, outcome = script.after, script.outcome
    if outcome in _CONNECTING:
        if elapsed < after:
            if outcome is Outcome.UNKNOWN_STATUS:
                return (UNKNOWN_CALL_STATUS, _IP, _IP)
            return _ALL_IN_PROGRESS if elapsed < after / 2 else (_IP, _OK, _IP)
        if elapsed < after + script.talk:
            return (_OK, _OK, _OK)
        if elapsed < after + script.talk + script.linger:
            return (_FIN, _FIN, _FIN)
        return None
    if outcome is Outcome.NEVER_ANSWERS:
        return _ALL_IN_PROGRESS
    if outcome is Outcome.SESSION_DISAPPEARS:
        # Scripted by reads instead: the session outlives the clock until its reads run out (see _RingOut).
        return _ALL_IN_PROGRESS if elapsed < after or script.vanish_after_reads is not None else None
    if outcome is Outcome.FIRST_LEG_UP:
        return _ALL_IN_PROGRESS if elapsed < after else (_IP, _OK, _IP)
    if elapsed < after:
        return _ALL_IN_PROGRESS
    if elapsed < after + script.linger:
        return _FAILURES[outcome]
    return None


def status_dict(status: Status) -> dict[str, str]:
    """The RingOutStatusInfo object."""
    return {"callStatus": status[0], "callerStatus": status[1], "calleeStatus": status[2]}


@dataclass(frozen=True)
class SessionInfo:
    """A snapshot of one RingOut session; ``status`` is None once it is gone (GET answers 404)."""

    id: str
    from_number: str | None
    to_number: str
    outcome: Outcome
    created: float
    status: dict[str, str] | None
    cancelled: bool
    play_prompt: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, served by ``GET /_emulator/sessions``."""
        return {
            "id": self.id,
            "from_number": self.from_number,
            "to_number": self.to_number,
            "outcome": self.outcome.value,
            "created": self.created,
            "status": self.status,
            "cancelled": self.cancelled,
            "play_prompt": self.play_prompt,
        }


@dataclass
class _RingOut:
    """Server-side state of one RingOut session."""

    id: str
    created: float
    script: CallScript
    from_number: str | None
    to_number: str
    play_prompt: bool
    override: Status | None = None
    cancelled: bool = False
    reads: int = 0  # status reads (GETs) answered so far, for CallScript.vanish_after_reads
    cancelled_at: float | None = None  # when a DELETE stopped it (the call log's end of the call)
    by_caller: bool = False  # its script is the first leg's (``script_caller``): how the ``from`` phone answers

    def status(self, now: float) -> Status | None:
        """Current statuses, or None when the session no longer exists."""
        if self.cancelled:
            return None
        limit = self.script.vanish_after_reads
        if limit is not None and self.reads >= limit:
            return None
        if self.override is not None:
            return self.override
        return scripted_status(self.script, now - self.created)

    def info(self, now: float) -> SessionInfo:
        """A snapshot for tests."""
        status = self.status(now)
        return SessionInfo(
            id=self.id,
            from_number=self.from_number,
            to_number=self.to_number,
            outcome=self.script.outcome,
            created=self.created,
            status=status_dict(status) if status else None,
            cancelled=self.cancelled,
            play_prompt=self.play_prompt,
        )


class _Order(NamedTuple):
    """The parts of a valid MakeRingOutRequest the emulator acts on."""

    from_number: str | None
    to_number: str
    play_prompt: bool


def _read_order(payload: Any) -> _Order | Response:
    """Validate a MakeRingOutRequest: the order, or the 400 RingCentral answers naming the bad parameter."""
    if not isinstance(payload, dict):
        return invalid_parameter("body")
    sender = payload.get("from")
    if not isinstance(sender, dict):
        return invalid_parameter("from.phoneNumber")
    from_number = sender.get("phoneNumber")
    forwarding_id = sender.get("forwardingNumberId")
    if from_number is None and isinstance(forwarding_id, str) and forwarding_id.strip():
        pass  # a forwarding number id may replace the phone number (spec)
    elif not isinstance(from_number, str) or not _E164.fullmatch(from_number):
        return invalid_parameter("from.phoneNumber")
    recipient = payload.get("to")
    to_number = recipient.get("phoneNumber") if isinstance(recipient, dict) else None
    if not isinstance(to_number, str) or not _E164.fullmatch(to_number):
        return invalid_parameter("to.phoneNumber")
    caller_id = payload.get("callerId")
    if caller_id is not None:
        shown = caller_id.get("phoneNumber") if isinstance(caller_id, dict) else caller_id
        if shown is not None and (not isinstance(shown, str) or not _E164.fullmatch(shown)):
            return invalid_parameter("callerId.phoneNumber")
    play_prompt = payload.get("playPrompt", False)
    if not isinstance(play_prompt, bool):
        return invalid_parameter("playPrompt")
    country = payload.get("country")
    if country is not None and not (isinstance(country, dict) and isinstance(country.get("id", ""), str)):
        return invalid_parameter("country.id")
    return _Order(from_number if isinstance(from_number, str) else None, to_number, play_prompt)


class _Site(Protocol):
    """What the desk needs from its emulator: the base URL that status ``uri`` fields name."""

    @property
    def url(self) -> str:
        """Base URL of the emulator."""
        ...


class CallDesk:
    """
    The call scripts and every RingOut session: POST creates a session from its script, GET reads it, DELETE
    cancels it while it can still be stopped. All state is guarded by the emulator's lock.
    """

    def __init__(self, site: _Site, lock: threading.RLock, default_script: CallScript) -> None:
        """Start with no sessions and ``default_script`` for every number."""
        self._site = site
        self._lock = lock
        self._initial_script = default_script
        self._default_script = default_script
        self._scripts: dict[str, CallScript] = {}
        self._caller_scripts: dict[str, CallScript] = {}
        self._ringouts: dict[str, _RingOut] = {}
        self._on_create: list[Callable[[_RingOut], None]] = []

    # ----------------------------------------------------------------------------------------- scripts

    def script(self, to_number: str | None, script: CallScript) -> None:
        """Script calls to ``to_number`` (None: the default for every other number)."""
        with self._lock:
            if to_number is None:
                self._default_script = script
            else:
                self._scripts[to_number] = script

    def script_caller(self, from_number: str, script: CallScript) -> None:
        """Script calls whose first leg is ``from_number``; it wins over the callee's script."""
        with self._lock:
            self._caller_scripts[from_number] = script

    def on_create(self, listener: Callable[[_RingOut], None]) -> None:
        """Call ``listener`` with every new session, under the lock (the call log follows each call to its end)."""
        with self._lock:
            self._on_create.append(listener)

    def set_status(self, ringout_id: str, call: str, caller: str, callee: str) -> None:
        """Force a session's three statuses from now on; KeyError for an unknown id."""
        with self._lock:
            session = self._ringouts.get(str(ringout_id))
            if session is None:
                raise KeyError(ringout_id)
            session.cancelled = False
            session.override = (call, caller, callee)

    def forget_sessions(self) -> None:
        """Drop every RingOut session, as a restarted server would."""
        with self._lock:
            self._ringouts.clear()

    def reset(self) -> None:
        """No sessions and no scripts: the default script is the one given at construction again."""
        with self._lock:
            self._ringouts.clear()
            self._default_script = self._initial_script
            self._scripts.clear()
            self._caller_scripts.clear()

    # -------------------------------------------------------------------------------------- inspection

    def sessions(self) -> dict[str, SessionInfo]:
        """Every session by id, with its current status (None: gone)."""
        now = time.monotonic()
        with self._lock:
            return {rid: s.info(now) for rid, s in self._ringouts.items()}

    def session_status(self, ringout_id: str) -> dict[str, str] | None:
        """The status a GET would return now for ``ringout_id``, or None when it would answer 404."""
        with self._lock:
            session = self._ringouts.get(str(ringout_id))
            status = session.status(time.monotonic()) if session else None
        return status_dict(status) if status else None

    # --------------------------------------------------------------------------------------- endpoints

    def create(self, account: str, extension: str, payload: Any) -> Response:
        """POST .../ring-out: validate the MakeRingOutRequest and start a scripted session."""
        order = _read_order(payload)
        if isinstance(order, Response):
            return order
        now = time.monotonic()
        with self._lock:
            session = _RingOut(
                id=self._new_ringout_id(),
                created=now,
                script=self._script_for(order),
                from_number=order.from_number,
                to_number=order.to_number,
                play_prompt=order.play_prompt,
                by_caller=order.from_number in self._caller_scripts,
            )
            self._ringouts[session.id] = session
            for listener in self._on_create:
                listener(session)
            status = session.status(now) or _ALL_IN_PROGRESS
        return self._status_body(session, account, extension, status)

    def get(self, account: str, extension: str, ringout_id: str) -> Response:
        """GET .../ring-out/{id}: the scripted status now, or 404 once the session is gone. Counts the read."""
        with self._lock:
            session = self._ringouts.get(ringout_id)
            status = session.status(time.monotonic()) if session else None
            if session is not None:
                session.reads += 1
        if session is None or status is None:
            return not_found()
        return self._status_body(session, account, extension, status)

    def delete(self, ringout_id: str) -> Response:
        """DELETE .../ring-out/{id}: stops the call only before the first leg is up and before it connected."""
        with self._lock:
            session = self._ringouts.get(ringout_id)
            status = session.status(time.monotonic()) if session else None
            if session is None or status is None:
                return not_found()
            call, caller, _ = status
            if caller != _OK and call not in (_OK, _FIN):
                session.cancelled = True
                session.cancelled_at = time.monotonic()
        return Response(204)

    def _script_for(self, order: _Order) -> CallScript:
        """The timeline of a new session: the caller's script, else the callee's, bent by ``playPrompt``."""
        caller_script = self._caller_scripts.get(order.from_number) if order.from_number is not None else None
        script = caller_script or self._scripts.get(order.to_number, self._default_script)
        if caller_script is not None:
            if order.play_prompt and script.outcome is Outcome.VOICEMAIL:
                script = replace(script, outcome=Outcome.FIRST_LEG_UP)
        elif order.play_prompt and script.outcome in _CONNECTING and script.outcome is not Outcome.UNKNOWN_STATUS:
            # Unattended, nobody presses 1 on the first leg: the second leg is never dialled.
            script = replace(script, outcome=Outcome.FIRST_LEG_UP, after=script.after / 2)
        return script

    def _new_ringout_id(self) -> str:
        """A fresh numeric-looking id (9 to 12 digits), unique in this emulator. Call with the lock."""
        while True:
            ringout_id = str(secrets.randbelow(10**12 - 10**8) + 10**8)
            if ringout_id not in self._ringouts:
                return ringout_id

    def _status_body(self, session: _RingOut, account: str, extension: str, status: Status) -> Response:
        """The GetRingOutStatusResponse body; ``uri`` names the real account and extension ids, as RingCentral does."""
        account = TEST_ACCOUNT_ID if account == "~" else account
        extension = TEST_EXTENSION_ID if extension == "~" else extension
        uri = f"{self._site.url}/restapi/v1.0/account/{account}/extension/{extension}/ring-out/{session.id}"
        return json_response(200, {"id": session.id, "uri": uri, "status": status_dict(status)})

"""Exceptions raised by the RingCentral RingOut provider. None of their messages ever holds a secret."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_ringout.status import RingOutStatus


class RingOutError(AirflowException):
    """Base class of every error this provider raises."""


class RingCentralConfigError(RingOutError, ValueError):
    """A connection field or a task parameter is wrong; raised before any request is sent."""


class RingCentralAPIError(RingOutError):
    """RingCentral answered with an error, or did not answer usably."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_codes: Sequence[str] = (),
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status_code = status_code  # type: ignore[assignment]  # an HTTP status, or None when no answer came
        self.error_codes = tuple(error_codes)
        self.api_message = message
        self.method = method
        self.path = path
        where = f"{method} {path}" if method and path else "RingCentral request"
        details = ([f"HTTP {status_code}"] if status_code is not None else []) + list(self.error_codes)
        suffix = f" ({', '.join(details)})" if details else ""
        super().__init__(f"{where} failed{suffix}: {message}")

    def has_code(self, *codes: str) -> bool:
        """Whether RingCentral reported any of these error codes (compared case-insensitively)."""
        wanted = {c.lower() for c in codes}
        return any(code.lower() in wanted for code in self.error_codes)


class RingCentralAuthError(RingCentralAPIError):
    """The credentials could not be exchanged for a token, or the token was refused."""


class RingCentralRateLimitError(RingCentralAPIError):
    """RingCentral kept answering 429 after the allowed number of waits."""


class RingCentralWaitEndedError(RingCentralAPIError):
    """
    A request was given up before it was sent (again) because the wait it serves ends first (a 429's
    ``Retry-After``, the pacer, a back-off or the send deadline would run past it). A ring-out POST given up
    this way placed no call.
    """


class RingOutUnconfirmedError(RingCentralAPIError, AirflowFailException):
    """
    The ring-out POST may have been processed but its answer was lost; it is never sent again blindly.

    It is an ``AirflowFailException``: Airflow does not retry the task, so no later try dials again.
    """


class RingOutFailedError(RingOutError):
    """The call ended without connecting (busy, no answer, rejected, gone before connecting...)."""

    def __init__(self, message: str, *, ringout_id: str | None = None, status: RingOutStatus | None = None):
        self.ringout_id = ringout_id
        self.status = status
        super().__init__(message)


class RingOutOutcomeUnknownError(RingOutFailedError, AirflowFailException):
    """
    The call's session vanished before it was seen connected or failing: it may have connected.

    It is an ``AirflowFailException``: Airflow does not retry the task, so no later try dials again (clear the
    task to call deliberately).
    """


class RingOutTimeoutError(RingOutError):
    """The call did not connect within the wait timeout."""

    def __init__(
        self,
        message: str,
        *,
        ringout_id: str | None = None,
        status: RingOutStatus | None = None,
        cancelled: bool | None = None,
    ):
        self.ringout_id = ringout_id
        self.status = status
        self.cancelled = cancelled
        super().__init__(message)


class RingCentralPermissionError(RingCentralAPIError):
    """
    The app lacks a permission the request needs (403 ``CMN-401`` / ``InsufficientPermissions``); ``permission``
    names it. Raised by :meth:`RingCentralHook.get_call_result` when the app lacks ``ReadCallLog``.
    """

    def __init__(self, message: str, *, permission: str, **where: object) -> None:
        self.permission = permission
        super().__init__(message, **where)  # type: ignore[arg-type]


class RingOutCallResultError(RingOutError, AirflowFailException):
    """
    A call's result could not be read from RingCentral's call log (the call itself was placed).

    It is an ``AirflowFailException``: a retry would not read it better, and must never place the call again.
    """

    def __init__(self, message: str, *, ringout_id: str | None = None):
        self.ringout_id = ringout_id
        super().__init__(message)


class RingOutCallResultTimeoutError(RingOutCallResultError):
    """The call's record did not appear in the call log within the wait (``result_timeout``)."""


class RingOutCallResultAmbiguousError(RingOutCallResultError):
    """
    Two or more call-log records could be the RingOut's (the same two numbers twice within the matching window):
    the provider never guesses which. Waiting longer cannot resolve it, so it is not retried; read the call log by
    hand (``RingCentralHook.request(Endpoint.CALL_LOG, ...)``).
    """

    def __init__(self, message: str, *, ringout_id: str, candidates: int) -> None:
        self.candidates = candidates
        super().__init__(message, ringout_id=ringout_id)

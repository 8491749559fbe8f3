"""
The RingOut API's shapes, with no I/O: its paths (from the endpoint table), the call to place (a
:class:`RingOutRequest`, checked before anything is sent), and the status body of an answer.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.hooks._http import loads_json
from airflow_provider_ringout.hooks._transport import unusable_answer
from airflow_provider_ringout.hooks.endpoints import Endpoint
from airflow_provider_ringout.request import RingOutRequest

if TYPE_CHECKING:
    from airflow_provider_ringout.hooks._transport import Answer

RINGOUT_PATH = Endpoint.RING_OUT_CREATE.path()
# RingCentral's RingOut ids are digit strings; accept any plain path segment made of safe characters, no dots.
_RINGOUT_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def ringout_path(ringout_id: Any) -> str:
    """The path of one RingOut session; a clear error for anything that is not a RingOut id."""
    if ringout_id is None or not str(ringout_id).strip():
        raise RingCentralConfigError("ringout_id is empty; pass the id returned by RingOutOperator or place_ringout.")
    text = str(ringout_id).strip()
    if "{{" in text or "{%" in text:
        raise RingCentralConfigError(f"ringout_id {text!r} looks like an unrendered template.")
    if not _RINGOUT_ID.fullmatch(text):
        # Only a plain path segment: '..' or '/' would address other resources of the extension.
        raise RingCentralConfigError(
            f"ringout_id {text[:40]!r} is not a RingOut id: RingCentral's ids are digits (letters, '-' and '_' "
            "are also accepted); pass the id returned by RingOutOperator or place_ringout."
        )
    return Endpoint.RING_OUT_GET.path({"ringoutId": text})


def ringout_request(request: RingOutRequest | None, **fields: Any) -> RingOutRequest:
    """
    The call the hook is asked to place: ``request`` as given (checked when it was built), or one built from the
    loose keyword arguments the hook's methods have always taken; giving both is refused.
    """
    if request is None:
        return RingOutRequest(**fields)
    if not isinstance(request, RingOutRequest):
        raise RingCentralConfigError(f"request must be a RingOutRequest; got {type(request).__name__}.")
    given = [name for name, value in fields.items() if value not in (None, False, "")]
    if given:
        raise RingCentralConfigError(
            f"Pass either request or the call's fields, not both (also given: {', '.join(given)})."
        )
    return request


def status_body(response: Answer, endpoint: Endpoint, path: str) -> dict[str, Any]:
    """
    The JSON status body with ``id`` as a string, or a clear error if the answer is not one (unconfirmed when the
    endpoint may not be resent: the call may have been placed).
    """
    try:
        body = loads_json(response.text)
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("id") in (None, ""):
        raise unusable_answer(endpoint, path, response.status_code, "a RingOut status")
    body["id"] = str(body["id"])
    return body

"""
The RingOut API's shapes, with no I/O: its paths (from the endpoint table), the request body (checked before
anything is sent) and the status body of an answer.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.hooks._http import loads_json
from airflow_provider_ringout.hooks._transport import unusable_answer
from airflow_provider_ringout.hooks.endpoints import Endpoint
from airflow_provider_ringout.phone import is_ascii_digits, validate_e164

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


def ringout_body(
    *, to_number: Any, from_number: Any, caller_id: Any, play_prompt: Any, country_id: Any
) -> dict[str, Any]:
    """The POST body of a call, each field checked (``from_number`` already defaulted by the hook)."""
    to_number = validate_e164(to_number, "to_number")
    from_number = validate_e164(from_number, "from_number")
    caller_id = validate_e164(caller_id, "caller_id", required=False)
    if not isinstance(play_prompt, bool):
        raise RingCentralConfigError(f"play_prompt must be True or False; got {play_prompt!r}.")
    body: dict[str, Any] = {
        "from": {"phoneNumber": from_number},
        "to": {"phoneNumber": to_number},
        "playPrompt": play_prompt,
    }
    if caller_id:
        body["callerId"] = {"phoneNumber": caller_id}
    if country_id not in (None, ""):
        if not is_ascii_digits(str(country_id)):
            raise RingCentralConfigError(f"country_id must be RingCentral's numeric country id; got {country_id!r}.")
        body["country"] = {"id": str(country_id)}
    return body


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

"""
The call log endpoints, as far as the emulator keeps a call log: none yet. A list (``call-log``) and a sync
(``call-log-sync``) answer an empty record list shaped as RingCentral's spec says, after checking the query the way
RingCentral does (400 ``CMN-101`` naming the parameter).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from airflow_provider_ringout.testing.emulator.identity import TEST_ACCOUNT_ID, TEST_EXTENSION_ID
from airflow_provider_ringout.testing.emulator.wire import Response, invalid_parameter, json_response, not_found

if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_PER_PAGE = 1000  # RingCentral applies 1000 to a larger perPage (and to "max")
DEFAULT_PER_PAGE = 100
SYNC_TYPES = ("FSync", "ISync")
VIEWS = ("Simple", "Detailed")


class _Site(Protocol):
    """What the call log needs from its emulator: the base URL that ``uri`` fields name."""

    @property
    def url(self) -> str: ...


def _positive(query: Mapping[str, str], name: str, default: int) -> int | None:
    """A positive integer query parameter (``default`` when absent); None when it is not one."""
    raw = query.get(name)
    if raw is None:
        return default
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else None


class CallLog:
    """GET .../call-log and .../call-log-sync: the extension's call log, empty."""

    def __init__(self, site: _Site) -> None:
        """Name ``site``'s URL in the answers."""
        self._site = site

    def _uri(self, params: Mapping[str, str], tail: str) -> str:
        account = TEST_ACCOUNT_ID if params["accountId"] == "~" else params["accountId"]
        extension = TEST_EXTENSION_ID if params["extensionId"] == "~" else params["extensionId"]
        return f"{self._site.url}/restapi/v1.0/account/{account}/extension/{extension}/{tail}"

    @staticmethod
    def _unknown_owner(params: Mapping[str, str]) -> Response | None:
        """404 for an account or extension other than the test user's ("~" or its id), as RingCentral answers."""
        for name, known in (("accountId", TEST_ACCOUNT_ID), ("extensionId", TEST_EXTENSION_ID)):
            if params[name] not in ("~", known):
                return not_found(name)
        return None

    def records(self, params: Mapping[str, str], query: Mapping[str, str]) -> Response:
        """GET .../call-log: a CallLogResponse with no records (``perPage`` 1-1000 or "max", ``page`` >= 1)."""
        unknown = self._unknown_owner(params)
        if unknown is not None:
            return unknown
        raw_per_page = query.get("perPage")
        per_page = MAX_PER_PAGE if raw_per_page == "max" else _positive(query, "perPage", DEFAULT_PER_PAGE)
        page = _positive(query, "page", 1)
        if per_page is None:
            return invalid_parameter("perPage")
        if page is None:
            return invalid_parameter("page")
        if query.get("view", "Simple") not in VIEWS:
            return invalid_parameter("view")
        body = {
            "uri": self._uri(params, "call-log"),
            "records": [],
            "paging": {"page": page, "perPage": min(per_page, MAX_PER_PAGE), "totalElements": 0, "totalPages": 0},
            "navigation": {},
        }
        return json_response(200, body)

    def sync(self, params: Mapping[str, str], query: Mapping[str, str]) -> Response:
        """GET .../call-log-sync: a CallLogSyncResponse with no records; ISync needs the ``syncToken`` of a sync."""
        unknown = self._unknown_owner(params)
        if unknown is not None:
            return unknown
        sync_type = query.get("syncType", "FSync")
        if sync_type not in SYNC_TYPES:
            return invalid_parameter("syncType")
        if sync_type == "ISync" and not query.get("syncToken"):
            return invalid_parameter("syncToken")
        if query.get("view", "Simple") not in VIEWS:
            return invalid_parameter("view")
        sync_time = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = {
            "uri": self._uri(params, "call-log-sync"),
            "records": [],
            "syncInfo": {"syncType": sync_type, "syncToken": secrets.token_urlsafe(12), "syncTime": sync_time},
        }
        return json_response(200, body)

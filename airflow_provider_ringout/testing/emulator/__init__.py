"""
A local RingCentral emulator: a real HTTP server on loopback that speaks the endpoints of the hook's endpoint table
(RingOut, OAuth, the call log).

It exists so that the hook, operator, sensor and trigger can be tested end to end, over real sockets, against
the behaviour RingCentral documents: the JWT grant with HTTP Basic client auth, the five-session cap, token
expiry and revocation, RingOut status timelines, best-effort DELETE, rate-limit groups with penalties that
restart, and injected faults (429, 5xx, dropped connections, slow and malformed answers).

One module a job, each owned by :class:`RingCentralEmulator` (``core``) as a small collaborator sharing its lock:

- ``httpd``: the threaded HTTP server and handler (read a request, write or drop the answer)
- ``wire``: the response type, RingCentral's error bodies, body parsing
- ``routes``: which endpoint (request kind) a method and path reach, from ``hooks.endpoints`` (one table)
- ``calls``: call scripts, outcomes and timelines, the RingOut sessions and endpoints
- ``calllog``: the call-log records written after each call ends, ``call-log`` and ``call-log-sync``
- ``oauth``: the token and revoke endpoints, bearer checks, the session cap and evictions
- ``throttling``: rate buckets, RingCentral's real limits, penalties and ``X-Rate-Limit-*`` headers
- ``faults``: injected faults and their canned answers
- ``record``: the request record and counts
- ``control``: the ``/_emulator/`` control plane and its Host check
- ``identity``: the test account and the credentials it accepts

The server (``ThreadingHTTPServer``: a daemon accept thread, one thread per connection) shares one lock; only the
standard library is used. A control plane under ``/_emulator/`` (no auth, not recorded) lets a test in another
process drive an emulator started by the CLI:

- ``GET health``, ``GET requests``, ``GET tokens``, ``GET sessions``, ``GET call-log`` (Detailed records, newest first)
- ``POST script`` ``{"to_number": "+1..."|null, "outcome": "busy", "after": 1, "talk": 30, "linger": 5}`` (or
  ``"from_number"`` instead of ``"to_number"``: how the person on the first leg answers)
- ``POST faults`` ``{"fault": "503", "method": "POST", "path": "ring-out-create", "times": 1, ...params}``
- ``POST status`` ``{"id": "...", "callStatus": ..., "callerStatus": ..., "calleeStatus": ...}``
- ``POST reset``, ``POST restart``, ``POST revoke-tokens``, ``POST reject-jwt`` ``{"rejected": true}``
"""

from __future__ import annotations

from airflow_provider_ringout.testing.emulator.calls import (
    UNKNOWN_CALL_STATUS,
    CallScript,
    Outcome,
    SessionInfo,
    Status,
    scripted_status,
)
from airflow_provider_ringout.testing.emulator.core import RingCentralEmulator
from airflow_provider_ringout.testing.emulator.faults import FAULTS
from airflow_provider_ringout.testing.emulator.identity import (
    JWT_GRANT_TYPE,
    REFRESH_TOKEN_TTL,
    TEST_ACCOUNT_ID,
    TEST_CLIENT_ID,
    TEST_CLIENT_SECRET,
    TEST_EXTENSION_ID,
    TEST_JWT,
)
from airflow_provider_ringout.testing.emulator.record import RecordedRequest

__all__ = [
    "FAULTS",
    "JWT_GRANT_TYPE",
    "REFRESH_TOKEN_TTL",
    "TEST_ACCOUNT_ID",
    "TEST_CLIENT_ID",
    "TEST_CLIENT_SECRET",
    "TEST_EXTENSION_ID",
    "TEST_JWT",
    "UNKNOWN_CALL_STATUS",
    "CallScript",
    "Outcome",
    "RecordedRequest",
    "RingCentralEmulator",
    "SessionInfo",
    "Status",
    "scripted_status",
]

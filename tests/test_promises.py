"""
Fast guards (no services) for promises that a one-line change could break silently.

- A call whose outcome is unknown fails the task with an ``AirflowFailException``, so Airflow never retries
  (and redials) it.
- The token-sealing key is derived from the JWT as well as the client secret: a record sealed under one JWT is
  not opened under another (a rotated JWT never reads a token of the old one).

The ``task_state_store`` hold on resume is guarded by tests/operators/test_hold_clears.py, the Redis token
store's compare-and-set by ``test_a_renewal_never_overwrites_a_newer_token_another_host_stored``
(tests/hooks/test_redis_state.py).
"""

from __future__ import annotations

import time

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_ringout.exceptions import RingOutOutcomeUnknownError
from airflow_provider_ringout.operators.ringout import RingOutOperator
from airflow_provider_ringout.state.sealing import TokenSealer
from airflow_provider_ringout.state.tokens import Token
from airflow_provider_ringout.status import RingOutState, RingOutWatch
from tests.task_context import task_context


def test_an_unknown_outcome_fails_the_task_without_a_retry() -> None:
    op = RingOutOperator(task_id="call", to_number="+14155550199", retries=3)

    with pytest.raises(AirflowFailException) as err:  # Airflow fails such a task for good: no retry, no redial
        op._finish(RingOutState.UNKNOWN, RingOutWatch("1"), task_context())
    assert isinstance(err.value, RingOutOutcomeUnknownError)


def test_the_sealing_key_is_derived_from_the_jwt() -> None:
    token = Token("access", expires_at=time.time() + 3600, issued_at=time.time())
    record = TokenSealer("k" * 32, "secret", "jwt-one").seal(token)

    reopened = TokenSealer("k" * 32, "secret", "jwt-one").open(record)
    assert reopened is not None and reopened.access_token == "access"
    assert TokenSealer("k" * 32, "secret", "jwt-two").open(record) is None

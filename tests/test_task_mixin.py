"""
What every RingOut task shares (``_task_mixin``).

``hook_params``: every task hands RingCentralHook settings to its hook (and, deferring, to its trigger); an unknown
key or a bad value fails when the DAG is parsed, naming the key and what is accepted. How a wait ends: the stop
after Airflow's own timeout and the "still pending?" test, one piece for the operator, the sensor and the trigger.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_ringout._task_mixin import (
    HOOK_PARAMS,
    MAX_ATTEMPTS,
    MAX_BACKOFF_FACTOR,
    MAX_POLL_INTERVAL,
    MAX_RATE_LIMIT_BUDGET,
    MAX_WAIT,
    check_hook_params,
)
from airflow_provider_ringout.exceptions import RingCentralAPIError, RingCentralConfigError
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.notifications.ringout import RingOutNotifier
from airflow_provider_ringout.operators.ringout import RingOutCancelOperator, RingOutOperator
from airflow_provider_ringout.sensors.ringout import RingOutSensor
from airflow_provider_ringout.status import RingOutState, RingOutWatch
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from airflow_provider_ringout.triggers.ringout import TRIGGER_FAIL, RingOutTrigger
from tests.task_context import TaskInstanceDouble, task_context

TO, FROM = "+14155550199", "+14155550100"

TASKS: dict[str, Callable[..., Any]] = {
    "operator": lambda **kw: RingOutOperator(task_id="call", to_number=TO, from_number=FROM, **kw),
    "sensor": lambda **kw: RingOutSensor(task_id="wait", ringout_id="1", **kw),
    "cancel": lambda **kw: RingOutCancelOperator(task_id="cancel", ringout_id="1", **kw),
    "notifier": lambda **kw: RingOutNotifier(to_numbers=[TO], **kw),
    "trigger": lambda **kw: RingOutTrigger(ringout_id="1", end_time=1.0, **kw),
}


def test_the_accepted_keys_are_the_hooks_own_settings() -> None:
    """Kept apart so that parsing a DAG never imports the hook; this keeps the two lists in step."""
    signature = inspect.signature(RingCentralHook.__init__)
    settings = {p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(HOOK_PARAMS) == settings


@pytest.mark.parametrize("task", TASKS)
def test_hook_params_reach_the_hook(task: str, tmp_path: Path) -> None:
    params = {"max_attempts": 2, "backoff_factor": 0.25, "token_cache_dir": tmp_path}
    built = TASKS[task](hook_params=params, ringcentral_conn_id="rc")
    hook = built._hook() if task == "trigger" else built.hook
    assert isinstance(hook, RingCentralHook)
    assert (hook.ringcentral_conn_id, hook.max_attempts, hook.backoff_factor) == ("rc", 2, 0.25)
    assert hook._token_cache_dir == tmp_path


@pytest.mark.parametrize("task", TASKS)
def test_without_hook_params_the_hook_has_its_defaults(task: str) -> None:
    built = TASKS[task]()
    hook = built._hook() if task == "trigger" else built.hook
    assert (hook.max_attempts, hook.backoff_factor, hook._token_cache_dir) == (5, 1.0, None)


@pytest.mark.parametrize("task", TASKS)
def test_an_unknown_key_fails_when_the_dag_is_parsed(task: str) -> None:
    with pytest.raises(
        RingCentralConfigError, match=r"unknown key 'max_retries'; RingCentralHook accepts max_attempts, backoff_factor"
    ):
        TASKS[task](hook_params={"max_retries": 3})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"ringcentral_conn_id": "x"}, "pass it as the task's own ringcentral_conn_id"),
        ({"max_attempts": 0}, r"hook_params\['max_attempts'\] must be a whole number from 1 to 20"),
        ({"max_attempts": "3"}, r"hook_params\['max_attempts'\] must be a whole number"),
        ({"max_attempts": True}, r"hook_params\['max_attempts'\] must be a whole number"),
        ({"backoff_factor": -1}, r"hook_params\['backoff_factor'\] must be a number of seconds from 0 to 60"),
        ({"token_cache_dir": ""}, r"hook_params\['token_cache_dir'\] must be a folder path"),
        (["max_attempts", 3], "hook_params must be a dict of RingCentralHook arguments"),
    ],
)
def test_bad_hook_params_name_the_key_and_the_fix(params: Any, message: str) -> None:
    with pytest.raises(RingCentralConfigError, match=message):
        RingOutOperator(task_id="call", to_number=TO, hook_params=params)


def test_empty_hook_params_are_none() -> None:
    assert check_hook_params({}) is None
    assert check_hook_params(None) is None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("task", ["operator", "sensor"])
def test_a_deferring_task_hands_its_hook_params_to_the_trigger(
    ringcentral_conn_env: RingCentralEmulator, task: str
) -> None:
    ringcentral_conn_env.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    ringout_id = RingCentralHook().place_ringout(to_number=TO, from_number=FROM)["id"]
    params = {"max_attempts": 3, "backoff_factor": 0.5}
    if task == "operator":  # the operator places its own call
        built = TASKS[task](hook_params=params, deferrable=True, wait_timeout=60)
    else:
        built = RingOutSensor(task_id="wait", ringout_id=ringout_id, hook_params=params, deferrable=True, timeout=60)

    with pytest.raises(TaskDeferred) as deferred:
        built.execute(task_context())

    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["hook_params"] == params
    assert kwargs["cancel_on_timeout"] is True and kwargs["cancel_on_kill"] is True
    assert RingOutTrigger(**kwargs)._hook().max_attempts == 3


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("max_attempts", "stopped"), [(1, None), (2, True)])
def test_the_hook_retries_as_hook_params_say(
    ringcentral_conn_env: RingCentralEmulator, max_attempts: int, stopped: bool | None
) -> None:
    ringcentral_conn_env.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    ringout_id = RingCentralHook().place_ringout(to_number=TO, from_number=FROM)["id"]
    ringcentral_conn_env.inject("503", path="ring-out-delete")
    cancel = RingOutCancelOperator(task_id="cancel", ringout_id=ringout_id, hook_params={"max_attempts": max_attempts})

    if stopped is None:
        with pytest.raises(RingCentralAPIError, match="503"):
            cancel.execute(task_context())
    else:
        assert cancel.execute(task_context()) is stopped
    assert ringcentral_conn_env.count(kind="ring-out-delete") == max_attempts


@pytest.mark.parametrize(
    ("task_args", "bound"),
    [
        ({"hook_params": {"max_attempts": 10**9}}, "MAX_ATTEMPTS"),
        ({"hook_params": {"max_attempts": MAX_ATTEMPTS + 1}}, "MAX_ATTEMPTS"),
        ({"hook_params": {"backoff_factor": MAX_BACKOFF_FACTOR + 1}}, "MAX_BACKOFF_FACTOR"),
        ({"hook_params": {"rate_limit_budget": MAX_RATE_LIMIT_BUDGET + 1}}, "MAX_RATE_LIMIT_BUDGET"),
        ({"wait_timeout": MAX_WAIT.total_seconds() + 1}, "MAX_WAIT"),
        ({"poll_interval": MAX_POLL_INTERVAL.total_seconds() + 1}, "MAX_POLL_INTERVAL"),
    ],
)
def test_a_dag_cannot_set_more_than_a_bound_and_the_error_names_it(task_args: dict[str, Any], bound: str) -> None:
    with pytest.raises(RingCentralConfigError, match=bound):
        RingOutOperator(task_id="call", to_number="+14155550199", **task_args)


@pytest.mark.parametrize(
    ("task_args", "bound"),
    [
        ({"poke_interval": MAX_POLL_INTERVAL.total_seconds() + 1}, "MAX_POLL_INTERVAL"),
        ({"timeout": MAX_WAIT.total_seconds() + 1}, "MAX_WAIT"),
        ({"hook_params": {"max_attempts": MAX_ATTEMPTS + 1}}, "MAX_ATTEMPTS"),
    ],
)
def test_a_sensor_is_bounded_too(task_args: dict[str, Any], bound: str) -> None:
    with pytest.raises(RingCentralConfigError, match=bound):
        RingOutSensor(task_id="wait", ringout_id="1", **task_args)


def test_the_bounds_themselves_are_accepted() -> None:
    checked = check_hook_params(
        {"max_attempts": MAX_ATTEMPTS, "backoff_factor": MAX_BACKOFF_FACTOR, "rate_limit_budget": MAX_RATE_LIMIT_BUDGET}
    )
    assert checked == {
        "max_attempts": MAX_ATTEMPTS,
        "backoff_factor": MAX_BACKOFF_FACTOR,
        "rate_limit_budget": MAX_RATE_LIMIT_BUDGET,
    }


# --- how a wait ends: one piece for the operator, the sensor and the trigger ------------------------------------


class FailedByAirflow(TaskInstanceDouble):
    """A deferred task instance that Airflow resumes only to fail it (its own timeout beat the trigger)."""

    task_id, map_index = "call", -1

    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int) -> Any:
        return self.xcoms.get(key)


class StateStore(dict):  # type: ignore[type-arg]
    def set(self, key: str, value: Any) -> None:
        self[key] = value


@pytest.mark.timeout(60)
@pytest.mark.parametrize("task", ["operator", "sensor"])
def test_after_airflows_timeout_a_pending_call_is_stopped_once(
    ringcentral_conn_env: RingCentralEmulator, task: str
) -> None:
    """
    The stop after Airflow's own timeout, shared by operator and sensor: the still-pending call gets one DELETE
    (the operator remembers it failed); resumed again, the call is gone and gets none.
    """
    ringcentral_conn_env.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    ringout_id = RingCentralHook().place_ringout(to_number=TO, from_number=FROM)["id"]
    ti = FailedByAirflow()
    ti.xcoms["ringout_id"] = ringout_id  # saved by the try that placed the call and deferred
    context = {**task_context(ti), "task_state_store": StateStore()}
    fail = {"error": "Trigger timeout"}  # what the scheduler sets when a deferral timed out

    for _ in range(2):  # the second time the call is already gone: no second DELETE
        built = TASKS[task]() if task == "operator" else RingOutSensor(task_id="wait", ringout_id=ringout_id)
        with pytest.raises(Exception, match=r"[Tt]imeout"):  # then Airflow's own failure, as before
            built.resume_execution(TRIGGER_FAIL, fail, context)
        assert ringcentral_conn_env.count(kind="ring-out-delete") == 1
    assert ringcentral_conn_env.sessions[ringout_id].cancelled
    if task == "operator":
        assert context["task_state_store"]["ringout_outcome"] == "failed"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("killed", ["operator", "trigger"])
def test_on_kill_leaves_a_call_whose_session_vanished(ringcentral_conn_env: RingCentralEmulator, killed: str) -> None:
    """
    "Still pending?" is asked of the watch (``RingOutWatch.pending``) by the task's and the trigger's on_kill
    alike: a session that vanished after a pending reading has nothing left to cancel, so no DELETE is sent.
    """
    ringcentral_conn_env.script(TO, CallScript(outcome=Outcome.SESSION_DISAPPEARS, vanish_after_reads=1))
    hook = RingCentralHook()
    ringout_id = hook.place_ringout(to_number=TO, from_number=FROM)["id"]
    watch = RingOutWatch(ringout_id)
    assert hook.observe(watch) is RingOutState.PENDING
    assert hook.observe(watch) is RingOutState.UNKNOWN  # gone; its last reading stays the pending one

    if killed == "operator":
        op = TASKS["operator"]()
        op._watch = watch
        op.on_kill()
    else:
        trigger = RingOutTrigger(ringout_id=ringout_id, end_time=1.0)
        trigger.watch = watch  # as its run() left it
        asyncio.run(trigger.on_kill())

    assert ringcentral_conn_env.count(kind="ring-out-delete") == 0

"""
What the provider's triggers share: the hook they build in the triggerer, their serialized form, and (for the
waits a task defers to) the hold of an event that comes too soon after the deferral (``_wait.no_sooner``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_ringout._wait import no_sooner

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook


class RingCentralTrigger(BaseTrigger):
    """A trigger that talks to RingCentral through one ``ringcentral`` connection and the task's hook params."""

    ringcentral_conn_id: str
    hook_params: dict[str, Any] | None

    def _hook(self) -> RingCentralHook:
        from airflow_provider_ringout.hooks.ringcentral import RingCentralHook  # not at DAG-parse time

        return RingCentralHook(ringcentral_conn_id=self.ringcentral_conn_id, **(self.hook_params or {}))

    def _classpath(self) -> str:
        return f"{type(self).__module__}.{type(self).__qualname__}"


class HeldWaitTrigger(RingCentralTrigger):
    """
    A wait a task defers to: :meth:`_wait` yields its event, which :meth:`run` holds until ``fire_after`` (Airflow's
    deferral race, see ``_wait.fire_after``). ``hook_params`` and ``fire_after`` are serialized only when set, so a
    triggerer still on an earlier release can load the rest.
    """

    fire_after: float | None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in no_sooner(self._wait(), self.fire_after):
            yield event

    def _wait(self) -> AsyncIterator[TriggerEvent]:
        raise NotImplementedError

    def _serialized(self, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """``serialize()``'s answer: the class path, and ``kwargs`` with the optional arguments that are set."""
        if self.hook_params:
            kwargs["hook_params"] = self.hook_params
        if self.fire_after is not None:
            kwargs["fire_after"] = self.fire_after
        return self._classpath(), kwargs

"""
The provider's shared state: what one process, one host or a whole cluster keeps between calls.

Below :mod:`airflow_provider_ringout.hooks` and :mod:`airflow_provider_ringout.notifications`, and imports neither
(``tests/test_layout.py`` keeps it so). :func:`reset_process_state` empties every process-wide cache of the
provider, in this package and elsewhere (the registry is :mod:`airflow_provider_ringout._process`). One job per
module:

- :mod:`.files`: the host's private state folder (0700, flock-guarded JSON files, bounded lock waits).
- :mod:`.tokens`: the access token (:class:`~.tokens.Token`) and its cache shared by the processes of one host.
- :mod:`.pacer`: the rate pacer shared by the processes of one host (RingCentral's per-group budget, 429 blocks).
- :mod:`.sealing`: the token sealed at rest (AES-GCM) and the keys derived from the connection's secrets.
- :mod:`.config`: ``[ringcentral] shared_state`` and ``redis_conn_id`` read, and what to do when Redis is unusable.
- :mod:`.redis`: the cluster-wide token and rate budget in Redis, falling back to the host's files.
- :mod:`.backend`: the token cache and pacer of a credential on the configured backend; the Test button's words.
- :mod:`.claims`: alert claims (one escalation per incident) as leases, in this process, the host's files or Redis.
- :mod:`.calllog`: the call-log records shared by every result look-up, and the reader lease (one sync for all).
- :mod:`.progress`: an escalation trigger's saved progress (for a restarted triggerer), in the host's files or Redis.
"""

from __future__ import annotations

from airflow_provider_ringout._process import reset_process_state

__all__ = ["reset_process_state"]

"""
Which Airflow core runs this provider, for the few places that differ.

Each Airflow provider keeps a small module like this of its own rather than importing another provider's
(Airflow's provider checks refuse that): it is read once, at import, from ``airflow.__version__``.
"""

from __future__ import annotations


def get_base_airflow_version_tuple() -> tuple[int, int, int]:
    """The running Airflow core as ``(major, minor, micro)``, pre-release and local parts left out."""
    from airflow import __version__
    from packaging.version import Version

    airflow_version = Version(__version__)
    return airflow_version.major, airflow_version.minor, airflow_version.micro


AIRFLOW_V_3_1_PLUS: bool = get_base_airflow_version_tuple() >= (3, 1, 0)
"""Airflow 3.1 has Deadline Alerts: ``DeadlineAlert(..., callback=AsyncCallback(...))``, run by the triggerer."""
AIRFLOW_V_3_2_PLUS: bool = get_base_airflow_version_tuple() >= (3, 2, 0)
"""Airflow 3.2 reads a connection form's extra fields from the provider info's ``conn-fields``."""
AIRFLOW_V_3_3_PLUS: bool = get_base_airflow_version_tuple() >= (3, 3, 0)
"""Airflow 3.3 has ``task_state_store``, and triggers may message the supervisor from any thread."""

__all__ = ["AIRFLOW_V_3_1_PLUS", "AIRFLOW_V_3_2_PLUS", "AIRFLOW_V_3_3_PLUS", "get_base_airflow_version_tuple"]

"""Apache Airflow provider for RingCentral RingOut: place a two-legged call, wait until it connects, cancel it."""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

__all__ = ["__version__", "get_provider_info"]

_INTEGRATION = "RingCentral RingOut"
PRODUCTION_SERVER_URL = "https://platform.ringcentral.com"
# What the form's Port field says, empty: the value to type (the port of the Server URL) and why it is there.
PORT_PLACEHOLDER = "443 (or your Server URL's port): Airflow 3.3.1-3.3.2's Test button needs it"
# The connection extra that holds the JWT. Airflow redacts a value whose key contains "token" everywhere (REST
# API, UI, logs) with no setting; the key "jwt" of earlier releases is shown in clear (still read, with a warning).
JWT_FIELD = "jwt_token"


def _connection_type() -> dict[str, Any]:
    """The ``ringcentral`` connection type: the Connections form's labels, placeholders and extra fields."""
    return {
        "hook-class-name": "airflow_provider_ringout.hooks.ringcentral.RingCentralHook",
        "hook-name": "RingCentral",
        "connection-type": "ringcentral",
        "ui-field-behaviour": {
            # Port is shown: Airflow 3.3.1-3.3.2's Test button answers 400 for a connection stored
            # without one (apache/airflow#73298). Airflow's form has no default value, so the placeholder
            # says what to type and why; the hook drops the scheme's default port (443) from the URL.
            "hidden-fields": ["schema"],
            "relabeling": {
                "host": "Server URL",
                "login": "Client ID",
                "password": "Client secret",
                "port": "Port (for the Test button)",
            },
            "placeholders": {
                "host": PRODUCTION_SERVER_URL,
                "port": PORT_PLACEHOLDER,
                "login": "RingCentral app client ID",
                "password": "RingCentral app client secret",
                JWT_FIELD: "eyJ... (JWT credential of the user who places the calls)",
                "from_number": "+14155550100",
            },
        },
        "conn-fields": {
            JWT_FIELD: {
                "label": "JWT",
                "description": "JWT credential created in the RingCentral developer console.",
                "schema": {"type": ["string", "null"], "format": "password"},
            },
            "from_number": {
                "label": "Default From number",
                "description": "E.164 number rung first when a task gives no from_number.",
                "schema": {"type": ["string", "null"]},
            },
        },
    }


def _config() -> dict[str, Any]:
    """The provider's ``[ringcentral]`` configuration section."""
    return {
        "ringcentral": {
            "description": "Settings of the RingCentral RingOut provider.",
            "options": {
                "token_cache_dir": {
                    "description": "Folder of the host-wide token cache and rate-limit state (mode 0700). "
                    "Empty: ~/.cache/airflow-provider-ringout.",
                    "version_added": "0.2.0",
                    "type": "string",
                    "example": "/var/cache/airflow-ringcentral",
                    "default": "",
                },
                "shared_state": {
                    "description": "Where the token and the rate budget are shared: 'file' (this host's "
                    "token_cache_dir) or 'redis' (the whole cluster; needs the `redis` extra of airflow-provider-ringout).",
                    "version_added": "0.2.0",
                    "type": "string",
                    "example": "redis",
                    "default": "file",
                },
                "redis_conn_id": {
                    "description": "The Airflow connection of type redis used when shared_state is 'redis'.",
                    "version_added": "0.2.0",
                    "type": "string",
                    "example": "redis_default",
                    "default": "redis_default",
                },
                "call_log_interval": {
                    "description": "Seconds between two reads of RingCentral's call log (call-log-sync) for the "
                    "call results waited on by this host (the cluster with shared_state 'redis'): one read serves "
                    "every waiting task. Each read is a Heavy request (10 a minute, shared with placing and "
                    "cancelling calls); at least 1.",
                    "version_added": "0.2.0",
                    "type": "float",
                    "example": "30",
                    "default": "20",
                },
                "trigger_fire_delay": {
                    "description": "Seconds after a deferral before a RingOut trigger may fire (its event is held "
                    "until then). Airflow can fail a deferred task whose trigger fires before the scheduler has "
                    "handled the deferral (apache/airflow#66374, #72716); 0 turns the hold off.",
                    "version_added": "0.2.0",
                    "type": "float",
                    "example": "0",
                    "default": "10",
                },
                "log_full_phone_numbers": {
                    "description": "Log phone numbers whole instead of partly masked (+1******4567).",
                    "version_added": "0.2.0",
                    "type": "boolean",
                    "example": "True",
                    "default": "False",
                },
            },
        }
    }


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager (read through the ``apache_airflow_provider`` entry point)."""
    return {
        "package-name": "airflow-provider-ringout",
        "name": "RingCentral RingOut",
        "description": "Place RingCentral RingOut calls from Airflow tasks, wait until they connect, cancel them.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://developers.ringcentral.com/api-reference/RingOut",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_provider_ringout.hooks.ringcentral"],
            }
        ],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_provider_ringout.operators.ringout",
                    "airflow_provider_ringout.operators.escalation",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_provider_ringout.sensors.ringout",
                    "airflow_provider_ringout.sensors.call_result",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_provider_ringout.triggers.ringout",
                    "airflow_provider_ringout.triggers.escalation",
                    "airflow_provider_ringout.triggers.call_result",
                ],
            }
        ],
        "notifications": ["airflow_provider_ringout.notifications.ringout.RingOutNotifier"],
        "connection-types": [_connection_type()],
        "config": _config(),
    }

"""The provider as Airflow sees it: registration, connection type, typed package, cheap DAG parsing."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from airflow_provider_ringout import get_provider_info
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.testing import TEST_CLIENT_SECRET, TEST_JWT, RingCentralEmulator

AIRFLOW = str(Path(sys.executable).parent / "airflow")
REPO = Path(__file__).resolve().parents[1]


def test_provider_info_names_every_module() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-ringout"
    modules = {
        m
        for kind in ("hooks", "operators", "sensors", "triggers")
        for entry in info[kind]
        for m in entry["python-modules"]
    }
    assert modules == {
        "airflow_provider_ringout.hooks.ringcentral",
        "airflow_provider_ringout.operators.ringout",
        "airflow_provider_ringout.operators.escalation",
        "airflow_provider_ringout.sensors.ringout",
        "airflow_provider_ringout.sensors.call_result",
        "airflow_provider_ringout.triggers.ringout",
        "airflow_provider_ringout.triggers.escalation",
        "airflow_provider_ringout.triggers.call_result",
    }
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == "ringcentral"
    assert conn_type["conn-fields"]["jwt_token"]["schema"]["format"] == "password"


def airflow_schema(name: str) -> Any:
    """A JSON schema shipped inside the installed ``airflow`` package (so each Airflow version checks its own)."""
    return json.loads(importlib.resources.files("airflow").joinpath(name).read_text())


def test_provider_info_matches_airflows_own_schema() -> None:
    """What Airflow reads through our entry point validates against the provider_info.schema.json it ships."""
    schema = airflow_schema("provider_info.schema.json")
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    (entry_point,) = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_ringout:")
    ]
    info = entry_point.load()()
    assert info == get_provider_info()
    assert [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(info)] == []
    # The schema bites: without a required key the same info is refused.
    assert not validator.is_valid({k: v for k, v in info.items() if k != "description"})


def test_ui_field_behaviour_matches_airflows_own_schema() -> None:
    """The form layout older cores read from the hook, against customized_form_field_behaviours.schema.json."""
    jsonschema.validate(
        RingCentralHook.get_ui_field_behaviour(), airflow_schema("customized_form_field_behaviours.schema.json")
    )


def test_notifier_has_its_function_style_name() -> None:
    from airflow_provider_ringout.notifications.ringout import RingOutNotifier, send_ringout_notification

    assert send_ringout_notification is RingOutNotifier


def test_version_checks_are_our_own() -> None:
    """The provider keeps its own version_compat (Airflow refuses providers importing another provider's)."""
    import airflow
    from packaging.version import Version

    from airflow_provider_ringout import version_compat

    version = Version(airflow.__version__)
    assert version_compat.AIRFLOW_V_3_2_PLUS is (version.release[:2] >= (3, 2))
    assert version_compat.AIRFLOW_V_3_3_PLUS is (version.release[:2] >= (3, 3))
    sources = "\n".join(p.read_text() for p in (REPO / "airflow_provider_ringout").rglob("*.py"))
    assert "common.compat.version_compat" not in sources


def test_package_ships_py_typed() -> None:
    import airflow_provider_ringout

    assert (Path(airflow_provider_ringout.__file__).parent / "py.typed").is_file()


@pytest.mark.e2e
def test_airflow_lists_the_provider_and_its_connection_type(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    providers = subprocess.run([AIRFLOW, "providers", "list", "-o", "json"], env=env, capture_output=True, text=True)
    listed = json.loads(next(line for line in providers.stdout.splitlines() if line.startswith("[{")))
    assert "airflow-provider-ringout" in {p["package_name"] for p in listed}
    hooks = subprocess.run([AIRFLOW, "providers", "hooks", "-o", "json"], env=env, capture_output=True, text=True)
    entries = json.loads(next(line for line in hooks.stdout.splitlines() if line.startswith("[{")))
    ours = [h for h in entries if h.get("connection_type") == "ringcentral"]
    assert ours, hooks.stdout[-2000:]
    assert ours[0]["class"] == "airflow_provider_ringout.hooks.ringcentral.RingCentralHook"


def test_parsing_a_dag_imports_no_oauth_http_session_or_emulator_module() -> None:
    probe = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        "import airflow_provider_ringout.sensors.ringout; "
        "bad = [m for m in ('requests_oauthlib', 'oauthlib', 'airflow_provider_ringout.hooks.ringcentral', "
        "'airflow_provider_ringout.testing.emulator') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(REPO / "example_dags" / "example_ringout_sensor.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_get_conn_is_an_authorised_session(
    ringcentral_conn_env: RingCentralEmulator, isolated_token_cache: Path
) -> None:
    from airflow_provider_ringout.state.tokens import TokenCache

    session = RingCentralHook().get_conn()
    url = f"{ringcentral_conn_env.url}/restapi/v1.0/account/~/extension/~/ring-out"
    response = session.post(url, json={"from": {"phoneNumber": "+14155550100"}, "to": {"phoneNumber": "+14155550199"}})
    assert response.status_code == 200
    assert session.headers["User-Agent"].startswith("airflow-provider-ringout/")
    # Each request asks the shared cache for the token: once it is gone, the same session logs in again.
    ringcentral_conn_env.revoke_all_tokens()
    TokenCache._memory.clear()
    for file in isolated_token_cache.glob("token-*.json"):
        file.unlink()
    assert session.get(f"{url}/{response.json()['id']}").status_code == 200
    assert ringcentral_conn_env.count(kind="token") == 2


def test_secrets_are_registered_with_the_masker(ringcentral_conn_env: RingCentralEmulator) -> None:
    from airflow.providers.common.compat.sdk import redact

    hook = RingCentralHook()
    hook.place_ringout(to_number="+14155550199", from_number="+14155550100")
    for secret in (TEST_CLIENT_SECRET, TEST_JWT, ringcentral_conn_env.issued_tokens[0]):
        assert secret not in str(redact(f"value={secret}"))

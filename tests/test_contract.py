"""
Contract: the hook's requests, the emulator's answers and the endpoint table, checked against RingCentral's OpenAPI
excerpts.

The specs live in ``../shared/ringcentral/openapi-ringout.yaml`` and ``openapi-calllog.yaml`` beside the
repository and are read at test time, never copied; where they are absent the whole module skips with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_ringout.exceptions import RingCentralAPIError
from airflow_provider_ringout.hooks.endpoints import Endpoint
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from tests.emulator_api import api

pytestmark = pytest.mark.contract
SPEC = Path(__file__).resolve().parents[2] / "shared" / "ringcentral" / "openapi-ringout.yaml"
CALL_LOG_SPEC = SPEC.with_name("openapi-calllog.yaml")
for _spec in (SPEC, CALL_LOG_SPEC):
    if not _spec.exists():
        pytest.skip(
            f"RingCentral's OpenAPI excerpt is not here ({_spec}); contract not checked", allow_module_level=True
        )

yaml = pytest.importorskip("yaml")
openapi_core = pytest.importorskip("openapi_core")
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse  # noqa: E402

TO, FROM = "+14155550199", "+14155550100"


def inline_refs(node: Any, spec: dict[str, Any]) -> Any:
    """The schema with every local ``$ref`` replaced by its target (the spec has no cycles here)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return inline_refs(target, spec)
        return {key: inline_refs(value, spec) for key, value in node.items() if key != "discriminator"}
    if isinstance(node, list):
        return [inline_refs(item, spec) for item in node]
    return node


def check_token_form(request: requests.PreparedRequest) -> None:
    """openapi-core cannot read form bodies into composed schemas, so the token form is checked directly."""
    from urllib.parse import parse_qsl

    from openapi_schema_validator import OAS30Validator

    spec = yaml.safe_load(SPEC.read_text())
    schema = inline_refs(spec["components"]["schemas"]["GetTokenRequest"], spec)
    body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
    form = dict(parse_qsl(body))
    OAS30Validator(schema).validate(form)
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert "client_secret" not in form  # client credentials travel in HTTP Basic
    assert request.headers["Authorization"].startswith("Basic ")


def openapi_for(server: str, path: Path = SPEC) -> Any:
    """The spec, pointed at ``server`` in memory; its undeclared OauthBasicScheme is declared as HTTP basic."""
    spec = yaml.safe_load(path.read_text())
    spec["servers"] = [{"url": server}]
    spec["components"]["securitySchemes"].setdefault("OauthBasicScheme", {"type": "http", "scheme": "basic"})
    return openapi_core.OpenAPI.from_dict(spec)


@pytest.fixture
def exchanges(ringcentral_conn_env: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch) -> list[requests.Response]:
    """Every response the hook's requests got (through requests' own response hooks), request attached."""
    seen: list[requests.Response] = []
    original = requests.Session.send

    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = original(self, request, **kwargs)
        seen.append(response)
        return response

    monkeypatch.setattr(requests.Session, "send", send)
    return seen


def drive_every_operation(emulator: RingCentralEmulator) -> None:
    emulator.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0.2, talk=5))
    hook = RingCentralHook()
    assert hook.test_connection()[0]
    answered = hook.place_ringout(to_number=TO, from_number=FROM, caller_id=FROM, country_id=1, play_prompt=False)
    hook.get_ringout(answered["id"])
    emulator.script("+14155550198", CallScript(outcome=Outcome.NEVER_ANSWERS))
    pending = hook.place_ringout(to_number="+14155550198", from_number=FROM)
    hook.cancel_ringout(pending["id"])
    emulator.script("+14155550197", CallScript(outcome=Outcome.BUSY, after=0))
    busy = hook.place_ringout(to_number="+14155550197", from_number=FROM)
    assert hook.get_ringout(busy["id"])["status"]["calleeStatus"] == "Busy"


def test_requests_and_responses_follow_the_spec(
    ringcentral_conn_env: RingCentralEmulator, exchanges: list[requests.Response]
) -> None:
    openapi = openapi_for(ringcentral_conn_env.url)
    drive_every_operation(ringcentral_conn_env)
    checked = set()
    for response in exchanges:
        request = RequestsOpenAPIRequest(response.request)
        if response.request.path_url.startswith("/restapi/oauth/token"):
            check_token_form(response.request)
        else:
            openapi.validate_request(request)
        openapi.validate_response(request, RequestsOpenAPIResponse(response))
        checked.add((response.request.method, response.status_code))
    assert checked >= {("POST", 200), ("GET", 200), ("DELETE", 204)}
    assert len(exchanges) == 7  # token, then POST GET, POST DELETE, POST GET: nothing else


def test_token_errors_follow_the_spec(
    ringcentral_conn_env: RingCentralEmulator, exchanges: list[requests.Response]
) -> None:
    openapi = openapi_for(ringcentral_conn_env.url)
    ringcentral_conn_env.reject_jwt()
    ok, _ = RingCentralHook().test_connection()
    assert ok is False
    (response,) = exchanges
    assert response.status_code == 400
    check_token_form(response.request)
    openapi.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))


def test_every_row_of_the_endpoint_table_is_the_specs() -> None:
    """Each endpoint's method and path exist in the spec, with the spec's throttling group and app permission."""
    paths = {**yaml.safe_load(SPEC.read_text())["paths"], **yaml.safe_load(CALL_LOG_SPEC.read_text())["paths"]}
    for endpoint in Endpoint:
        operation = paths[endpoint.rules.path][endpoint.method.lower()]
        assert operation["x-throttling-group"] == endpoint.group, endpoint
        assert operation.get("x-app-permission") == endpoint.permission, endpoint


def test_call_log_requests_and_answers_follow_the_spec(
    ringcentral_conn_env: RingCentralEmulator, exchanges: list[requests.Response]
) -> None:
    """``request()`` on the call-log rows sends what the spec accepts; the emulator answers what it declares."""
    ringcentral_conn_env.scope = "ReadAccounts RingOut ReadCallLog"
    openapi = openapi_for(ringcentral_conn_env.url, CALL_LOG_SPEC)
    hook = RingCentralHook()
    query = {"view": "Detailed", "perPage": 20, "direction": "Outbound", "phoneNumber": "14155550199"}
    hook.request(Endpoint.CALL_LOG, params={**query, "dateFrom": "2026-12-06T10:00:00.000Z"})
    full = hook.request(Endpoint.CALL_LOG_SYNC, params={"syncType": "FSync", "recordCount": 10})
    hook.request(Endpoint.CALL_LOG_SYNC, params={"syncType": "ISync", "syncToken": full["syncInfo"]["syncToken"]})
    with pytest.raises(RingCentralAPIError):
        hook.request(Endpoint.CALL_LOG, params={"view": "Everything"})
    api = [r for r in exchanges if not r.request.path_url.startswith("/restapi/oauth/")]
    for response in api:
        request = RequestsOpenAPIRequest(response.request)
        if response.status_code == 200:
            openapi.validate_request(request)
        openapi.validate_response(request, RequestsOpenAPIResponse(response))
    assert [r.status_code for r in api] == [200, 200, 200, 400]


# ------------------------------------------------------------------------------------------ the call log

CALL_LOG = "/restapi/v1.0/account/~/extension/~/call-log"
OUTCOMES_BY_CALLEE = {
    "+14155550181": Outcome.ANSWERED,
    "+14155550182": Outcome.BUSY,
    "+14155550183": Outcome.NO_ANSWER,
    "+14155550184": Outcome.REJECTED,
    "+14155550185": Outcome.VOICEMAIL,
}
NEVER_ANSWERS, VOICEMAIL_FROM = "+14155550186", "+14155550187"


def log_every_ending(emulator: RingCentralEmulator, session: requests.Session) -> None:
    """Calls that end every way the emulator logs: connected, busy, no answer, declined, voicemail (either leg),
    cancelled, and the same numbers twice."""
    ended = {"after": 0, "talk": 0, "linger": 30}
    for to, outcome in OUTCOMES_BY_CALLEE.items():
        emulator.script(to, outcome, **ended)
    emulator.script(TO, Outcome.ANSWERED, **ended)
    emulator.script(NEVER_ANSWERS, Outcome.NEVER_ANSWERS)
    emulator.script_caller(VOICEMAIL_FROM, Outcome.VOICEMAIL, **ended)
    ring_out = f"{emulator.url}/restapi/v1.0/account/~/extension/~/ring-out"
    calls = [(FROM, to) for to in OUTCOMES_BY_CALLEE] + [
        (VOICEMAIL_FROM, TO),
        (FROM, TO),
        (FROM, TO),
        (FROM, NEVER_ANSWERS),
    ]
    for frm, to in calls:
        response = session.post(ring_out, json={"from": {"phoneNumber": frm}, "to": {"phoneNumber": to}}, timeout=5)
        assert response.status_code == 200
    pending = response.json()["id"]
    assert session.delete(f"{ring_out}/{pending}", timeout=5).status_code == 204


def test_call_log_records_and_answers_follow_the_spec(
    ringcentral_emulator_factory: Any,
) -> None:
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    emulator = ringcentral_emulator_factory(call_log_delay=0)
    session = api(emulator)
    log_every_ending(emulator, session)
    url = f"{emulator.url}{CALL_LOG}"
    responses = [
        session.get(url, params={"view": "Detailed", "perPage": 100}, timeout=5),
        session.get(url, timeout=5),
        session.get(url, params={"perPage": 2, "page": 2, "dateFrom": "2020-01-01T00:00:00.000Z"}, timeout=5),
        session.get(url, params={"phoneNumber": FROM.lstrip("+"), "view": "Detailed"}, timeout=5),
        session.get(url, params={"dateFrom": "not a date"}, timeout=5),
    ]
    full = session.get(f"{url}-sync", params={"syncType": "FSync", "recordCount": 3, "view": "Detailed"}, timeout=5)
    token = full.json()["syncInfo"]["syncToken"]
    responses += [full, session.get(f"{url}-sync", params={"syncType": "ISync", "syncToken": token}, timeout=5)]
    denied = ringcentral_emulator_factory(scope="ReadAccounts RingOut")
    responses.append(api(denied).get(f"{denied.url}{CALL_LOG}", timeout=5))

    specs: dict[str, Any] = {}  # one loaded spec per emulator: parsing the excerpt is the slow part
    for response in responses:
        server = response.url.split("/restapi")[0]
        if server not in specs:
            specs[server] = openapi_for(server, CALL_LOG_SPEC)
        openapi = specs[server]
        request = RequestsOpenAPIRequest(response.request)
        if response.status_code == 200:
            openapi.validate_request(request)
        openapi.validate_response(request, RequestsOpenAPIResponse(response))
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 400, 200, 200, 403]

    spec = yaml.safe_load(CALL_LOG_SPEC.read_text())
    record_schema = OAS30Validator(
        inline_refs(spec["components"]["schemas"]["CallLogRecord"], spec), format_checker=oas30_format_checker
    )
    records = responses[0].json()["records"]
    for record in records:
        record_schema.validate(record)
    assert len(records) == len(OUTCOMES_BY_CALLEE) + 4  # and the first-leg voicemail, TO twice, the cancelled call
    leg_types = {leg["legType"] for record in records for leg in record["legs"]}
    assert leg_types == {"RingOutWebToCaller", "RingOutWebToSubscriber"}

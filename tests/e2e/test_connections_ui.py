"""
The ``ringcentral`` connection form, driven in a real browser against a real Airflow 3 API server.

What runs: ``airflow db migrate`` in a throw-away AIRFLOW_HOME, then ``airflow api-server`` on a free loopback
port with the simple auth manager (everyone is admin, so no login) and ``[core] test_connection = Enabled``, and
nothing else: no ``sensitive_var_conn_names``, because the JWT's key ``jwt_token`` is hidden by Airflow's own
rules; a RingCentralEmulator in this process; headless Chromium (Debian's ``/usr/bin/chromium``) driven
by Playwright. The test clicks Admin > Connections > Add Connection, picks "RingCentral" and checks the form
(relabelled fields, the production URL as placeholder, masked secrets, schema hidden, the port shown with a
placeholder that says what to type and why), fills it in for the emulator, port included, saves it, presses Test
once (success, on every core), saves a JWT the emulator rejects and presses Test again (the hook's
explanation), restores it, reopens the form (the JWT field shows "***", and the JWT is nowhere in the page's
HTML, not even in Extra Fields JSON), changes only the From number (the JWT left as "***" keeps its stored
value) and tests again. Every response the browser received is scanned: none carries the JWT or the client
secret. Outside the browser it checks that ``extra`` holds ``jwt_token`` and ``from_number`` where
``parse_connection`` reads them, that the REST API (one connection and the list) shows the JWT and the secret as
"***", and that ``RingCentralHook.test_connection()`` in a separate process with the same AIRFLOW_HOME returns
True. The emulator confirms that testing never placed a call.

Airflow 3.3.1 and 3.3.2 answer the Test button "400 Bad Request" for every connection stored without a port (the
UI sends ``port: 0``; apache/airflow#73298). The form shows the Port field for that reason, and the test types
the port there as a user would: the first press must succeed, with no REST call or CLI step.

Screenshots go to ``artifacts/screenshots/`` (``RINGOUT_SCREENSHOTS=docs/screenshots`` refreshes the ones the
connection guide shows). Skipped, with the reason, when
``/usr/bin/chromium`` or the ``playwright`` package is missing; never runs ``playwright install``.

Run: ``pytest tests/e2e/test_connections_ui.py -q -p no:cacheprovider`` (about 45 seconds).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout import JWT_FIELD, PORT_PLACEHOLDER, PRODUCTION_SERVER_URL
from airflow_provider_ringout.testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET, TEST_JWT, RingCentralEmulator
from airflow_provider_ringout.version_compat import AIRFLOW_V_3_2_PLUS
from tests.airflow_runner import airflow_env

try:
    from playwright import sync_api as playwright_sync
except ImportError as exc:  # not installed, or installed without its dependencies
    pytest.skip(
        f"playwright is not usable ({exc}); pip install playwright (the browser is Debian's /usr/bin/chromium)",
        allow_module_level=True,
    )

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Locator, Page, Response

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (apt-get install chromium)"),
    pytest.mark.skipif(
        not AIRFLOW_V_3_2_PLUS,
        reason="Airflow < 3.2 renders a provider's extra form fields only through Flask-AppBuilder widgets, "
        "which an Airflow 3 install without the FAB provider does not have",
    ),
]


REPO = Path(__file__).resolve().parents[2]
# Written to artifacts/ (ignored by git); RINGOUT_SCREENSHOTS=docs/screenshots refreshes the ones the docs show.
SCREENSHOTS = Path(os.environ.get("RINGOUT_SCREENSHOTS") or REPO / "artifacts" / "screenshots")
AIRFLOW = Path(sys.executable).with_name("airflow")
CONN_ID = "ringcentral_ui"
FROM_NUMBER = "+14155550100"
NEW_FROM_NUMBER = "+14155550111"
BAD_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"  # well-formed, but not the emulator's credential
JWT_INPUT = f"#element_{JWT_FIELD}"
SECRETS = {"JWT": TEST_JWT, "client secret": TEST_CLIENT_SECRET}
UI_TIMEOUT_MS = 20_000
SERVER_START_TIMEOUT = 90.0


# --- Airflow API server ------------------------------------------------------------------------------


def server_env(home: Path) -> dict[str, str]:
    """The whole environment of the Airflow processes: the API server with the simple auth manager, all admins."""
    return {
        **airflow_env(home, home / "dags"),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AirflowServer:
    """A running ``airflow api-server`` and how to reach it."""

    home: Path
    env: dict[str, str]
    url: str
    log: Path
    token: str = ""

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One REST API call (``/api/v2/...``) with the server's admin token; returns the JSON answer."""
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(AIRFLOW), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no log)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and everything it started: its own process group (it was started in a new session)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # children that outlived the leader
        os.killpg(proc.pid, signal.SIGKILL)


def _wait_until_up(server: AirflowServer, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"airflow api-server exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + "/api/v2/monitor/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    pytest.fail(f"airflow api-server did not answer within {SERVER_START_TIMEOUT:.0f} s:\n{server.log_tail()}")


@pytest.fixture(scope="module")
def airflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    home = tmp_path_factory.mktemp("airflow-ui-home")
    (home / "dags").mkdir()
    port = free_port()
    server = AirflowServer(home=home, env=server_env(home), url=f"http://127.0.0.1:{port}", log=home / "api.log")
    migrate = server.cli("db", "migrate")
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    with server.log.open("wb") as log:
        proc = subprocess.Popen(
            [str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=server.env,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_up(server, proc)
            with urllib.request.urlopen(server.url + "/auth/token", timeout=10) as response:
                server.token = json.loads(response.read())["access_token"]
            yield server
        finally:
            _stop(proc)


@pytest.fixture(scope="module")
def emulator() -> Iterator[RingCentralEmulator]:
    with RingCentralEmulator() as rc:
        yield rc


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


# --- UI helpers ----------------------------------------------------------------------------------------


@dataclass
class ResponseLog:
    """Every response body the browser received (HTML, scripts, API answers), to show no secret reached it."""

    bodies: list[tuple[str, bytes]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def record(self, response: Response) -> None:
        if 300 <= response.status < 400:
            return  # a redirect has no body
        try:
            self.bodies.append((response.url, response.body()))
        except playwright_sync.Error as exc:
            self.unreadable.append(f"{response.url}: {exc}")

    def leaks(self) -> list[str]:
        return [
            f"{name} in {url}"
            for url, body in self.bodies
            for name, secret in SECRETS.items()
            if secret.encode() in body
        ]

    def api_answers(self) -> list[str]:
        return [url for url, _ in self.bodies if "/api/v2/connections" in url]


def shot(target: Page | Locator, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    target.screenshot(path=str(path), animations="disabled")
    return path


def open_section(dialog: Locator, title: str) -> None:
    """Open one accordion section of the connection form (opening one closes the others)."""
    dialog.get_by_text(title, exact=True).click()


def connection_row(page: Page) -> Locator:
    return page.locator("tr", has_text=CONN_ID)


def open_edit_form(page: Page) -> Locator:
    connection_row(page).get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Edit Connection").wait_for()
    return dialog


def save(page: Page, dialog: Locator) -> None:
    with page.expect_response(
        lambda r: "/api/v2/connections" in r.url and r.request.method in ("POST", "PATCH")
    ) as info:
        dialog.get_by_role("button", name="Save").click()
    assert info.value.status in (200, 201), info.value.text()
    dialog.wait_for(state="hidden")


def toast(page: Page, text: str) -> Locator:
    return page.locator("[data-scope=toast][data-part=root]", has_text=text)


def wait_toasts_gone(page: Page) -> None:
    """Toasts close themselves after 5 s; wait, so the next screenshot shows one result only."""
    page.mouse.move(5, 5)  # a toast under the pointer pauses its countdown
    page.locator("[data-scope=toast][data-part=root]").first.wait_for(state="detached", timeout=15_000)


def press_test(page: Page) -> Response:
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections/test")) as info:
        connection_row(page).get_by_role("button", name="Test Connection").click()
    return info.value


def set_jwt(page: Page, jwt: str) -> None:
    dialog = open_edit_form(page)
    open_section(dialog, "Extra Fields")
    dialog.locator(JWT_INPUT).fill(jwt)
    save(page, dialog)


# --- the test ------------------------------------------------------------------------------------------


def test_ringcentral_connection_form(page: Page, airflow_server: AirflowServer, emulator: RingCentralEmulator) -> None:
    expect = playwright_sync.expect
    started = time.monotonic()
    responses = ResponseLog()
    page.on("response", responses.record)

    # Admin > Connections > Add Connection, type RingCentral.
    page.goto(airflow_server.url + "/")
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    page.wait_for_url("**/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=connection_id]").fill(CONN_ID)
    conn_type = dialog.get_by_role("combobox")
    conn_type.fill("RingCentral")
    page.get_by_role("option", name="RingCentral", exact=True).click()

    # Standard fields: relabelled, production URL as placeholder, secret masked, schema hidden; the port shown,
    # its placeholder saying what to type and why (the Test button of Airflow 3.3.1-3.3.2 needs it).
    host = dialog.locator("input[name=host]")
    login = dialog.locator("input[name=login]")
    password = dialog.locator("input[name=password]")
    port = dialog.locator("input[name=port]")
    expect(host).to_be_visible()
    for label in ("Server URL", "Client ID", "Client secret", "Port (for the Test button)"):
        expect(dialog.locator("label", has_text=label)).to_be_visible()
    for hidden in ("Host", "Login", "Password", "Schema", "Port"):
        expect(dialog.get_by_text(hidden, exact=True)).to_have_count(0)
    expect(dialog.locator("input[name=schema]")).to_have_count(0)
    expect(host).to_have_attribute("placeholder", PRODUCTION_SERVER_URL)
    expect(port).to_be_visible()
    expect(port).to_have_attribute("placeholder", PORT_PLACEHOLDER)
    expect(password).to_have_attribute("type", "password")
    shot(dialog, "connection-form.png")

    host.fill(emulator.url)
    login.fill(TEST_CLIENT_ID)
    password.fill(TEST_CLIENT_SECRET)
    port.fill(str(emulator.port))  # the Server URL's port, as the placeholder says

    # Extra fields: JWT (masked) and the default From number.
    open_section(dialog, "Extra Fields")
    jwt = dialog.locator(JWT_INPUT)
    from_number = dialog.locator("#element_from_number")
    expect(dialog.locator("label", has_text="JWT")).to_be_visible()
    expect(dialog.locator("label", has_text="Default From number")).to_be_visible()
    expect(jwt).to_have_attribute("type", "password")
    jwt.fill(TEST_JWT)
    from_number.fill(FROM_NUMBER)
    shot(dialog, "connection-form-extra-fields.png")
    save(page, dialog)
    expect(connection_row(page)).to_contain_text("ringcentral")

    # Test, pressed once: success, with the hook's words (on 3.3.1-3.3.2 too: the form stored the port).
    answer = press_test(page)
    assert answer.status == 200, answer.text()
    assert answer.json()["status"] is True, answer.json()
    success = toast(page, "Test Connection Successful")
    expect(success).to_be_visible()
    expect(success).to_contain_text(f"Connected to {emulator.url} as extension")
    expect(success).to_contain_text("the app has the RingOut permission")
    shot(page, "connection-test-success.png")

    # A well-formed JWT the emulator rejects: the Test button shows the hook's explanation.
    set_jwt(page, BAD_JWT)
    wait_toasts_gone(page)
    answer = press_test(page)
    assert answer.status == 200, answer.text()
    assert answer.json()["status"] is False, answer.json()
    failure = toast(page, "Test Connection Failed")
    expect(failure).to_be_visible()
    expect(failure).to_contain_text("rejected the JWT")
    expect(failure).to_contain_text("Create a new JWT credential")
    shot(page, "connection-test-failure.png")

    # Restore the right JWT, reopen: values kept, secrets still masked (the JWT is not even sent to the browser).
    set_jwt(page, TEST_JWT)
    wait_toasts_gone(page)
    dialog = open_edit_form(page)
    expect(dialog.locator("input[name=host]")).to_have_value(emulator.url)
    expect(dialog.locator("input[name=login]")).to_have_value(TEST_CLIENT_ID)
    expect(dialog.locator("input[name=password]")).to_have_attribute("type", "password")
    assert dialog.locator("input[name=password]").input_value() != TEST_CLIENT_SECRET
    open_section(dialog, "Extra Fields")
    expect(dialog.locator(JWT_INPUT)).to_have_attribute("type", "password")
    assert dialog.locator(JWT_INPUT).input_value() == "***"
    expect(dialog.locator("#element_from_number")).to_have_value(FROM_NUMBER)
    shot(dialog, "connection-edit-masked.png")
    # Change only the From number: the JWT left as "***" must keep its stored value.
    dialog.locator("#element_from_number").fill(NEW_FROM_NUMBER)
    open_section(dialog, "Extra Fields JSON")
    expect(dialog).to_contain_text(f'"{JWT_FIELD}": "***"')
    shot(dialog, "connection-edit-extra-json.png")
    html = page.content()
    assert TEST_JWT not in html and TEST_CLIENT_SECRET not in html
    assert TEST_JWT not in dialog.inner_text()
    save(page, dialog)
    wait_toasts_gone(page)
    answer = press_test(page)  # the stored connection still tests fine with its secrets redacted in the browser
    assert answer.json()["status"] is True, answer.json()

    # Nothing the browser received, from the first page to the last answer, held the JWT or the client secret.
    assert responses.api_answers(), "no connection API answer recorded: nothing would have been checked"
    assert [u for u in responses.unreadable if "/api/" in u] == []
    assert responses.leaks() == []

    # Outside the browser: the REST API hides both secrets by Airflow's own rules (no setting), one and in a list.
    shown = airflow_server.api("GET", f"/api/v2/connections/{CONN_ID}")
    listed = airflow_server.api("GET", "/api/v2/connections")
    for secret in SECRETS.values():
        assert secret not in json.dumps(shown) and secret not in json.dumps(listed)
    assert shown["password"] == "***"
    assert json.loads(shown["extra"]) == {JWT_FIELD: "***", "from_number": NEW_FROM_NUMBER}
    # ...and what was stored, under the names parse_connection reads.
    got = airflow_server.cli("connections", "get", CONN_ID, "-o", "json")
    assert got.returncode == 0, got.stdout + got.stderr
    stored = json.loads(got.stdout[got.stdout.index("[") :])[0]
    assert stored["conn_type"] == "ringcentral"
    assert stored["host"] == emulator.url
    assert stored["login"] == TEST_CLIENT_ID
    assert stored["password"] == TEST_CLIENT_SECRET
    assert stored["extra_dejson"] == {JWT_FIELD: TEST_JWT, "from_number": NEW_FROM_NUMBER}
    assert int(stored["port"]) == emulator.port  # typed in the form, kept through every edit

    script = (
        "import json\n"
        "from airflow_provider_ringout.hooks.ringcentral import RingCentralHook\n"
        f"hook = RingCentralHook(ringcentral_conn_id={CONN_ID!r})\n"
        "ok, message = hook.test_connection()\n"
        "print('RESULT ' + json.dumps([ok, message, hook.credentials.from_number, hook.credentials.server_url]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        # Outside tasks the Task SDK reads connections from the metadata database only in a "server" process,
        # which is what `airflow connections test` declares too.
        env={**airflow_server.env, "_AIRFLOW_PROCESS_CONTEXT": "server"},
        cwd=airflow_server.home,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    ok, message, hook_from_number, server_url = json.loads(lines[-1][len("RESULT ") :])
    assert ok is True, message
    assert hook_from_number == NEW_FROM_NUMBER
    assert server_url == emulator.url

    # The Test button logs in and checks the permission; it never places a call.
    assert emulator.count("POST", "token", 200) >= 3
    assert emulator.count("POST", "token", 400) >= 1
    assert emulator.count(kind="ring-out-create") == 0
    assert time.monotonic() - started < 120

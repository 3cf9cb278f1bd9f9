"""The web console for tests: `cardperso web serve` as a real process on a free port over a
SQLite file, users of every role, and a real headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium; one browser per test session).

Imported by the tests/test_web_*.py modules (``from fixtures_web import ...``)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from cardperso.registry import centre
from cardperso.registry import schema as registry_schema
from cardperso.storage.db import Database
from cardperso.web import schema as web_schema
from cardperso.web import users

#: One user per role; the passwords are test values (a test greps the logs for them).
PASSWORDS = {
    "admin1": "admin-Secret-7341",
    "op1": "operator-Secret-5512",
    "sec1": "security-Secret-2290",
    "centre1": "centre-Secret-8813",
    "clerk1": "clerk-Secret-4407",
}
ROLE_OF = {
    "admin1": users.ADMIN,
    "op1": users.OPERATOR,
    "sec1": users.SECURITY,
    "centre1": users.CENTRE,
    "clerk1": users.CLERK,
}
SAMPLE_KEYS = Path(__file__).resolve().parent.parent / "keys-sample" / "keys.json"
SCREENSHOTS = Path(os.environ.get("CARDPERSO_SCREENSHOTS", "build/screenshots"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_users(db_path: Path) -> None:
    with Database(db_path) as db:
        registry_schema.upgrade(db)
        web_schema.upgrade(db)
        centre.add_party(db, "service_point", "SP01", "东城区社保服务网点")
        for name, password in PASSWORDS.items():
            role = ROLE_OF[name]
            users.add(db, name, role, password, "SP01" if role == users.CLERK else None)


@dataclass
class Console:
    """A running `cardperso web serve` process."""

    url: str
    db_path: str | Path
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_console(db_path: str | Path, log_path: Path, *args: str) -> Console:
    """`cardperso web serve` on a free port, answering. The port is free when chosen, but
    another process may take it before the console binds it: then the console exits with
    "address already in use" and is started again on another port (three tries)."""
    for attempt in range(3):
        port = free_port()
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cardperso", "web", "serve", "--db", str(db_path),
             "--port", str(port), *args],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        console = Console(f"http://127.0.0.1:{port}", db_path, log_path, proc)
        for _ in range(600):  # until it answers (or dies)
            if proc.poll() is not None:
                if "address already in use" in console.log().lower() and attempt < 2:
                    break  # the port was taken in between: another one
                raise AssertionError(f"web serve exited {proc.returncode}: {console.log()}")
            try:
                if httpx.get(console.url + "/login", timeout=2).status_code == 200:
                    return console
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            console.stop()
            raise AssertionError(f"web serve did not answer: {console.log()}")
    raise AssertionError("web serve found no free port in three tries")


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """One console for the session, on a database with one user per role."""
    base = tmp_path_factory.mktemp("web")
    db_path = base / "console.db"
    make_users(db_path)
    c = start_console(db_path, base / "serve.log", "--keys", str(SAMPLE_KEYS))
    try:
        yield c
    finally:
        c.stop()


def login_client(console: Console, name: str, password: str | None = None) -> httpx.Client:
    """An HTTP client logged in as ``name`` (through the login form, with its CSRF token)."""
    return login_client_at(console.url, name, password)


def login_client_at(url: str, name: str, password: str | None = None) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=False)
    r = client.post(
        "/login",
        data={"user": name, "password": password or PASSWORDS[name], "csrf": login_token(client)},
    )
    assert r.status_code == 303, r.text
    return client


def login_token(client: httpx.Client) -> str:
    page = client.get("/login")
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m, page.text
    return m.group(1)


def csrf_of(client: httpx.Client, path: str = "/") -> str:
    page = client.get(path)
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m, page.text
    return m.group(1)


# -- the browser -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A real headless Chromium through chromedriver (both from Debian; tools/bootstrap installs
    them). Missing ones fail the test: they are part of the suite's machine."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, (
        "chromium and chromium-driver are needed (run tools/bootstrap as root, or apt-get "
        "install chromium chromium-driver)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--lang=zh-CN"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def serve_in_thread(app: object) -> tuple[str, threading.Thread, object]:
    """Serve an app made in the test's process (uvicorn in a thread); returns (url, thread,
    server) — set ``server.should_exit = True`` and join the thread to stop it."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(600):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    return f"http://127.0.0.1:{port}", thread, server

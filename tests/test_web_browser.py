"""The web console driven as people drive it: a real headless Chromium (Debian's chromium and
chromium-driver, through Selenium) against a real `cardperso web serve` process, and for the
factory floor a simulated line running on the test lab's pcscd + vpcd readers. Screenshots of
each main page go to build/screenshots/ (CARDPERSO_SCREENSHOTS)."""

from __future__ import annotations

import csv
import functools
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import fixtures_web
from cardperso.storage.db import Database
from cardperso.web import users
from cardperso.web.app import ACCESS, PUBLIC, ROUTES
from fixtures_web import (
    PASSWORDS,
    ROLE_OF,
    SAMPLE_KEYS,
    SCREENSHOTS,
    Console,
)

browser = fixtures_web.browser  # the session's fixture, used by name
console = fixtures_web.console  # the session's fixture, used by name
pytestmark = pytest.mark.browser
Driver = Any


def _shot(driver: Driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _login(driver: Driver, console: Console, name: str, password: str | None = None) -> None:
    driver.delete_all_cookies()
    driver.get(console.url + "/login")
    driver.find_element(By.ID, "user").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password or PASSWORDS[name])
    _new_page(driver, driver.find_element(By.ID, "login").click)  # the answer has loaded


def _new_page(driver: Driver, action: Callable[[], object]) -> None:
    """Do ``action`` (a click that submits a form) and wait until the answer's page has
    loaded (not the page the form was on)."""
    driver.execute_script("window.cardpersoOldPage = true")
    action()
    WebDriverWait(driver, 60, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return !window.cardpersoOldPage && document.readyState === 'complete'"
        )
    )


def _logout(driver: Driver) -> None:
    driver.find_element(By.ID, "logout").click()
    WebDriverWait(driver, 30).until(lambda d: d.current_url.endswith("/login"))


def _live(driver: Driver) -> dict[str, Any]:
    """The live floor view, read in one go (the polling replaces its elements every 2 s)."""
    snapshot: dict[str, Any] = driver.execute_script(
        """
        const q = s => document.querySelector(s);
        const t = s => (q(s) ? q(s).textContent.trim() : "");
        return {
          done: t("#done"), throughput: t("#throughput"), current_run: t("table.runs tr.current"),
          paused: !!q("#station-st1.state-paused"), message: t("#station-st1 .message"),
          card: t("#station-st1 .card"), polled: Number(q("#live").dataset.polled || 0),
          rejects: [...document.querySelectorAll("tr.reject")].map(r => [
            r.querySelector(".reason").textContent.trim(), r.querySelector(".ssn").textContent.trim(),
            r.querySelector("a").href]),
          results: [...document.querySelectorAll("a[href^='/floor/results']")].map(a => a.textContent),
        };
        """
    )
    return snapshot


def _click(driver: Driver, element_id: str) -> None:
    """Click an element of the live view (retried if the polling replaced it meanwhile)."""

    def attempt(d: Driver) -> bool:
        try:
            d.find_element(By.ID, element_id).click()
        except StaleElementReferenceException:
            return False
        return True

    WebDriverWait(driver, 30).until(attempt)


def _fetch(driver: Driver, method: str, path: str, csrf: str | None) -> dict[str, Any]:
    """The browser's own fetch (its cookies, same origin): status and response type."""
    result: dict[str, Any] = driver.execute_async_script(
        """
        const [method, path, csrf, done] = arguments;
        const init = {method, credentials: "same-origin", redirect: "manual"};
        if (method === "POST") {
          const body = new URLSearchParams();
          if (csrf !== null) body.set("csrf", csrf);
          init.body = body;
        }
        fetch(path, init).then(async r => done({status: r.status, type: r.type,
                                                 text: r.type === "opaqueredirect" ? "" : await r.text()}))
                         .catch(e => done({status: -1, type: String(e), text: ""}));
        """,
        method, path, csrf,
    )  # fmt: skip
    return result


def _routes() -> list[tuple[str, str]]:
    out = []
    for route in ROUTES:
        path = getattr(route, "path", "")
        if path not in PUBLIC:
            for method in sorted(getattr(route, "methods", None) or {"GET"}):
                if method != "HEAD":
                    out.append((method, path))
    return out


def test_login_and_logout(browser: Driver, console: Console) -> None:
    driver = browser
    driver.delete_all_cookies()
    driver.get(console.url + "/floor")
    assert driver.current_url == console.url + "/login"  # logged out: the login page
    _shot(driver, "login")
    _login(driver, console, "op1", "not-the-password-1")
    assert "wrong user name or password" in driver.find_element(By.ID, "message").text
    _login(driver, console, "op1")
    WebDriverWait(driver, 30).until(lambda d: d.current_url == console.url + "/")
    assert driver.find_element(By.ID, "who").text == "op1 · factory operator"
    assert "您好，op1" in driver.page_source
    cookie = driver.get_cookie("cardperso_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert driver.execute_script("return document.cookie").find("cardperso_session") < 0
    _shot(driver, "home-operator")
    _logout(driver)
    driver.get(console.url + "/floor")
    assert driver.current_url == console.url + "/login"
    log = console.log()
    assert "POST /login" in log
    assert PASSWORDS["op1"] not in log and "not-the-password-1" not in log


def test_every_route_refuses_the_logged_out_and_the_wrong_roles(
    browser: Driver, console: Console
) -> None:
    driver = browser
    driver.delete_all_cookies()
    driver.get(console.url + "/login")
    routes = _routes()
    assert {p for _m, p in routes} == set(ACCESS)
    for method, path in routes:
        got = _fetch(driver, method, path, "x")
        assert got["type"] == "opaqueredirect" or got["status"] == 401, (method, path, got)
    for name in sorted(PASSWORDS):
        _login(driver, console, name)
        WebDriverWait(driver, 30).until(lambda d: d.current_url == console.url + "/")
        csrf = driver.find_element(By.NAME, "csrf").get_attribute("value")
        for method, path in routes:
            if path == "/logout" or ROLE_OF[name] in ACCESS[path]:
                continue
            got = _fetch(driver, method, path, csrf)
            assert got["status"] == 403, (name, method, path, got["status"])
            assert "您的角色无权使用此页面" in got["text"]
        if name == "centre1":
            driver.get(console.url + "/floor")
            assert driver.find_element(By.ID, "refused").text.startswith("您的角色无权使用此页面")
            _shot(driver, "refused-role")
        _logout(driver)


def test_a_form_without_its_token_is_refused(browser: Driver, console: Console) -> None:
    driver = browser
    _login(driver, console, "admin1")
    WebDriverWait(driver, 30).until(lambda d: d.current_url == console.url + "/")
    for token in (None, "forged-token"):
        got = _fetch(driver, "POST", "/logout", token)
        assert got["status"] == 403 and "CSRF" in got["text"]
    driver.get(console.url + "/users")  # still logged in: neither logout went through
    assert "admin1" in driver.find_element(By.ID, "who").text
    _shot(driver, "users")
    _logout(driver)


def test_a_planted_session_id_is_not_adopted(browser: Driver, console: Console) -> None:
    driver = browser
    driver.delete_all_cookies()
    driver.get(console.url + "/login")
    planted = "planted-by-an-attacker-0123456789abcdefghij"
    driver.add_cookie(
        {"name": "cardperso_session", "value": planted, "path": "/", "httpOnly": True}
    )
    driver.find_element(By.ID, "user").send_keys("sec1")
    driver.find_element(By.ID, "password").send_keys(PASSWORDS["sec1"])
    _new_page(driver, driver.find_element(By.ID, "login").click)
    WebDriverWait(driver, 30).until(lambda d: d.current_url == console.url + "/")
    assert driver.get_cookie("cardperso_session")["value"] != planted
    attacker = httpx.Client(base_url=console.url, follow_redirects=False)
    attacker.cookies.set("cardperso_session", planted, domain="127.0.0.1")
    assert attacker.get("/audit").status_code == 303  # the planted id opens nothing
    driver.get(console.url + "/audit")
    assert "sec1" in driver.find_element(By.ID, "who").text
    _shot(driver, "audit")
    _logout(driver)


def test_login_is_rate_limited(browser: Driver, console: Console) -> None:
    with Database(console.db_path) as db:
        users.add(db, "hasty", users.OPERATOR, "hasty-Secret-0042", None)
    driver = browser
    for i in range(users.MAX_USER_FAILURES):
        _login(driver, console, "hasty", f"a-wrong-guess-{i}")
        assert driver.find_element(By.ID, "message").text == "wrong user name or password"
    _login(driver, console, "hasty", "hasty-Secret-0042")  # the right one, too late
    assert "too many failed logins" in driver.find_element(By.ID, "message").text
    assert driver.get_cookie("cardperso_session") is None


# -- the factory floor on a running line ----------------------------------------------------------
@pytest.mark.pcsc
def test_an_operator_resumes_a_paused_station_and_sees_the_throughput_change(  # type: ignore[no-untyped-def]
    browser: Driver,
    console: Console,
    pcsc_lab,
    tmp_path: Path,
) -> None:
    """A sticky ribbon fault pauses the only station of a running simulated line (no card
    finished: 0 cards/hour); the operator sees it live with its reason, clears the printer and
    presses Resume (the request `line resume-station` makes); the page, never reloaded, shows
    the run finish, its throughput, the card rejected on the way with its reason and masked
    identity number, its face, and the results file."""
    from cardperso.keystore.software import SoftwareKeyStore
    from cardperso.line.linefile import LineOptions
    from cardperso.line.runner import LineRun
    from cardperso.prep.pipeline import PrepOptions, prepare
    from cardperso.prep.synth import make_batch
    from cardperso.profiles.loader import load_profile
    from cardperso.sim.line import SimLine

    driver = browser
    make_batch(tmp_path / "b.csv", 3, seed=16)
    prepare(
        tmp_path / "b.csv", load_profile("ssc3-pboc"), SoftwareKeyStore.load(SAMPLE_KEYS),
        functools.partial(SoftwareKeyStore.load, SAMPLE_KEYS), tmp_path / "b.perso",
        tmp_path / "r.csv", PrepOptions(batch_id="FLOOR", created=1),
    )  # fmt: skip
    with (tmp_path / "b.csv").open(encoding="utf-8") as fh:
        ssns = [row["ssn"] for row in csv.DictReader(fh)]
    readers = [s for s in pcsc_lab.slots if s.card is None][:1]
    line = SimLine(1, tmp_path / "line", faults="st1:ribbon_out@1!,st1:mute@2", readers=readers,  # type: ignore[arg-type]
                   options=LineOptions(card_timeout=5, pause_retry=600))  # fmt: skip
    with line:
        run = LineRun(
            tmp_path / "b.perso", line.spec, SoftwareKeyStore.load(SAMPLE_KEYS),
            Database(console.db_path),
        )  # fmt: skip
        run_id = run.journal.run_id
        done = threading.Event()
        worker = threading.Thread(
            target=lambda: (run.run(tmp_path / "results.csv"), done.set()), daemon=True
        )
        worker.start()
        try:
            _login(driver, console, "op1")
            WebDriverWait(driver, 30).until(lambda d: d.current_url == console.url + "/")
            driver.get(f"{console.url}/floor?run={run_id}")
            WebDriverWait(driver, 120).until(
                lambda d: _live(d)["paused"]
            )  # shown by the live view's polling
            live = _live(driver)
            assert "replace the ribbon" in live["message"]
            assert re.fullmatch(r"\d{6}\*{8}[\dX]{4}", live["card"].split(" · ")[1])
            assert (live["throughput"], live["done"]) == ("0", "0")
            _shot(driver, "floor-paused")

            line.stations[0].clear_faults()  # the operator replaces the ribbon ...
            _new_page(driver, lambda: _click(driver, "resume-st1"))  # ... and resumes it
            assert driver.current_url == f"{console.url}/floor?run={run_id}"  # ... the floor
            driver.execute_script("window.sameDocument = 'yes'")
            WebDriverWait(driver, 180).until(
                lambda d: (lv := _live(d))["done"] == "3" and lv["rejects"] and lv["results"]
            )
            live = _live(driver)
            assert driver.execute_script("return window.sameDocument") == "yes"  # no reload
            assert run_id in live["current_run"] and "100%" in live["current_run"]
            assert live["polled"] > 0
            assert int(live["throughput"].replace(",", "")) > 0  # was 0 while paused
            assert not live["paused"]
            ((reason, masked, face_link),) = live["rejects"]
            assert reason and re.fullmatch(r"\d{6}\*{8}[\dX]{4}", masked)
            assert live["results"] == ["results.csv"]
            source = driver.page_source
            assert not any(ssn in source for ssn in ssns)  # masked identity numbers only
            _shot(driver, "floor-finished")
            driver.get(face_link)
            width = driver.execute_script(
                "const i = document.images[0]; return i && i.complete ? i.naturalWidth : 0"
            )
            assert width > 500
            _shot(driver, "reject-face")
            assert done.wait(120), "the resumed station finishes the run"
        finally:
            if not done.is_set():
                run.stop("test ended")
            worker.join(60)
    assert run.journal.counts()["done"] == 3
    with Database(console.db_path) as db:
        audit = db.execute(
            "SELECT user_name, role, target FROM web_audit WHERE action = 'resume-station'"
        )
        resumed = db.execute(
            "SELECT station, command, done FROM line_control WHERE run_id = ?", (run_id,)
        )
    assert audit == [("op1", "operator", f"{run_id} st1")]
    assert resumed == [("st1", "resume", 1)]  # the line took the request

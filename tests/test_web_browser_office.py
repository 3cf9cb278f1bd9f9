"""The centre's office driven as centre staff drive it: a real headless Chromium (Debian's
chromium and chromium-driver, through Selenium) against a real `cardperso web serve` process
on a registry made with the `cardperso registry` commands (tests/fixtures_office.py).
Screenshots of each office page go to build/screenshots/ (CARDPERSO_SCREENSHOTS); the ones
in docs/img/ are copies of them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import fixtures_web
from cardperso.storage.db import Database
from fixtures_office import AS_OF, Centre, build_centre
from fixtures_web import Console, start_console
from test_web_browser import _login, _new_page, _shot

browser = fixtures_web.browser  # the session's fixture, used by name
pytestmark = pytest.mark.browser
Driver = Any


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Centre:
    return build_centre(tmp_path_factory.mktemp("centre"))


@pytest.fixture(scope="module")
def console(centre: Centre, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("CARDPERSO_CALENDAR", raising=False)
        c = start_console(centre.url, tmp_path_factory.mktemp("office") / "serve.log")
    try:
        yield c
    finally:
        c.stop()


def _state(centre: Centre, app_id: int) -> tuple[str, str]:
    with Database(centre.url) as db:
        state, reason = db.execute(
            "SELECT state, reason FROM reg_applications WHERE id = ?", (app_id,)
        )[0]
    return str(state), str(reason or "")


def _photo(driver: Driver, app_id: int) -> dict[str, Any]:
    got: dict[str, Any] = driver.execute_script(
        """
        const img = document.getElementById(arguments[0]);
        const r = img.getBoundingClientRect();
        return {complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
                shown: r.width > 0 && r.height > 0};
        """,
        f"photo-{app_id}",
    )
    return got


def test_centre_staff_audit_with_the_photo(
    browser: Driver, centre: Centre, console: Console
) -> None:
    """The photo beside the data is loaded and visible; one application accepted, one rejected
    with a reason; the registry changed accordingly, and the pages show the outcome."""
    driver = browser
    _login(driver, console, "centre1")
    WebDriverWait(driver, 30).until(lambda d: d.current_url == console.url + "/")
    driver.get(console.url + "/office/audit")
    WebDriverWait(driver, 30).until(lambda d: _photo(d, 9)["complete"])
    photo = _photo(driver, 9)
    assert photo["width"] == 358 and photo["height"] == 441 and photo["shown"]  # the real JPEG
    assert driver.find_element(By.ID, "photo-9").is_displayed()
    assert _photo(driver, centre.spoiled)["width"] > 0  # loaded, and its failed rule shown:
    assert driver.find_element(By.ID, f"quality-{centre.spoiled}").text.startswith(
        "photo: colour: is grayscale"
    )
    rec = centre.recs[8]
    data = driver.find_element(By.ID, "app-9").text
    assert rec["name"] in data and rec["ssn"] in data  # the data beside the photo
    assert "您的角色" not in driver.page_source
    _shot(driver, "office-audit")

    _new_page(driver, driver.find_element(By.ID, "accept-9").click)
    last = driver.find_element(By.ID, "last")
    assert (last.get_attribute("data-application"), last.get_attribute("data-state")) == (
        "9",
        "audited",
    )
    assert not driver.find_elements(By.ID, "app-9")  # out of the queue
    assert _state(centre, 9) == ("audited", "")

    why = "照片与本人不符 photo is not of the applicant"
    driver.find_element(By.ID, "reason-12").send_keys(why)
    _new_page(driver, driver.find_element(By.ID, "reject-12").click)
    assert driver.find_element(By.ID, "last").get_attribute("data-state") == "rejected"
    assert why in driver.find_element(By.ID, "last").text
    assert _state(centre, 12) == ("rejected", why)
    assert driver.find_element(By.ID, "queue-total").text == "2"

    # an empty reason is not sent: the browser asks for one (the field is required)
    driver.find_element(By.ID, "reject-11").click()
    assert driver.execute_script(
        "return document.getElementById('reason-11').validity.valueMissing"
    )
    assert _state(centre, 11) == ("accepted", "")
    with Database(centre.url) as db:
        actors = db.execute(
            "SELECT application_id, event FROM reg_transitions WHERE actor = 'web:centre1' "
            "ORDER BY id"
        )
    assert [(int(a), str(e)) for a, e in actors] == [(9, "audit"), (12, "reject")]


def _svg_boxes(driver: Driver) -> list[dict[str, float]]:
    boxes: list[dict[str, float]] = driver.execute_script(
        """
        return [...document.querySelectorAll("svg.chart")].map(s => {
          const r = s.getBoundingClientRect();
          return {w: r.width, h: r.height, bars: s.querySelectorAll("rect.bar").length,
                  tall: [...s.querySelectorAll("rect.bar")].filter(b => b.getBBox().height > 0).length};
        });
        """
    )
    return boxes


def test_the_office_pages_in_the_browser(browser: Driver, centre: Centre, console: Console) -> None:
    driver = browser
    _login(driver, console, "centre1")
    WebDriverWait(driver, 30).until(lambda d: d.current_url == console.url + "/")
    nav = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "header nav a")]
    assert [h.removeprefix(console.url) for h in nav] == [
        "/", "/office/audit", "/office/compare", "/office/targets", "/office/files"
    ]  # fmt: skip
    driver.get(f"{console.url}/office/targets?as_of={AS_OF}")
    boxes = _svg_boxes(driver)
    assert len(boxes) == 4  # per service point, per batch, lead times batch and sporadic
    assert all(b["w"] > 300 and b["h"] > 100 for b in boxes)
    assert all(b["tall"] > 0 for b in boxes[:3]), boxes  # something is drawn
    line = driver.execute_script(  # the target line is drawn across the histogram
        "return document.querySelector('svg.histogram line.target').getBoundingClientRect()"
    )
    assert line["height"] > 100
    assert driver.find_elements(By.CSS_SELECTOR, "#overdue tr.late")
    _shot(driver, "office-targets")
    driver.execute_script("document.querySelector('svg.histogram').scrollIntoView()")
    _shot(driver, "office-lead-times")
    driver.get(console.url + "/office/compare")
    assert (
        driver.find_element(By.CSS_SELECTOR, '#per-unit tr[data-unit="U1001"] .returned').text
        == "1"
    )
    assert (
        "name differs from the population database" in driver.find_element(By.ID, "returned").text
    )
    _shot(driver, "office-compare")
    driver.get(console.url + "/office/files")
    assert driver.find_element(By.ID, "file-return-B1").is_displayed()
    assert driver.find_element(By.TAG_NAME, "h1").text == "报表与文件 Reports & files"
    _shot(driver, "office-files")
    # a file is fetched with the browser's session (same origin), as a download
    got = driver.execute_async_script(
        """
        const done = arguments[0];
        fetch("/office/file?name=stats", {credentials: "same-origin"})
          .then(async r => done({status: r.status, type: r.headers.get("content-type"),
                                 disposition: r.headers.get("content-disposition"),
                                 text: await r.text()}));
        """
    )
    assert got["status"] == 200 and got["type"].startswith("text/csv")
    assert got["disposition"] == 'attachment; filename="stats.csv"'
    assert got["text"].startswith("measure,key,value\n")

"""The service-point desk driven as a clerk drives it: a real headless Chromium (Debian's
chromium and chromium-driver, through Selenium) against a real `cardperso web serve` process.
The clerk types an application with a wrong identity number and sees the message as typed,
corrects it, chooses the photo (shown with its rule), accepts, prints both forms and records
both signatures; the same clerk is refused on another service point's applicant. Screenshots
of each desk page go to build/screenshots/ (CARDPERSO_SCREENSHOTS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

import fixtures_desk
import fixtures_web
from cardperso.codec.numbers import NATIONS, mask_id
from fixtures_desk import (
    CLERK2,
    CLERK2_PASSWORD,
    PEOPLE,
    STANDARD_ID,
    accept,
    app_id_of,
    form_of,
    good_photo,
    small_photo,
    to_ready,
)
from fixtures_web import SCREENSHOTS, Console, csrf_of, login_client
from test_registry import run_cli
from test_web_browser import _fetch, _login, _new_page, _shot

browser = fixtures_web.browser  # the session's fixture, used by name
desk_console = fixtures_desk.desk_console  # the module's fixture, used by name
pytestmark = pytest.mark.browser
Driver = Any

#: What `registry import` says of an identity number whose check character is wrong.
WRONG_CHECK = "check character does not match (ISO 7064 MOD 11-2)"


def _problem(driver: Driver, field: str) -> str:
    text: str = driver.find_element(By.ID, f"problem-{field}").text
    return text


def _type(driver: Driver, field: str, value: str) -> None:
    el = driver.find_element(By.ID, field)
    el.clear()
    el.send_keys(value)


def test_a_clerk_accepts_an_application_bad_identity_number_then_good(
    browser: Driver, desk_console: Console, tmp_path: Path
) -> None:
    driver, person = browser, PEOPLE[10]
    _login(driver, desk_console, "clerk1")
    driver.get(desk_console.url + "/desk")
    _new_page(driver, driver.find_element(By.ID, "new-application").click)
    assert driver.current_url == desk_console.url + "/desk/accept"
    # a wrong check character: the message appears while typing, before the form is sent
    bad = person["ssn"][:17] + ("0" if person["ssn"][17] != "0" else "1")
    _type(driver, "name", person["name"])
    _type(driver, "ssn", bad)
    WebDriverWait(driver, 30).until(lambda d: _problem(d, "ssn") == WRONG_CHECK)
    assert driver.find_element(By.ID, "ssn").get_attribute("aria-invalid") == "true"
    assert _problem(driver, "name") == "" and _problem(driver, "pan") == ""  # not typed yet
    for field in ("birth_date", "nation", "birth_place", "region", "pan", "pan_seq"):
        _type(driver, field, person[field])
    # the ethnic group's GB/T 3304 name appears beside the code typed
    assert driver.find_element(By.ID, "nation-name").text == NATIONS[person["nation"]]
    Select(driver.find_element(By.ID, "gender")).select_by_value(person["gender"])
    Select(driver.find_element(By.ID, "bank_code")).select_by_value(person["bank_code"])
    _type(driver, "phone", "1391234")  # not finished: a mobile has 11 digits
    WebDriverWait(driver, 30).until(lambda d: _problem(d, "phone") != "")
    assert "mobile (11 digits)" in _problem(driver, "phone")
    _type(driver, "phone", "13912345678")
    # a photo that is not the specification's size: shown, with the rule it fails
    (tmp_path / "small.jpg").write_bytes(small_photo())
    driver.find_element(By.ID, "photo").send_keys(str(tmp_path / "small.jpg"))
    WebDriverWait(driver, 30).until(lambda d: _problem(d, "photo").startswith("pixel size"))
    preview = driver.find_element(By.ID, "photo-preview")
    assert preview.is_displayed() and preview.get_attribute("src").startswith("data:image/jpeg")
    assert _problem(driver, "ssn") == WRONG_CHECK
    _shot(driver, "desk-accept-problems")
    # sent as it is: refused, every field kept, the messages beside them
    _new_page(driver, driver.find_element(By.ID, "accept").click)
    assert "申请未受理" in driver.find_element(By.ID, "form-error").text
    assert _problem(driver, "ssn") == WRONG_CHECK
    assert driver.find_element(By.ID, "name").get_attribute("value") == person["name"]
    # corrected: the message goes away as typed; the right photo meets the specification
    _type(driver, "ssn", person["ssn"])
    WebDriverWait(driver, 30).until(lambda d: _problem(d, "ssn") == "")
    (tmp_path / "good.jpg").write_bytes(good_photo(3))
    driver.find_element(By.ID, "photo").send_keys(str(tmp_path / "good.jpg"))
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "photo-ok").is_displayed())
    assert _problem(driver, "photo") == ""
    assert all(_problem(driver, f) == "" for f in ("name", "phone", "pan", "bank_code"))
    _shot(driver, "desk-accept")
    _new_page(driver, driver.find_element(By.ID, "accept").click)
    assert "/desk/app?id=" in driver.current_url
    app_id = driver.find_element(By.ID, "app-id").text
    assert driver.find_element(By.ID, "state").text.startswith("accepted")
    assert mask_id(person["ssn"]) in driver.page_source and person["ssn"] not in driver.page_source
    assert "meets the card photo specification" in driver.find_element(By.ID, "photo-rule").text
    assert driver.execute_script(
        "const i = document.getElementById('app-photo'); return i.complete && i.naturalWidth"
    ) == 358  # fmt: skip
    # both forms print (PDF), then both signatures
    for kind in ("issuing", "application"):
        href = driver.find_element(By.ID, f"form-{kind}").get_attribute("href")
        got = _fetch(driver, "GET", href.removeprefix(desk_console.url), None)
        assert got["status"] == 200 and got["text"].startswith("%PDF-"), kind
    for who in ("staff", "applicant"):
        _new_page(driver, driver.find_element(By.ID, f"confirm-{who}").click)
    assert "Both signed" in driver.find_element(By.ID, "confirmed").text
    assert "clerk1" in driver.find_element(By.ID, "signatures").text
    _shot(driver, "desk-application")
    # the lookup finds the applicant, with the time target
    driver.get(desk_console.url + "/desk")
    driver.find_element(By.ID, "lookup-ssn").send_keys(person["ssn"])
    _new_page(driver, driver.find_element(By.ID, "lookup").click)
    found = driver.find_element(By.ID, "found").text
    assert app_id in found and mask_id(person["ssn"]) in found and "工作日" in found
    _shot(driver, "desk-lookup")
    assert person["ssn"] not in desk_console.log()


def test_the_same_clerk_is_refused_on_another_service_points_applicant(
    browser: Driver, desk_console: Console
) -> None:
    driver, person = browser, PEOPLE[11]
    other = login_client(desk_console, CLERK2, CLERK2_PASSWORD)  # the clerk at SP02
    app_id = app_id_of(accept(other, form_of(person), good_photo(5)))
    _login(driver, desk_console, "clerk1")  # SP01
    driver.get(f"{desk_console.url}/desk/app?id={app_id}")
    assert "another service point" in driver.find_element(By.ID, "refused").text
    assert person["name"] not in driver.page_source
    status = _fetch(driver, "GET", f"/desk/photo?id={app_id}", None)["status"]
    assert status == 403
    _shot(driver, "desk-refused")
    driver.get(desk_console.url + "/desk")
    driver.find_element(By.ID, "lookup-ssn").send_keys(person["ssn"])
    _new_page(driver, driver.find_element(By.ID, "lookup").click)
    assert "another service point" in driver.find_element(By.ID, "refused").text
    assert mask_id(person["ssn"]) not in driver.page_source
    assert (SCREENSHOTS / "desk-refused.png").stat().st_size > 0


def test_a_clerk_receives_the_box_records_a_collection_and_a_lost_card(
    browser: Driver, desk_console: Console, tmp_path: Path
) -> None:
    driver, person = browser, PEOPLE[8]
    clerk = login_client(desk_console, "clerk1")
    app_id = app_id_of(accept(clerk, form_of(person), good_photo(8)))
    csrf = csrf_of(clerk, "/desk")
    for who in ("staff", "applicant"):
        clerk.post("/desk/confirm", data={"csrf": csrf, "id": str(app_id), "who": who})
    rows = to_ready(str(desk_console.db_path), PEOPLE, tmp_path)
    card = {r["ssn"]: r["card_no"] for r in rows}[person["ssn"]]
    out = run_cli("registry", "box", "pack", "--service-point", "SP01", "--manifest",
                  str(tmp_path / "box.csv"), "--db", str(desk_console.db_path))  # fmt: skip
    box = out.split()[1].rstrip(":")
    _login(driver, desk_console, "clerk1")
    driver.get(desk_console.url + "/desk")
    assert card in driver.find_element(By.ID, "waiting").text
    _shot(driver, "desk-home")
    _new_page(driver, driver.find_element(By.ID, f"receive-{box}").click)
    assert not driver.find_elements(By.ID, f"receive-{box}")
    driver.find_element(By.LINK_TEXT, str(app_id)).click()
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "collect"))
    driver.find_element(By.ID, "agent_id").send_keys(STANDARD_ID)
    driver.find_element(By.ID, "to").send_keys("李四")
    _new_page(driver, driver.find_element(By.ID, "collect").click)
    assert driver.find_element(By.ID, "state").text == "issued"
    history = driver.find_element(By.ID, "history").text
    assert f"by agent {mask_id(STANDARD_ID)}" in history and STANDARD_ID not in driver.page_source
    _new_page(driver, driver.find_element(By.ID, "suspend").click)
    assert driver.find_element(By.ID, "state").text == "suspended"
    _shot(driver, "desk-card-lost")
    _new_page(driver, driver.find_element(By.ID, "restore").click)
    assert driver.find_element(By.ID, "state").text == "issued"
    events = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#history td.event")]
    assert events[-3:] == ["issue", "suspend", "restore"]

"""Every page as each role sees it, in a real headless Chromium (Debian's chromium and
chromium-driver, through Selenium) against a real `cardperso web serve` on the centre's
registry (tests/fixtures_office.py): starting from the home page, the walk follows every link
of every page it reaches, as a user clicking around would. No link leads to a refusal or an
error (downloads, photos and forms are fetched with the browser's session and must answer
200), the navigation marks the page one is on, and no page shows a full identity number to a
role that must not see it (only centre staff, on the audit queue, see the number in full)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By

import fixtures_web
import test_web_browser_office
from fixtures_office import Centre
from fixtures_web import ROLE_OF, Console
from test_web_browser import _login

browser = fixtures_web.browser  # the session's fixture, used by name
centre = test_web_browser_office.centre  # the module fixtures (this module's own instances)
console = test_web_browser_office.console
pytestmark = pytest.mark.browser
Driver = Any
#: Links that are not pages: fetched with the session, never opened in the window.
FILES = ("/office/file", "/office/photo", "/desk/photo", "/desk/form", "/floor/face",
         "/floor/results")  # fmt: skip


@pytest.mark.parametrize("name", sorted(ROLE_OF))
def test_every_link_of_every_page_as_each_role(
    browser: Driver, console: Console, centre: Centre, name: str
) -> None:
    driver = browser
    _login(driver, console, name)
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    full_ids = {r["ssn"] for r in centre.recs}
    seen: set[str] = set()
    todo = ["/"]
    files: set[str] = set()
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        driver.get(console.url + path)
        assert not driver.current_url.endswith("/login"), (name, path, "sent to log in")
        title = driver.title
        assert not title.startswith(("拒绝", "未完成")), (
            name,
            path,
            driver.find_element(By.TAG_NAME, "main").text,
        )
        current = [
            a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "nav a.current")
        ]
        assert len(current) == 1, (name, path, current)
        assert path == "/" or path.startswith(current[0][len(console.url) :]), (path, current)
        source = driver.page_source
        shown = {s for s in full_ids if s in source}
        if ROLE_OF[name] == "centre" and path.startswith("/office/audit"):
            pass  # the data being audited, the number in full (docs/web.md)
        else:
            assert not shown, (name, path, "a full identity number on the page")
        for a in driver.find_elements(By.TAG_NAME, "a"):
            href = a.get_attribute("href") or ""
            if not href.startswith(console.url):
                continue
            link = href[len(console.url) :]
            if link.split("?")[0] in FILES:
                files.add(link)
            elif link not in seen and len(seen) < 40:
                todo.append(link)
    for link in sorted(files):
        r = httpx.get(console.url + link, cookies=cookies, timeout=60)
        assert r.status_code == 200, (name, link, r.text[:300])
    assert len(seen) > 1, "the home page links the role's pages"
    want = {"clerk": "/desk", "centre": "/office/files", "operator": "/floor",
            "security": "/audit", "admin": "/users"}[ROLE_OF[name]]  # fmt: skip
    assert any(re.match(re.escape(want) + r"($|\?)", p) for p in seen), (name, sorted(seen))

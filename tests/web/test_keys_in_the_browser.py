"""The pages on a deployment that requires API keys: the person types a key once, the browser
keeps it and sends it as the header; a submission's link is its key's alone; the dashboard
wants an admin key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys as Key
from selenium.webdriver.remote.webdriver import WebDriver

from core import apikeys
from core.keys import Keys
from tests.conftest import RedisServer, Stack, make_stack
from tests.web.conftest import ready, wait_for
from tests.web.test_playground import run_and_wait, write_program

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keyed(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_stack(redis_server, tmp_path_factory.mktemp("keyed"), "web-keys", 1, {"CELLBLOCK_AUTH": "required"})
    yield s
    s.stop()


def new_key(stack: Stack, admin: bool = False) -> str:
    r = redis.Redis.from_url(stack.redis_url)
    try:
        return apikeys.create_key(r, Keys(stack.env["CELLBLOCK_KEY_PREFIX"]), admin=admin).token
    finally:
        r.close()


def give_key(d: WebDriver, token: str) -> None:
    """Type `token` into the key dialog (open) and save it."""
    wait_for(d, lambda d: d.find_element(By.ID, "key-dialog").is_displayed(), 10, "the key dialog")
    d.find_element(By.ID, "key-input").send_keys(token)
    d.find_element(By.CSS_SELECTOR, '#key-form button[value="save"]').click()


def test_a_run_asks_for_a_key_once_and_the_link_is_the_keys_alone(
    page: WebDriver, keyed: Stack, tmp_path: Path
) -> None:
    ready(page, keyed.base + "/")
    page.execute_script("localStorage.clear()")
    ready(page, keyed.base + "/")  # languages are open to all: the page loads without a key
    write_program(page, "python3", 'print("with a key")')
    page.find_element(By.ID, "run").click()
    give_key(page, new_key(keyed))
    wait_for(page, lambda d: d.find_element(By.ID, "status").text.startswith("Finished"), 60, "the run")
    assert page.find_element(By.ID, "stdout").text == "with a key"
    assert page.find_element(By.ID, "key-button").text == "API key ✓"
    # The key stays in this browser: a second run asks nothing.
    status = run_and_wait(page)
    assert "Accepted" in status
    link = page.find_element(By.ID, "share").get_attribute("href")
    # Another key does not see it: as if it did not exist.
    page.execute_script("localStorage.setItem('cellblock.apiKey', arguments[0])", new_key(keyed))
    ready(page, link)
    assert "No such submission" in page.find_element(By.ID, "status").text
    page.execute_script("localStorage.clear()")


def test_an_interactive_run_sends_the_key_it_cannot_put_in_a_header(page: WebDriver, keyed: Stack) -> None:
    ready(page, keyed.base + "/")
    page.execute_script("localStorage.clear()")
    ready(page, keyed.base + "/")
    write_program(page, "python3", 'print("got", input())')
    page.find_element(By.ID, "interactive").click()
    page.find_element(By.ID, "run").click()
    # The socket is refused before its upgrade, which a page is not told: it asks the API why.
    give_key(page, new_key(keyed))
    refused = [e["message"] for e in page.get_log("browser") if e["level"] == "SEVERE"]
    assert refused and all("WebSocket connection" in m or "status of 401" in m for m in refused), refused
    line = page.find_element(By.ID, "terminal-input")
    wait_for(page, lambda d: line.is_enabled(), 60, "the session to run")
    line.send_keys("it", Key.ENTER)
    status = run_and_wait(page, click=False)
    assert "Accepted" in status, status
    assert page.find_element(By.ID, "terminal-output").text == "it\ngot it"
    page.execute_script("localStorage.clear()")


def test_the_dashboard_wants_an_admin_key(page: WebDriver, keyed: Stack) -> None:
    ready(page, keyed.base + "/")
    page.execute_script("localStorage.setItem('cellblock.apiKey', arguments[0])", new_key(keyed))
    page.get(keyed.base + "/dashboard")
    wait_for(page, lambda d: "admin key" in d.find_element(By.ID, "error-region").text, 10, "the refusal")
    page.find_element(By.ID, "key-button").click()
    give_key(page, new_key(keyed, admin=True))
    wait_for(page, lambda d: d.execute_script("return document.body.dataset.ready") == "1", 10, "the dashboard")
    assert page.find_element(By.ID, "tile-workers").text == "0 / 1"
    assert not page.find_element(By.ID, "error-region").text
    page.execute_script("localStorage.clear()")

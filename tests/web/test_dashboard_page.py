"""The operations dashboard at /dashboard in headless Chromium against a real stack: it shows
the submissions just made (counts, verdicts per language, workers, latency) and keeps up with
new ones without a reload."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.conftest import Stack
from tests.web.conftest import PHONE, ready, shoot, wait_for

pytestmark = pytest.mark.slow

C_WRONG = '#include <stdio.h>\nint main(void) { puts("4"); return 0; }\n'


def text(d: WebDriver, element_id: str) -> str:
    return str(d.find_element(By.ID, element_id).text)


def verdict_cell(d: WebDriver, language: str, verdict: str) -> str:
    row = d.find_element(By.CSS_SELECTOR, f'#verdicts-table tbody tr[data-language="{language}"]')
    return str(row.find_element(By.CSS_SELECTOR, f'td[data-verdict="{verdict}"]').text)


def test_the_dashboard_shows_the_submissions_just_made(page: WebDriver, stack: Stack) -> None:
    # This module's stack has its own key prefix: everything it counts is made here.
    for _ in range(2):
        assert stack.submit({"language": "python3", "source": "print('hi')"})["verdict"] == "accepted"
    tests = [{"input": "", "expected_output": "3"}]
    assert stack.submit({"language": "c", "source": C_WRONG, "tests": tests})["verdict"] == "wrong_answer"
    ready(page, stack.base + "/dashboard")
    assert text(page, "tile-finished-hour") == "3"
    assert text(page, "tile-queue-depth") == "0"
    # busy / live: RQ marks a worker idle a moment after its job's result is out
    wait_for(page, lambda d: text(d, "tile-workers") == "0 / 2", 15, "both workers idle")
    assert text(page, "tile-internal-errors") == "0"
    assert verdict_cell(page, "python3", "accepted") == "2"
    assert verdict_cell(page, "c", "wrong_answer") == "1"
    assert len(page.find_elements(By.CSS_SELECTOR, "#workers-table tbody tr")) == 2
    total = page.find_element(By.CSS_SELECTOR, '#stages-table tbody tr[data-stage="total"]')
    assert total.find_elements(By.TAG_NAME, "td")[0].text == "3"
    assert "3 in total" in page.find_element(By.ID, "plot-throughput").get_attribute("aria-label")
    assert page.find_elements(By.CSS_SELECTOR, "#plot-latency .series path, #plot-latency .series circle")
    shoot(page, "dashboard")

    # It keeps up by itself: one more submission shows up within a couple of polls.
    stack.submit({"language": "python3", "source": "print('again')"})
    wait_for(page, lambda d: text(d, "tile-finished-hour") == "4", 15, "the dashboard to count the new one")
    assert verdict_cell(page, "python3", "accepted") == "3"


def test_the_dashboard_fits_a_phone_screen(page: WebDriver, stack: Stack) -> None:
    page.set_window_size(*PHONE)
    ready(page, stack.base + "/dashboard")
    assert page.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, "dashboard-phone")


def test_pausing_stops_the_polls(page: WebDriver, stack: Stack) -> None:
    ready(page, stack.base + "/dashboard")
    toggle = page.find_element(By.ID, "refresh-toggle")
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "false"
    # Paused: an answer still on its way is dropped, and no poll goes out (in two polls' time).
    seen = page.execute_script("return document.body.dataset.updated")
    polls = "return performance.getEntriesByType('resource').filter(e => e.name.endsWith('/v1/dashboard')).length"
    sent = page.execute_script(polls)
    stack.submit({"language": "python3", "source": "print(1)"})
    page.execute_script("return new Promise(r => setTimeout(r, 5000))")
    assert page.execute_script("return document.body.dataset.updated") == seen
    assert page.execute_script(polls) <= sent + 1  # at most the one in flight at the click
    toggle.click()
    wait_for(page, lambda d: d.execute_script("return document.body.dataset.updated") != seen, 10, "a poll")

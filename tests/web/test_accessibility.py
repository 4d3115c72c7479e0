"""The pages against the WCAG 2.1 A and AA rules that a machine can check (axe-core, pinned in
web/package.json, run in the same headless Chromium): labels, names, contrast, landmarks,
headings, ARIA, tables — on each page as a person leaves it: fresh, after a judged run, during
an interactive run, and the dashboard with data, at desktop and phone sizes."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.conftest import ROOT, Stack
from tests.web.conftest import PHONE, ready, wait_for
from tests.web.test_playground import C_SUM, run_and_wait, write_program

pytestmark = pytest.mark.slow

AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: "tag", values: arguments[0]}}).then(
  (r) => done(r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                                        nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" "))}))),
  (e) => done([{id: "axe failed", help: String(e)}]));
"""


def assert_accessible(d: WebDriver) -> None:
    """No violation of RULES on the page as it is now (each named, with where)."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: `make web` installs it")
    d.execute_script(AXE.read_text())
    d.set_script_timeout(60)
    found: list[dict[str, Any]] = d.execute_async_script(RUN, RULES)
    assert not found, "\n".join(f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}" for v in found)


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_playground_breaks_no_rule(page: WebDriver, stack: Stack, size: str) -> None:
    if size == "phone":
        page.set_window_size(*PHONE)
    ready(page, stack.base + "/")
    assert_accessible(page)
    write_program(page, "c", C_SUM)
    page.find_element(By.ID, "tab-judge").click()
    page.find_element(By.ID, "add-test").click()
    page.find_element(By.ID, "test-1-input").send_keys("1 2")
    page.find_element(By.ID, "test-1-expected").send_keys("4")
    run_and_wait(page)
    page.find_element(By.CSS_SELECTOR, "#test-table tbody details summary").click()
    assert_accessible(page)


def test_an_interactive_run_breaks_no_rule(page: WebDriver, stack: Stack) -> None:
    ready(page, stack.base + "/")
    write_program(page, "python3", "print(input())")
    page.find_element(By.ID, "interactive").click()
    page.find_element(By.ID, "run").click()
    wait_for(page, lambda d: d.find_element(By.ID, "terminal-input").is_enabled(), 60, "the session to run")
    assert_accessible(page)


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_dashboard_breaks_no_rule(page: WebDriver, stack: Stack, size: str) -> None:
    stack.submit({"language": "python3", "source": "print(1)"})
    if size == "phone":
        page.set_window_size(*PHONE)
    ready(page, stack.base + "/dashboard")
    assert_accessible(page)

"""The playground at / in headless Chromium against a real stack: a person types a program,
runs it or judges it on tests, and reads what it did; /s/{id} opens a finished run."""

from __future__ import annotations

import gzip
import http.client
import re

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from api.pages import CSP, NONCE
from tests.conftest import Stack
from tests.web.conftest import PHONE, ready, shoot, wait_for

pytestmark = pytest.mark.slow

# One line each: the editor closes brackets and quotes as they are typed and steps over the
# closing ones, so a program typed in one line comes out as typed.
C_SUM = (
    "int scanf(const char*,...);int printf(const char*,...);"
    'int main(void){int a,b;scanf("%d %d",&a,&b);printf("%d\\n",a+b);return 0;}'
)
C_BROKEN = "int main(void){return undefined_name;}"


def write_program(d: WebDriver, language: str, code: str) -> None:
    """Pick `language` and type `code` into the editor as a person would."""
    Select(d.find_element(By.ID, "language")).select_by_value(language)
    content = d.find_element(By.CSS_SELECTOR, "#editor .cm-content")
    content.click()
    content.send_keys(Keys.CONTROL, "a")
    content.send_keys(Keys.DELETE)
    content.send_keys(code)
    typed = d.execute_script("return document.querySelector('#editor .cm-content').innerText")
    assert typed.rstrip("\n") == code, typed


def run_and_wait(d: WebDriver, shortcut: bool = False, click: bool = True, timeout: float = 90) -> str:
    """Run (the button, or Ctrl+Enter in the editor; or neither: a run already going) and wait
    for the verdict; the status line."""
    if shortcut:
        d.find_element(By.CSS_SELECTOR, "#editor .cm-content").send_keys(Keys.CONTROL, Keys.ENTER)
    elif click:
        d.find_element(By.ID, "run").click()
    wait_for(d, lambda d: d.find_element(By.ID, "status").text.startswith("Finished"), timeout, "the run to finish")
    return str(d.find_element(By.ID, "status").text)


def test_python_hello_world_shows_its_output(page: WebDriver, stack: Stack) -> None:
    ready(page, stack.base + "/")
    write_program(page, "python3", 'print("Hello from the playground")')
    status = run_and_wait(page, shortcut=True)
    assert "Accepted" in status and "Exit code 0" in status, status
    assert page.find_element(By.ID, "stdout").text == "Hello from the playground"
    assert re.fullmatch(r"/s/[0-9a-f-]+", page.execute_script("return location.pathname"))
    assert page.find_element(By.ID, "share").is_displayed()
    shoot(page, "playground")


def test_a_c_solution_judged_on_three_tests(page: WebDriver, stack: Stack) -> None:
    ready(page, stack.base + "/")
    write_program(page, "c", C_SUM)
    page.find_element(By.ID, "tab-judge").click()
    for given, expected in (("1 2", "3"), ("40 2", "42"), ("2 2", "5")):
        page.find_element(By.ID, "add-test").click()
        n = len(page.find_elements(By.CSS_SELECTOR, "#tests li"))
        page.find_element(By.ID, f"test-{n}-input").send_keys(given)
        page.find_element(By.ID, f"test-{n}-expected").send_keys(expected)
    status = run_and_wait(page)
    assert "Wrong answer" in status and "2 of 3 tests accepted" in status, status
    verdicts = [
        e.get_attribute("data-verdict") for e in page.find_elements(By.CSS_SELECTOR, "#test-table tbody .verdict-word")
    ]
    assert verdicts == ["accepted", "accepted", "wrong_answer"]
    # Each row's output opens below it: the wrong one printed 4.
    page.find_elements(By.CSS_SELECTOR, "#test-table tbody details summary")[2].click()
    assert page.find_elements(By.CSS_SELECTOR, "#test-table tbody details pre")[4].text == "4"
    shoot(page, "playground-judge")


def test_a_compile_error_shows_the_compiler_output(page: WebDriver, stack: Stack) -> None:
    ready(page, stack.base + "/")
    write_program(page, "c", C_BROKEN)
    status = run_and_wait(page)
    assert "Compilation error" in status, status
    compiled = page.find_element(By.ID, "compile-output").text
    assert "undefined_name" in compiled and "error" in compiled, compiled


def test_markup_in_output_is_shown_as_text(page: WebDriver, stack: Stack) -> None:
    markup = '<script>document.title="owned"</script><img src=x onerror=document.title=1><b>bold</b>'
    ready(page, stack.base + "/")
    title = page.title
    write_program(page, "python3", f"print('{markup}')")
    run_and_wait(page)
    out = page.find_element(By.ID, "stdout")
    assert out.text == markup
    assert out.find_elements(By.CSS_SELECTOR, "*") == []  # text, not elements
    assert page.title == title


def test_bytes_that_are_not_utf8_are_marked(page: WebDriver, stack: Stack) -> None:
    ready(page, stack.base + "/")
    write_program(page, "python3", 'import sys;sys.stdout.buffer.write(b"ok\\xff\\xfe")')
    run_and_wait(page)
    assert page.find_element(By.ID, "stdout").text == "ok\ufffd\ufffd"
    note = page.find_element(By.CSS_SELECTOR, "#run-output .note")
    assert "Not valid UTF-8" in note.text
    note.find_element(By.TAG_NAME, "summary").click()
    assert "6f 6b ff fe" in note.find_element(By.TAG_NAME, "pre").text


def test_a_shared_link_shows_the_code_and_the_result(page: WebDriver, stack: Stack) -> None:
    ready(page, stack.base + "/")
    write_program(page, "python3", "print(input()[::-1])")
    page.find_element(By.ID, "stdin").send_keys("stressed")
    run_and_wait(page)
    link = page.find_element(By.ID, "share").get_attribute("href")
    page.get("about:blank")
    ready(page, link)
    assert page.find_element(By.ID, "stdout").text == "desserts"
    assert page.find_element(By.ID, "stdin").get_attribute("value") == "stressed"
    code = page.execute_script("return document.querySelector('#editor .cm-content').innerText")
    assert code.strip() == "print(input()[::-1])"
    assert Select(page.find_element(By.ID, "language")).first_selected_option.get_attribute("value") == "python3"


def test_an_interactive_run_takes_its_input_as_it_is_typed(page: WebDriver, stack: Stack) -> None:
    ready(page, stack.base + "/")
    write_program(page, "python3", 'print("name?", flush=True);print("hello", input());print("bye", input())')
    page.find_element(By.ID, "interactive").click()
    assert not page.find_element(By.ID, "stdin").is_displayed()  # typed while it runs instead
    page.find_element(By.ID, "run").click()
    terminal = page.find_element(By.ID, "terminal-output")
    wait_for(page, lambda d: "name?" in terminal.text, 60, "the program's question")
    line = page.find_element(By.ID, "terminal-input")
    wait_for(page, lambda d: line.is_enabled(), 10, "the input line")
    line.send_keys("world", Keys.ENTER)
    wait_for(page, lambda d: "hello world" in terminal.text, 20, "the answer to the first line")
    line.send_keys("again", Keys.ENTER)
    status = run_and_wait(page, click=False)
    assert "Accepted" in status and "Exit code 0" in status, status
    assert terminal.text == "name?\nworld\nhello world\nagain\nbye again"
    link = page.find_element(By.ID, "share").get_attribute("href")
    shoot(page, "playground-interactive")
    # Its link reopens the code, ticked interactive; the output went to this page only.
    ready(page, link)
    assert page.find_element(By.ID, "interactive").is_selected()
    assert "Accepted" in page.find_element(By.ID, "status").text
    assert "not kept" in page.find_element(By.ID, "terminal-output").text


def test_an_interactive_run_can_be_stopped(page: WebDriver, stack: Stack) -> None:
    ready(page, stack.base + "/")
    write_program(page, "python3", "import time;print(input(), flush=True);time.sleep(60)")
    page.find_element(By.ID, "interactive").click()
    page.find_element(By.ID, "run").click()
    line = page.find_element(By.ID, "terminal-input")
    wait_for(page, lambda d: line.is_enabled(), 60, "the input line")
    line.send_keys("first", Keys.ENTER)
    terminal = page.find_element(By.ID, "terminal-output")
    wait_for(page, lambda d: terminal.text.count("first") == 2, 20, "the echo and the program's line")
    page.find_element(By.ID, "terminal-kill").click()
    status = run_and_wait(page, click=False, timeout=20)
    assert "Finished" in status and "Accepted" not in status, status


def test_an_unknown_link_says_so(page: WebDriver, stack: Stack) -> None:
    ready(page, stack.base + "/s/" + "0" * 32)
    assert "No such submission" in page.find_element(By.ID, "status").text


def test_fits_a_phone_screen(page: WebDriver, stack: Stack) -> None:
    page.set_window_size(*PHONE)
    ready(page, stack.base + "/")
    write_program(page, "python3", 'print("small screen")')
    run_and_wait(page)
    assert page.find_element(By.ID, "stdout").text == "small screen"
    # Nothing sticks out sideways: the page never scrolls horizontally.
    assert page.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, "playground-phone")


def test_pages_are_served_compressed_under_a_strict_policy(stack: Stack) -> None:
    for path in ("/", "/dashboard", "/s/" + "0" * 32, "/static/playground.js"):
        conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            body = gzip.decompress(resp.read()) if resp.getheader("Content-Encoding") == "gzip" else b""
        finally:
            conn.close()
        assert resp.status == 200 and body, path
        assert resp.getheader("X-Content-Type-Options") == "nosniff"
        if not path.startswith("/static/"):
            policy = resp.getheader("Content-Security-Policy")
            nonce = re.search(r"'nonce-([A-Za-z0-9_-]{20,})'", policy)
            assert nonce and policy == CSP.replace(NONCE, nonce.group(1)), policy
            assert "script-src 'self';" in policy and "unsafe" not in policy
            if path != "/dashboard":  # the playground's editor needs it
                assert f'nonce="{nonce.group(1)}"' in body.decode()
    assert stack.request("GET", "/static/../api/pages.py").status == 404
    # A page only at its own address, under its policy; not as a plain asset.
    assert stack.request("GET", "/static/playground.html").status == 404


def test_nothing_is_loaded_from_elsewhere(page: WebDriver, stack: Stack) -> None:
    ready(page, stack.base + "/")
    origins = page.execute_script("return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    assert origins and set(origins) == {stack.base}
    # The editor is the bundled CodeMirror, with the language's syntax loaded.
    assert page.find_elements(By.CSS_SELECTOR, "#editor .cm-editor")
    assert page.find_elements(By.CSS_SELECTOR, "#editor .cm-line span[class]")

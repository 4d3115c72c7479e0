"""The pages' weight and load time, as a browser sees them on loopback.

    .venv/bin/python load/bench_web.py [--runs 10]

For each page (the playground at /, the dashboard at /dashboard) and each of `runs` rounds, a
fresh headless Chromium (Debian's, through chromedriver; an empty profile, so nothing is
cached) opens the page and waits until it is usable: the page marks `cellblock-ready` in the
Performance timeline when its data is in (the playground: languages loaded, editor up, the
language's syntax requested; the dashboard: its first render). Then the same browser opens it
again (warm: its cache revalidates by ETag). Reported from the browser's own Performance
entries: requests, bytes on the wire (compressed, with headers) and decoded, and the time from
navigation start to DOMContentLoaded and to ready, median and p90 of the rounds.

Needs root (the stack's worker runs the jail). Uses its own stack in a temp dir, on a free port.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from load.stack import running

PAGES = {"playground": "/", "dashboard": "/dashboard"}
# What the Performance API holds after the page is ready: every request's sizes, and the times.
MEASURE = """
const nav = performance.getEntriesByType('navigation')[0];
const all = [nav, ...performance.getEntriesByType('resource')];
return {
  requests: all.length,
  wire: all.reduce((s, e) => s + e.transferSize, 0),
  decoded: all.reduce((s, e) => s + e.decodedBodySize, 0),
  dom: nav.domContentLoadedEventEnd,
  ready: performance.getEntriesByName('cellblock-ready')[0].startTime,
};
"""


def browser(profile: Path) -> webdriver.Chrome:
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--window-size=1280,1000", f"--user-data-dir={profile}"):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def load(driver: webdriver.Chrome, url: str) -> dict[str, Any]:
    driver.get(url)
    WebDriverWait(driver, 30, poll_frequency=0.01).until(
        lambda d: d.execute_script("return performance.getEntriesByName('cellblock-ready').length > 0")
    )
    measured: dict[str, Any] = driver.execute_script(MEASURE)
    return measured


def p90(values: list[float]) -> float:
    """The nearest-rank 90th percentile."""
    return sorted(values)[max(0, math.ceil(0.9 * len(values)) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="fresh browsers per page (default 10)")
    args = ap.parse_args()
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with running(workers=1) as stack, tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        stack.wait_ready(1)
        for i in range(args.runs):
            for name, path in PAGES.items():
                driver = browser(Path(tmp) / f"{name}-{i}")
                try:
                    rows.setdefault((name, "first load"), []).append(load(driver, stack.base + path))
                    driver.get("about:blank")
                    rows.setdefault((name, "again (cached)"), []).append(load(driver, stack.base + path))
                finally:
                    driver.quit()
    print(f"\nPages on loopback, {args.runs} fresh headless Chromium per page (median; p90 of the times)\n")
    print("| page | load | requests | on the wire | decoded | DOMContentLoaded ms | ready ms (p50 / p90) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (name, kind), runs in rows.items():
        wire = statistics.median(r["wire"] for r in runs) / 1024
        decoded = statistics.median(r["decoded"] for r in runs) / 1024
        dom = statistics.median(r["dom"] for r in runs)
        ready = [r["ready"] for r in runs]
        print(
            f"| {name} | {kind} | {statistics.median(r['requests'] for r in runs):.0f} | {wire:.1f} KiB "
            f"| {decoded:.1f} KiB | {dom:.0f} | {statistics.median(ready):.0f} / {p90(ready):.0f} |"
        )


if __name__ == "__main__":
    main()

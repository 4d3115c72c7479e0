"""api/pages.py without a browser: how the pages are read (partials in, the page's own link
marked, partials and dot files not served, a missing page fails the start), and which
Accept-Encoding gets gzip."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from api import pages


def site(root: Path, vendor: bool = True) -> Path:
    (root / "partials").mkdir(parents=True)
    (root / "partials" / "nav.html").write_text('<nav><a href="/">P</a> <a href="/dashboard">D</a></nav>\n')
    for name in pages.PAGES:
        (root / name).write_text(f'<h1><a href="/">home</a></h1>\n<!--#include nav.html-->\n<p>{name}</p>\n')
    (root / "app.js").write_text("console.log(1);\n" * 100)
    if vendor:
        (root / "vendor").mkdir()
        (root / "vendor" / "editor.js").write_text("export {};\n")
        (root / "vendor" / ".built").write_text("")
    return root


def test_pages_are_read_with_their_partials_and_their_link_marked(tmp_path: Path) -> None:
    assets = pages.load_assets(site(tmp_path))
    playground = assets["playground.html"].body.decode()
    assert playground == (
        '<h1><a href="/">home</a></h1>\n'
        '<nav><a href="/" aria-current="page">P</a> <a href="/dashboard">D</a></nav>\n<p>playground.html</p>\n'
    )
    assert '<a href="/dashboard" aria-current="page">D</a>' in assets["dashboard.html"].body.decode()
    assert set(assets) == {"playground.html", "dashboard.html", "app.js", "vendor/editor.js"}
    assert assets["app.js"].gzipped is not None and assets["app.js"].content_type == "application/javascript"
    assert assets["vendor/editor.js"].gzipped is None  # too small to be worth it


def test_a_missing_page_fails_the_start_and_a_missing_editor_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = site(tmp_path / "no-editor", vendor=False)
    with caplog.at_level(logging.WARNING, logger="cellblock.api"):
        pages.load_assets(root)
    assert "make web" in caplog.text
    (root / "dashboard.html").unlink()
    with pytest.raises(FileNotFoundError, match=r"dashboard\.html"):
        pages.load_assets(root)


@pytest.mark.parametrize(
    ("header", "gzip"),
    [
        ("gzip", True),
        ("br, gzip, deflate", True),
        ("gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("br;q=1, gzip;q=0", False),
        ("identity", False),
        ("", False),
    ],
)
def test_gzip_goes_to_who_takes_it(header: str, gzip: bool) -> None:
    assert pages.accepts_gzip(make_mocked_request("GET", "/", headers={"Accept-Encoding": header})) is gzip

"""jail.run's `collect`: globs under /box, planted links never followed, caps that truncate.

The program runs in the real jail and plants what a hostile one would: a file link to the
host's /etc/passwd, a directory link to /etc, a chain of links, a FIFO, a socket. Reading
back happens on the host side as root, where a followed link would read the host's files.
"""

from __future__ import annotations

import time

import pytest

from jail import JailError, Limits, RunSpec, Status, run

PYTHON = "/usr/bin/python3"

PLANT = """
import os, socket
os.makedirs("out/sub")
open("report.json", "w").write('{"ok": true}')
open(".hidden.json", "w").write("dot")
open("out/a.png", "wb").write(b"\\x89PNG-a")
open("out/sub/b.png", "wb").write(b"\\x89PNG-b")
open("out/c.txt", "w").write("c")
os.symlink("/etc/passwd", "leak.json")            # a file link to a host file
os.symlink("leak.json", "chain1.json")            # a chain of links
os.symlink("chain1.json", "chain2.json")
os.symlink("/etc", "etc")                         # a directory link
os.symlink("/", "root")
os.symlink("/etc/passwd", "out/inner.png")        # a link inside a collected directory
os.symlink("/etc", "out/sub/up")
os.mkfifo("pipe.json")                            # a reader would block on it
s = socket.socket(socket.AF_UNIX)
s.bind("sock.json")
print("planted")
"""


def plant(collect: list[str], **caps: int) -> tuple[dict[str, bytes], bool]:
    r = run(RunSpec(argv=[PYTHON, "-c", PLANT], collect=collect, **caps))  # type: ignore[arg-type]
    assert r.status is Status.OK, r
    assert r.stdout == b"planted\n", r
    return r.files, r.files_truncated


def test_only_the_real_regular_files_come_back() -> None:
    t0 = time.monotonic()
    files, truncated = plant(
        [
            "*.json",  # report.json, .hidden.json; not the links, the FIFO or the socket
            "out/*.png",  # not out/inner.png (a link), not out/sub/b.png (* stays in one component)
            "etc/passwd",  # through the directory link
            "etc",
            "etc/*",
            "root/etc/passwd",
            "out/sub/up/passwd",
            "leak.json",
            "chain2.json",
            "pipe.json",
        ]
    )
    assert time.monotonic() - t0 < 10  # the FIFO was never opened for reading
    assert files == {
        ".hidden.json": b"dot",
        "report.json": b'{"ok": true}',
        "out/a.png": b"\x89PNG-a",
    }
    assert not truncated
    with open("/etc/passwd", "rb") as f:
        passwd = f.read()
    assert all(passwd not in content for content in files.values())


def test_a_directory_is_collected_whole_without_its_links() -> None:
    files, truncated = plant(["out"])
    assert files == {"out/a.png": b"\x89PNG-a", "out/c.txt": b"c", "out/sub/b.png": b"\x89PNG-b"}
    assert not truncated


@pytest.mark.parametrize(
    "pattern,names",
    [
        ("out/*/*.png", ["out/sub/b.png"]),
        ("out/?.png", ["out/a.png"]),
        ("out/[ab].*", ["out/a.png"]),
        ("out/[!a]*", ["out/c.txt", "out/sub/b.png"]),  # a directory the glob matches: whole
        ("./out//c.txt", ["out/c.txt"]),  # '.' and empty components are dropped
        ("nothing*", []),
        ("missing/a.png", []),
        ("report.json/x", []),  # a file where the pattern goes on
    ],
)
def test_glob_semantics(pattern: str, names: list[str]) -> None:
    files, truncated = plant([pattern])
    assert sorted(files) == names
    assert not truncated


def test_a_file_two_patterns_match_comes_once() -> None:
    files, truncated = plant(["out/a.png", "out/*", "out"], collect_files=3)
    assert list(files) == ["out/a.png", "out/c.txt", "out/sub/b.png"]  # pattern order, then names
    assert not truncated


WRITE = "for i in range(10): open(f'f{i}', 'wb').write(bytes([65 + i]) * 1000)"


def write_ten(**caps: int) -> tuple[dict[str, bytes], bool]:
    r = run(RunSpec(argv=[PYTHON, "-c", WRITE], collect=["f*"], **caps))  # type: ignore[arg-type]
    assert r.status is Status.OK, r  # a cap is never the run's failure
    return r.files, r.files_truncated


def test_file_count_cap_truncates() -> None:
    files, truncated = write_ten(collect_files=3)
    assert list(files) == ["f0", "f1", "f2"] and truncated
    files, truncated = write_ten(collect_files=10)
    assert len(files) == 10 and not truncated


def test_byte_cap_truncates_and_never_cuts_a_file() -> None:
    files, truncated = write_ten(collect_bytes=2500)
    assert files == {"f0": b"A" * 1000, "f1": b"B" * 1000} and truncated
    files, truncated = write_ten(collect_bytes=999)
    assert files == {} and truncated
    files, truncated = write_ten(collect_bytes=10_000)
    assert len(files) == 10 and not truncated


def test_hard_links_count_against_the_byte_cap() -> None:
    # One 1 MiB file linked 200 times: 200 MiB to read if links were free.
    code = "import os\nopen('big', 'wb').write(b'x' * (1 << 20))\nfor i in range(200): os.link('big', f'l{i:03}')"
    r = run(RunSpec(argv=[PYTHON, "-c", code], collect=["*"]))
    assert r.status is Status.OK, r
    assert r.files_truncated
    assert len(r.files) == Limits().disk >> 20  # no cap given: the run's disk limit bounds the bytes


def test_deep_directories_truncate() -> None:
    code = "import os\nos.makedirs('d/' * 30)\nopen('d/' * 30 + 'x', 'w').write('deep')"
    r = run(RunSpec(argv=[PYTHON, "-c", code], collect=["d"]))
    assert r.status is Status.OK, r
    assert r.files == {} and r.files_truncated


@pytest.mark.parametrize("pattern", ["../etc/passwd", "/etc/passwd", "out/../../x", "", ".", "a\0b"])
def test_patterns_outside_box_are_refused(pattern: str) -> None:
    with pytest.raises(JailError, match="collect pattern"):
        run(RunSpec(argv=["/bin/true"], collect=["ok", pattern]))


def test_modes_the_program_took_away_do_not_fail_the_collect() -> None:
    code = (
        "import os\nos.makedirs('locked/inner')\nopen('locked/inner/x', 'w').write('x')\n"
        "open('mute', 'w').write('m')\nos.chmod('mute', 0)\nos.chmod('locked/inner', 0o444)\nos.chmod('locked', 0)"
    )
    r = run(RunSpec(argv=[PYTHON, "-c", code], collect=["*", "locked/*/x"]))
    assert r.status is Status.OK, r
    assert set(r.files) <= {"mute", "locked/inner/x"}  # what root may read: never an error

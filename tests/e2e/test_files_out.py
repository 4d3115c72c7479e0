"""`collect` through the real stack: files a program wrote come back base64 in each test's
result; a link it planted does not; caps and CELLBLOCK_MAX_RESULT truncate, never fail."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from core.limits import COLLECT_FILES
from tests.conftest import RedisServer, Stack, make_stack


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


WRITER = """
import os
os.makedirs("out")
open("report.json", "w").write('{"score": 3}')
open("out/a.png", "wb").write(bytes(range(256)))
open("out/b.png", "wb").write(b"\\xff\\xd8")
open("out/notes.txt", "w").write("not asked for")
print("done")
"""


def test_run_mode_files_come_back_base64(stack: Stack) -> None:
    view = stack.submit({"language": "python3", "source": WRITER, "collect": ["report.json", "out/*.png"]})
    assert view["verdict"] == "accepted" and view["stdout"] == "done\n", view
    want = {"report.json": b64(b'{"score": 3}'), "out/a.png": b64(bytes(range(256))), "out/b.png": b64(b"\xff\xd8")}
    assert view["tests"][0]["files"] == want  # base64 although the submission's encoding is utf-8
    assert view["tests"][0]["files_truncated"] is False
    assert view["files"] == want and view["files_truncated"] is False  # run mode: lifted to the top


def test_without_collect_there_are_no_files(stack: Stack) -> None:
    view = stack.submit({"language": "python3", "source": WRITER})
    assert view["verdict"] == "accepted", view
    assert view["tests"][0]["files"] == {} and view["tests"][0]["files_truncated"] is False


C_ECHO_TO_FILE = (
    "#include <stdio.h>\n"
    'int main(){char s[64];if(scanf("%63s",s)!=1)return 1;'
    'FILE*f=fopen("answer.txt","w");fprintf(f,"got %s",s);fclose(f);puts(s);return 0;}'
)


def test_judge_mode_files_per_test(stack: Stack) -> None:
    tests = [{"input": "one\n", "expected_output": "one\n"}, {"input": "two\n", "expected_output": "two\n"}]
    view = stack.submit({"language": "c", "source": C_ECHO_TO_FILE, "tests": tests, "collect": ["*.txt"]})
    assert view["verdict"] == "accepted", view
    assert [t["files"] for t in view["tests"]] == [{"answer.txt": b64(b"got one")}, {"answer.txt": b64(b"got two")}]
    assert "files" not in view  # judge mode: per test only


PLANTER = """
import os
os.symlink("/etc/passwd", "leak.json")
os.symlink("leak.json", "chained.json")
os.symlink("/etc", "out")
os.mkfifo("fifo.json")
open("real.json", "w").write("{}")
print("planted")
"""


def test_collect_refuses_a_planted_symlink(stack: Stack) -> None:
    view = stack.submit({"language": "python3", "source": PLANTER, "collect": ["*.json", "out/*", "out/passwd"]})
    assert view["verdict"] == "accepted" and view["stdout"] == "planted\n", view
    assert view["files"] == {"real.json": b64(b"{}")}, view["files"]
    assert view["files_truncated"] is False
    with open("/etc/passwd", "rb") as f:
        passwd = f.read()
    assert all(passwd[:32] not in base64.b64decode(v) for v in view["files"].values())


def test_too_many_files_truncate_not_fail(stack: Stack) -> None:
    source = f"for i in range({COLLECT_FILES + 6}): open(f'f{{i:03}}.txt', 'w').write(str(i))\n"
    view = stack.submit({"language": "python3", "source": source, "collect": ["*.txt"]})
    assert view["verdict"] == "accepted", view
    assert len(view["files"]) == COLLECT_FILES and view["files_truncated"] is True
    assert sorted(view["files"])[0] == "f000.txt"


@pytest.fixture(scope="module")
def small_result_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One worker whose results keep at most 10000 bytes of output."""
    s = make_stack(
        redis_server, tmp_path_factory.mktemp("collect-budget"), "collect", 1, {"CELLBLOCK_MAX_RESULT": "10000"}
    )
    yield s
    s.stop()


def test_files_share_the_result_budget(small_result_stack: Stack) -> None:
    # 4000 bytes of stdout, then three 4000-byte files: 6000 bytes of the 10000 are left for
    # the files, so one fits whole; the next would not, and none is ever cut.
    source = "print('x' * 3999)\nfor n in 'abc': open(n + '.bin', 'wb').write(n.encode() * 4000)\n"
    view = small_result_stack.submit({"language": "python3", "source": source, "collect": ["*.bin"]})
    assert view["verdict"] == "accepted", view
    assert len(view["stdout"]) == 4000 and view["tests"][0]["stdout_truncated"] is False
    assert view["files"] == {"a.bin": b64(b"a" * 4000)} and view["files_truncated"] is True

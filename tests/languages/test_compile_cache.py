"""The on-disk compile cache: keys, round trips, concurrent writers, LRU eviction."""

from __future__ import annotations

import os
from multiprocessing import get_context
from pathlib import Path

from core import settings
from policies.languages import available_languages, toolchain_fingerprint
from worker import toolchain
from worker.compile_cache import CompileCache, cache_key


def test_key_depends_on_every_input() -> None:
    base = cache_key("c", "12.2.0", {"main.c": b"int main(){}"}, ["-O2"])
    assert base == cache_key("c", "12.2.0", {"main.c": b"int main(){}"}, ["-O2"])
    others = {
        cache_key("cpp", "12.2.0", {"main.c": b"int main(){}"}, ["-O2"]),
        cache_key("c", "12.3.0", {"main.c": b"int main(){}"}, ["-O2"]),
        cache_key("c", "12.2.0", {"main.c": b"int main(){ }"}, ["-O2"]),
        cache_key("c", "12.2.0", {"x.c": b"int main(){}"}, ["-O2"]),
        cache_key("c", "12.2.0", {"main.c": b"int main(){}"}, ["-O3"]),
        cache_key("c", "12.2.0", {"main.c": b"int main(){}"}, []),
        cache_key("c", "12.2.0", {"main.c": b"int main(){}"}, ["-O2"], "gcc -O3"),
    }
    assert base not in others and len(others) == 7


def test_round_trip_and_miss(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path, 1 << 20)
    key = cache_key("java", "17", {"Main.java": b"x"}, [])
    assert cache.get(key) is None
    files = {"out/Main.class": b"\xca\xfe\xba\xbe" * 10, "out/Main$1.class": b"", "x": b"1"}
    cache.put(key, files)
    assert cache.get(key) == files


def test_corrupt_entry_is_a_miss(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path, 1 << 20)
    key = cache_key("c", "1", {"main.c": b"x"}, [])
    cache.put(key, {"main": b"abc"})
    (tmp_path / f"{key}.entry").write_bytes(b"garbage")
    assert cache.get(key) is None
    assert not (tmp_path / f"{key}.entry").exists()


def test_env_configuration(tmp_path: Path) -> None:
    cfg = settings.load({"CELLBLOCK_CACHE_DIR": str(tmp_path / "c"), "CELLBLOCK_COMPILE_CACHE_MAX": "3M"})
    cache = toolchain.configured_cache(cfg)
    assert cache is not None and cache.directory == tmp_path / "c" and cache.max_bytes == 3 << 20
    assert (tmp_path / "c").is_dir()
    (tmp_path / "file").write_bytes(b"")  # a directory that cannot be made: no cache, no failure
    assert toolchain.configured_cache(settings.load({"CELLBLOCK_CACHE_DIR": str(tmp_path / "file" / "c")})) is None


def test_lru_eviction(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path, 350_000)
    keys = [cache_key("c", "1", {"main.c": str(i).encode()}, []) for i in range(5)]
    for i, key in enumerate(keys[:3]):
        cache.put(key, {"main": bytes(100_000)})
        os.utime(tmp_path / f"{key}.entry", (1000 + i, 1000 + i))
    assert cache.get(keys[0]) is not None  # a hit makes keys[0] the most recent
    cache.put(keys[3], {"main": bytes(100_000)})  # over the bound: keys[1] goes
    assert cache.get(keys[1]) is None
    assert all(cache.get(k) is not None for k in (keys[0], keys[2], keys[3]))
    assert cache.total_size() <= 350_000
    cache.put(keys[4], {"main": bytes(1_000_000)})  # larger than the whole cache: not kept
    assert cache.get(keys[4]) is None


def _writer(directory: str, n: int, seed: int) -> int:
    cache = CompileCache(directory, 2_000_000)
    bad = 0
    for i in range(n):
        key = cache_key("c", "1", {"main.c": str(i % 20).encode()}, [])
        blob = bytes([i % 20]) * (50_000 + (i % 20) * 1000)
        cache.put(key, {"main": blob, "seed": str(seed).encode()})
        got = cache.get(key)
        # A concurrent evictor may have removed it; a partial entry would be a bug.
        if got is not None and got["main"] != blob:
            bad += 1
    return bad


def test_concurrent_writers_never_expose_partial_entries(tmp_path: Path) -> None:
    ctx = get_context("fork")
    with ctx.Pool(4) as pool:
        bad = pool.starmap(_writer, [(str(tmp_path), 150, s) for s in range(4)])
    assert bad == [0, 0, 0, 0]
    cache = CompileCache(tmp_path, 2_000_000)
    assert cache.total_size() <= 2_000_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    # every entry left is whole
    for entry in tmp_path.glob("*.entry"):
        assert cache.get(entry.stem) is not None


def test_a_replaced_toolchain_changes_the_key(tmp_path: Path) -> None:
    """A Debian patch update keeps gcc's "12.2.0" but replaces its files: the cache must not hand
    back what the old compiler built (the key used the version string alone)."""
    compiler = tmp_path / "cc"
    compiler.write_bytes(b"old compiler")
    os.utime(compiler, ns=(1_000_000_000, 1_000_000_000))
    before = toolchain_fingerprint((str(compiler),))
    assert toolchain_fingerprint((str(compiler),)) == before
    compiler.write_bytes(b"new compiler")  # same size, new contents and time
    os.utime(compiler, ns=(2_000_000_000, 2_000_000_000))
    after = toolchain_fingerprint((str(compiler),))
    assert after != before
    files = {"main.c": b"int main(){}"}
    assert cache_key("c", f"12.2.0 {before}", files, []) != cache_key("c", f"12.2.0 {after}", files, [])
    c = available_languages()["c"]  # every language carries its fingerprint
    assert c.toolchain == toolchain_fingerprint(c.requires)

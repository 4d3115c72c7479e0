"""On-disk cache of successful compiles, shared by every worker process on a host.

Owns the cache key (language id + the installed toolchain's version and file fingerprint +
compile recipe + sources + options), the entry file format, and the size bound. Identical
compiles happen once; a hit hands back the artifact files without running the compiler.

Safety with concurrent writers: an entry is written to a temporary file in the cache
directory and `os.rename`d into place (atomic on one filesystem), so a reader sees a
whole entry or none. Eviction (least recently used first, by mtime, which a hit
refreshes) runs under an exclusive `fcntl.flock` on `.lock` so two evictors do not
fight; a reader racing an eviction has its file open already (unlink keeps the inode)
or gets a miss.

Where and how large: CELLBLOCK_CACHE_DIR and CELLBLOCK_COMPILE_CACHE_MAX (core/settings.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import struct
import tempfile
from pathlib import Path

_MAGIC = b"CBCC1\n"
_SUFFIX = ".entry"


def cache_key(language_id: str, toolchain: str, files: dict[str, bytes], options: list[str], recipe: str = "") -> str:
    """Hex digest naming one compile: same inputs, same key. Field order is fixed.

    `toolchain` names the installed compiler exactly (its version and the fingerprint of its
    files, policies.languages.toolchain_fingerprint), so an updated compiler does not hand back
    binaries the old one built. `recipe` describes how the language compiles (its command,
    environment...), so an edited language definition does not either.
    """
    h = hashlib.sha256()
    h.update(json.dumps([language_id, toolchain, list(options), recipe]).encode())
    for name in sorted(files):
        h.update(b"\0F" + name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def _encode(files: dict[str, bytes]) -> bytes:
    index = json.dumps([[name, len(data)] for name, data in sorted(files.items())]).encode()
    return b"".join([_MAGIC, struct.pack("<I", len(index)), index, *(files[n] for n in sorted(files))])


def _decode(blob: bytes) -> dict[str, bytes]:
    if not blob.startswith(_MAGIC):
        raise ValueError("not a compile cache entry")
    pos = len(_MAGIC)
    (n,) = struct.unpack_from("<I", blob, pos)
    pos += 4
    index = json.loads(blob[pos : pos + n])
    pos += n
    out: dict[str, bytes] = {}
    for name, size in index:
        out[name] = blob[pos : pos + size]
        pos += size
    if pos != len(blob):
        raise ValueError("truncated compile cache entry")
    return out


class CompileCache:
    """A directory of entries `<key>.entry`, bounded to `max_bytes` in total."""

    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, key: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", key):
            raise ValueError(f"bad cache key {key!r}")
        return self.directory / (key + _SUFFIX)

    def get(self, key: str) -> dict[str, bytes] | None:
        """The artifact files stored under `key`, or None. A hit refreshes its LRU age."""
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                blob = fh.read()
        except FileNotFoundError:
            return None
        try:
            os.utime(path)
        except FileNotFoundError:
            pass  # evicted since we opened it: what we read is still whole
        try:
            return _decode(blob)
        except (ValueError, struct.error, json.JSONDecodeError):
            # A corrupt entry (disk trouble, foreign file): drop it and compile again.
            path.unlink(missing_ok=True)
            return None

    def put(self, key: str, files: dict[str, bytes]) -> None:
        """Store `files` under `key` atomically, then evict down to the size bound."""
        blob = _encode(files)
        if len(blob) > self.max_bytes:
            return
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.rename(tmp, self._path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.evict()

    def total_size(self) -> int:
        return sum(size for _, _, size in self._entries())

    def _entries(self) -> list[tuple[float, Path, int]]:
        out = []
        for entry in os.scandir(self.directory):
            if entry.name.endswith(_SUFFIX):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                out.append((st.st_mtime, Path(entry.path), st.st_size))
        return out

    def evict(self) -> int:
        """Delete least recently used entries until the total fits; returns bytes freed."""
        freed = 0
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = sorted(self._entries())
            total = sum(size for _, _, size in entries)
            for _, path, size in entries:
                if total <= self.max_bytes:
                    break
                path.unlink(missing_ok=True)
                total -= size
                freed += size
        return freed

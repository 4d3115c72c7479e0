"""The pure cgroup v2 test host's boot files: a Debian kernel and a hand-made initramfs.

`image.py 6.1` (Debian 12's own kernel) or `image.py 6.12` (Debian 12's backports) leaves
var/vm/<release>/{vmlinuz,initrd.img} and prints that directory. The kernel package is
fetched with `apt-get download` from the mirror this host's apt already uses (for 6.12 its
bookworm-backports suite, through a private apt state in var/vm/apt) and unpacked with
`dpkg-deb -x`, never installed: installing it would pull in initramfs-tools and udev. The
initramfs holds busybox (Debian's busybox-static), the modules needed to mount the host's
root over 9p under a tmpfs overlay (with their dependencies, read from each module's
modinfo) and tests/vm/initramfs-init. Done once per release; later calls only print.
"""

from __future__ import annotations

import argparse
import lzma
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE.parent.parent / "var" / "vm"
BUSYBOX = Path("/bin/busybox")  # busybox-static: runs with no library in the initramfs
# What the initramfs mounts with; everything else the test host needs is in the kernel.
WANTED = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
# release -> (apt suite, meta package whose dependency is the current kernel image)
RELEASES = {"6.1": ("bookworm", "linux-image-amd64"), "6.12": ("bookworm-backports", "linux-image-amd64")}


def apt_options(suite: str) -> list[str]:
    """apt options that read only `suite` of this host's Debian sources, with state of our own
    (the host's apt is left alone: no new source, no lock taken)."""
    if suite == "bookworm":
        return []
    state = CACHE / "apt"
    parts = state / "sources.list.d"
    for d in (parts, state / "lists" / "partial", state / "cache" / "archives" / "partial"):
        d.mkdir(parents=True, exist_ok=True)
    host = Path("/etc/apt/sources.list.d/debian.sources").read_text()
    stanza = next(s for s in host.split("\n\n") if re.search(r"^Suites:(.* )?bookworm( |$)", s, re.M))
    (parts / "debian.sources").write_text(re.sub(r"^Suites:.*$", f"Suites: {suite}", stanza, flags=re.M) + "\n")
    return [
        "-o", "Dir::Etc::SourceList=/dev/null",
        "-o", f"Dir::Etc::SourceParts={parts}",
        "-o", f"Dir::State::Lists={state / 'lists'}",
        "-o", f"Dir::Cache={state / 'cache'}",
        "-o", "Debug::NoLocking=1",
    ]  # fmt: skip


def kernel_package(release: str, home: Path) -> Path:
    """The newest kernel image package of `release`, downloaded into `home` once and kept."""
    kept = sorted(home.glob("linux-image-*.deb"))
    if kept:
        return kept[-1]
    suite, meta = RELEASES[release]
    options = apt_options(suite)
    if options:
        subprocess.run(["apt-get", *options, "-q", "update"], check=True, stdout=subprocess.DEVNULL)
    depends = subprocess.run(["apt-cache", *options, "depends", meta], check=True, capture_output=True, text=True)
    package = re.search(r"Depends: (linux-image-\S+)", depends.stdout)
    if package is None:
        raise SystemExit(f"apt-cache depends {meta} ({suite}) names no kernel image")
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", *options, "-q", "download", package[1]], check=True, cwd=home, stdout=subprocess.DEVNULL)
    (deb,) = home.glob("linux-image-*.deb")
    return deb


def module_data(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.suffix == ".xz" else data


def modules_in_load_order(moddir: Path) -> list[tuple[str, bytes]]:
    """WANTED modules and what they depend on (a module's `depends=` in its .modinfo), each
    before its users; a module built into this kernel (no file) is left out."""
    files = {re.sub(r"\.ko(\.xz)?$", "", p.name).replace("-", "_"): p for p in moddir.rglob("*.ko*")}
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in files:
            return
        seen.add(name)
        data = module_data(files[name])
        found = re.search(rb"(?:^|\0)depends=([^\0]*)\0", data)
        for dep in found[1].decode().split(",") if found and found[1] else []:
            visit(dep.replace("-", "_"))
        order.append((name, data))

    for name in WANTED:
        visit(name)
    return order


def build_initramfs(tree: Path, version: str, out: Path) -> None:
    staging = out.parent / "initramfs"
    shutil.rmtree(staging, ignore_errors=True)
    for d in ("bin", "dev", "proc", "sys", "modules"):
        (staging / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, staging / "bin" / "busybox")
    shutil.copy2(HERE / "initramfs-init", staging / "init")
    names = []
    for i, (name, data) in enumerate(modules_in_load_order(tree / "lib" / "modules" / version)):
        names.append(f"{i:02d}-{name}.ko")
        (staging / "modules" / names[-1]).write_bytes(data)
    listing = subprocess.run(["find", "."], cwd=staging, check=True, capture_output=True).stdout
    archive = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet"], cwd=staging, input=listing, check=True, capture_output=True
    )
    partial = out.with_suffix(".partial")  # a build cut short never passes for a finished one
    with partial.open("wb") as f:
        subprocess.run(["gzip", "-1"], input=archive.stdout, stdout=f, check=True)
    os.replace(partial, out)
    shutil.rmtree(staging)
    print(f"initramfs: busybox + {' '.join(names)}", file=sys.stderr)


def prepare(release: str) -> Path:
    """var/vm/<release> with vmlinuz and initrd.img, made if missing or older than what makes them."""
    home = CACHE / release
    kernel, initrd = home / "vmlinuz", home / "initrd.img"
    makers = max(f.stat().st_mtime for f in (HERE / "initramfs-init", Path(__file__)))
    if kernel.exists() and initrd.exists() and initrd.stat().st_mtime >= makers:
        return home
    deb = kernel_package(release, home)
    package = subprocess.run(["dpkg-deb", "-f", str(deb), "Package"], check=True, capture_output=True, text=True)
    version = package.stdout.strip().removeprefix("linux-image-")
    tree = home / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    shutil.copy2(tree / "boot" / f"vmlinuz-{version}", kernel)
    (home / "version").write_text(version + "\n")
    build_initramfs(tree, version, initrd)
    shutil.rmtree(tree)
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("release", choices=sorted(RELEASES), nargs="?", default="6.12")
    print(prepare(parser.parse_args().release))


if __name__ == "__main__":
    main()

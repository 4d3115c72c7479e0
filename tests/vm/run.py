"""Run a command on a pure cgroup v2 test host: a QEMU VM of this machine's own root.

    python tests/vm/run.py [--kernel 6.12] [--timeout S] -- COMMAND [ARG...]

boots the kernel that tests/vm/image.py prepares with `cgroup_no_v1=all` (every controller
on the one cgroup2 hierarchy, as on Debian 12, Ubuntu 22.04+, Fedora and Kubernetes
nodes), 1 vCPU, 2 GiB, no network interface (`-nic none`), this host's root read-only over
9p under a tmpfs overlay; runs COMMAND as root in the current directory and exits with its
status. The console (kernel messages and the command's output) streams to stdout as it
comes. Without KVM (TCG only, as on the machines this was made on) the guest runs some
15-20x slower than the host.

Exit status: the command's; 124 when it ran out of --timeout (the VM is killed); 1 when
the VM stopped without one (it failed to boot: the console says why).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import image  # a script beside this one, not a package

GUEST = Path(__file__).resolve().parent / "guest.sh"


def qemu_command(boot: Path, xchg: Path, memory: str) -> list[str]:
    kernel_args = [
        "console=ttyS0",
        "quiet",
        "loglevel=2",  # panics and the like; not every OOM kill the tests cause
        "panic=-1",  # a guest panic reboots, which -no-reboot turns into qemu exiting
        "cgroup_no_v1=all",
        "mitigations=off",  # a guest of its own under emulation: nothing to shield from
    ]
    share = "security_model=none,multidevs=remap"
    return [
        "qemu-system-x86_64",
        "-machine", "q35",
        "-accel", "tcg",  # KVM here fails at the first instruction of the kernel (nested, in a microVM),
        "-cpu", "max",
        "-smp", "1",
        "-m", memory,
        "-nic", "none",
        "-display", "none",
        "-monitor", "none",
        "-serial", "stdio",
        "-no-reboot",
        "-kernel", str(boot / "vmlinuz"),
        "-initrd", str(boot / "initrd.img"),
        "-append", " ".join(kernel_args),
        "-virtfs", f"local,path=/,mount_tag=host,readonly=on,{share}",
        "-virtfs", f"local,path={xchg},mount_tag=xchg,{share}",
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", choices=sorted(image.RELEASES), default="6.12")
    parser.add_argument("--memory", default="2G")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before the VM is killed")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()

    boot = image.prepare(args.kernel)
    with tempfile.TemporaryDirectory(prefix="cellblock-vm-") as tmp:
        xchg = Path(tmp)
        (xchg / "guest").write_text(str(GUEST))
        (xchg / "cwd").write_text(os.getcwd())
        (xchg / "command").write_bytes(b"".join(a.encode() + b"\0" for a in args.command))
        started = time.monotonic()
        qemu = subprocess.Popen(qemu_command(boot, xchg, args.memory), stdin=subprocess.DEVNULL)
        try:
            qemu.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            qemu.kill()
            qemu.wait()
            print(f"\nvm: killed after {args.timeout:.0f} s (--timeout)", flush=True)
            return 124
        status = xchg / "status"
        took = time.monotonic() - started
        if not status.exists():
            print(f"\nvm: stopped after {took:.0f} s without the command's status (qemu exit {qemu.returncode})")
            return 1
        code = int(status.read_text())
        print(f"\nvm: {' '.join(args.command)} exited {code} after {took:.0f} s (kernel {args.kernel})", flush=True)
        return code


if __name__ == "__main__":
    if shutil.which("qemu-system-x86_64") is None:
        sys.exit("qemu-system-x86_64 is missing: apt-get install qemu-system-x86 (make test installs it)")
    sys.exit(main())

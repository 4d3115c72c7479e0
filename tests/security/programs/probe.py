"""probe.py ACTION ARGS...: a hostile Python program; prints one JSON object of what it saw.

Runs inside the jail under /usr/bin/python3. Every attempt is caught and reported as
"ok:<data>" or the errno name, so the test decides from the outside what leaked.
"""

import errno
import json
import os
import sys


def attempt(fn):
    try:
        return "ok:" + str(fn())
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def read(path):
    if os.path.isdir(path):
        return ",".join(sorted(os.listdir(path)))
    with open(path, "rb") as f:
        return f.read(4096).decode("latin-1")


def write(path):
    with open(path, "w") as f:
        f.write("cellblock-was-here\n")
    return "written"


def walk(token):
    """Every file (outside /proc and /usr) whose name or first 64 KiB holds `token`."""
    hits, seen = [], 0
    tops = [d for d in os.listdir("/") if d not in ("proc", "usr", "sys") and not os.path.islink("/" + d)]
    for top in tops:
        for dirpath, dirnames, filenames in os.walk("/" + top, onerror=lambda e: None):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                seen += 1
                if token in name:
                    hits.append(path)
                elif name in filenames and os.path.isfile(path) and not os.path.islink(path):
                    try:
                        with open(path, "rb") as f:
                            if token.encode() in f.read(1 << 16):
                                hits.append(path)
                    except OSError:
                        pass
    return {"hits": hits, "seen": seen}


def main():
    action, args = sys.argv[1], sys.argv[2:]
    out = {}
    if action == "read":
        out = {p: attempt(lambda p=p: read(p)) for p in args}
    elif action == "write":
        out = {p: attempt(lambda p=p: write(p)) for p in args}
    elif action == "walk":
        out = walk(args[0])
    elif action == "whoami":
        with open("/proc/1/cmdline", "rb") as f:
            out["proc1_cmdline"] = f.read().decode().split("\0")
        out["pid"] = os.getpid()
        out["ppid"] = os.getppid()
        out["pids"] = sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
        out["uid"] = os.getresuid()
        out["gid"] = os.getresgid()
        out["groups"] = os.getgroups()
        with open("/proc/self/uid_map") as f:
            out["uid_map"] = f.read().split()
        out["hostname"] = os.uname().nodename
        out["net"] = sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else None
    elif action == "status":

        def fields(pid):
            with open(f"/proc/{pid}/status") as f:
                return dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)

        out["self"] = {k: v.strip() for k, v in fields("self").items()}
        pid = os.fork()
        if pid == 0:
            os.execv(
                "/usr/bin/python3",
                ["python3", "-c", "import sys; print(open('/proc/self/status').read(), file=sys.stderr)"],
            )
        os.waitpid(pid, 0)
    elif action == "setuid":
        out["setuid0"] = attempt(lambda: os.setuid(0))
        out["seteuid0"] = attempt(lambda: os.seteuid(0))
        out["setresuid0"] = attempt(lambda: os.setresuid(0, 0, 0))
        out["setgid0"] = attempt(lambda: os.setgid(0))
        out["setgroups0"] = attempt(lambda: os.setgroups([0]))
        out["sethostname"] = attempt(lambda: __import__("socket").sethostname("pwned"))
        out["chown_box"] = attempt(lambda: os.chown("/box", 0, 0))
        out["chmod_usr"] = attempt(lambda: os.chmod("/usr/bin/python3", 0o4777))
        out["uid"] = os.getresuid()
    elif action == "links":
        for i, target in enumerate(args):
            out[f"symlink{i}"] = attempt(lambda i=i, t=target: os.symlink(t, f"/box/s{i}"))
            out[f"hardlink{i}"] = attempt(lambda i=i, t=target: os.link(t, f"/box/h{i}"))
        os.mkdir("/box/sub")
        for i, target in enumerate(args):
            os.symlink(target, f"/box/sub/s{i}")
        os.mkfifo("/box/fifo")
        os.symlink("/", "/box/rootlink")
        os.symlink("..", "/box/sub/up")
    elif action == "net":
        import socket

        port, name = int(args[0]), args[1]
        s = socket.socket()
        s.settimeout(1)
        out["tcp"] = attempt(lambda: s.connect(("127.0.0.1", port)))
        u = socket.socket(socket.AF_UNIX)
        u.settimeout(1)
        out["abstract"] = attempt(lambda: u.connect("\0" + name))
        d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        out["udp"] = attempt(lambda: d.sendto(b"ESCAPED", ("127.0.0.1", port)))
    print(json.dumps(out))


main()

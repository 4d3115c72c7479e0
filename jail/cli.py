"""`python -m jail run|doctor`: the jail as a command, the way isolate and nsjail are used.

Exit status of `run` says whether the SANDBOX worked (0) or not (1, with a message on
stderr; 2 for bad usage), never what the program did: that is in the output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from .errors import JailError
from .record import asdict
from .spec import Limits, RunResult, RunSpec, Status, parse_size


def size(text: str) -> int:
    """An argparse type over spec.parse_size, the one size grammar."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def copy_in(text: str) -> tuple[str, str]:
    host, sep, inside = text.rpartition(":")
    if not sep or not host or not inside:
        raise argparse.ArgumentTypeError(f"--copy-in wants HOST_PATH:SANDBOX_PATH, got {text!r}")
    return host, inside


class Help(argparse.HelpFormatter):
    """argparse's help, as wide as argparse makes it (COLUMNS, else the terminal, else 80
    columns), without the shutil argparse imports to find that out at every add_argument:
    some 4 ms of each `python -m jail run`."""

    def __init__(self, prog: str) -> None:
        try:  # shutil.get_terminal_size's answer, without shutil
            columns = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            columns = 0
        if columns <= 0:
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                columns = 0
            columns = columns or 80
        super().__init__(prog, width=columns - 2)


def build_parser() -> argparse.ArgumentParser:
    """The whole command: `run` and `doctor`."""
    parser = argparse.ArgumentParser(
        prog="python -m jail", description="Run one untrusted command isolated.", formatter_class=Help
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_run_arguments(sub.add_parser("run", help="run COMMAND in a throwaway container", formatter_class=Help))
    sub.add_parser("doctor", help="check this host and say what is missing", formatter_class=Help)
    return parser


def build_run_parser() -> argparse.ArgumentParser:
    """`python -m jail run` alone, as the whole command's `run` reads it: what a run builds
    instead of three parsers (each one's set-up asks gettext for its words)."""
    return add_run_arguments(argparse.ArgumentParser(prog="python -m jail run", formatter_class=Help))


def add_run_arguments(run: argparse.ArgumentParser) -> argparse.ArgumentParser:
    d = Limits()
    run.add_argument("--cpu-time", type=positive(float), default=d.cpu_time, metavar="S")
    run.add_argument("--wall-time", type=positive(float), default=d.wall_time, metavar="S")
    run.add_argument("--memory", type=size, default=d.memory, metavar="SIZE")
    run.add_argument("--pids", type=positive(int), default=d.pids, metavar="N")
    run.add_argument("--output", type=size, default=d.output, metavar="SIZE")
    run.add_argument("--file-size", type=size, default=d.file_size, metavar="SIZE")
    run.add_argument("--disk", type=size, default=d.disk, metavar="SIZE")
    run.add_argument("--open-files", type=positive(int), default=d.open_files, metavar="N")
    run.add_argument("--cpus", type=positive(float), default=d.cpus, metavar="N", help="CPU bandwidth share")
    run.add_argument("--pin", type=int, default=None, metavar="CPU", help="pin the run to this CPU")
    run.add_argument("--stdin", default=None, metavar="FILE")
    run.add_argument("--copy-in", type=copy_in, action="append", default=[], metavar="HOST_PATH:SANDBOX_PATH")
    run.add_argument(
        "--profile", default="default", metavar="NAME", help="seccomp profile (policies/seccomp/NAME.toml)"
    )
    run.add_argument("--loopback", action="store_true", help="bring lo up inside the sandbox")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG...]")
    return run


def result_json(result: RunResult) -> dict[str, object]:
    """The result as JSON: outputs as text, and, for an output that is not UTF-8, its exact
    bytes too (`stdout_base64`, `stderr_base64`), which the text can only show replaced."""
    import base64  # only for --json

    out = asdict(result)
    out["status"] = str(result.status)
    out.pop("files")  # the command line collects nothing
    out.pop("files_truncated")
    for name in ("stdout", "stderr"):
        data: bytes = out[name]
        try:
            out[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            out[name] = data.decode("utf-8", errors="replace")
            out[f"{name}_base64"] = base64.b64encode(data).decode("ascii")
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from .config import JailConfig
    from .record import replace
    from .runner import Jail

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        print("python -m jail run: missing COMMAND after --", file=sys.stderr)
        return 2
    files = {}
    for host, inside in args.copy_in:
        try:
            with open(host, "rb") as f:
                files[inside] = f.read()
        except OSError as e:
            print(f"python -m jail run: --copy-in {host}: {e.strerror}", file=sys.stderr)
            return 2
    limits = Limits(
        cpu_time=args.cpu_time,
        wall_time=args.wall_time,
        memory=args.memory,
        pids=args.pids,
        output=args.output,
        file_size=args.file_size,
        disk=args.disk,
        open_files=args.open_files,
        cpus=args.cpus,
    )
    spec = RunSpec(
        argv=argv,
        limits=limits,
        stdin=args.stdin,
        files=files,
        profile=args.profile,
        loopback=args.loopback,
        cpu=args.pin,
    )
    try:
        # One run: build its container in this process, no builder process ahead of demand.
        result = Jail(replace(JailConfig.from_env(), warm=0)).run(spec)
    except (JailError, OSError) as e:  # OSError: the host refused a step (a missing privilege)
        if args.json:
            print(json.dumps({"status": str(Status.INTERNAL_ERROR), "error": str(e)}))
        print(f"python -m jail run: sandbox failure: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result_json(result)))
    else:
        sys.stdout.buffer.write(result.stdout)
        sys.stderr.buffer.write(result.stderr)
        sys.stdout.flush()
        summary = (
            f"status={result.status} exit_code={result.exit_code} signal={result.signal} "
            f"cpu_time={result.cpu_time:.3f}s wall_time={result.wall_time:.3f}s "
            f"peak_memory={result.peak_memory}"
        )
        if result.syscall:
            summary += f" syscall={result.syscall}"
        print(summary, file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["run"]:
        return cmd_run(build_run_parser().parse_args(words[1:]))
    args = build_parser().parse_args(words)
    if args.command == "doctor":
        from .doctor import main as doctor_main

        return doctor_main()
    return cmd_run(args)

"""Entry point of the `cellblock` console script."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from cli import logs
from core import settings as config_mod


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cellblock", description="run untrusted code as a service")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="Redis (unless CELLBLOCK_REDIS_URL), API and one worker per CPU, foreground")
    sub.add_parser("api", help="the HTTP API alone")
    w = sub.add_parser("worker", help="one worker alone (needs root for the jail)")
    w.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    sub.add_parser("config", help="print every CELLBLOCK_* setting with its default")
    from cli import keys as keys_cli

    keys_cli.add_parser(sub)
    s = sub.add_parser("submit", help="submit a program and print the result")
    s.add_argument("file", type=Path)
    s.add_argument("--language", "-l")
    s.add_argument("--stdin", type=Path)
    s.add_argument("--tests", type=Path, help="directory of NAME.in / NAME.out pairs")
    s.add_argument("--json", action="store_true", help="print the raw JSON result")
    s.add_argument(
        "--interactive",
        "-i",
        action="store_true",
        help="a live session: type the program's stdin, see its output as it comes (Ctrl-C kills the run)",
    )
    s.add_argument("--idle-timeout", type=float, help="with --interactive: end the run after this many idle seconds")
    s.add_argument("--url", help="API base URL (default http://CELLBLOCK_HOST:CELLBLOCK_PORT)")
    s.add_argument(
        "--key",
        default=os.environ.get("CELLBLOCK_API_KEY", ""),
        help="API key, sent as a Bearer token (default: $CELLBLOCK_API_KEY)",
    )
    args = parser.parse_args(argv)
    if args.command == "submit" and args.interactive and (args.stdin or args.tests or args.json):
        s.error("--interactive takes stdin from the terminal and prints as it goes: not with --stdin, --tests, --json")
    if args.command == "submit" and args.idle_timeout is not None and not args.interactive:
        s.error("--idle-timeout is for --interactive sessions")

    cfg = config_mod.load()
    if args.command == "config":
        print(config_mod.describe())
        return 0
    if args.command == "keys":
        return keys_cli.run(args, cfg)
    if args.command == "submit":
        from cli.submit import submit

        url = args.url or f"http://{cfg.host}:{cfg.port}"
        if args.interactive:
            from cli.session import interactive

            return interactive(args.file, args.language, args.idle_timeout, url, args.key)
        return submit(args.file, args.language, args.stdin, args.tests, args.json, url, args.key)

    logs.setup(cfg, args.command)
    if args.command == "up":
        from cli.up import up

        return up(cfg)
    if args.command == "api":
        from api.app import serve

        if not cfg.redis_url:
            logging.getLogger("cellblock").info("CELLBLOCK_REDIS_URL empty: using %s", cfg.own_redis_url())
        if not cfg.auth_required:
            logging.getLogger("cellblock").warning(
                "AUTHENTICATION IS OFF (CELLBLOCK_AUTH=%s, listening on %s): anyone who can reach "
                "this port may run code; set CELLBLOCK_AUTH=required and create keys with `cellblock keys`",
                cfg.auth,
                cfg.host,
            )
        serve(cfg)
        return 0
    from worker.runner import run_worker

    run_worker(cfg, burst=args.burst)
    return 0

"""`cellblock keys create|list|revoke|webhook-secret`: manage API keys directly in Redis (admin side)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from core import apikeys, redis_client
from core.keys import Keys
from core.limits import LIMIT_NAMES, ceiling
from core.settings import Config


def add_parser(sub: Any) -> None:
    k = sub.add_parser("keys", help="manage API keys (create, list, revoke) and webhook secrets in Redis")
    ks = k.add_subparsers(dest="keys_command", required=True)
    c = ks.add_parser("create", help="create a key; prints its token once")
    c.add_argument("--name", default="")
    c.add_argument("--rps", type=float, default=0, help="requests per second (0: no limit)")
    c.add_argument("--max-in-flight", type=int, default=0, help="unfinished submissions at once (0: no limit)")
    c.add_argument(
        "--max",
        action="append",
        default=[],
        metavar="LIMIT=VALUE",
        help="highest value of one limit the key may ask for, e.g. cpu_time=2, memory=256M, "
        f"wall_time=10 (repeat it; limits: {', '.join(LIMIT_NAMES)})",
    )
    c.add_argument("--languages", default="", help="comma-separated language ids (empty: all)")
    c.add_argument("--admin", action="store_true", help="an operator's key: may also read the dashboard")
    c.add_argument("--json", action="store_true")
    ks.add_parser("list", help="list keys (never their tokens)").add_argument("--json", action="store_true")
    ks.add_parser("revoke", help="revoke a key by id").add_argument("id")
    w = ks.add_parser(
        "webhook-secret",
        help="print the secret that signs callbacks of submissions made without a key (made on first use)",
    )
    w.add_argument("--key", metavar="ID", help="a key's secret instead (made now for a key older than signing)")


def run(args: argparse.Namespace, cfg: Config) -> int:
    r = redis_client.sync_client(cfg.effective_redis_url())
    keys = Keys(cfg.key_prefix)
    if args.keys_command == "create":
        try:
            ceilings = dict(ceiling(text) for text in args.max)
        except ValueError as exc:
            print(f"cellblock keys create: --max {exc}")
            return 2
        langs = [x.strip() for x in args.languages.split(",") if x.strip()]
        new = apikeys.create_key(
            r,
            keys,
            name=args.name,
            rps=args.rps,
            max_in_flight=args.max_in_flight,
            max_limits=ceilings,
            languages=langs,
            admin=args.admin,
        )
        if args.json:
            print(
                json.dumps(
                    {"id": new.id, "token": new.token, "webhook_secret": new.webhook_secret, "admin": args.admin}
                )
            )
        else:
            print(
                f"id:             {new.id}\ntoken:          {new.token}\nwebhook secret: {new.webhook_secret}\n"
                + ("admin:          yes (may read the dashboard)\n" if args.admin else "")
                + "(the token is shown only now; it is stored hashed. The webhook secret verifies the "
                "signature of this key's callbacks: Standard Webhooks)"
            )
        return 0
    if args.keys_command == "list":
        rows = apikeys.list_keys(r, keys)
        if args.json:
            print(json.dumps(rows))
            return 0
        print(
            f"{'id':16}  {'name':16}  {'rps':>6}  {'in-flight':>9}  {'languages':16}  {'created':20}  "
            f"{'revoked':7}  {'admin':5}  ceilings"
        )
        for row in rows:
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(row.get("created_at", 0))))
            shown = ",".join(
                f"{k}={int(v) if v == int(v) else v}" for k, v in json.loads(row.get("max_limits") or "{}").items()
            )
            print(
                f"{row['id']:16}  {row.get('name', ''):16}  {row['rps']:>6}  {row['max_in_flight']:>9}  "
                f"{row.get('languages') or '*':16}  {created:20}  {'yes' if row.get('revoked') == '1' else 'no':7}  "
                f"{'yes' if row.get('admin') == '1' else 'no':5}  {shown or '-'}"
            )
        return 0
    if args.keys_command == "webhook-secret":
        if args.key is not None and not r.exists(keys.api_key(args.key)):
            print(f"no such key: {args.key}")
            return 1
        print(apikeys.webhook_secret(r, keys, args.key))
        return 0
    if not apikeys.revoke_key(r, keys, args.id):
        print(f"no such key: {args.id}")
        return 1
    print(f"revoked {args.id}")
    return 0

"""API keys in Redis: what a key may do (Principal), creating, listing, revoking, looking up.

A key's token is shown once and stored only as its sha256. `cellblock keys` (cli/keys.py)
manages keys; the API's middleware (api/auth.py) looks them up. The key's ceilings are
checked by core/limits.py like every other limit.

Each key also has a Standard Webhooks secret (`whsec_...`) that signs the callbacks of its
submissions (api/callbacks.py); submissions made without keys are signed with the deployment's.
A signing secret must be stored as it is (the HMAC needs it), so it is kept in the key's hash
and left out of listings.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from core.keys import Keys
from core.limits import LIMIT_NAMES


@dataclass(slots=True)
class Principal:
    """The API key a request authenticated with (its limits; 0 / empty = no limit)."""

    id: str
    rps: float = 0.0
    max_in_flight: int = 0
    max_limits: dict[str, float] = field(default_factory=dict)  # limit name -> highest value it may ask
    languages: list[str] = field(default_factory=list)
    admin: bool = False  # may also read the operators' dashboard (api/auth.py: admin); otherwise an ordinary key

    @classmethod
    def from_hash(cls, h: dict[bytes, bytes]) -> Principal:
        def s(k: str) -> str:
            return h.get(k.encode(), b"").decode()

        return cls(
            id=s("id"),
            rps=float(s("rps") or 0),
            max_in_flight=int(s("max_in_flight") or 0),
            max_limits=json.loads(s("max_limits") or "{}"),
            languages=[x for x in s("languages").split(",") if x],
            admin=s("admin") == "1",  # keys made before admin keys: "" (not an admin)
        )

    def may_use(self, language: str) -> bool:
        return not self.languages or language in self.languages


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class NewKey(NamedTuple):
    """What `create_key` made: the key's id, its token and its webhook secret (both shown once)."""

    id: str
    token: str
    webhook_secret: str


WEBHOOK_SECRET = "webhook_secret"  # the field of a key's hash that holds its signing secret


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64 (the format receivers'
    libraries take as it is)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def stage_webhook_secret(pipe: Any, keys: Keys, key_id: str | None) -> None:
    """Queue the reading of the secret that signs the callbacks of key `key_id`'s submissions
    (None: of submissions made without a key, the deployment's); the pipeline's last reply is it.
    Made on first use by whoever comes first (SET NX / HSETNX, then read back): concurrent
    callers all get the one that was stored. Works with the sync and the asyncio client."""
    if key_id is None:
        pipe.set(keys.webhook_secret(), new_webhook_secret(), nx=True)
        pipe.get(keys.webhook_secret())
    else:  # a key made before callbacks were signed has none yet
        pipe.hsetnx(keys.api_key(key_id), WEBHOOK_SECRET, new_webhook_secret())
        pipe.hget(keys.api_key(key_id), WEBHOOK_SECRET)


def webhook_secret(r: Any, keys: Keys, key_id: str | None = None) -> str:
    """`stage_webhook_secret` on a sync client: the secret (made now if there was none)."""
    with r.pipeline(transaction=True) as pipe:
        stage_webhook_secret(pipe, keys, key_id)
        reply = pipe.execute()[-1]
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def create_key(
    r: Any,
    keys: Keys,
    name: str = "",
    rps: float = 0,
    max_in_flight: int = 0,
    max_limits: dict[str, float] | None = None,
    languages: list[str] | None = None,
    admin: bool = False,
) -> NewKey:
    """Store a new key (hashed). Returns its id, its token (not stored anywhere) and the secret
    that will sign its callbacks. `max_limits`: limit name -> the highest value the key may ask
    for (core.limits.ceiling). `admin`: the key may read the operators' dashboard too."""
    unknown = set(max_limits or {}) - set(LIMIT_NAMES)
    if unknown:
        raise ValueError(f"unknown limits {sorted(unknown)}; known: {', '.join(LIMIT_NAMES)}")
    token = "cb_" + secrets.token_urlsafe(32)
    key_id = secrets.token_hex(8)
    digest = token_digest(token)
    secret = new_webhook_secret()
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(
            keys.api_key(key_id),
            mapping={
                "id": key_id,
                "name": name,
                "hash": digest,
                "rps": str(rps),
                "max_in_flight": str(max_in_flight),
                "max_limits": json.dumps(max_limits or {}),
                "languages": ",".join(languages or []),
                "admin": "1" if admin else "0",
                "created_at": str(time.time()),
                "revoked": "0",
                WEBHOOK_SECRET: secret,
            },
        )
        pipe.set(keys.api_key_by_hash(digest), key_id)
        pipe.sadd(keys.api_key_ids(), key_id)
        pipe.execute()
    return NewKey(key_id, token, secret)


_UNLISTED = {b"hash", WEBHOOK_SECRET.encode()}  # a listing shows no secret, nor a token's hash


def list_keys(r: Any, keys: Keys) -> list[dict[str, str]]:
    out = []
    for raw in sorted(r.smembers(keys.api_key_ids())):
        h = r.hgetall(keys.api_key(raw.decode()))
        if h:
            row = {k.decode(): v.decode() for k, v in h.items() if k not in _UNLISTED}
            row.setdefault("admin", "0")  # a key made before admin keys
            out.append(row)
    return out


def revoke_key(r: Any, keys: Keys, key_id: str) -> bool:
    """Mark a key revoked and drop its token index. False when unknown."""
    h = r.hgetall(keys.api_key(key_id))
    if not h:
        return False
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(keys.api_key(key_id), mapping={"revoked": "1", "revoked_at": str(time.time())})
        pipe.delete(keys.api_key_by_hash(h[b"hash"].decode()))
        pipe.execute()
    return True


async def lookup(r: Any, keys: Keys, token: str) -> Principal | None:
    """The live key whose token this is (async client), or None: unknown or revoked."""
    key_id = await r.get(keys.api_key_by_hash(token_digest(token)))
    if key_id is None:
        return None
    h = await r.hgetall(keys.api_key(key_id.decode()))
    if not h or h.get(b"revoked") == b"1":
        return None
    return Principal.from_hash(h)

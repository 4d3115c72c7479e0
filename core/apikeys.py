"""API keys in Redis: what a key may do (Principal), creating, listing, revoking, looking up.

A key's token is shown once and stored only as its sha256. `cellblock keys` (cli/keys.py)
manages keys; the API's middleware (api/auth.py) looks them up. The key's ceilings are
checked by core/limits.py like every other limit.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

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
        )

    def may_use(self, language: str) -> bool:
        return not self.languages or language in self.languages


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(
    r: Any,
    keys: Keys,
    name: str = "",
    rps: float = 0,
    max_in_flight: int = 0,
    max_limits: dict[str, float] | None = None,
    languages: list[str] | None = None,
) -> tuple[str, str]:
    """Store a new key (hashed). Returns (key id, token); the token is not stored anywhere.
    `max_limits`: limit name -> the highest value the key may ask for (core.limits.ceiling)."""
    unknown = set(max_limits or {}) - set(LIMIT_NAMES)
    if unknown:
        raise ValueError(f"unknown limits {sorted(unknown)}; known: {', '.join(LIMIT_NAMES)}")
    token = "cb_" + secrets.token_urlsafe(32)
    key_id = secrets.token_hex(8)
    digest = token_digest(token)
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
                "created_at": str(time.time()),
                "revoked": "0",
            },
        )
        pipe.set(keys.api_key_by_hash(digest), key_id)
        pipe.sadd(keys.api_key_ids(), key_id)
        pipe.execute()
    return key_id, token


def list_keys(r: Any, keys: Keys) -> list[dict[str, str]]:
    out = []
    for raw in sorted(r.smembers(keys.api_key_ids())):
        h = r.hgetall(keys.api_key(raw.decode()))
        if h:
            out.append({k.decode(): v.decode() for k, v in h.items() if k != b"hash"})
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

"""Every Redis key the service itself uses (RQ keeps its own `rq:*` keys).

One place for the templates so that the API, the worker and the tests agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key templates under one prefix (CELLBLOCK_KEY_PREFIX)."""

    prefix: str = "cellblock"

    def submission(self, sid: str) -> str:
        """Hash: `spec` (submission JSON), `state`, `result` (JSON once finished), `progress`."""
        return f"{self.prefix}:sub:{sid}"

    def events(self, sid: str) -> str:
        """Stream of a submission's events (state, test, finished); late readers replay it."""
        return f"{self.prefix}:sub:{sid}:events"

    def finished(self) -> str:
        """Pub/Sub channel: the id of each submission as it finishes (wakes `wait` requests)."""
        return f"{self.prefix}:finished"

    def events_channel(self, sid: str) -> str:
        """Pub/Sub channel of one submission: a message each time events are appended to its
        stream (wakes its SSE readers, api/wakeups.py)."""
        return f"{self.prefix}:events:{sid}"

    def stdin(self, sid: str) -> str:
        """Stream of what a session's client typed (`d`: bytes, or `eof`), in order;
        the worker deletes each entry once written to the program (api/sessions.py)."""
        return f"{self.prefix}:sub:{sid}:stdin"

    def acked(self, sid: str) -> str:
        """String: bytes of a session's output its client has received (the worker's window)."""
        return f"{self.prefix}:sub:{sid}:acked"

    def lease(self, sid: str) -> str:
        """String with a short TTL, renewed by the worker that runs session `sid`: gone while
        the session is unfinished means that worker died."""
        return f"{self.prefix}:sub:{sid}:lease"

    def kill(self, sid: str) -> str:
        """String, set when a session's client asks for its run's end (or leaves): a flag, not a
        stream entry, so that it cannot pile up and overtakes input the program does not read."""
        return f"{self.prefix}:sub:{sid}:kill"

    def sessions(self, owner: str) -> str:
        """Sorted set: the open sessions of one API key (or "anonymous"), scored by when to
        forget them unless their API process renews them (the per-key session limit)."""
        return f"{self.prefix}:sessions:{owner}"

    def all_sessions(self) -> str:
        """Sorted set: every open session, scored as in `sessions` (the deployment's limit)."""
        return f"{self.prefix}:sessions"

    def callbacks(self) -> str:
        """Stream of finished submissions that have a callback_url; the API delivers them."""
        return f"{self.prefix}:callbacks"

    def callback_group(self) -> str:
        """Consumer group on callbacks(): one delivery per entry across API processes."""
        return "deliverers"

    def api_key(self, key_id: str) -> str:
        """Hash of one API key: id, name, sha256 of the token, limits, created, revoked, and the
        secret that signs its submissions' callbacks (`webhook_secret`)."""
        return f"{self.prefix}:apikey:{key_id}"

    def api_key_ids(self) -> str:
        """Set of every API key id (for `cellblock keys list`)."""
        return f"{self.prefix}:apikeys"

    def api_key_by_hash(self, digest: str) -> str:
        """String: sha256 hex of a token -> its key id."""
        return f"{self.prefix}:apikey-hash:{digest}"

    def rate(self, key_id: str) -> str:
        """Hash: token bucket of one API key (tokens, ts)."""
        return f"{self.prefix}:apikey:{key_id}:rate"

    def in_flight(self, key_id: str) -> str:
        """Sorted set: one API key's unfinished submission ids, scored by when to forget them."""
        return f"{self.prefix}:apikey:{key_id}:inflight"

    def webhook_secret(self) -> str:
        """String: the deployment's Standard Webhooks secret (`whsec_...`), which signs the callbacks
        of submissions made without an API key (a key's own is in its hash). Created on first use."""
        return f"{self.prefix}:webhook-secret"

    def owner(self, sid: str) -> str:
        """String: the API key id that created submission `sid` (absent when auth is off)."""
        return f"{self.prefix}:sub:{sid}:owner"

    def idempotency(self, scope: str, digest: str) -> str:
        """String: submission id created for an Idempotency-Key, scoped per API key."""
        return f"{self.prefix}:idem:{scope}:{digest}"

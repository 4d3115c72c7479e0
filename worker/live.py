"""A run's output as it is produced: `output` events on the submission's event stream.

SSE readers (GET /v1/submissions/{id}/events) and a session's client (api/sessions.py) read
them. The jail hands each chunk to `LiveOutput.write` from its watch loop, which must never
block; a publisher thread sends what has gathered, one event per stream, each time it wakes:
a trickle goes out at once, a flood coalesces into few events (at most PIECE bytes each), and
sends are PACE_S apart at least. A submission's events take at most its `budget` where they
are kept (CELLBLOCK_MAX_RESULT over all its tests, counted in their JSON text, where most control
bytes and every character outside ASCII are escaped: 6 bytes, 12 outside the BMP) and are at most
`events` (core.store.OUTPUT_EVENTS, so that a replay finds its first events). When either runs
out, an event says `truncated` (the count keeps its last place for it), and none follows, of
this test or the next.

With a `window` (sessions), the program's output may run at most that many bytes ahead of
what the client has received, which the API counts in `Keys.acked(sid)`: past it `write`
answers False, the jail stops reading, the program blocks on its full pipe, and nothing
grows anywhere until the client reads again.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import select
import threading
import time
from typing import Any

import redis

from core import store
from core.keys import Keys
from core.models import encode_output

log = logging.getLogger("cellblock.worker")

PIECE = 16 * 1024  # most bytes of one stream in one event (its JSON may be up to 6 times that)
PACE_S = 0.01  # least time between two sends: a trickle of single bytes makes 100 events a second, not 3,000
ACK_POLL_S = 0.01  # how often a paused window looks at what the client has received


class LiveOutput:
    """The jail's OutputSink for one run: output events for test `test` of submission `sid`."""

    capped = True

    def __init__(
        self,
        r: redis.Redis,
        keys: Keys,
        sid: str,
        ttl: int,
        encoding: str,
        test: int,
        keeps: tuple[str, ...] = ("stdout", "stderr"),
        window: int | None = None,
        budget: int | None = None,
        events: int | None = None,
    ) -> None:
        self.r, self.keys, self.sid, self.ttl, self.encoding, self.test = r, keys, sid, ttl, encoding, test
        self.keeps = keeps
        self.window = window
        self.budget = budget  # bytes of JSON text the events may take (None: no bound but the output limit)
        self.sent = 0  # bytes of JSON text the events took
        self.events = events  # output events it may send at most (None: no bound but the budget)
        self.count = 0  # output events sent
        # The budget or the count ran out: a `truncated` event said so (in this test, or in an
        # earlier one when no event is left to send).
        self.stopped = events is not None and events <= 0
        self.produced = 0  # bytes handed to us, both streams
        self.acked = 0  # bytes the client has received (window only)
        self.last_write = time.monotonic()
        self._pending: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self._offsets = {"stdout": 0, "stderr": 0}
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in self._pending}
        self._cond = threading.Condition()
        self._closing = False
        self._closed = threading.Event()  # ends a pause between two sends at once
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._thread = threading.Thread(target=self._publish, name=f"live-{sid[:8]}", daemon=True)
        self._thread.start()

    # The jail's side (its watch loop): never blocks.

    def write(self, stream: str, data: bytes) -> bool:
        with self._cond:
            self._pending[stream] += data
            self.produced += len(data)
            self.last_write = time.monotonic()
            self._cond.notify()
            return self._open()

    def waker(self) -> tuple[int, int]:
        return self._wake, select.POLLIN

    def ready(self) -> bool:
        try:
            os.eventfd_read(self._wake)
        except BlockingIOError:
            pass
        with self._cond:
            return self._open()

    def _open(self) -> bool:
        return self.window is None or self.produced - self.acked < self.window

    # The publisher thread.

    def _publish(self) -> None:
        while True:
            with self._cond:
                while not self._closing and not any(self._pending.values()) and self._open():
                    self._cond.wait()
                taken = {name: bytes(buf) for name, buf in self._pending.items() if buf}
                for buf in self._pending.values():
                    buf.clear()
                closing, paused = self._closing, not self._open()
            names = self._pending if closing else taken  # the last round ends every stream's text
            events = [e for name in names for e in self._events(name, taken.get(name, b""), closing)]
            if events:
                try:
                    store.write_events(self.r, self.keys, self.sid, events, self.ttl)
                except redis.RedisError as exc:  # readers miss output; the result still has it
                    log.warning("output events of %s not sent: %s", self.sid, exc)
            if closing:
                return
            if paused:
                self._await_client()
            elif events:
                self._closed.wait(PACE_S)  # what comes meanwhile goes out together

    def _events(self, name: str, data: bytes, final: bool) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for at in range(0, max(len(data), 1), PIECE):
            piece = data[at : at + PIECE]
            offset = self._offsets[name]
            self._offsets[name] += len(piece)
            if self.stopped:
                continue  # the result has the whole output
            last = final and at + PIECE >= len(data)
            room = self.events is None or self.count < self.events - 1  # the last place: the notice
            text, cost, kept = self._text(name, piece, last) if room else ("", 0, b"")
            cut = len(kept) < len(piece)
            if not (kept or text or cut):
                continue  # a stream's closing round with nothing left: no event
            event = {"test": self.test, "stream": name, "offset": offset, "size": len(kept), "data": text}
            if cut:  # none after this one, of this test or the next
                event["truncated"] = True
                self.stopped = True
            self.sent += cost
            self.count += 1
            out.append(("output", event))
        return out

    def _text(self, name: str, piece: bytes, last: bool) -> tuple[str, int, bytes]:
        """`piece` as an event's text, what that text costs where it is kept (its JSON), and the
        piece, cut to what the budget has left."""
        decoder = self._decoders[name]
        before = decoder.getstate()
        while True:
            if self.encoding == "base64":
                text = encode_output(piece, "base64")
            else:  # a character cut between two chunks is decoded whole, with the second
                text = decoder.decode(piece, last)
            cost = len(json.dumps(text))
            left = None if self.budget is None else self.budget - self.sent
            if left is None or cost <= left:
                return text, cost, piece
            decoder.setstate(before)  # over the budget: this piece again, shorter, and the last
            if not piece:
                return "", 0, piece
            piece, last = piece[: len(piece) * max(0, left) // cost], True

    def _await_client(self) -> None:
        """Paused: look at what the client has received until the window opens (or the run ends)."""
        while True:
            try:
                raw = self.r.get(self.keys.acked(self.sid))
            except redis.RedisError:
                raw = None
            with self._cond:
                if raw is not None:
                    self.acked = max(self.acked, int(raw))
                if self._open() or self._closing:
                    break
                self._cond.wait(ACK_POLL_S)
        os.eventfd_write(self._wake, 1)

    def close(self) -> None:
        """Send what is left and stop the publisher (after the run)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._closed.set()
        self._thread.join()
        os.close(self._wake)

    def __enter__(self) -> LiveOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

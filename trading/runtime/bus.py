"""The one ordered event stream of a session.

Every event goes through `EventBus.publish`, which numbers it and hands it to the subscribers
of its type in the publisher's thread, in the order they subscribed, under the session lock:
the session thread and the execution worker both publish, and the lock gives their events one
total order (the order a recording replays). Subscribers that persist (the journal writer,
then the state writer) subscribe first, so an event is on disk before anything shows it; an
exception there propagates to the publisher (a full disk ends the session, it is not hidden).
Display subscribers (the window, the console) must not raise: they guard themselves.
"""
from __future__ import annotations

import threading
from collections import defaultdict


class EventBus:
    def __init__(self, lock: threading.RLock | None = None) -> None:
        self.lock = lock or threading.RLock()
        self.seq = 0
        self._by_type: dict[type, list] = defaultdict(list)
        self._any: list = []
        self._cache: dict[type, tuple] = {}
        self._n = 0

    def subscribe(self, handler, *types: type, first: bool = False, via: dict | None = None):
        """Call `handler(event)` for events of `types` (every event when none is given);
        `first`: before every subscriber so far (the recorder's flush before the journal);
        `via`: {type: method} of the same subscriber for the types it takes most often (a
        month's replay closes 45,000 candles: no type test per event). Returns the handler."""
        self._n += 1
        n = -self._n if first else self._n
        via = via or {}
        for t in types:
            self._by_type[t].append((n, via.get(t, handler)))
        if not types:
            self._any.append((n, handler))
        self._cache.clear()
        return handler

    def _handlers(self, t: type) -> tuple:
        hs = self._cache.get(t)
        if hs is None:
            both = sorted(self._by_type.get(t, []) + self._any, key=lambda p: p[0])
            hs = self._cache[t] = tuple(h for _, h in both)
        return hs

    def heard(self, t: type) -> bool:
        """Whether any subscriber takes events of type `t` (the engine skips making the
        ones nobody hears)."""
        return bool(self._handlers(t))

    def publish(self, event) -> None:
        with self.lock:
            self.seq += 1
            hs = self._cache.get(type(event))
            for h in (hs if hs is not None else self._handlers(type(event))):
                h(event)

"""Circuit breaker fed by real failures.

Failures are counted in sliding windows of market-data time (epoch ms passed in): protocol
errors, reconnects, order rejects; losses are counted per round trip and against the session's
starting equity. Tripped -> every new entry signal is blocked; after `cooldown_s` the breaker is
half-open: the next entry is allowed, and a failure trips it again at once. The session loss
limit latches: it stays tripped for the rest of the session (a restart does not reset it, since
its inputs come from the persisted ledger).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, fields

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    max_parse_errors: int = 20  # per window
    max_reconnects: int = 5  # per window
    max_rejects: int = 3  # per window
    window_s: float = 300.0
    max_consecutive_losses: int = 4
    max_session_loss_pct: float = 5.0  # of starting equity; latches
    cooldown_s: float = 120.0

    def __post_init__(self) -> None:
        for name in ("max_parse_errors", "max_reconnects", "max_rejects",
                     "max_consecutive_losses"):
            v = getattr(self, name)
            if not (isinstance(v, int) and 1 <= v <= 1_000_000):
                raise ValueError(f"breaker: {name} must be an integer >= 1")
        limits = {"window_s": 7 * 86400.0, "cooldown_s": 7 * 86400.0,
                  "max_session_loss_pct": 100.0}
        for name, hi in limits.items():
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) and 0 < v <= hi):
                raise ValueError(f"breaker: {name} must be > 0 and <= {hi:g}")

    @classmethod
    def from_dict(cls, d: dict) -> "BreakerConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"breaker: unknown setting(s) {sorted(unknown)}")
        return cls(**d)


class CircuitBreaker:
    """Closed / open / half-open state machine; every method takes the data clock `now_ts`."""

    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config or BreakerConfig()
        self.state = CLOSED
        self.tripped_ts: int | None = None
        self.trip_reason: str | None = None
        self.latched = False
        self.trips = 0
        self.consecutive_losses = 0
        self._windows: dict[str, deque] = {k: deque() for k in ("parse", "reconnect", "reject")}

    def _limit(self, kind: str) -> int:
        c = self.config
        return {"parse": c.max_parse_errors, "reconnect": c.max_reconnects,
                "reject": c.max_rejects}[kind]

    def record_failure(self, kind: str, now_ts: int, detail: str = "") -> bool:
        """Count a failure ('parse', 'reconnect', 'reject'); return True if it tripped the breaker."""
        win = self._windows[kind]
        win.append(now_ts)
        horizon = now_ts - int(self.config.window_s * 1000)
        while win and win[0] < horizon:
            win.popleft()
        if self.state == HALF_OPEN:
            return self._trip(now_ts, f"{kind} failure while half-open: {detail}".strip())
        if len(win) >= self._limit(kind):
            return self._trip(now_ts, f"{len(win)} {kind} failures in "
                                      f"{self.config.window_s:.0f}s: {detail}".strip())
        return False

    def record_round_trip(self, pnl: float, now_ts: int) -> bool:
        """Count a closed round trip's net PnL; return True if it tripped the breaker."""
        if pnl < 0:
            self.consecutive_losses += 1
            if self.state == HALF_OPEN:
                return self._trip(now_ts, "loss while half-open")
            if self.consecutive_losses >= self.config.max_consecutive_losses:
                return self._trip(now_ts, f"{self.consecutive_losses} consecutive losses")
        else:
            self.consecutive_losses = 0
        return False

    def check_session_loss(self, starting_equity: float, equity: float, now_ts: int) -> bool:
        """Trip and latch when equity is down more than max_session_loss_pct; return True if so."""
        if self.latched or starting_equity <= 0:
            return False
        loss_pct = (starting_equity - equity) / starting_equity * 100.0
        if loss_pct >= self.config.max_session_loss_pct:
            self._trip(now_ts, f"session loss {loss_pct:.2f}% >= "
                               f"{self.config.max_session_loss_pct}%")
            self.latched = True
            return True
        return False

    def allow(self, now_ts: int) -> bool:
        """Return whether a new entry may be made now (moves open -> half-open after cool-down)."""
        if self.state == OPEN and not self.latched and self.tripped_ts is not None:
            if now_ts - self.tripped_ts >= self.config.cooldown_s * 1000:
                self.state = HALF_OPEN
        return self.state != OPEN

    def record_success(self, now_ts: int) -> None:
        """An entry went through cleanly; a half-open breaker closes."""
        if self.state == HALF_OPEN:
            self.state = CLOSED
            self.trip_reason = None
            for w in self._windows.values():
                w.clear()

    def _trip(self, now_ts: int, reason: str) -> bool:
        was_open = self.state == OPEN
        self.state = OPEN
        self.tripped_ts = now_ts
        self.trip_reason = reason
        if not was_open:
            self.trips += 1
        return not was_open

    def to_state(self) -> dict:
        return {"config": asdict(self.config), "state": self.state, "tripped_ts": self.tripped_ts,
                "trip_reason": self.trip_reason, "latched": self.latched, "trips": self.trips,
                "consecutive_losses": self.consecutive_losses,
                "windows": {k: list(v) for k, v in self._windows.items()}}

    def restore(self, state: dict) -> None:
        self.state = state["state"]
        self.tripped_ts = state.get("tripped_ts")
        self.trip_reason = state.get("trip_reason")
        self.latched = bool(state.get("latched", False))
        self.trips = int(state.get("trips", 0))
        self.consecutive_losses = int(state.get("consecutive_losses", 0))
        for k, v in state.get("windows", {}).items():
            if k in self._windows:
                self._windows[k] = deque(int(x) for x in v)


class NoBreaker(CircuitBreaker):
    """`--no-breaker`: nothing trips and every entry is allowed (a backtest run like the
    peers'); it still counts failures so the report shows them."""

    def _trip(self, now_ts: int, reason: str) -> bool:
        return False

    def allow(self, now_ts: int) -> bool:
        return True

    def check_session_loss(self, starting_equity: float, equity: float, now_ts: int) -> bool:
        return False

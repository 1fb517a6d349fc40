"""Per-client rate limit for POST /feedback: a token bucket per client address, in this worker."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

#: Clients remembered at once; the longest unseen is forgotten first (a full bucket again).
MAX_CLIENTS = 10_000


class RateLimit:
    """`per_minute` requests a minute per client, in bursts of up to as many."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(per_minute)
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when)

    def retry_after(self, client: str) -> int | None:
        """None and one token taken when `client` may go on; else the whole seconds until it may."""
        now = self.clock()
        tokens, then = self.buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens >= 1:
            self.buckets[client] = (tokens - 1, now)
            wait = None
        else:
            self.buckets[client] = (tokens, now)
            wait = max(1, math.ceil((1 - tokens) / self.rate))
        while len(self.buckets) > MAX_CLIENTS:
            self.buckets.popitem(last=False)
        return wait

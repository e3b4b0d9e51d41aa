"""Caller names as the scheduler sees them: a bounded set, so made-up names cannot multiply turns."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

OTHERS = "(others)"  # the one name every caller past the cap shares
FORGET_S = 60.0  # a name unused this long gives its place to a new one


class CallerNames:
    """Gives each of the first ``cap`` active caller names a fair turn of its own; names past the cap
    share the one name :data:`OTHERS`. A name unused for ``forget_s`` frees its place, so a long-lived
    server follows the callers it has now. "" (a caller that does not say) is kept as it is."""

    def __init__(self, cap: int, forget_s: float = FORGET_S, clock: Callable[[], float] = time.monotonic) -> None:
        if cap < 1:
            raise ValueError(f"the cap on named callers must be at least 1, got {cap}")
        self.cap = cap
        self.forget_s = forget_s
        self._clock = clock
        self._last_used: OrderedDict[str, float] = OrderedDict()  # least recently used first

    def __call__(self, name: str) -> str:
        """The name ``name`` is scheduled under."""
        if not name:
            return name
        now = self._clock()
        if name in self._last_used:
            self._last_used.move_to_end(name)
            self._last_used[name] = now
            return name
        if len(self._last_used) >= self.cap:
            oldest, used = next(iter(self._last_used.items()))
            if now - used < self.forget_s:
                return OTHERS
            del self._last_used[oldest]
        self._last_used[name] = now
        return name

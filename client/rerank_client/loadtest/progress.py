"""A live progress line on stderr: elapsed time, requests, requests per second, errors."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from .runner import LiveCounters


class ProgressBar:
    """Redraws one line every ``interval`` seconds (on a terminal) or prints a line every few seconds."""

    def __init__(self, label: str, duration: float | None, requests: int | None, stream: TextIO = sys.stderr) -> None:
        self.label = label
        self.duration = duration
        self.requests = requests
        self.stream = stream
        self.tty = stream.isatty()
        self._counters: LiveCounters | None = None
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0

    def start(self, counters: LiveCounters) -> None:
        """Begin drawing ``counters`` (called by the runner when the first request goes out)."""
        self._counters = counters
        self._t0 = time.perf_counter()
        self._task = asyncio.get_running_loop().create_task(self._draw_forever())

    def _fraction(self, elapsed: float) -> float:
        assert self._counters is not None
        parts = []
        if self.duration:
            parts.append(elapsed / self.duration)
        if self.requests:
            parts.append(self._counters.sent / self.requests)
        return min(1.0, max(parts)) if parts else 0.0

    def line(self) -> str:
        """The current state as text."""
        assert self._counters is not None
        elapsed = time.perf_counter() - self._t0
        filled = int(self._fraction(elapsed) * 24)
        bar = "#" * filled + "-" * (24 - filled)
        rate = self._counters.done / elapsed if elapsed > 0 else 0.0
        return (
            f"{self.label} [{bar}] {elapsed:5.1f}s  {self._counters.done} done  "
            f"{rate:6.1f} req/s  {self._counters.errors} errors  {self._counters.sent - self._counters.done} in flight"
        )

    async def _draw_forever(self) -> None:
        interval = 0.25 if self.tty else 5.0
        while True:
            await asyncio.sleep(interval)
            self._draw()

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\033[K")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and stop."""
        if self._task is not None:
            self._task.cancel()
            self._draw()
            if self.tty:
                self.stream.write("\n")
            self._task = None

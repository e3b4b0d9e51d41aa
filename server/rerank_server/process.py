"""``rerank-server`` as a child process on loopback, for benchmarks and end-to-end tests."""

from __future__ import annotations

import json
import queue
import resource
import signal
import subprocess
import sys
import threading
from types import TracebackType

from .logs import READY


def _message(line: str) -> str:
    """A log line's message: the line itself, or a JSON log record's ``message``."""
    if line.startswith("{"):
        try:
            return str(json.loads(line).get("message", ""))
        except ValueError:
            return ""
    return line


def _ready_target(line: str) -> str | None:
    """The target a ready line (plain, or a JSON log record) announces; None for any other line."""
    line = _message(line)
    return line.split()[-1] if line.startswith(READY) else None


class ServerProcess:
    """``rerank-server`` in a child process on a free loopback port; entering waits for its ready line."""

    def __init__(self, *args: str, ready_timeout: float = 120.0, env: dict[str, str] | None = None, max_open_files: int | None = None) -> None:
        self.args = ["--host", "127.0.0.1", "--port", "0", *args]
        self.env = env
        self.max_open_files = max_open_files  # the child's descriptor limit (soft and hard); None: this process's
        self.ready_timeout = ready_timeout
        self.target = ""
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rerank_server", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            preexec_fn=None if self.max_open_files is None else self._limit_descriptors,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        while True:
            try:
                line = self._lines.get(timeout=self.ready_timeout)
            except queue.Empty:
                raise TimeoutError(f"server not ready after {self.ready_timeout}s:\n{''.join(self.output)}") from None
            if line is None:
                raise RuntimeError(f"server exited before it was ready:\n{''.join(self.output)}")
            ready = _ready_target(line)
            if ready:
                self.target = ready
                return self

    @property
    def http_url(self) -> str:
        """The base URL of the HTTP API (started with ``--http-port``), as the start-up log names it."""
        for line in self.output:
            _, found, rest = _message(line).partition("HTTP on http")
            if found:
                return "http" + rest.split()[0].rstrip(":")
        raise RuntimeError("the server announced no HTTP port: start it with --http-port")

    def _limit_descriptors(self) -> None:
        assert self.max_open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_open_files, self.max_open_files))

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

"""The supervisor: starts the engine process and the front ends, replaces a front end that dies, and
stops them in order.

    start:    hold the shared ports  ->  spawn rerank-engine and rerank-frontend-1..N (they listen at once,
              health NOT_SERVING)  ->  the engine loads and warms up the models  ->  each front end
              connects, loads the models' tokenizers and turns SERVING  ->  "rerank-server ready on ..."
    a front end dies:   its callers' connections close (UNAVAILABLE: clients retry); the engine drops its
              requests; a new one takes its place on the same ports.
    the engine dies:    the front ends turn NOT_SERVING and exit; the server exits 1.
    SIGTERM / SIGINT:   every front end drains (answers what it accepted, refuses the rest with
              UNAVAILABLE); then the engine finishes and stops; the server exits 0.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from ..engine.pool import default_tokenizer_threads
from ..logs import announce_ready
from ..models.device import device_kind
from ..service.http import ENDPOINTS
from ..service.settings import ServerConfig
from .engine import engine_main
from .frontend import frontend_main
from .naming import ENGINE, SUPERVISOR, frontend, name_process
from .ports import SharedPort

log = logging.getLogger("rerank_server")

# A front end that dies this soon after it started is not replaced again: it would only die again
# (a broken install, a port it cannot bind), and the server stops instead.
_CRASH_LOOP_S = 10.0
_ENGINE_STOP_S = 60.0  # the engine's own drain, once the front ends are done


class _Child:
    """A child process and the pipe it reports on."""

    def __init__(self, name: str, process: BaseProcess, control: Connection) -> None:
        self.name = name
        self.process = process
        self.control = control
        self.started = time.monotonic()
        self.ready = False


class Supervisor:
    """Runs the server as one engine process and ``frontends`` front-end processes."""

    def __init__(self, config: ServerConfig, frontends: int) -> None:
        self.frontends = frontends
        self._context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._grpc = SharedPort(config.host, config.port)
        self._http = SharedPort(config.host, config.http_port) if config.http_port is not None else None
        self.config = dataclasses.replace(config, port=self._grpc.port, http_port=self._http.port if self._http else None)
        cores = os.cpu_count() or 1
        kind = device_kind(config.device, config.backend)
        self._tokenizer_threads = config.tokenizer_threads or default_tokenizer_threads(kind, cores, frontends)
        self._dir = tempfile.mkdtemp(prefix="rerank-server-")
        self._socket = os.path.join(self._dir, "engine.sock")
        self._wakeup, self._signalled = socket.socketpair()
        self.engine: _Child | None = None
        self.front: dict[int, _Child] = {}

    @property
    def target(self) -> str:
        """host:port for a client of this server."""
        return f"{self.config.host}:{self.config.port}"

    def run(self) -> int:
        """Serve until a signal (exit 0) or the engine's end (exit 1, or 2 if the models cannot load)."""
        name_process(SUPERVISOR, self.config.log_level, self.config.log_format)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        try:
            return self._supervise()
        finally:
            self._cleanup()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signalled.send(b"\0")

    def _supervise(self) -> int:
        self.engine = self._spawn(ENGINE, engine_main, self.config, self._socket)
        for index in range(1, self.frontends + 1):
            self.front[index] = self._spawn_frontend(index)
        log.info(
            "%d front ends and the engine process starting on %s (health: NOT_SERVING until the models are loaded)",
            self.frontends, self.target,
        )
        if self.config.http_port is not None:
            log.info("HTTP on http://%s:%d: %s", self.config.host, self.config.http_port, ENDPOINTS)
        announced = False
        while True:
            handles: list[Any] = [self._wakeup, self.engine.process.sentinel, self.engine.control]
            for child in self.front.values():
                handles += [child.process.sentinel, child.control]
            for handle in wait(handles):
                if handle is self._wakeup:
                    self._wakeup.recv(64)
                    return self._stop()
                if handle is self.engine.control:
                    code = self._engine_report()
                    if code is not None:
                        return self._stop(code)
                elif handle is self.engine.process.sentinel:
                    return self._stop(self._engine_gone())
                else:
                    code = self._frontend_event(handle)
                    if code is not None:
                        return self._stop(code)
            if not announced and self.engine.ready and all(child.ready for child in self.front.values()):
                announced = True
                announce_ready(self.target, self.config.log_format)

    def _engine_report(self) -> int | None:
        assert self.engine is not None
        try:
            message = self.engine.control.recv()
        except EOFError:
            return None  # its sentinel says how it ended
        if message[0] == "failed":
            log.error("%s", message[1])
            return 2
        _, models, default, metrics_port = message
        self.engine.ready = True
        log.info("serving %s on %s; default model: %s", models, self.target, default)
        if metrics_port is not None:
            log.info("Prometheus metrics on http://%s:%d/metrics", self.config.host, metrics_port)
        return None

    def _frontend_event(self, handle: Any) -> int | None:
        found = next(((i, c) for i, c in self.front.items() if handle in (c.process.sentinel, c.control)), None)
        if found is None:
            return None  # a front end replaced earlier in this round
        index, child = found
        if handle is child.control:
            try:
                message = child.control.recv()
            except EOFError:
                return None
            if message[0] == "ready":
                child.ready = True
            elif message[0] == "failed":
                log.error("%s", message[1])
                return 2
            return None
        child.process.join()
        assert self.engine is not None
        if not self.engine.process.is_alive():
            return self._engine_gone()
        if time.monotonic() - child.started < _CRASH_LOOP_S and not child.ready:
            log.error("%s exited (code %s) before it took traffic: the server stops", child.name, child.process.exitcode)
            return 1
        log.warning("%s exited (code %s); its connections were closed (clients retry) and a new one takes its place", child.name, child.process.exitcode)
        self.front[index] = self._spawn_frontend(index)
        return None

    def _engine_gone(self) -> int:
        assert self.engine is not None
        self.engine.process.join()
        log.error("the engine process exited (code %s): the server stops", self.engine.process.exitcode)
        return 1

    def _spawn_frontend(self, index: int) -> _Child:
        return self._spawn(frontend(index), frontend_main, self.config, index, self._tokenizer_threads, self._socket)

    def _spawn(self, name: str, target: Any, *args: Any) -> _Child:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=target, args=(*args, theirs), name=name)
        process.start()
        theirs.close()
        return _Child(name, process, ours)

    def _stop(self, code: int = 0) -> int:
        """Drain the front ends, then the engine; ``code`` is the exit code to return."""
        if code == 0:
            log.info("shutting down: the front ends finish in-flight requests for up to %.0fs", self.config.grace_s)
        for child in self.front.values():
            if child.process.is_alive():
                child.process.terminate()  # SIGTERM: the front end drains
        deadline = time.monotonic() + self.config.grace_s + self.config.settle_s + 10.0
        for child in self.front.values():
            child.process.join(max(0.0, deadline - time.monotonic()))
            if child.process.is_alive():
                log.warning("%s did not stop in time; killing it", child.name)
                child.process.kill()
                child.process.join()
        if self.engine is not None:
            self.engine.control.close()  # the engine's signal to finish what is queued and exit
            self.engine.process.join(_ENGINE_STOP_S)
            if self.engine.process.is_alive():
                self.engine.process.kill()
                self.engine.process.join()
        if code == 0:
            log.info("stopped")
        return code

    def _cleanup(self) -> None:
        self._grpc.close()
        if self._http is not None:
            self._http.close()
        for path in (self._socket, self._dir):
            try:
                os.rmdir(path) if path == self._dir else os.unlink(path)
            except OSError:
                pass

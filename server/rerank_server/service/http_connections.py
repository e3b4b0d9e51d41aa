"""HTTP/1.1 connections the front door will hold: a cap on how many, and a time limit on silence.

uvicorn closes an idle keep-alive connection only after it has answered a request on it; a connection
that opens and never sends a whole request (a port scanner, a slowloris client sending a byte now and
then, a client that hung) is held forever, and enough of them take every file descriptor of the process,
the gRPC port's included. Measured before: 2 x 10,000 silent connections to the HTTP port made gRPC calls
time out. Here each connection must deliver a request's headers within ``header_timeout_s`` of opening
(or of its last answer), and connections past ``max_connections`` are closed as they arrive.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


def default_max_connections() -> int:
    """Half the process's file-descriptor limit: the rest stays for gRPC, models and logs."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(64, soft // 2)


def raise_descriptor_limit() -> None:
    """Raise the soft file-descriptor limit to the hard one (often 1,024 against 1,048,576): a server
    holding thousands of connections needs them, and the hard limit is what the operator allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # a sandbox that refuses: keep what there is
            pass


def guarded_protocol(header_timeout_s: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol with a header deadline and a connection cap (see the module)."""

    class GuardedH11(H11Protocol):
        """:class:`H11Protocol` that closes connections which do not send a request in time."""

        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.abort()  # over the cap: no descriptor is held for it
                return
            self._wait_for_headers()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:  # a request's headers arrived
                self._stop_waiting()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._wait_for_headers()  # the next request on this connection has its own deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

        def _wait_for_headers(self) -> None:
            self._stop_waiting()
            self._header_timer = self.loop.call_later(header_timeout_s, self._too_slow)

        def _stop_waiting(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()

    return GuardedH11


def uvicorn_options(header_timeout_s: float, max_connections: int | None) -> dict[str, Any]:
    """The uvicorn.Config arguments that apply these limits."""
    return {"http": guarded_protocol(header_timeout_s, max_connections or default_max_connections())}

"""HTTP/1.1 connections the front door will hold: a cap on how many, a time limit on silence, and a
close at shutdown that answers what reached it.

uvicorn closes an idle keep-alive connection only after it has answered a request on it; a connection
that opens and never sends a whole request (a port scanner, a slowloris client sending a byte now and
then, a client that hung) is held forever, and enough of them take every file descriptor of the process,
the gRPC port's included. Measured before: 2 x 10,000 silent connections to the HTTP port made gRPC calls
time out. Here each connection must deliver a request's headers within ``header_timeout_s`` of opening
(or of its last answer), and connections past ``max_connections`` are closed as they arrive.

At shutdown, closing the listening socket resets the connections still in its accept queue, and closing a
connection its client has just opened resets the request the client is sending: closed-loop clients that
reconnect through a drain saw ``ConnectionResetError`` in most runs (measured: 1-5 of 10 callers a run).
So the door closes in order: new handshakes are dropped (:func:`refuse_new_connections`: clients retry
their SYN a second later and find the port closed, a refusal they retry elsewhere), the accept queue is
emptied (:func:`accept_queue`), and a connection accepted whose first request has not come yet gets a
moment to send it and be answered (503 with ``Connection: close`` while draining).
"""

from __future__ import annotations

import asyncio
import ctypes
import resource
import socket
import struct
import sys
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


def default_max_connections() -> int:
    """Half the process's file-descriptor limit: the rest stays for gRPC, models and logs."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(64, soft // 2)


def accept_burst() -> int:
    """The listening socket's backlog, which is also how many connections asyncio accepts at a time
    before any of them is counted against the cap (a connection over it is closed an iteration later).
    An eighth of the descriptor limit keeps the cap plus two bursts under it: with 2,048 against 4,096
    descriptors, a flood of silent connections took every one of them, gRPC's included (measured)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(64, min(2048, soft // 8))


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


# How long, at shutdown, a connection accepted without a request yet may take to send its first one.
FIRST_REQUEST_GRACE_S = 0.5
_SO_ATTACH_FILTER = 26  # Linux's setsockopt name; the socket module does not export it


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def refuse_new_connections(sock: socket.socket) -> bool:
    """Make the listening ``sock`` drop every packet of a new handshake (a classic BPF program of one
    instruction, "return 0"), leaving the connections it has queued to be accepted. Returns False where
    that cannot be done (not Linux): the listening socket then simply closes."""
    if not sys.platform.startswith("linux"):
        return False
    drop = _SockFilter(0x06, 0, 0, 0)  # BPF_RET | BPF_K, keep 0 bytes of the packet: drop it
    program = _SockFprog(1, ctypes.pointer(drop))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, bytes(program))  # the kernel copies the program
    except OSError:
        return False
    return True


def accept_queue(sock: socket.socket) -> int:
    """Connections the kernel has queued on the listening ``sock`` and nobody accepted yet (Linux's
    ``tcp_info.tcpi_unacked`` of a listening socket); 0 where it cannot be read."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except (OSError, AttributeError):
        return 0
    return int(struct.unpack_from("I", info, 24)[0]) if len(info) >= 28 else 0


def guarded_protocol(header_timeout_s: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol with a header deadline and a connection cap (see the module)."""

    class GuardedH11(H11Protocol):
        """:class:`H11Protocol` that closes connections which do not send a request in time."""

        _header_timer: asyncio.TimerHandle | None = None
        _answered = False  # whether a request on this connection has had its answer

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
            self._answered = True
            super().on_response_complete()
            if not self.transport.is_closing():
                self._wait_for_headers()  # the next request on this connection has its own deadline

        def shutdown(self) -> None:
            if self.cycle is None and not self._answered and not self.transport.is_closing():
                # Accepted, its first request on the way: answer it (the server is draining: 503 with
                # Connection: close) rather than reset it; a client that sends nothing is closed soon.
                self._wait_for_headers(FIRST_REQUEST_GRACE_S)
                return
            super().shutdown()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

        def _wait_for_headers(self, timeout_s: float = header_timeout_s) -> None:
            self._stop_waiting()
            self._header_timer = self.loop.call_later(timeout_s, self._too_slow)

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
    return {"http": guarded_protocol(header_timeout_s, max_connections or default_max_connections()), "backlog": accept_burst()}

"""TCP ports the transports listen on: the address family of a host, and a port checked free before a
server library binds it (and logs its own error first)."""

from __future__ import annotations

import socket


def family(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 host (bracketed or not), AF_INET otherwise."""
    return socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET


def check_free(host: str, port: int, problem: str) -> int:
    """The port ``host:port`` would bind to (0: a free one), or OSError(``problem``) if it cannot be
    bound. SO_REUSEADDR as servers bind: a port in TIME_WAIT is free, one another server listens on is not."""
    with socket.socket(family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError:
            raise OSError(problem) from None
        return int(probe.getsockname()[1])

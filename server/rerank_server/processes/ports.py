"""Ports the front-end processes listen on together."""

from __future__ import annotations

import socket

from ..service.ports import check_free, family


class SharedPort:
    """A TCP port held for front ends that share it (SO_REUSEPORT: the kernel spreads connections over
    the processes listening). This process keeps it bound without listening, so its number stays the
    server's while front ends come and go, and no connection is ever handed to it.

    Another process of the same user could join the port with SO_REUSEPORT too: the port is first bound
    without that option, so that one already in use is an error, not a silent split of the traffic.
    """

    def __init__(self, host: str, port: int) -> None:
        self.port = check_free(host, port, f"cannot listen on {host}:{port}: the port is in use; pick another port or --host")
        self._socket = socket.socket(family(host), socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._socket.bind((host.strip("[]"), self.port))

    def close(self) -> None:
        """Let the port go."""
        self._socket.close()

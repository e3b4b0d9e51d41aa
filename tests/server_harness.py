"""Tests run the real server on a loopback port through the package's own embedding helper."""

from rerank_server.embedded import BackgroundServer as ServerThread

__all__ = ["ServerThread"]

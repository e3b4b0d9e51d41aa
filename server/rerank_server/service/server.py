"""Assembling the gRPC server: the Reranker servicer, health checking and reflection on one port."""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from rerank_client._pb import rerank_pb2 as pb
from rerank_client._pb import rerank_pb2_grpc as pb_grpc

from ..runtime import ModelRegistry, ServedModel
from .servicer import RerankerServicer

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Reranker"].full_name


class RerankServer:
    """A running gRPC server. Health reports NOT_SERVING until :meth:`mark_ready`, so a load balancer
    sends no traffic while models load, and again from the start of :meth:`stop`."""

    def __init__(self, host: str, port: int, *, max_documents: int, max_message_bytes: int) -> None:
        self.registry = ModelRegistry()
        self.servicer = RerankerServicer(self.registry, max_documents)
        self.health = health.aio.HealthServicer()
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),  # two servers on one port would split traffic silently
        ]
        self._server = grpc.aio.server(options=options)
        pb_grpc.add_RerankerServicer_to_server(self.servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self._server,
        )
        address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
        problem = f"cannot listen on {address}: the port is in use or the host is not an address of this machine"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc's "Failed to bind to address"
            raise OSError(f"{problem}; pick another --port or --host") from exc
        if self.port == 0:
            raise OSError(f"{problem}; pick another --port or --host")
        self.host = host

    @property
    def target(self) -> str:
        """host:port for a client of this server."""
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        """Start serving (health: NOT_SERVING until models are added and :meth:`mark_ready` is called)."""
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._server.start()

    def add_model(self, model: ServedModel) -> None:
        """Serve ``model``; the first one added is the default."""
        self.registry.add(model)
        model.batcher.start()

    async def mark_ready(self) -> None:
        """All models are loaded: take traffic."""
        if not len(self.registry):
            raise RuntimeError("no model to serve")
        self.servicer.ready = True
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float | None) -> None:
        """Refuse new calls, let in-flight ones finish for up to ``grace`` seconds, then stop the batchers."""
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace)
        await self.registry.aclose(drain=True)

    async def wait_for_termination(self) -> None:
        """Block until the server stops."""
        await self._server.wait_for_termination()


"""Opening channels: one or many targets, round-robin, retries of UNAVAILABLE, TLS and tokens."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

SERVICE = "rerank.v1.Reranker"


@dataclass(frozen=True)
class Tls:
    """TLS settings of a client: the CA to trust (None: the system's) and, for mutual TLS, its own certificate."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials from the files."""
        read = lambda path: Path(path).read_bytes() if path else None  # noqa: E731
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("a client certificate needs its key (and the key its certificate)")
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file), private_key=read(self.key_file), certificate_chain=read(self.cert_file)
        )


DEFAULT_PORT = 50051  # rerank-server's


def with_port(target: str) -> str:
    """``target`` with rerank-server's default port where it names none (gRPC would assume 443)."""
    if target.startswith(("http://", "https://")):
        bare = target.split("://", 1)[1].rstrip("/")
        raise ValueError(f"target {target!r}: gRPC takes HOST:PORT without a scheme: {bare} (for TLS add --tls, not https://)")
    if target.startswith(("dns:", "ipv4:", "ipv6:", "unix:")) or "://" in target:
        return target
    if target.startswith("["):  # [IPv6] or [IPv6]:port
        return target if "]:" in target else f"{target}:{DEFAULT_PORT}"
    return target if ":" in target else f"{target}:{DEFAULT_PORT}"


def target_of(targets: str | Sequence[str]) -> str:
    """One gRPC target for one or several servers.

    ``"host:port"`` and gRPC names (``"dns:///name:port"``) pass through; a host without a port gets
    rerank-server's (50051). A list of ``ip:port`` becomes gRPC's static address list
    (``ipv4:a:1,b:2``), balanced round-robin by :func:`service_config`.
    """
    if isinstance(targets, str):
        return with_port(targets)
    targets = [with_port(t) for t in targets]
    if len(targets) == 1:
        return targets[0]
    if any("://" in t or t.startswith(("dns:", "ipv4:", "ipv6:")) for t in targets):
        raise ValueError("give several targets as plain ip:port addresses, or one resolver name (dns:///name:port)")
    scheme = "ipv6" if any(t.startswith("[") for t in targets) else "ipv4"
    return f"{scheme}:{','.join(targets)}"


def service_config(retries: int, wait_for_ready: bool = False) -> str:
    """Round-robin over every resolved address that reports SERVING, and retries of UNAVAILABLE with
    exponential backoff.

    Client-side health checking (``healthCheckConfig``) watches each replica's ``rerank.v1.Reranker``
    health: a replica that is loading its models or shutting down reports NOT_SERVING, and the channel
    stops sending it calls within moments, before it closes its port (a call cut off by a closing port
    ends CANCELLED, which no client may safely retry). A server without the health service counts as
    healthy. UNAVAILABLE means the call did not run, so it is safe to send again, where another replica
    will take it. With ``wait_for_ready``, a call made while no replica is ready waits (up to its
    deadline) for one instead of failing at once.
    """
    method: dict[str, object] = {"name": [{"service": SERVICE}]}
    if wait_for_ready:
        method["waitForReady"] = True
    if retries > 0:
        method["retryPolicy"] = {
            "maxAttempts": min(retries + 1, 5),  # gRPC caps attempts at 5
            "initialBackoff": "0.1s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps(
        {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": SERVICE}, "methodConfig": [method]}
    )


def channel_options(max_message_bytes: int, retries: int, wait_for_ready: bool = False, health_checked: bool = True) -> list[tuple[str, object]]:
    """Channel arguments shared by the sync and asyncio clients. ``health_checked`` False is for the
    channel that asks for health itself: it must reach a replica that reports NOT_SERVING."""
    inhibit = [] if health_checked else [("grpc.inhibit_health_checking", 1)]
    return [
        *inhibit,
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.service_config", service_config(retries, wait_for_ready)),
        ("grpc.enable_retries", 1 if retries > 0 else 0),
        # Answer server keepalive pings and reconnect quickly after a replica restarts.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The ``authorization`` metadata for a bearer token (none without one)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def parse_headers(headers: Sequence[str]) -> list[tuple[str, str]]:
    """``["key=value", ...]`` (command-line --header values) as gRPC metadata; keys are lower-cased."""
    pairs = []
    for header in headers:
        key, sep, value = header.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--header {header!r} is not KEY=VALUE")
        pairs.append((key.strip().lower(), value))
    return pairs

"""Bearer tokens, TLS and mutual TLS, against the real server with the real clients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from rerank_client import RerankClient, RerankError, Tls
from rerank_server.service.settings import SecurityConfig
from tests.certs import make_certs
from tests.server_harness import ServerThread


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_certs(tmp_path_factory.mktemp("certs"))


def test_bearer_tokens(cross_scorer: Any, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("old-token\nnew-token\n")
    with ServerThread([cross_scorer], security=SecurityConfig(auth_token_file=str(tokens))) as running:
        for token in ("old-token", "new-token"):  # both accepted: tokens rotate without downtime
            with RerankClient(running.target, token=token) as client:
                assert client.rerank("q", ["d"]).results
        for token in (None, "wrong"):
            # retries=0: a refusal is final, and the client's retry layer is not what is tested here
            with RerankClient(running.target, token=token, retries=0) as client:
                with pytest.raises(RerankError) as info:
                    client.rerank("q", ["d"])
                assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
                assert "authorization: Bearer" in info.value.details
                with pytest.raises(RerankError) as info:
                    client.list_models()
                assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
                assert client.health() == "SERVING"  # probes need no token
        with RerankClient(running.target) as client:  # the stream is guarded too
            import asyncio

            from rerank_client import AsyncRerankClient
            from rerank_client import convert

            async def stream() -> None:
                async with AsyncRerankClient(running.target) as c:
                    async for _ in c.rerank_stream([convert.rerank_request("q", ["d"])]):
                        pass

            with pytest.raises(RerankError) as info:
                asyncio.run(stream())
            assert info.value.code is grpc.StatusCode.UNAUTHENTICATED


def test_tls_and_mutual_tls_handshakes(cross_scorer: Any, certs: Any) -> None:
    tls = SecurityConfig(tls_cert=str(certs.server_cert), tls_key=str(certs.server_key))
    with ServerThread([cross_scorer], security=tls) as running:
        with RerankClient(running.target, tls=Tls(ca_file=str(certs.ca))) as client:
            assert client.rerank("q", ["d"]).results
        with RerankClient(running.target, tls=Tls(ca_file=str(certs.other_ca)), timeout=5, retries=0) as client:
            with pytest.raises(RerankError) as info:  # a server certificate we do not trust
                client.rerank("q", ["d"])
            assert info.value.code is grpc.StatusCode.UNAVAILABLE
        with RerankClient(running.target, timeout=5, retries=0) as client:
            with pytest.raises(RerankError):  # plaintext against a TLS port
                client.rerank("q", ["d"])
    mutual = SecurityConfig(tls_cert=str(certs.server_cert), tls_key=str(certs.server_key), tls_client_ca=str(certs.ca))
    with ServerThread([cross_scorer], security=mutual) as running:
        with RerankClient(
            running.target, tls=Tls(ca_file=str(certs.ca), cert_file=str(certs.client_cert), key_file=str(certs.client_key))
        ) as client:
            assert client.rerank("q", ["d"]).results
        with RerankClient(running.target, tls=Tls(ca_file=str(certs.ca)), timeout=5, retries=0) as client:
            with pytest.raises(RerankError) as info:  # no client certificate
                client.rerank("q", ["d"])
            assert info.value.code is grpc.StatusCode.UNAVAILABLE


def test_cli_speaks_tls_with_a_token(cross_scorer: Any, certs: Any, tmp_path: Path) -> None:
    from rerank_client.cli import main

    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret\n")
    security = SecurityConfig(tls_cert=str(certs.server_cert), tls_key=str(certs.server_key), auth_token_file=str(tokens))
    with ServerThread([cross_scorer], security=security) as running:
        import io

        out = io.StringIO()
        code = main(["--target", running.target, "--tls-ca", str(certs.ca), "--token", "s3cret", "--json", "q", "a", "b"], out=out)
        assert code == 0 and '"index"' in out.getvalue()


def test_an_unauthenticated_message_is_refused_without_being_parsed() -> None:
    """The refusal handler drops the body unread: a 15 MB request is not decoded into a message first, and
    a unary call is served as a client stream the handler never reads, so gRPC does not even receive the
    whole body (only its flow-control window)."""
    import asyncio

    from rerank_server.service.auth import BearerTokenInterceptor, BearerTokens

    parsed: list[bytes] = []

    def parse(data: bytes) -> Any:
        parsed.append(data)
        return data

    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request, request_deserializer=parse)

    async def continuation(details: Any) -> Any:
        return handler

    class Details:
        method = "/rerank.v1.Reranker/Rerank"
        invocation_metadata = (("authorization", "Bearer wrong"),)

    refusal = asyncio.run(BearerTokenInterceptor(BearerTokens(["right"])).intercept_service(continuation, Details()))  # type: ignore[arg-type]
    assert refusal.request_deserializer is not None
    refusal.request_deserializer(b"x" * 15_000_000)
    assert parsed == []
    assert refusal.request_streaming and not refusal.response_streaming

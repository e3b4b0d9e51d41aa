"""Client-side checks that fail before anything is sent."""

from __future__ import annotations

import grpc
import pytest

from rerank_client import RerankClient, RerankError
from rerank_client import convert
from rerank_proto import rerank_pb2 as pb


def test_documents_must_be_a_list_not_a_string() -> None:
    with pytest.raises(TypeError, match="list of strings"):
        convert.rerank_request("q", "one long string")


def test_unknown_normalization_is_refused() -> None:
    with pytest.raises(ValueError, match="raw, sigmoid"):
        convert.rerank_request("q", ["d"], normalization="softmax")


def test_stream_error_becomes_rerank_error_with_its_code() -> None:
    response = pb.RerankResponse(request_id="x", error=pb.Error(code=5, message="model 'm' is not served"))
    with pytest.raises(RerankError) as info:
        convert.rerank_result(response)
    assert info.value.code is grpc.StatusCode.NOT_FOUND


def test_unreachable_server_names_the_target() -> None:
    with RerankClient("127.0.0.1:1", timeout=5) as client:
        with pytest.raises(RerankError) as info:
            client.rerank("q", ["d"])
    assert info.value.code is grpc.StatusCode.UNAVAILABLE
    assert "127.0.0.1:1" in info.value.details


def test_wait_for_ready_waits_for_a_server_to_come_up(cross_scorer: object) -> None:
    import socket
    import threading

    from tests.server_harness import ServerThread

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = threading.Event()
    result: list[object] = []

    def call() -> None:
        with RerankClient(f"127.0.0.1:{port}", timeout=60, wait_for_ready=True) as client:
            started.set()
            result.append(client.rerank("q", ["d"]))

    caller = threading.Thread(target=call)
    caller.start()
    assert started.wait(10)
    with ServerThread([cross_scorer], port=port):  # the server comes up after the call was made
        caller.join(60)
    assert result and result[0].results  # type: ignore[attr-defined]

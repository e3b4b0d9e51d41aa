"""Malformed and extreme requests against a live server: each gets a clear status, none holds the model,
and well-behaved callers beside them are served (issue 12's probe cases)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from rerank_client import AsyncRerankClient, RerankError
from rerank_proto import rerank_pb2 as pb
from rerank_proto import rerank_pb2_grpc as pb_grpc
from rerank_server.engine.settings import RequestLimits
from rerank_server.models.encoding import head
from tests.models_for_tests import TINY_MAX_LENGTH
from tests.processes import ServerProcess
from tests.server_harness import ServerThread, until

LIMITS = RequestLimits(max_document_bytes=64 * 1024, max_request_pairs=16)
WORDS = "the cat sat on the mat and looked around the room "
DOCUMENT = "word " * 4000  # 20 KB
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _windowed(document: str, overlap: int) -> pb.RerankRequest:
    return pb.RerankRequest(query="a query", documents=[document], windowing=pb.Windowing(enabled=True, overlap_tokens=overlap))


# (what, request, status code, words the message must hold)
CASES = [
    ("overlap as large as the window", _windowed(WORDS * 40, TINY_MAX_LENGTH), INVALID, "overlap_tokens"),
    ("a negative overlap sent on the wire", _windowed(WORDS * 40, 2**32 - 1), INVALID, "overlap_tokens"),
    ("more windows than a request may make", _windowed(WORDS * 200, 8), INVALID, "--max-request-pairs"),
    ("a document over the byte limit", pb.RerankRequest(query="q", documents=["ok", "x " * 40_000]), INVALID, "--max-document-bytes"),
    ("a query over the byte limit", pb.RerankRequest(query="q " * 40_000, documents=["ok"]), INVALID, "the query exceeds"),
    ("a document of NUL characters", pb.RerankRequest(query="q", documents=["fine", "\x00" * 50]), INVALID, "index 1 are empty"),
    ("a document of control characters", pb.RerankRequest(query="q", documents=["\x01\x02 \x1f\x7f"]), INVALID, "index 0 are empty"),
    ("a model name of 100 KB", pb.RerankRequest(query="q", documents=["d"], model="m" * 100_000), grpc.StatusCode.NOT_FOUND, "..."),
    ("pairs over the byte limit", pb.ScoreRequest(pairs=[pb.Pair(query="q", document="d"), pb.Pair(query="q", document="y " * 40_000)]), INVALID, "pairs at index 1"),
]


def test_malformed_and_extreme_requests_get_a_status_and_others_are_served(cross_scorer: Any, sigmoid_scorer: Any) -> None:
    # Two models: with one, any model name reaches it.
    with ServerThread([cross_scorer, sigmoid_scorer], request_limits=LIMITS, max_message_bytes=8 << 20) as running:

        async def scenario() -> list[tuple[grpc.StatusCode, str]]:
            async with grpc.aio.insecure_channel(running.target, options=[("grpc.max_send_message_length", 8 << 20)]) as channel:
                stub = pb_grpc.RerankerStub(channel)
                outcomes = []
                for _, request, _, _ in CASES:
                    call = stub.Score if isinstance(request, pb.ScoreRequest) else stub.Rerank
                    try:
                        await call(request, timeout=30)
                        outcomes.append((grpc.StatusCode.OK, ""))
                    except grpc.aio.AioRpcError as exc:
                        outcomes.append((exc.code(), exc.details() or ""))
                # The server is still well and answers a normal request at once.
                answer = await stub.Rerank(pb.RerankRequest(query="a query", documents=["a cat", "a dog"]), timeout=30)
                assert len(answer.results) == 2
                return outcomes

        outcomes = asyncio.run(scenario())
    for (what, _, code, words), (got, details) in zip(CASES, outcomes):
        assert got is code, f"{what}: {got} {details}"
        assert words in details, f"{what}: {details}"
        assert len(details) < 600, f"{what}: the message echoes the input ({len(details)} characters)"


def test_a_long_document_is_tokenized_only_as_far_as_the_model_reads(cross_scorer: Any) -> None:
    encoder = cross_scorer.encoder
    document = WORDS * 20_000  # about a megabyte and 200,000 tokens
    start = head(document, TINY_MAX_LENGTH * 16)
    assert len(start) < 3000 and document.startswith(start) and start.endswith("the")  # cut at a space
    capped = encoder.ids([document], limit=TINY_MAX_LENGTH)[0]
    whole = encoder.ids([document[:20_000]])[0]
    assert capped.tolist() == whole[: TINY_MAX_LENGTH + 1].tolist()  # exactly the whole text's first ids
    # Served: the pair is read to the model's length and reported truncated, as with the whole text.
    with ServerThread([cross_scorer], max_message_bytes=4 << 20) as running:

        async def scenario() -> Any:
            async with AsyncRerankClient(running.target, timeout=30, max_message_bytes=4 << 20) as client:
                return await client.rerank("what did the cat do", [document, "a cat"])

        result = asyncio.run(scenario())
    long = next(r for r in result.results if r.index == 0)
    assert long.truncated and result.usage.tokens <= 2 * TINY_MAX_LENGTH


@pytest.mark.parametrize("unit", [",", "a" * 7 + ",", "x"])
def test_a_long_text_without_spaces_is_cut_before_tokenizing_too(cross_scorer: Any, unit: str) -> None:
    encoder = cross_scorer.encoder
    document = unit * (1_000_000 // len(unit))  # a megabyte with no space: punctuation, words and commas, one run
    start = head(document, TINY_MAX_LENGTH * 16)
    assert len(start) <= TINY_MAX_LENGTH * 16 and document.startswith(start)  # never the whole megabyte
    capped = encoder.ids([document], limit=TINY_MAX_LENGTH)[0]
    whole = encoder.ids([document[:50_000]])[0]
    assert capped.tolist() == whole[: TINY_MAX_LENGTH + 1].tolist()  # the same ids the text starts with


def test_a_malformed_message_on_a_stream_is_answered_in_the_stream(cross_scorer: Any) -> None:
    with ServerThread([cross_scorer]) as running:

        async def scenario() -> list[pb.RerankResponse]:
            async with grpc.aio.insecure_channel(running.target) as channel:
                # Raw bytes, so that one message can be what no RerankRequest parses from.
                call = channel.stream_stream(
                    "/rerank.v1.Reranker/RerankStream", request_serializer=lambda b: b, response_deserializer=pb.RerankResponse.FromString
                )

                async def requests() -> AsyncIterator[bytes]:
                    yield pb.RerankRequest(query="q", documents=["first"], request_id="a").SerializeToString()
                    yield b"\xff\xff\xff\xff not a message"
                    yield pb.RerankRequest(query="q", documents=["third"], request_id="c").SerializeToString()

                return [r async for r in call(requests(), timeout=30)]

        responses = asyncio.run(scenario())
    by_id = {r.request_id: r for r in responses}
    assert set(by_id) == {"a", "#1", "c"}
    assert by_id["a"].results and by_id["c"].results
    assert by_id["#1"].error.code == INVALID.value[0] and "not a valid RerankRequest" in by_id["#1"].error.message


def test_a_stream_whose_caller_stops_reading_stops_being_read(cross_scorer: Any) -> None:
    """Flow control: with a window of 4, a caller that sends 1,500 requests of 20 KB and reads none of
    the 20 KB responses gets few answered (the window, plus the responses its own HTTP/2 receive window
    holds) and soon cannot send more; once it reads, all are answered."""
    window, count = 4, 1500
    with ServerThread([cross_scorer], stream_window=window, max_message_bytes=4 << 20) as running:
        servicer = running.server.servicer if running.server else None
        assert servicer is not None

        def answered() -> int:
            return sum(n for (method, _), n in servicer.counts.items() if method == "RerankStream")

        async def scenario() -> tuple[int, int, int]:
            # A fixed 64 KB receive window (no BDP growth): three unread 20 KB responses fill it.
            async with grpc.aio.insecure_channel(running.target, options=[("grpc.http2.bdp_probe", 0)]) as channel:
                call = pb_grpc.RerankerStub(channel).RerankStream(timeout=60)
                sent = 0

                async def write() -> None:
                    nonlocal sent
                    for i in range(count):
                        await call.write(pb.RerankRequest(query="q", documents=[DOCUMENT], request_id=str(i), return_documents=True))
                        sent += 1
                    await call.done_writing()

                writer = asyncio.create_task(write())
                await until(lambda: answered() >= window)
                for _ in range(50):  # give the server every chance to read past its window
                    await asyncio.sleep(0.01)
                stalled_answered, stalled_sent = answered(), sent
                received = 0
                async for _ in call:
                    received += 1
                await writer
                return stalled_answered, stalled_sent, received

        stalled_answered, stalled_sent, received = asyncio.run(scenario())
    print(f"not reading: {stalled_answered} answered, {stalled_sent} of {count} sent")
    assert stalled_answered <= window + 8 and stalled_sent < count  # the server stopped reading
    assert received == count


def test_cancelling_a_stream_that_was_never_read_logs_no_traceback(tiny_cross_encoder: Any) -> None:
    with ServerProcess("--model", f"tiny=cross-encoder:{tiny_cross_encoder}", "--backend", "torch", "--stream-window", "4") as server:

        async def cancel_unread() -> None:
            async with grpc.aio.insecure_channel(server.target, options=[("grpc.http2.bdp_probe", 0)]) as channel:
                call = pb_grpc.RerankerStub(channel).RerankStream(timeout=60)
                for i in range(40):
                    await call.write(pb.RerankRequest(query="q", documents=[DOCUMENT], request_id=str(i), return_documents=True))
                call.cancel()

        async def one() -> Any:
            async with AsyncRerankClient(server.target, timeout=30) as client:
                return await client.rerank("q", ["a cat"])

        asyncio.run(cancel_unread())
        assert asyncio.run(one()).results  # the server goes on serving, then stops cleanly
        assert server.terminate() == 0
    assert "Traceback" not in "".join(server.output), "".join(server.output)[-3000:]


def test_a_flood_of_expired_deadlines_leaves_healthy_calls_alone(cross_scorer: Any) -> None:
    """Calls with 1 ms deadlines flood in beside callers with 30 s ones: every healthy call is answered,
    and the flood counts as DEADLINE_EXCEEDED in the server's accounting, never CANCELLED."""
    with ServerThread([cross_scorer]) as running:
        servicer = running.server.servicer if running.server else None
        assert servicer is not None

        async def scenario() -> list[str]:
            async with AsyncRerankClient(running.target, timeout=30, retries=0) as client:

                async def flood() -> None:
                    for _ in range(10):
                        calls = [client.rerank("q", ["d"] * 4, timeout=0.001) for _ in range(150)]
                        await asyncio.gather(*calls, return_exceptions=True)

                async def healthy(i: int) -> str:
                    try:
                        await client.rerank(f"query {i}", ["a cat", "a dog"])
                        return "OK"
                    except RerankError as exc:
                        return exc.code.name

                flooding = asyncio.create_task(flood())
                outcomes = await asyncio.gather(*(healthy(i) for i in range(40)))
                await flooding
                return list(outcomes)

        outcomes = asyncio.run(scenario())
        codes = {code for (_, code) in servicer.counts}
    assert outcomes == ["OK"] * 40
    assert "CANCELLED" not in codes

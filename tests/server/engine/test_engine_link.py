"""Front ends and the engine process's core over a real Unix socket, in one event loop: one queue for all
front ends, refusals carried whole, and the requests of a front end that goes away dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rerank_server.batching import BatcherClosed, DeadlineExceeded, QueueFull, WouldMissDeadline
from rerank_server.engine import ModelRegistry, ServedModel, TokenizerPool
from rerank_server.engine.callers import CallerNames
from rerank_server.engine.core import EngineCore
from rerank_server.engine.link import EngineLink, EngineLost, RemoteBatcher
from rerank_server.engine.settings import BatchingConfig
from rerank_server.engine.wire import EngineFailure, FrameReader, decode_error, encode_error, frame, pack_items, pack_results, unpack_items, unpack_results
from rerank_server.models.encoding import Encoded

pytestmark = pytest.mark.anyio


def test_items_and_scores_cross_the_wire_as_one_buffer_each() -> None:
    items = [
        Encoded(np.array([101, 7, 8, 102], dtype=np.int32), np.array([0, 0, 1, 1], dtype=np.int8), True),
        Encoded(np.array([101, 9, 102], dtype=np.int32), np.array([0, 1, 1], dtype=np.int8), False),
    ]
    meta, blob = pack_items(items)
    reader = FrameReader(size=16)  # smaller than the frame: the buffer grows to hold it
    whole = frame(("submit", 7, *meta), blob)
    # Frames arrive cut anywhere: nothing until the last byte, then the frame whole.
    assert _receive(reader, whole[:5]) == [] and _receive(reader, whole[5:-1]) == []
    [(header, body)] = _receive(reader, whole[-1:])
    assert header == ("submit", 7, 2, True, False)
    # Several frames in one read, the last one cut: the whole ones now, a copy each (the buffer is reused).
    first, second = _receive(reader, whole + frame(("release", 8)) + whole[:9])
    assert first[0] == header and bytes(first[1]) == bytes(body) and second == (("release", 8), memoryview(b""))
    [(again, _)] = _receive(reader, whole[9:])
    assert again == header and bytes(first[1]) == bytes(body)
    back, costs = unpack_items((header[2], header[3], header[4]), body)
    assert costs == [4, 3]
    for sent, got in zip(items, back):
        assert np.array_equal(sent.ids, got.ids) and sent.types is not None and np.array_equal(sent.types, got.types)
    untyped, _ = unpack_items(*_packed([Encoded(np.array([0, 5, 2], dtype=np.int32), None, False)]))
    assert untyped[0].types is None and untyped[0].ids.tolist() == [0, 5, 2]
    # A decoder reranker's items share their leading ids (template, instruction, query): the count crosses too.
    prompted, _ = unpack_items(*_packed([Encoded(np.arange(6, dtype=np.int32), None, False, 4), Encoded(np.arange(5, dtype=np.int32), None, True, 3)]))
    assert [item.shared for item in prompted] == [4, 3] and prompted[1].ids.tolist() == [0, 1, 2, 3, 4]
    shape, scores = pack_results([0.5, -1.25])
    assert unpack_results(shape, memoryview(scores)).tolist() == [0.5, -1.25]
    shape, vectors = pack_results([np.ones(3), np.zeros(3)])
    assert [v.tolist() for v in unpack_results(shape, memoryview(vectors))] == [[1, 1, 1], [0, 0, 0]]


def _receive(reader: FrameReader, data: bytes) -> list[tuple[Any, memoryview]]:
    """What a transport does with ``data``: read it into the reader's buffer, as much as fits at a time."""
    frames, at = [], 0
    while at < len(data):
        room = reader.get_buffer(-1)
        count = min(len(room), len(data) - at)
        room[:count] = data[at : at + count]
        at += count
        frames += reader.buffer_updated(count)
    return frames


def _packed(items: list[Encoded]) -> tuple[Any, memoryview]:
    meta, blob = pack_items(items)
    return meta, memoryview(blob)


def test_refusals_keep_what_the_caller_is_told() -> None:
    for error in (QueueFull(5, 2, 10, "acme"), WouldMissDeadline(12.0, 3.0, True), DeadlineExceeded("late"), BatcherClosed("closing")):
        back = decode_error(encode_error(error))
        assert type(back) is type(error) and str(back) == str(error)
    failure = decode_error(encode_error(RuntimeError("CUDA out of memory\nmore lines")))
    assert isinstance(failure, EngineFailure) and str(failure) == "CUDA out of memory"


@pytest.fixture
def engine_socket(tmp_path: Path) -> str:
    return str(tmp_path / "engine.sock")


async def _engine(scorer: Any, path: str, limits: BatchingConfig) -> tuple[EngineCore, ModelRegistry]:
    registry = ModelRegistry([ServedModel.create(scorer, limits, TokenizerPool(1))])
    for model in registry:
        model.batcher.start()
    core = EngineCore(registry, CallerNames(4))
    await core.serve(path)
    return core, registry


async def test_one_queue_admits_for_every_front_end_and_forgets_one_that_goes_away(cross_scorer: Any, engine_socket: str) -> None:
    core, registry = await _engine(cross_scorer, engine_socket, BatchingConfig(max_queued_pairs=8, max_wait_ms=0))
    first, second = await EngineLink.connect(engine_socket), await EngineLink.connect(engine_socket)
    assert [m.name for m in first.models] == ["tiny-ce"]
    a, b = RemoteBatcher(first, "tiny-ce"), RemoteBatcher(second, "tiny-ce")
    held = await a.admit(6)
    with pytest.raises(QueueFull):  # the room the first front end holds counts for the second
        await b.admit(4)
    first.close()  # a front end that goes away gives back what it held
    batcher = registry.get("").batcher
    while batcher._queue.held_cost:  # polls a condition: the engine sees the connection close
        await asyncio.sleep(0.001)
    reservation = await b.admit(4)
    assert held.rid and reservation.claim.tenant == ""
    await core.close()
    await registry.aclose()


async def test_scores_through_the_engine_equal_the_models_own(cross_scorer: Any, engine_socket: str) -> None:
    core, registry = await _engine(cross_scorer, engine_socket, BatchingConfig(max_wait_ms=0))
    link = await EngineLink.connect(engine_socket)
    pool = TokenizerPool(1)
    served = ServedModel(cross_scorer, RemoteBatcher(link, "tiny-ce"), BatchingConfig(), pool)
    documents = ["bees dance to share where flowers are", "stocks fell", "leaves turn light into sugar"]
    result = await served.rerank("how do plants make energy", documents)
    local = await registry.get("").rerank("how do plants make energy", documents)
    assert [(d.index, pytest.approx(d.score, abs=1e-5)) for d in result.documents] == [(d.index, d.score) for d in local.documents]
    pairs = await served.score([("q", "a"), ("q", "b")])
    assert len(pairs.scores) == 2
    # A request whose ids outgrow the reader's buffer (256 KiB) crosses whole, in many reads, and so do the
    # requests around it on the same connection.
    many = [f"document {i} " + "about leaves and light " * 40 for i in range(700)]
    big, small, local_big = await asyncio.gather(
        served.rerank("how do plants make energy", many), served.rerank("q", ["d"]), registry.get("").rerank("how do plants make energy", many)
    )
    assert big.usage.tokens * 5 > 256 * 1024  # 5 bytes a token on the wire: its id and its type
    assert [(d.index, pytest.approx(d.score, abs=1e-5)) for d in big.documents] == [(d.index, d.score) for d in local_big.documents]
    assert len(small.documents) == 1
    await core.close()  # the engine goes away: what waits on it fails UNAVAILABLE-style, and so does what comes next
    await link.lost.wait()
    with pytest.raises(EngineLost):
        await served.rerank("q", ["d"])
    await registry.aclose()
    pool.close()

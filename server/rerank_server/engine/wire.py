"""The wire between front-end processes and the engine process: frames, token ids, scores and errors.

A frame is ``<u32 length><u32 header length>``, a small pickled header (a tuple of plain values: the
message's kind, its request id, a few numbers) and one raw buffer. A request's items travel as one
buffer (every pair's token ids end to end, then their token types, then their lengths), not as a
pickled object per pair: the engine reads them with ``numpy.frombuffer``, without copying them again.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from ..batching import BatcherClosed, DeadlineExceeded, QueueFull, WouldMissDeadline
from ..models.encoding import Encoded

_PREFIX = struct.Struct("<II")  # bytes after the prefix, bytes of the header
Header = tuple[Any, ...]


def frame(header: Header, blob: bytes | memoryview = b"") -> bytes:
    """One frame of ``header`` and ``blob``."""
    head = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)
    return b"".join((_PREFIX.pack(len(head) + len(blob), len(head)), head, blob))


class FrameWriter:
    """Writes frames to a transport, the frames of one turn of the event loop in one write.

    A reply a request (and, at the engine, an admission and its scores) was a system call each, and each
    woke the process at the other end: joined, a batch's answers or a read's admissions go in one.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._frames: list[bytes] = []

    def write(self, header: Header, blob: bytes | memoryview = b"") -> None:
        """Queue a frame; the first of a turn schedules the write at the turn's end."""
        if not self._frames:
            asyncio.get_running_loop().call_soon(self.flush)
        self._frames.append(frame(header, blob))

    def flush(self) -> None:
        """Write what is queued now."""
        if self._frames:
            frames, self._frames = self._frames, []
            if not self._transport.is_closing():
                self._transport.write(b"".join(frames))


class FrameReader:
    """Cuts the bytes a connection receives into frames, received into one buffer it reuses.

    Made for an :class:`asyncio.BufferedProtocol`: the transport reads into :meth:`get_buffer`'s view
    and calls :meth:`buffer_updated`. (A plain protocol's ``data_received`` gets a new ``bytes`` of the
    transport's whole read size, 256 KiB, every read: measured here, that allocation cost 12-27 us a read
    against 2-6 us for reading into a buffer, and the engine reads a few times a request.)
    """

    def __init__(self, size: int = 256 * 1024) -> None:
        self._buffer = bytearray(size)
        self._view = memoryview(self._buffer)
        self._filled = 0  # bytes received and not yet cut into frames (the start of one)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next bytes go: the free end of the buffer."""
        return self._view[self._filled :]

    def buffer_updated(self, nbytes: int) -> list[tuple[Header, memoryview]]:
        """``nbytes`` more were received into :meth:`get_buffer`'s view; return every frame they complete,
        as (header, blob). The blobs are copies: the buffer is reused for the next reads."""
        self._filled += nbytes
        view, size, at = self._view, self._filled, 0
        frames: list[tuple[Header, memoryview]] = []
        need = 0
        while size - at >= _PREFIX.size:
            length, head = _PREFIX.unpack_from(view, at)
            start, end = at + _PREFIX.size, at + _PREFIX.size + length
            if end > size:
                need = end - at
                break
            blob = memoryview(bytes(view[start + head : end])) if length > head else _EMPTY
            frames.append((pickle.loads(view[start : start + head]), blob))
            at = end
        if at:
            rest = bytes(view[at:size])
            view[: len(rest)] = rest
            self._filled = len(rest)
        if need > len(self._buffer):  # a frame longer than the buffer: make room for it whole
            grown = bytearray(max(need, 2 * len(self._buffer)))
            grown[: self._filled] = view[: self._filled]
            self._buffer, self._view = grown, memoryview(grown)
        return frames


_EMPTY = memoryview(b"")


class FramedConnection(asyncio.BufferedProtocol):
    """Either end of the engine's wire: frames read into one reused buffer (:class:`FrameReader`), the
    frames sent in one turn of the event loop written at once (:class:`FrameWriter`). Subclasses handle
    each frame in :meth:`frame_received`."""

    def __init__(self) -> None:
        self._reader = FrameReader()
        self._transport: asyncio.Transport | None = None
        self._writer: FrameWriter | None = None

    @property
    def connected(self) -> bool:
        """Whether the connection is up (frames sent now will be written)."""
        return self._writer is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102 (asyncio's)
        # A stream's transport (uvloop's is not a subclass of asyncio's, so it is not checked).
        self._transport = cast(asyncio.Transport, transport)
        self._writer = FrameWriter(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self._transport = self._writer = None

    def get_buffer(self, sizehint: int) -> memoryview:  # noqa: D102
        return self._reader.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:  # noqa: D102
        for header, blob in self._reader.buffer_updated(nbytes):
            self.frame_received(header, blob)

    def frame_received(self, header: Header, blob: memoryview) -> None:
        """Handle one frame."""
        raise NotImplementedError

    def send(self, header: Header, blob: bytes | memoryview = b"") -> None:
        """Send a frame, written at the end of this turn (dropped once the connection is gone)."""
        if self._writer is not None:
            self._writer.write(header, blob)

    def close(self) -> None:
        """Write what was sent, then close the connection."""
        if self._writer is not None:
            self._writer.flush()
        if self._transport is not None:
            self._transport.close()


def pack_items(items: Sequence[Encoded]) -> tuple[tuple[int, bool, bool], bytes]:
    """A request's items as ((count, has token types, has shared prefixes), one buffer): ids end to end,
    token types, lengths, and each item's shared prefix length (decoder rerankers only)."""
    lengths = np.fromiter((len(item.ids) for item in items), dtype=np.int32, count=len(items))
    typed = bool(items) and items[0].types is not None
    parts: list[Any] = [np.concatenate([item.ids for item in items]).astype(np.int32, copy=False)] if items else []
    if typed:
        parts.append(np.concatenate([item.types for item in items if item.types is not None]).astype(np.int8, copy=False))
    parts.append(lengths)
    shared = np.fromiter((item.shared for item in items), dtype=np.int32, count=len(items))
    prefixed = bool(shared.any())
    if prefixed:
        parts.append(shared)
    return (len(items), typed, prefixed), b"".join(p.tobytes() for p in parts)


def unpack_items(meta: tuple[int, bool, bool], blob: memoryview) -> tuple[list[Encoded], list[int]]:
    """The items and their costs (token counts) from :func:`pack_items`'s buffer; the ids are views of it."""
    count, typed, prefixed = meta
    tail = 4 * count * (2 if prefixed else 1)
    # A request's few numbers are read as Python ints: numpy's cost a call, not its arithmetic, is what
    # a request of 20 items would spend on sums of them (a sum and a cumsum were a fifth of this function).
    lengths = np.frombuffer(blob, dtype=np.int32, count=count, offset=len(blob) - tail).tolist()
    shared = np.frombuffer(blob, dtype=np.int32, count=count, offset=len(blob) - 4 * count).tolist() if prefixed else [0] * count
    total = sum(lengths)
    ids = np.frombuffer(blob, dtype=np.int32, count=total)
    types = np.frombuffer(blob, dtype=np.int8, count=total, offset=4 * total) if typed else None
    items, start = [], 0
    for length, prefix in zip(lengths, shared):
        end = start + length
        items.append(Encoded(ids[start:end], None if types is None else types[start:end], False, prefix))
        start = end
    return items, lengths


def pack_results(results: Sequence[Any]) -> tuple[tuple[int, ...], bytes]:
    """Item results (a score each, or a vector each for a bi-encoder) as (shape, float32 buffer)."""
    array = np.asarray(results, dtype=np.float32)
    return array.shape, array.tobytes()


def unpack_results(shape: tuple[int, ...], blob: memoryview) -> Any:
    """The results :func:`pack_results` packed: an array of scores, or a list of vectors."""
    array = np.frombuffer(blob, dtype=np.float32).reshape(shape)
    return array if array.ndim == 1 else list(array)


class EngineFailure(RuntimeError):
    """The model failed in the engine process; the message is its one-line reason."""


def encode_error(exc: BaseException) -> Header:
    """What a front end needs to rebuild ``exc`` (a batcher's refusal keeps its fields)."""
    if isinstance(exc, QueueFull):
        return ("queue_full", exc.requested, exc.free, exc.capacity, exc.tenant)
    if isinstance(exc, WouldMissDeadline):
        return ("late", exc.wait_s, exc.left_s, exc.default_deadline)
    if isinstance(exc, DeadlineExceeded):
        return ("deadline", str(exc))
    if isinstance(exc, BatcherClosed):
        return ("closed", str(exc))
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ("failed", reason)


def decode_error(fields: Header) -> BaseException:
    """The exception :func:`encode_error` described."""
    kind, *rest = fields
    if kind == "queue_full":
        return QueueFull(*rest)
    if kind == "late":
        return WouldMissDeadline(*rest)
    if kind == "deadline":
        return DeadlineExceeded(*rest)
    if kind == "closed":
        return BatcherClosed(*rest)
    return EngineFailure(*rest)

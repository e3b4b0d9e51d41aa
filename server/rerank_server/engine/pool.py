"""The tokenizer pool: threads that turn requests' texts into token ids when the requests are admitted.

Hugging Face fast tokenizers release the GIL while they encode a batch, so threads tokenize in
parallel (measured: 2 threads 1.9x one on a 2-core CPU). A large request is split into chunks over
the threads, so its latency shrinks with the pool; a small one is tokenized and planned in one job on
one thread (see :meth:`TokenizerPool.tokenized`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..batching.threads import named_pool
from ..models.encoding import Ids, TextEncoder

T = TypeVar("T")

Texts = tuple[Sequence[str], int | None]  # texts and the limit they are tokenized to (see TextEncoder.ids)

CHUNK_TEXTS = 64  # texts one thread tokenizes in one call: large enough to amortize the hand-off


def default_tokenizer_threads(device: str, cores: int | None = None, frontends: int = 1) -> int:
    """Threads for the pool of each of ``frontends`` processes when ``--tokenizer-threads`` is not given.

    On a CPU the model's forward uses every core and tokenizing is a small share of the work: half the
    cores (at least one). With an accelerator the host's cores have nothing else to do, and the device
    scores tens of thousands of pairs a second, more than a few threads can tokenize: all cores but
    two (the event loop and the batch stages), at most 16.
    """
    cores = cores or os.cpu_count() or 1
    if device.split(":")[0] == "cpu":
        return max(1, cores // 2 // frontends)
    return max(1, min(16, cores - 2) // frontends)


def default_frontends(device: str, cores: int | None = None) -> int:
    """Front-end processes when ``--frontends`` is not given.

    On a CPU the model's forward wants every core, and one process (no engine hop) is fastest: 1. With an
    accelerator the host's cores do nothing but take requests and tokenize, and one event loop tops out
    near 7,700 pairs a second (measured): one front end per 4 cores past the two the engine process
    uses, at most 8.
    """
    cores = cores or os.cpu_count() or 1
    if device.split(":")[0] == "cpu":
        return 1
    return max(1, min(8, (cores - 2) // 4))


class TokenizerPool:
    """A fixed pool of tokenizer threads shared by every served model."""

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError(f"the tokenizer pool needs at least one thread, got {threads}")
        self.threads = threads
        self._executor = named_pool(threads, "tokenize")

    async def ids(self, encoder: TextEncoder, texts: Sequence[str], limit: int | None = None) -> list[Ids]:
        """Every text's token ids (at most ``limit + 1`` each, see :meth:`TextEncoder.ids`), tokenized on
        the pool: a large request on several threads at once."""
        if len(texts) <= CHUNK_TEXTS:
            return await self.run(encoder.ids, texts, limit)
        chunks = [texts[at : at + CHUNK_TEXTS] for at in range(0, len(texts), CHUNK_TEXTS)]
        parts = await asyncio.gather(*(self.run(encoder.ids, chunk, limit) for chunk in chunks))
        return [ids for part in parts for ids in part]

    async def tokenized(self, encoder: TextEncoder, groups: Sequence[Texts], then: Callable[..., T]) -> T:
        """``then(ids of each group, ...)``, its groups of texts tokenized on the pool.

        A request whose texts fit one chunk is one job: tokenized and passed to ``then`` on one thread.
        Jobs run first come, first served, so a request tokenized in one job and planned in another
        waited for its plan behind every request that arrived meanwhile: a wave of 64 closed-loop callers
        (on a simulated GPU whose batches end together) all got their plans only once the whole wave was
        tokenized, 200 ms with one tokenizer thread, and the device waited that long. Larger requests
        are chunked over the threads (see :meth:`ids`), and ``then`` runs once every chunk is done.
        """
        if sum(len(texts) for texts, _ in groups) <= CHUNK_TEXTS:
            return await self.run(_tokenize_then, encoder, groups, then)
        parts = await asyncio.gather(*(self.ids(encoder, texts, limit) for texts, limit in groups))
        return await self.run(then, *parts)

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """Run ``work(*args)`` on a pool thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    def close(self) -> None:
        """Stop the threads once their work is done."""
        self._executor.shutdown(wait=True)


def _tokenize_then(encoder: TextEncoder, groups: Sequence[Texts], then: Callable[..., T]) -> T:
    return then(*(encoder.ids(texts, limit) for texts, limit in groups))

"""The engine in this process, without a server: the one entry point the client's ``--local`` modes
load (lazily, so a client-only install never imports the server).

Models are loaded as ``rerank-server`` loads them and every request goes through the same gateway
(:class:`Engine`: admission, deadlines, tokenizer pool, batcher, combine, normalize, rank), on an event
loop of its own thread, so a synchronous caller gets exactly what a server would answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from .engine import (
    Engine,
    ModelRegistry,
    Options,
    RerankRequest,
    RerankResult,
    ScoreRequest,
    ScoreResult,
    ServedModel,
    TokenizerPool,
    default_tokenizer_threads,
)
from .engine.settings import AdmissionConfig, BatchingConfig
from .models import ModelInfo, load_scorers, parse_model_arg
from .models.device import device_kind
from .service.settings import ServerConfig

T = TypeVar("T")


class LocalEngine:
    """Context manager: models served in this process. ``models`` are ``--model`` values (NAME=SOURCE);
    ``calibrations`` the ``--calibration`` files by model name. ``device``, ``dtype`` and ``backend``
    default to what ``rerank-server`` picks, so a local run is as fast as a server on the same machine."""

    def __init__(
        self,
        models: Sequence[str],
        device: str = ServerConfig.device,
        dtype: str = ServerConfig.dtype,
        admission: AdmissionConfig = AdmissionConfig(),
        calibrations: Mapping[str, str] | None = None,
        backend: str = ServerConfig.backend,
    ) -> None:
        files = calibrations or {}
        specs = [dataclasses.replace(spec, calibration=files.get(spec.name)) for spec in map(parse_model_arg, models)]
        scorers = [load_scorers(spec, device=device, dtype=dtype, backend=backend) for spec in specs]
        kind = device_kind(device, "torch")
        self._pool = TokenizerPool(default_tokenizer_threads(kind))
        batching = BatchingConfig.for_device(kind)
        self._models = ModelRegistry(ServedModel.create(scorer, batching, self._pool) for scorer in scorers)
        self.engine = Engine(self._models, admission)
        self.engine.ready = True
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rerank-local", daemon=True)
        self._thread.start()

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def info(self, model: str = "") -> ModelInfo:
        """The model called ``model`` (empty: the first)."""
        return self._models.get(model).info

    def calibrated(self, model: str = "") -> bool:
        """Whether the model called ``model`` serves calibrated scores (it was given a calibration)."""
        return self._models.get(model).scorer.calibration is not None

    def rerank(self, model: str, query: str, documents: Sequence[str], options: Options = Options()) -> RerankResult:
        """As the Rerank RPC answers it."""
        return self._run(self.engine.rerank(RerankRequest(query, documents, options, model)))

    def score(self, model: str, pairs: Sequence[tuple[str, str]], options: Options = Options()) -> ScoreResult:
        """As the Score RPC answers it."""
        return self._run(self.engine.score(ScoreRequest(pairs, options, model)))

    async def arerank(self, model: str, query: str, documents: Sequence[str], options: Options = Options()) -> RerankResult:
        """As :meth:`rerank`, awaited from the caller's own event loop, so that many requests can be in
        flight at once and batched together (a bulk job's)."""
        work = self.engine.rerank(RerankRequest(query, documents, options, model))
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    async def ascore(self, model: str, pairs: Sequence[tuple[str, str]], options: Options = Options()) -> ScoreResult:
        """As :meth:`score`, awaited from the caller's own event loop."""
        work = self.engine.score(ScoreRequest(pairs, options, model))
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    def close(self) -> None:
        """Stop the batchers, the pool and the loop."""
        self._run(self._models.aclose())
        self._pool.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

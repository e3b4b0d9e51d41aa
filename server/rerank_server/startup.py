"""Loading and warming up the configured models: the same in one process and in the engine process."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from .models import Scorer, load_scorers
from .models.warmup import warm_up
from .service.settings import ServerConfig

log = logging.getLogger("rerank_server")


async def loaded_models(config: ServerConfig) -> AsyncIterator[tuple[list[Scorer], float]]:
    """Each configured model, loaded and warmed up on each device, with its speed at start-up (on the
    first device) in tokens a second.

    Warming up happens before health says SERVING: the first callers do not pay for first batches, and
    the speed measured seeds the running estimate that deadline admission uses (the batches served
    refine it). Raises :class:`~rerank_server.models.ModelLoadError` for a model that cannot be served.
    """
    limits = config.batching
    for spec in config.models:
        log.info("loading %s from %s", spec.name, spec.source)
        scorers = await asyncio.to_thread(load_scorers, spec, config.device, config.dtype, config.trust_remote_code, config.backend)
        started = time.monotonic()
        speeds = [await asyncio.to_thread(warm_up, scorer, limits.max_batch_size, limits.max_batch_tokens) for scorer in scorers]
        speed = speeds[0]
        log.info(
            "%s warmed up in %.1f s: %.0f tokens/s at start-up; queue: %d pairs; default deadline %g s",
            spec.name, time.monotonic() - started, speed, limits.max_queued_pairs, config.admission.default_deadline_s,
        )
        yield scorers, speed


def describe(models: object) -> str:
    """``name (kind, device, dtype, backend), ...`` for the served-models log line."""
    return ", ".join(f"{m.info.name} ({m.info.kind.value}, {m.info.device}, {m.info.dtype}, {m.info.backend})" for m in models)  # type: ignore[attr-defined]

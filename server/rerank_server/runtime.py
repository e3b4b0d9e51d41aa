"""The served models: each scorer joined to its own micro-batcher. This is where the layers meet."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .batching import MicroBatcher
from .batching.unbatched import PerRequestRunner
from .config import BatchingConfig
from .models import ModelInfo, Scorer


class UnknownModel(LookupError):
    """A request named a model this server does not serve."""


@dataclass
class ServedModel:
    """A loaded model, its batcher and the limits the batcher runs with."""

    scorer: Scorer
    batcher: MicroBatcher[Any, Any] | PerRequestRunner[Any, Any]
    limits: BatchingConfig

    @property
    def info(self) -> ModelInfo:
        """The scorer's description."""
        return self.scorer.info

    @classmethod
    def create(cls, scorer: Scorer, limits: BatchingConfig) -> ServedModel:
        """Give ``scorer`` a batcher of its own: batches of different models never mix."""
        name, policy = scorer.info.name, limits.policy()
        if limits.strategy == "none":
            return cls(scorer, PerRequestRunner(scorer.run_batch, max_queued=limits.max_queued_pairs, name=name), limits)
        return cls(scorer, MicroBatcher(scorer.run_batch, policy, max_queued=limits.max_queued_pairs, name=name), limits)


class ModelRegistry:
    """Served models by name; the first one added is the default."""

    def __init__(self, models: Iterable[ServedModel] = ()) -> None:
        self._models: dict[str, ServedModel] = {}
        for model in models:
            self.add(model)

    def add(self, model: ServedModel) -> None:
        """Serve ``model`` under its name."""
        if model.info.name in self._models:
            raise ValueError(f"two models are named {model.info.name!r}")
        self._models[model.info.name] = model

    @property
    def default_name(self) -> str:
        """The model requests with an empty name go to."""
        return next(iter(self._models))

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def get(self, name: str) -> ServedModel:
        """The model called ``name`` (empty: the default). Raises :class:`UnknownModel`."""
        if not name:
            return self._models[self.default_name]
        try:
            return self._models[name]
        except KeyError:
            raise UnknownModel(
                f"model {name!r} is not served here; served models: {', '.join(self._models)} (see ListModels)"
            ) from None

    async def aclose(self, drain: bool = True) -> None:
        """Stop every batcher, finishing queued work first when ``drain``."""
        for model in self._models.values():
            await model.batcher.aclose(drain=drain)

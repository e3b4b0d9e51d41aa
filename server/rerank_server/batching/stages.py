"""What the batcher runs a batch through: three synchronous stages, each on a thread of its own.

Splitting a model call into collate (pad the batch, copy it towards the device), forward (run the
network; on a GPU this only queues the kernels) and fetch (wait for the result and copy it back)
lets consecutive batches overlap: while the device runs batch N, batch N+1 is collated and batch
N-1's scores are copied back, so neither the device nor the CPU waits for the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

P = TypeVar("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class BatchStages(Protocol[P, R_co]):
    """A model as three steps; each runs on its own worker thread, one batch at a time per step."""

    def collate(self, payloads: list[P]) -> Any:
        """Turn a batch of payloads into the model's inputs (padded, on their way to the device)."""
        ...

    def forward(self, inputs: Any) -> Any:
        """Run the model on collated inputs; may return before the device has finished."""
        ...

    def fetch(self, output: Any) -> Sequence[R_co]:
        """Wait for ``output`` and return one result per payload, in order."""
        ...


class SingleStep(Generic[P, R]):
    """A plain function ``payloads -> results`` as stages: all the work happens in ``forward``."""

    def __init__(self, process: Callable[[list[P]], Sequence[R]]) -> None:
        self._process = process

    def collate(self, payloads: list[P]) -> list[P]:
        """The payloads as they are."""
        return payloads

    def forward(self, inputs: list[P]) -> Sequence[R]:
        """The whole model call."""
        return self._process(inputs)

    def fetch(self, output: Sequence[R]) -> Sequence[R]:
        """The results as they are."""
        return output


def as_stages(model: BatchStages[P, R] | Callable[[list[P]], Sequence[R]]) -> BatchStages[P, R]:
    """``model`` itself when it has stages, else the function wrapped as a single step."""
    if all(hasattr(model, name) for name in ("collate", "forward", "fetch")):
        return model  # type: ignore[return-value]
    return SingleStep(model)  # type: ignore[arg-type]

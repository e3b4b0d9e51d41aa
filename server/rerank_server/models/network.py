"""What runs the network on a padded batch: torch on any device, or a compiled ONNX / OpenVINO graph.

Each backend offers the three stages the batcher pipelines (see ``batching.stages``): ``collate``
(numpy batch -> the backend's inputs; on a GPU pinned memory and a non-blocking copy), ``forward``
(on a GPU this only queues the kernels and the copy of the result back) and ``fetch`` (wait for that
copy; float32 numpy out). Scorers put their own meaning on the output rows (a logit, an embedding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from .device import released_on_oom
from .encoding import Encoded, PaddedBatch, TextEncoder, pad

Rows = npt.NDArray[np.float32]


class Network(Protocol):
    """A model's network in three stages, batch in, one float32 row per input out."""

    def collate(self, batch: PaddedBatch) -> Any:
        """The backend's inputs for ``batch`` (on their way to the device)."""
        ...

    def forward(self, inputs: Any) -> Any:
        """Run the network; may return before the device is done."""
        ...

    def fetch(self, output: Any) -> Rows:
        """The output on the host: one row per input."""
        ...


class TorchNetwork:
    """A sentence-transformers model's module chain (tokenizing skipped: it is given ids) in torch.

    ``output`` is the feature the chain's last module writes: ``scores`` for a CrossEncoder (logits),
    ``sentence_embedding`` for a SentenceTransformer (then unit-normalized here, on the device).
    """

    def __init__(self, module: torch.nn.Module, device: str, output: str, unit_rows: bool = False) -> None:
        self._module = module
        self._device = torch.device(device)
        self._cuda = self._device.type == "cuda"
        self._output = output
        self._unit_rows = unit_rows
        module.eval()

    def collate(self, batch: PaddedBatch) -> dict[str, torch.Tensor]:
        """Tensors on the device; on CUDA copied from pinned memory without blocking this thread."""
        tensors = {name: torch.from_numpy(array) for name, array in batch.arrays().items()}
        if self._cuda:
            return {name: t.pin_memory().to(self._device, non_blocking=True) for name, t in tensors.items()}
        if self._device.type != "cpu":
            return {name: t.to(self._device) for name, t in tensors.items()}
        return tensors

    def forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        """Queue the network and the copy of its output to the host; returns (host tensor, CUDA event).

        On CUDA nothing here waits for the device, so this thread can queue the next batch at once.
        """
        with torch.inference_mode(), released_on_oom():
            out = self._module(dict(inputs))[self._output].float()
            if self._unit_rows:
                out = torch.nn.functional.normalize(out, dim=-1)
            return self._to_host(out)

    def _to_host(self, out: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Queue the copy of ``out`` (float32) to the host: (host tensor, the CUDA event that marks it done)."""
        out = out.float()
        if not self._cuda:
            return out.cpu(), None
        host = torch.empty(out.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(out, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return host, done

    def fetch(self, output: tuple[torch.Tensor, Any]) -> Rows:
        """Wait for the copy queued by :meth:`forward` and return it as numpy."""
        host, done = output
        if done is not None:
            with released_on_oom():
                done.synchronize()
        return host.numpy().reshape(len(host), -1)


Graph = Callable[[dict[str, np.ndarray]], np.ndarray]


class GraphNetwork:
    """A compiled graph (ONNX Runtime or OpenVINO, on the CPU): synchronous, so ``fetch`` has nothing to wait for."""

    def __init__(self, graph: Graph, input_names: Sequence[str]) -> None:
        self._graph = graph
        self._inputs = tuple(input_names)

    def collate(self, batch: PaddedBatch) -> dict[str, np.ndarray]:
        """The graph's inputs, by name."""
        arrays = batch.arrays()
        return {name: arrays[name] for name in self._inputs}

    def forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Run the graph."""
        return np.asarray(self._graph(inputs), dtype=np.float32)

    def fetch(self, output: np.ndarray) -> Rows:
        """The output as it is, a row per input."""
        return output.reshape(len(output), -1)


class NetworkStages:
    """The batch stages a scorer offers the batcher, over its ``network``; subclasses say what a row means.

    Subclasses set ``encoder`` (for the pad id) and ``network``, and define :meth:`fetch`.
    """

    encoder: TextEncoder
    network: Network

    def collate(self, items: list[Encoded]) -> Any:
        """Pad the batch and hand it to the network."""
        return self.network.collate(pad(items, self.encoder.pad_id))

    def forward(self, inputs: Any) -> Any:
        """Run the network (on a GPU: queue it)."""
        return self.network.forward(inputs)

    def fetch(self, output: Any) -> list[Any]:
        """One result per item, from the network's output rows."""
        raise NotImplementedError

    def run_batch(self, items: list[Encoded]) -> list[Any]:
        """All three stages on the calling thread."""
        return self.fetch(self.forward(self.collate(items)))

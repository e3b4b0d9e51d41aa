"""A cross-encoder's network run by ONNX Runtime or OpenVINO instead of torch (``--backend``).

The same files the sentence-transformers ONNX / OpenVINO backends read are used when the model
directory ships them (``onnx/model.onnx``, ``openvino/openvino_model.xml``, as many hub rerankers do);
otherwise the loaded torch model is exported at start-up (seconds for a MiniLM). sentence-transformers'
own backends go through optimum, whose releases pin transformers below the versions this server
runs with; exporting with torch and running the graphs directly needs only the runtimes.

Everything here is synchronous; the graph runs as a :class:`GraphNetwork` on ids tokenized at admission.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .device import cpu_has_fast_bf16
from .encoding import TextEncoder, pad
from .network import Graph, GraphNetwork
from .warmup import calibration_text

if TYPE_CHECKING:
    from .loading import ModelSpec

log = logging.getLogger(__name__)

# The inputs a BERT-like sequence classifier takes; models without token types (RoBERTa, XLM-R) omit one.
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# int8 leaves the scoring head (pooler and classifier) in float: it is a sliver of the compute, and its
# rounding moves every score directly (keeping it raised OpenVINO int8's Spearman vs fp32 0.970 -> 0.978).
_HEAD = re.compile(r".*(classifier|pooler).*")
_SHIPPED = {"onnx": Path("onnx") / "model.onnx", "openvino": Path("openvino") / "openvino_model.xml"}

class BackendUnavailable(RuntimeError):
    """The runtime a backend needs is not installed; the message names the extra to install."""


def import_runtime_early(backend: str, specs: Sequence[ModelSpec] = (), device: str = "auto") -> None:
    """Import OpenVINO now, before gRPC starts its threads, if a model may run on it.

    ``import openvino`` starts a usage-telemetry sender that forks a process (unless the user opted out
    with ``opt_in_out --opt_out``); a fork while gRPC's threads run is unsafe, and gRPC logs that it
    skipped its fork handlers. Importing first keeps that fork ahead of gRPC. With ``--backend auto``
    that is only when a cross-encoder will run on the CPU: serving only bi-encoders (the quick start) or
    a GPU never imports it. A missing runtime is reported when the model loads, with the extra to install.
    """
    if backend == "auto":
        from .device import resolve_backend, resolve_device

        try:
            cpu = resolve_device(device) == "cpu"
        except ValueError:
            return  # the model load reports the bad --device
        if not (cpu and any(_may_be_cross_encoder(spec) for spec in specs)):
            return
        backend = resolve_backend("auto", "cpu", cross_encoder=True)
    if backend == "openvino":
        with contextlib.suppress(ImportError):
            import openvino  # noqa: F401


def _may_be_cross_encoder(spec: ModelSpec) -> bool:
    """Whether ``spec`` names a cross-encoder, as far as can be told without downloading anything."""
    from .base import ModelKind
    from .bundled import is_bundled
    from .loading import detect_kind

    if spec.kind is not None:
        return spec.kind is ModelKind.CROSS_ENCODER
    if is_bundled(spec.source):
        return False
    path = Path(spec.source).expanduser()
    if not path.is_dir():
        return True  # a hub id: most models served here are rerankers
    try:
        return detect_kind(path) is ModelKind.CROSS_ENCODER
    except Exception:
        return True


def shipped_graph(directory: Path, backend: str) -> Path | None:
    """The graph file the model directory ships for ``backend``, where sentence-transformers looks for it."""
    path = directory / _SHIPPED[backend]
    return path if path.is_file() else None


def export_onnx(hf_model: Any, tokenizer: Any, path: Path) -> list[str]:
    """Write ``hf_model`` (a transformers sequence classifier) to ``path`` as ONNX; returns its input names.

    Attention is exported in its eager form: the runtimes fuse it themselves, and the graph traced from
    PyTorch's fused SDPA kernel ran measurably slower under both (see README, benchmark row 4).
    """
    import torch

    if hasattr(hf_model, "set_attn_implementation"):
        hf_model.set_attn_implementation("eager")
    sample = tokenizer(["a query"], ["a document to export with"], return_tensors="pt")
    names = [name for name in _INPUTS if name in sample]
    dynamic = {name: {0: "batch", 1: "sequence"} for name in names}
    hf_model.eval()
    # Tracing warns about Python-side branches on shapes; the graph is checked against torch's scores
    # (tests), and the warnings would only alarm whoever reads the start-up log.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            hf_model,
            (),
            str(path),
            kwargs={name: sample[name] for name in names},
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**dynamic, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter needs no onnxscript and handles every BERT-like model
        )
    return names


def onnx_graph(path: Path, int8_copy: Path | None) -> tuple[Graph, list[str]]:
    """An ONNX Runtime CPU session for ``path``; with ``int8_copy``, for a copy of it written there with its
    linear layers quantized dynamically to int8."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendUnavailable("--backend onnx needs ONNX Runtime: pip install '.[onnx]' in the rerank-grpc checkout") from exc
    if int8_copy is not None:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        head = [node.name for node in onnx.load(str(path), load_external_data=False).graph.node if _HEAD.fullmatch(node.name)]
        # The quantizer first rewrites a Gemm as "<name>_MatMul" plus an Add, then applies the exclusions.
        head += [f"{name}_MatMul" for name in head]
        # Per-channel scales keep rankings far closer to float32 than one scale per tensor (measured).
        with _quiet_root_warning("pre-processing before quantization"):
            quantize_dynamic(str(path), str(int8_copy), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=head)
        path = int8_copy
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(session.run(None, feed)[0])

    return run, names


@contextlib.contextmanager
def _quiet_root_warning(fragment: str) -> Iterator[None]:
    """Drop root-logger records containing ``fragment`` (ONNX Runtime's quantizer advises a shape-inference
    pre-pass that fails on transformer graphs; the advice would only confuse the start-up log)."""

    def keep(record: logging.LogRecord) -> bool:
        return fragment not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def openvino_graph(path: Path, precision_hint: str, calibration: Callable[[], list[dict[str, np.ndarray]]] | None) -> tuple[Graph, list[str]]:
    """An OpenVINO CPU model compiled from ``path`` (ONNX or IR) at ``precision_hint`` (f32, bf16, f16).

    With ``calibration``, weights and activations are quantized to int8 first (NNCF post-training
    quantization over the batches it returns).
    """
    try:
        import openvino as ov
    except ImportError as exc:
        raise BackendUnavailable("--backend openvino needs OpenVINO: pip install '.[openvino]' in the rerank-grpc checkout") from exc
    model = ov.Core().read_model(str(path))
    if calibration is not None:
        try:
            import nncf
        except ImportError as exc:
            raise BackendUnavailable("--backend openvino --dtype int8 needs NNCF: pip install '.[openvino]' in the rerank-grpc checkout") from exc
        batches = calibration()
        model = nncf.quantize(
            model,
            nncf.Dataset(batches),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(batches),
            ignored_scope=nncf.IgnoredScope(patterns=[_HEAD.pattern], validate=False),
        )
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision_hint})
    names = [port.get_any_name() for port in compiled.inputs]
    request = compiled.create_infer_request()

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        # One infer request, reused: the model thread is the only caller.
        return np.asarray(request.infer(feed)[0])

    return run, names


def calibration_batches(encoder: TextEncoder, batches: int = 24, size: int = 8) -> list[dict[str, np.ndarray]]:
    """(query, passage) batches of real English of mixed length (the server's own calibration text),
    tokenized and padded as served batches are, for int8 calibration."""
    import random

    words = calibration_text().split()
    rng = random.Random(0)
    out = []
    for _ in range(batches):
        start = rng.randrange(len(words))
        query = " ".join(words[start : start + rng.randint(4, 10)])
        passages = []
        for _ in range(size):
            length = int(math.exp(rng.uniform(math.log(15), math.log(300))))
            at = rng.randrange(max(1, len(words) - length))
            passages.append(" ".join(words[at : at + length]))
        query_ids, *passage_ids = encoder.ids([query, *passages])
        out.append(pad([encoder.pair(query_ids, p) for p in passage_ids], encoder.pad_id).arrays())
    return out


def load_exported(backend: str, directory: Path, hf_model: Any, tokenizer: Any, encoder: TextEncoder, precision: str) -> GraphNetwork:
    """Compile the cross-encoder in ``directory`` (loaded in torch as ``hf_model``) for ``backend``.

    ``precision`` is already resolved: float32 or int8 for onnx; float32, bfloat16, float16 or int8
    for openvino.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rerank-export-") as scratch:
        path = shipped_graph(directory, backend)
        if path is None:
            path = Path(scratch) / "model.onnx"
            export_onnx(hf_model, tokenizer, path)
            origin = "exported from torch"
        else:
            origin = f"shipped {path.relative_to(directory)}"
        if backend == "onnx":
            # The int8 copy goes to the scratch directory: a shipped model's directory may be read-only.
            graph, names = onnx_graph(path, Path(scratch) / "model_qint8.onnx" if precision == "int8" else None)
        else:
            hints = {"float32": "f32", "bfloat16": "bf16", "float16": "f16", "int8": "bf16" if cpu_has_fast_bf16() else "f32"}
            calibrate = (lambda: calibration_batches(encoder)) if precision == "int8" else None
            graph, names = openvino_graph(path, hints[precision], calibrate)
    log.info("%s graph ready in %.1f s (%s, %s)", backend, time.perf_counter() - started, origin, precision)
    return GraphNetwork(graph, names)

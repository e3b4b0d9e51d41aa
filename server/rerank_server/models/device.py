"""Choosing the device and precision a model runs with."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

PRECISIONS = ("auto", "float32", "bfloat16", "float16", "int8")
BACKENDS = ("auto", "torch", "onnx", "openvino")  # what runs the network: PyTorch, ONNX Runtime, OpenVINO


@dataclass(frozen=True)
class Precision:
    """How a model is loaded: the dtype of its weights and whether its linear layers are quantized."""

    name: str  # what ListModels reports
    dtype: torch.dtype
    quantize_int8: bool = False  # dynamic int8 quantization of nn.Linear (CPU only)


_DEVICE_NAMES = ("auto", "cpu", "cuda", "mps", "sim:")


def split_devices(value: str) -> list[str]:
    """The devices of ``--device``: one, or several separated by commas (``cuda:0,cuda:1``). A simulated
    device's profile has a comma of its own (``sim:20,4000``): a piece that does not start a device name
    belongs to the one before it.

    >>> split_devices("sim:20,4000,sim:null")
    ['sim:20,4000', 'sim:null']
    """
    devices: list[str] = []
    for piece in value.split(","):
        piece = piece.strip()
        if devices and not piece.startswith(_DEVICE_NAMES):
            devices[-1] += "," + piece
        else:
            devices.append(piece)
    return devices


def resolve_device(requested: str, backend: str = "torch") -> str:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; anything else is checked and returned.

    The ONNX Runtime and OpenVINO backends run on the CPU here, so ``auto`` is the CPU for them; the
    ``auto`` backend goes where torch would.
    """
    if backend not in ("torch", "auto") and not requested.startswith("sim:"):
        if requested not in ("auto", "cpu"):
            raise ValueError(f"--backend {backend} runs on the CPU; give --device cpu, or --backend torch for {requested}")
        return "cpu"
    if requested.startswith("sim:"):
        from .simulated import parse_profile

        parse_profile(requested)  # a bad profile is a ValueError naming the fix
        return requested
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {requested}: this machine has no CUDA device torch can use; use --device cpu")
    try:
        torch.device(requested)
    except RuntimeError as exc:
        raise ValueError(f"--device {requested!r} is not a torch device (try auto, cpu, cuda, cuda:1, mps)") from exc
    return requested


def openvino_installed() -> bool:
    """Whether OpenVINO can be imported (the ``openvino`` extra)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def resolve_backend(requested: str, device: str, cross_encoder: bool) -> str:
    """``auto``: OpenVINO for a cross-encoder on the CPU where it is installed, torch otherwise.

    The benchmark found OpenVINO the fastest ranking-safe CPU runtime (bfloat16 1.95-2.1x torch fp32
    at Spearman 0.998 where the CPU has bf16; float32 1.13x at 1.000), and torch the only one for GPUs
    and bi-encoders.
    """
    if requested != "auto":
        return requested
    return "openvino" if device == "cpu" and cross_encoder and openvino_installed() else "torch"


# The CPU flags (as /proc/cpuinfo names them) that compute each low precision natively.
_NATIVE_FLAGS = {"bfloat16": (" avx512_bf16", " amx_bf16"), "float16": (" avx512_fp16", " amx_fp16")}
_NATIVE = {"bfloat16": "AVX512-BF16 or AMX", "float16": "AVX512-FP16 or AMX-FP16"}


@cache
def cpu_computes(precision: str) -> bool:
    """Whether this CPU computes ``precision`` (bfloat16 or float16) natively, so it pays off on it."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in _NATIVE_FLAGS[precision])


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), so bf16 pays off on it."""
    return cpu_computes("bfloat16")


# What each exported-graph backend can run; the torch model they are exported from stays float32.
_EXPORTED_PRECISIONS = {"onnx": ("float32", "int8"), "openvino": ("float32", "bfloat16", "float16", "int8")}


def resolve_precision(requested: str, device: str, backend: str = "torch") -> Precision:
    """``auto``: float16 on CUDA, bfloat16 on CPUs with native bf16 (torch and OpenVINO), float32 elsewhere.

    The benchmark (``rerank-bench``) measures each choice's speed and its ranking agreement with
    float32; auto only picks a setting that kept rankings (Spearman >= 0.99) there. int8 never did.
    """
    if backend != "torch":
        allowed = _EXPORTED_PRECISIONS[backend]
        if requested == "auto":
            requested = "bfloat16" if backend == "openvino" and cpu_has_fast_bf16() else "float32"
        if requested not in allowed:
            raise ValueError(f"--backend {backend} runs {' or '.join(allowed)}, not --dtype {requested}; pick one of those or --backend torch")
        if backend == "openvino" and requested in ("bfloat16", "float16") and not cpu_computes(requested):
            # OpenVINO would take the hint and quietly run float32: the model would be served as what it is not.
            raise ValueError(
                f"--backend openvino --dtype {requested} needs a CPU that computes {requested} ({_NATIVE[requested]}); this one "
                "has none, so OpenVINO would run float32: use --dtype auto, float32 or int8"
            )
        return Precision(requested, torch.float32)
    if requested == "auto":
        if device.startswith("cuda"):
            return Precision("float16", torch.float16)
        if device == "cpu" and cpu_has_fast_bf16():
            return Precision("bfloat16", torch.bfloat16)
        return Precision("float32", torch.float32)
    if requested == "int8":
        if device != "cpu":
            raise ValueError(f"--dtype int8 (dynamic quantization) runs on the CPU only, not on {device}")
        return Precision("int8", torch.float32, quantize_int8=True)
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if requested not in dtypes:
        raise ValueError(f"--dtype {requested!r} is not one of {', '.join(PRECISIONS)}")
    return Precision(requested, dtypes[requested])


def quantize_linear_int8(module: torch.nn.Module) -> None:
    """Replace ``module``'s transformer nn.Linear layers, in place, by dynamically quantized int8 ones.

    The scoring head (a Linear with a handful of outputs) stays in float: it is nearly free to run and
    its rounding would move every score directly.
    """
    names = {name for name, m in module.named_modules() if isinstance(m, torch.nn.Linear) and m.out_features > 8}
    torch.ao.quantization.quantize_dynamic(module, names, dtype=torch.qint8, inplace=True)


@contextlib.contextmanager
def released_on_oom() -> Iterator[None]:
    """Give cached GPU memory back when a batch runs out of it, before the error goes up.

    The batcher then retries the batch in halves; without emptying the cache the halves would find
    the memory still held by the failed attempt.
    """
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise


def device_kind(device: str, backend: str) -> str:
    """cpu, cuda or mps: the kind of device ``--device`` resolves to (cpu for a bad value, which the
    model load then reports with its fix)."""
    try:
        return resolve_device(split_devices(device)[0], backend).split(":")[0]
    except ValueError:
        return "cpu"

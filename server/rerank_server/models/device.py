"""Choosing the device and dtype a model runs with."""

from __future__ import annotations

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def resolve_device(requested: str) -> str:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; anything else is checked and returned."""
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


def resolve_dtype(requested: str, device: str) -> torch.dtype:
    """``auto`` is float16 on CUDA and float32 elsewhere; a named dtype is used as given."""
    if requested == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    if requested not in DTYPES:
        raise ValueError(f"--dtype {requested!r} is not one of auto, {', '.join(DTYPES)}")
    return DTYPES[requested]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")

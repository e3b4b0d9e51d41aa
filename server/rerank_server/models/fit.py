"""Whether a model's weights fit the device it is to be served on, checked before they are loaded.

A 4B-8B decoder reranker in float16 takes 8-16 GiB: loading it onto a device without that room fails
deep in torch after minutes of reading weights (or, on a CPU, drives the machine into swap). The size
is known from the checkpoint's files and the precision asked for, and the free memory from the device,
so the server refuses at once with one line naming the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .device import Precision

GIB = 2**30
HEADROOM = 1.1  # the weights plus a tenth: buffers, the allocator's rounding, the first batches
_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "float8_e4m3fn": 1}


class DoesNotFit(ValueError):
    """The model's weights need more memory than its device has free; the message says what to do."""


def checkpoint_bytes(directory: Path) -> int:
    """Bytes of the weights saved in ``directory`` (safetensors, else PyTorch files; each shard once)."""
    files = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("pytorch_model*.bin"))
    return sum(f.stat().st_size for f in files)


def weights_in(directory: Path, precision: Precision) -> int:
    """About how many bytes the weights in ``directory`` take once loaded in ``precision``: the saved size
    scaled from the dtype they were saved in (config.json's ``torch_dtype``/``dtype``; float32 if unsaid)."""
    saved = "float32"
    config = directory / "config.json"
    if config.is_file():
        fields = json.loads(config.read_text())
        saved = str(fields.get("dtype") or fields.get("torch_dtype") or saved).replace("torch.", "")
    target = str(precision.dtype).replace("torch.", "")
    return int(checkpoint_bytes(directory) * _BYTES.get(target, 4) / _BYTES.get(saved, 4))


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes the weights of a loaded module take (tied tensors once; none for those on the meta device)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.data_ptr() not in seen and tensor.device.type != "meta":
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


def free_bytes(device: str) -> int | None:
    """Memory free on ``device`` now (CUDA: the device's; CPU: what the OS says is available), or None
    where it cannot be told (MPS shares memory with the system and reports no free figure)."""
    kind = device.split(":")[0]
    if kind == "cuda" and torch.cuda.is_available():
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        return int(torch.cuda.mem_get_info(index)[0])
    if kind == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def check_fits(source: str, weights: int, free: int | None, device: str, dtype: str) -> None:
    """Raise :class:`DoesNotFit` when ``weights`` (with headroom) exceed ``free`` bytes on ``device``."""
    if free is None or weights * HEADROOM <= free:
        return
    smaller = " or a smaller precision (--dtype bfloat16 or float16)" if dtype in ("float32", "auto") else ""
    raise DoesNotFit(
        f"{source} needs about {weights * HEADROOM / GIB:.1f} GiB on {device} for its weights in {dtype}, and {free / GIB:.1f} GiB "
        f"is free there: serve it on a device with more memory{smaller}, free the memory other processes hold, or serve a smaller model"
    )

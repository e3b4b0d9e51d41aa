"""Giving large freed buffers back to the operating system.

glibc serves allocations over its mmap threshold (128 KiB) with mmap, so freeing them returns the memory.
But each time such a block is freed, glibc raises the threshold to the block's size (up to 32 MiB), so
the next buffers of that size come from the heap and stay with the process when freed. Fixing the
threshold turns that adjustment off: large buffers are always mapped, and always returned (measured,
64 refused 15 MB bodies: +45 MB kept without, +20 MB with).

It is not for a process that runs a network on the CPU: every activation tensor above the threshold is
then mapped and unmapped each batch, page faults and zeroing included (measured on a 6-layer decoder
reranker served on 2 cores: 7.0 pairs/s with the threshold fixed, 10.8 without; CrossEncoder.predict
in the same conditions 11.7). :func:`suits_model_process` says where a process that runs a model may fix it;
front-end processes, which take the bodies, always do, and the engine process, which takes none, never.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value


def suits_model_process(device_kind: str) -> bool:
    """Whether a process that runs models on ``device_kind`` (cpu, cuda, mps or sim) may fix the threshold:
    everywhere but on the CPU, where the network's activations are the large buffers."""
    return device_kind != "cpu"


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold so freed large buffers go back to the OS; False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to adjust
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


"""Worker threads that the operating system can tell apart.

Python names its threads for itself only: ``ps -L``, ``top -H`` and per-thread CPU accounting in
``/proc`` see every thread as the process. Each worker pool here gives its threads their Python name
(``tokenize_0``, ``forward-ms-marco_0``, ...) as the OS thread name too (15 bytes at most, Linux), so
operators and tools can see which role spends the CPU.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

_PR_SET_NAME = 15  # prctl option (linux/prctl.h)
# The process's own symbols, libc's among them: no library search (which runs a subprocess) per thread.
_PRCTL = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform.startswith("linux") else None


def name_os_thread() -> None:
    """Give the calling thread's Python name to the OS thread (Linux; elsewhere nothing happens)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_NAME, ctypes.c_char_p(threading.current_thread().name.encode("ascii", "replace")[:15]), 0, 0, 0)


def named_pool(workers: int, prefix: str) -> ThreadPoolExecutor:
    """A thread pool whose threads carry ``prefix`` in the OS's thread list too."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=prefix, initializer=name_os_thread)

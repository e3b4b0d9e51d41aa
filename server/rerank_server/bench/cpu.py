"""CPU seconds a server's processes and threads spent, by role, read from ``/proc``.

The server names its processes (``rerank-engine``, ``rerank-frontend-N``) and threads (``tokenize-*``,
``collate-*``, ...), so every thread's time can be put under what it does: event loops, tokenizers,
batch stages, the rest.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def server_processes(root: int) -> dict[str, int]:
    """The processes a ``rerank-server`` started (``rerank-engine``, ``rerank-frontend-N``) by the name
    they show in ``ps``; multiprocessing's resource tracker is left out."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                title = _title(int(entry))
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == root and title.startswith("rerank-"):
                found[title] = int(entry)
    return found


def _title(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")


def _role(title: str, main: bool, thread: str, alone: bool) -> str:
    if thread.startswith("tokenize"):
        return "tokenizer threads"
    if thread.startswith(("collate-", "forward-", "fetch-")):
        return "collate + forward + fetch threads"
    if not main:
        return "other threads (gRPC core, HTTP, metrics)"
    if title == "rerank-engine":  # with its front ends or measured alone
        return "engine event loop"
    if alone:
        return "main thread (front end and engine in one)"
    if title.startswith("rerank-frontend"):
        return "front-end event loops"
    return "supervisor"


def cpu_by_role(root: int) -> dict[str, float]:
    """CPU seconds so far of the server rooted at ``root``, by role: its processes' main threads (event
    loops), tokenizer threads, batch stages and the rest (threads named by ``batching.threads``)."""
    processes = [root, *server_processes(root).values()]
    alone = len(processes) == 1
    seconds: defaultdict[str, float] = defaultdict(float)
    for pid in processes:
        title = _title(pid)
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            thread = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            seconds[_role(title, int(tid) == pid, thread, alone)] += (int(fields[11]) + int(fields[12])) / _TICK
    return dict(seconds)

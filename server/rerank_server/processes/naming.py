"""Process names operators can tell apart: ``rerank-engine`` and ``rerank-frontend-N`` in ``ps``, ``top``
and every log line."""

from __future__ import annotations

import threading

from ..batching.threads import name_os_thread
from ..logs import configure as configure_logging

ENGINE = "rerank-engine"
SUPERVISOR = "rerank-server"


def frontend(index: int) -> str:
    """The name of front end ``index`` (from 1)."""
    return f"rerank-frontend-{index}"


def name_process(role: str, log_level: str, log_format: str) -> None:
    """Show ``role`` as this process's title (``ps`` shows it instead of the command line), as its
    short name (``top``, ``ps -o comm``: 15 bytes at most) and in its log records."""
    try:
        import setproctitle

        setproctitle.setproctitle(role)
    except ImportError:  # an install without the server extra's dependencies: the short name still shows
        pass
    threading.current_thread().name = role
    name_os_thread()
    configure_logging(log_level, log_format, role)

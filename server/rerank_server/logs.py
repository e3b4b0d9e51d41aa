"""Log set-up: text lines for people, or one JSON object per line for log collectors."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from typing import Any

READY = "rerank-server ready on"  # the start of the line (or JSON message) that says the server takes traffic

# Attributes every LogRecord has; anything else was passed as ``extra`` and belongs in the JSON.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the process's role (with several
    processes) and any ``extra`` fields (request_id, ...)."""

    def __init__(self, role: str = "") -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            # ISO 8601 with milliseconds and the zone: what collectors parse without configuration.
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.role:
            entry["process"] = self.role
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str, fmt: str, role: str = "") -> None:
    """Send logs to stderr at ``level`` in ``fmt`` ("text" or "json"); ``role`` names the process in
    every record (``rerank-engine``, ``rerank-frontend-2``) when the server runs as several.

    Progress bars (model loading) go to a terminal only: with JSON logs, or when stderr is a file or a
    pipe, they are off, so that every line a collector reads is a log record.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(role))
    else:
        where = f"[{role}] " if role else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {where}%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if fmt == "json" or not sys.stderr.isatty():
        _no_progress_bars()


def _no_progress_bars() -> None:
    import huggingface_hub.utils
    import transformers.utils.logging

    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()


def announce_ready(target: str, fmt: str) -> None:
    """Say the server takes traffic, on stdout: a plain line, or a JSON record with JSON logs (what
    supervisors and tests wait for, whatever --log-level)."""
    if fmt == "json":
        record = logging.LogRecord("rerank_server", logging.INFO, __file__, 0, f"{READY} {target}", None, None)
        print(JsonFormatter().format(record), flush=True)
    else:
        print(f"{READY} {target}", flush=True)

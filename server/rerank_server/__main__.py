"""``rerank-server``: load the models, serve them, and shut down gracefully on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

try:
    from .cli import config_from_args
    from .logs import announce_ready
    from .memory import return_large_buffers, suits_model_process
    from .logs import configure as configure_logging
    from .models import ModelLoadError
    from .models.device import device_kind
    from .models.exported import import_runtime_early
    from .engine.pool import default_frontends
    from .processes.supervisor import Supervisor
    from .service.http_connections import raise_descriptor_limit
    from .service.http import ENDPOINTS
    from .service.server import RerankServer
    from .service.settings import ServerConfig
    from .startup import describe, loaded_models
except ImportError as missing:  # a client-only install: say what to add, not a traceback
    sys.exit(
        f"rerank-server: error: the server's dependencies are not installed ({missing.name or missing}); "
        "install the server extra: pip install '.[server]' in the rerank-grpc checkout"
    )

log = logging.getLogger("rerank_server")


async def run(config: ServerConfig) -> int:
    """Serve until a signal arrives; returns the process exit code."""
    server = RerankServer(config)
    await server.start()
    log.info("listening on %s (health: NOT_SERVING until the models are loaded)", server.target)
    if server.http_port is not None:
        log.info("HTTP on http://%s:%d: %s", config.host, server.http_port, ENDPOINTS)
    if server.metrics_port is not None:
        log.info("Prometheus metrics on http://%s:%d/metrics", config.host, server.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    loading = asyncio.create_task(_load_all(server, config))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({loading, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if not loading.done():  # a signal while loading: nothing was accepted yet
        loading.cancel()
        await server.stop(0)
        return 0
    if (error := loading.exception()) is not None:
        await server.stop(0)
        if isinstance(error, ModelLoadError):
            log.error("%s", error)
            return 2
        raise error
    await server.mark_ready()
    log.info("serving %s on %s; default model: %s", describe(server.registry), server.target, server.registry.default_name)
    announce_ready(server.target, config.log_format)
    await stopper
    log.info("shutting down: finishing in-flight requests for up to %.0fs", config.grace_s)
    await server.stop(config.grace_s, close_port=False)
    log.info("stopped")
    # Exit here, with the gRPC port still open: the operating system closes its connections, so calls that
    # arrived in the last moment end UNAVAILABLE (retried by clients), not CANCELLED (see RerankServer.stop).
    logging.shutdown()
    os._exit(0)


async def _load_all(server: RerankServer, config: ServerConfig) -> None:
    async for scorers, speed in loaded_models(config):
        server.serve(scorers, speed)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``rerank-server`` command."""
    # Tokenizing runs on worker threads next to the model; the tokenizers library's own thread pool on top
    # of that only oversubscribes the cores (and warns after a fork).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = config_from_args(argv)
    raise_descriptor_limit()
    frontends = config.frontends or default_frontends(device_kind(config.device, config.backend))
    try:
        if frontends > 1:
            code = Supervisor(config, frontends).run()
        else:
            configure_logging(config.log_level, config.log_format)
            if suits_model_process(device_kind(config.device, config.backend)):
                return_large_buffers()
            import_runtime_early(config.backend, config.models, config.device)
            code = asyncio.run(run(config))
    except (OSError, ValueError) as exc:  # a port in use, an unreadable token file: say so, no traceback
        print(f"rerank-server: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()

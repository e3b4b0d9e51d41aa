"""The installed version, and ``--version`` for every command."""

from __future__ import annotations

import argparse


def version() -> str:
    """This installation's version of rerank-grpc."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("rerank-grpc")
    except PackageNotFoundError:  # run from a checkout without installing
        return "unknown (not installed)"


def add_version(parser: argparse.ArgumentParser) -> None:
    """``--version`` on a command or sub-command."""
    parser.add_argument("--version", action="version", version=f"%(prog)s (rerank-grpc {version()})")

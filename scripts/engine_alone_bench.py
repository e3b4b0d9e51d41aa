"""The engine process alone on ``sim:null``: its CPU a pair, without the front ends' noise.

The whole server's figure for the engine (``rerank-bench --host-path``, row 10) moves 15-40% from one
hour to the next on a 2-core machine, because the tokenizer threads beside it evict its caches. Here the
front ends are played by this process: pre-tokenized requests of 20 pairs (200-400 tokens each) over
real engine connections, paced as two tokenizer threads would pace them. Figures repeat within 5%, so
a change to the engine's loop or stages can be measured in alternating rounds. ``--tokenize-s 0``
leaves them unpaced: the engine's ceiling (``rerank-bench --host-path`` reports it as row 10b).

    .venv/bin/python scripts/engine_alone_bench.py MODEL_DIR [--connections 2] [--callers 64] [--seconds 10]

MODEL_DIR: a cross-encoder directory, e.g. the one ``rerank-bench --model-dir DIR`` builds.
``--hogs N`` starts N processes that sweep 64 MB arrays beside it (what the tokenizers do to its caches).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rerank_server.bench.engine_alone import run_engine_alone, synthetic_requests


def main() -> None:
    """Start the engine process on sim:null, drive it, print its pairs a second and CPU a pair."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="a cross-encoder directory")
    parser.add_argument("--connections", type=int, default=2, help="front ends played (default 2)")
    parser.add_argument("--callers", type=int, default=64, help="closed-loop callers (default 64)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds after a 2 s warm-up (default 10)")
    parser.add_argument("--tokenize-s", type=float, default=0.0066, help="seconds a request holds one of two tokenizer slots (default 0.0066: about the full server's rate on a 2-core CPU; 0: unpaced)")
    parser.add_argument("--hogs", type=int, default=0, help="cache-evicting processes to run beside it (default 0)")
    args = parser.parse_args()
    run = run_engine_alone(
        Path(args.model_dir), synthetic_requests(), args.seconds, connections=args.connections, callers=args.callers, tokenize_s=args.tokenize_s, hogs=args.hogs
    )
    shown = ", ".join(f"{role} {us:.1f}" for role, us in sorted(run["cpu_us_per_pair"].items()) if us)
    print(f"{run['pairs_per_s']:.0f} pairs/s; engine process CPU a pair {run['cpu_us_per_pair_total']:.1f} us ({shown})", flush=True)


if __name__ == "__main__":
    main()

"""Rerank a dataset with Ray Data: every record's documents scored by a cross-encoder, on this machine or a
Ray cluster, unchanged (``pip install '.[server,ray]'``).

    python examples/ray_rerank.py                                  # a local Ray instance, the bundled model
    python examples/ray_rerank.py --model /models/ms-marco-MiniLM-L-6-v2 --num-gpus 1 --actors 4 \\
        --input s3://bucket/candidates/ --output s3://bucket/scored/  # on a cluster: RAY_ADDRESS=... first
    python examples/ray_rerank.py --target 10.0.0.5:50051 --target 10.0.0.6:50051  # through servers

``ray.init()`` starts a local instance, or joins the cluster that ``RAY_ADDRESS`` names (``ray job submit``
sets it). On a cluster, ``--input`` and ``--output`` must be paths every node reads (object storage or a
shared file system), and each node needs rerank-grpc and the model. Input rows are JSONL or Parquet with
``query`` and ``documents`` (a list), as ``rerank batch`` reads them; output rows keep every column and add
``scores``, ``ranks`` and ``truncated`` in the documents' order.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent


def main() -> None:
    """Read, score with :class:`rerank_client.ray_data.Rerank` actors, write, and show the first rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default=str(EXAMPLES / "labelled-pairs.jsonl"), help="JSONL or Parquet file or directory (default: the shipped example set)")
    parser.add_argument("--output", default="ray-scored", help="directory the scored rows are written to as Parquet (default %(default)s)")
    parser.add_argument("--model", default="bundled", help="the model each actor loads: a directory, a hub id, or 'bundled' (default %(default)s)")
    parser.add_argument("--target", action="append", default=[], help="send rows to this rerank-server instead (repeat for a fleet)")
    parser.add_argument("--actors", type=int, default=1, help="actors scoring at once (default %(default)s); each holds the model once")
    parser.add_argument("--num-gpus", type=float, default=0, help="GPUs per actor (default %(default)s: the CPU)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows an actor scores at once; they are batched together (default %(default)s)")
    args = parser.parse_args()

    import ray

    from rerank_client.ray_data import Rerank

    if not os.environ.get("RAY_ADDRESS"):
        # Alone on this machine: Ray's processes talk over loopback, not the machine's network address.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(include_dashboard=False, log_to_driver=False)
    read = ray.data.read_parquet if args.input.endswith((".parquet", ".pq")) else ray.data.read_json
    dataset = read(args.input)
    where = {"targets": args.target} if args.target else {"model": args.model, "device": "cuda" if args.num_gpus else "cpu"}
    scored = dataset.map_batches(
        Rerank,
        fn_constructor_kwargs=where,
        concurrency=args.actors,
        num_gpus=args.num_gpus,
        batch_size=args.batch_size,
    )
    scored.write_parquet(args.output)
    written = ray.data.read_parquet(args.output)
    print(f"scored {written.count()} records into {args.output}")
    for row in written.take(3):
        best = list(row["ranks"]).index(0)  # the document ranked first
        print(f"{row['query']!r}: best document {best} (score {row['scores'][best]:.3f}): {row['documents'][best][:70]}")
    ray.shutdown()


if __name__ == "__main__":
    main()

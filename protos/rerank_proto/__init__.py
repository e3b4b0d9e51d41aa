"""Generated protobuf and gRPC code for rerank.v1 (do not edit; see scripts/gen_protos.py)."""

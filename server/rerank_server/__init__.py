"""rerank-grpc server: cross-encoder reranking over gRPC with cross-request micro-batching."""

__version__ = "0.1.0"

"""The gRPC transport: validation, status codes, the Reranker servicer, health and reflection."""

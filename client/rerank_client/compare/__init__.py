"""``rerank compare``: a cross-encoder's ranking next to an embedding model's, with the evidence for every difference."""

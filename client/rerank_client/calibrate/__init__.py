"""``rerank calibrate``: calibrated relevance scores (see ``command``)."""

"""``rerank batch``: resumable bulk jobs (see ``command``)."""

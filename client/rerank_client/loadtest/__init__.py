"""``rerank loadtest``: drive any Reranker server with closed- or open-loop load and report what it did.

- :mod:`.corpus` and :mod:`.workload` decide what each request holds;
- :mod:`.callers` send one request (unary or over RerankStream) and record a :class:`.Sample`;
- :mod:`.runner` paces them (closed loop: N callers; open loop: Poisson arrivals at a rate);
- :mod:`.report` summarises samples; :mod:`.plot` draws them; :mod:`.command` is the CLI.
"""

"""``rerank-bench``: side-by-side measurements of the server against what users would run instead.

Everything a comparison needs runs here, on loopback, in one process tree: the same model, the same
pairs, the same machine, measured in one run, so the ratios hold even on a noisy machine.
"""

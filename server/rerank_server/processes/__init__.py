"""The server as several processes: front ends that scale with the cores feeding one engine process
that owns the queue and the device (``--frontends N``), started and watched by a supervisor.

    rerank-server (supervisor)  --spawns-->  rerank-engine          (models, queue, batches, metrics)
                                --spawns-->  rerank-frontend-1..N   (gRPC + HTTP on the shared ports:
                                                                     validate, tokenize, plan, rank)
"""

"""Several kinds of traffic at once (``rerank loadtest --traffic``): each class with its own load,
documents, priority, deadline and caller, run together and reported apart."""

from __future__ import annotations

from dataclasses import dataclass

from .workload import parse_range

PRIORITIES = ("interactive", "bulk")
TENANT_HEADER = "x-rerank-tenant"  # rerank-server's default --tenant-header


@dataclass(frozen=True)
class TrafficClass:
    """One kind of traffic: a closed loop of ``concurrency`` callers or an open loop at ``rate`` a second."""

    name: str
    concurrency: int | None = None
    rate: float | None = None
    documents: tuple[int, int] = (10, 100)
    priority: str = "interactive"
    tenant: str = ""
    timeout: float | None = None  # the deadline of each request; None: --timeout's


def parse_traffic(text: str) -> TrafficClass:
    """``NAME:key=value,...`` with keys concurrency, rate, documents, priority, tenant, timeout, e.g.
    ``bulk:concurrency=32,documents=50-100,priority=bulk,tenant=backfill``."""
    name, sep, rest = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"--traffic {text!r}: give NAME:key=value,... (e.g. users:rate=5,documents=1-4,timeout=0.5)")
    fields: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise ValueError(f"--traffic {name}: {part!r} is not key=value")
        fields[key.strip()] = value.strip()
    unknown = set(fields) - {"concurrency", "rate", "documents", "priority", "tenant", "timeout"}
    if unknown:
        raise ValueError(f"--traffic {name}: unknown keys {sorted(unknown)}; use concurrency, rate, documents, priority, tenant, timeout")
    try:
        traffic = TrafficClass(
            name=name.strip(),
            concurrency=int(fields["concurrency"]) if "concurrency" in fields else None,
            rate=float(fields["rate"]) if "rate" in fields else None,
            documents=parse_range(fields.get("documents", "10-100")),
            priority=fields.get("priority", "interactive"),
            tenant=fields.get("tenant", ""),
            timeout=float(fields["timeout"]) if "timeout" in fields else None,
        )
    except ValueError as exc:
        raise ValueError(f"--traffic {name}: {exc}") from None
    if (traffic.concurrency is None) == (traffic.rate is None):
        raise ValueError(f"--traffic {name}: give exactly one of concurrency=N (closed loop) or rate=R (open loop)")
    if (traffic.concurrency is not None and traffic.concurrency < 1) or (traffic.rate is not None and traffic.rate <= 0):
        raise ValueError(f"--traffic {name}: concurrency must be at least 1 and rate more than 0")
    if traffic.priority not in PRIORITIES:
        raise ValueError(f"--traffic {name}: priority must be one of {', '.join(PRIORITIES)}")
    if traffic.timeout is not None and traffic.timeout <= 0:
        raise ValueError(f"--traffic {name}: timeout must be positive")
    return traffic

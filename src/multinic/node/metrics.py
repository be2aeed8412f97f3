"""The daemon's Prometheus metrics (prometheus_client, the Prometheus project's library).

One registry per daemon, so several daemons in one process (tests, the lab)
keep their counts apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Request latencies from 1 ms to 2 min: an in-process ADD takes milliseconds,
#: one waiting on a datastore's deadline up to tens of seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)


class Metrics:
    """Requests by verb and result, their latency, and how many are in flight."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "multinic_cni_requests",
            "CNI requests served, by verb and result (ok, or the CNI error code)",
            ("verb", "result"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "multinic_cni_request_seconds",
            "Time to answer one CNI request, by verb",
            ("verb",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "multinic_cni_requests_in_flight",
            "CNI requests being answered now",
            registry=self.registry,
        )

    def observe(self, verb: str, result: str, seconds: float) -> None:
        self.requests.labels(verb, result).inc()
        self.latency.labels(verb).observe(seconds)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return bytes(generate_latest(self.registry))

"""Prometheus series. One registry per app, so several apps in one process stay apart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _BatcherCollector(Collector):
    """Reads the scorer's micro-batching counters at scrape time (the batchers keep plain
    counters; mean batch size is rate(pairs) / rate(batches))."""

    def __init__(self, scorer: Callable[[], Any]) -> None:
        self._scorer = scorer

    def collect(self) -> Iterator[Metric]:
        stats = getattr(self._scorer(), "batch_stats", None)
        per_model = stats() if callable(stats) else {}
        families = {
            "batches": CounterMetricFamily("crossrank_batches", "Merged scoring calls",
                                           labels=["model"]),
            "pairs": CounterMetricFamily("crossrank_batch_pairs", "Pairs scored in batches",
                                         labels=["model"]),
            "requests": CounterMetricFamily("crossrank_batch_requests",
                                            "Scoring requests merged into batches",
                                            labels=["model"]),
            "skipped": CounterMetricFamily("crossrank_batch_skipped_requests",
                                           "Queued requests dropped because their caller left",
                                           labels=["model"]),
        }
        queued = GaugeMetricFamily("crossrank_batch_queue_pairs",
                                   "Pairs waiting for a model now", labels=["model"])
        for model, (counters, waiting) in sorted(per_model.items()):
            for key, family in families.items():
                family.add_metric([model], getattr(counters, key))
            queued.add_metric([model], waiting)
        yield from families.values()
        yield queued


class Metrics:
    def __init__(self, scorer: Callable[[], Any] | None = None) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, CPU, fds
        if scorer is not None:
            self.registry.register(_BatcherCollector(scorer))
        self.requests = Counter("crossrank_requests_total", "Requests by route, arm and status",
                                ["route", "arm", "status"], registry=self.registry)
        self.latency = Histogram("crossrank_request_seconds", "Request latency by route and arm",
                                 ["route", "arm"], buckets=_LATENCY_BUCKETS,
                                 registry=self.registry)
        self.outcomes = Counter("crossrank_search_outcomes_total",
                                "Searches through a policy: reranked, bypassed or fallback",
                                ["policy", "arm", "outcome", "reason"], registry=self.registry)
        self.score_seconds = Histogram("crossrank_score_seconds", "Scoring time per call",
                                       ["model"], buckets=_LATENCY_BUCKETS,
                                       registry=self.registry)
        self.pairs = Histogram("crossrank_score_pairs", "Pairs per scoring call", ["model"],
                               buckets=(1, 5, 10, 20, 50, 100, 200, 500, 1000),
                               registry=self.registry)
        self.missing_fields = Counter("crossrank_missing_text_fields_total",
                                      "Hits whose policy text field was missing",
                                      ["policy"], registry=self.registry)
        self.upstream_errors = Counter("crossrank_upstream_errors_total",
                                       "Failures talking to OpenSearch", ["type"],
                                       registry=self.registry)
        self.cache_lookups = Counter("crossrank_score_cache_lookups_total",
                                     "Score cache lookups by result (hit or miss)", ["result"],
                                     registry=self.registry)
        self.in_flight = Gauge("crossrank_in_flight_requests", "Requests being served",
                               registry=self.registry)

        # Bound children by label values: .labels() costs a lock and a lookup per call.
        self._request_series: dict[tuple[str, int, str], tuple[Counter, Histogram]] = {}

    def request_done(self, route: str, status: int, seconds: float, arm: str = "") -> None:
        """Count one request and its latency; ``arm`` is the A/B arm of a search through a
        policy (``rerank`` or ``baseline``), "" for everything else."""
        key = (route, status, arm)
        series = self._request_series.get(key)
        if series is None:
            series = (self.requests.labels(route, arm, str(status)),
                      self.latency.labels(route, arm))
            self._request_series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

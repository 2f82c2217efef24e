"""Prometheus metrics, kept in a registry per app so several apps can live in one process."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from signoff.models import Request, Status
from signoff_server.db import Database
from signoff_server.schema import requests

__all__ = ["Metrics"]


class _StatusCollector(Collector):
    """`signoff_requests{status=…}`: counted in the database at scrape time, so every replica
    reports the same truth."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "signoff_requests", "Requests in the store, by status", labels=["status"]
        )
        with self._db.read() as conn:
            counts = {
                row.status: row.n
                for row in conn.execute(
                    select(requests.c.status, func.count().label("n")).group_by(requests.c.status)
                )
            }
        for status in Status:
            family.add_metric([status.value], counts.get(status.value, 0))
        yield family


class Metrics:
    """The server's metrics: requests by status, creations, closings, decision latency."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.created = Counter(
            "signoff_requests_created",
            "Requests created, by risk",
            ["risk"],
            registry=self.registry,
        )
        self.closed = Counter(
            "signoff_requests_closed",
            "Requests closed, by final status",
            ["status"],
            registry=self.registry,
        )
        self.decision_latency = Histogram(
            "signoff_decision_latency_seconds",
            "Time from creation to the closing decision",
            buckets=(1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200),
            registry=self.registry,
        )
        self.registry.register(_StatusCollector(db))

    def request_closed(self, request: Request) -> None:
        """Count a closed request and how long its decision took."""
        self.closed.labels(status=request.status.value).inc()
        if request.closed_at is not None:
            seconds = (request.closed_at - request.created_at).total_seconds()
            self.decision_latency.observe(max(seconds, 0.0))

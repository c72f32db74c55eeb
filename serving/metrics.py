"""Prometheus metrics: requests by route and status, live-fallback calls, the active run.

Under gunicorn each worker is its own process, so counters live in files when
PROMETHEUS_MULTIPROC_DIR is set (`movierec serve` sets it to a fresh folder and its
gunicorn config marks dead workers): `/metrics` then adds up every worker's files, and
any worker can answer the scrape.  Without it (Flask's dev server, tests) the app keeps
its own registry.  The active run is read from the store at scrape time, so it is right
whichever worker answers and whenever the pointer moved.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from serving import store

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LIVE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    def __init__(self, app: Flask):
        self.app = app
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "movierec_http_requests_total",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "movierec_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.live_calls = Counter(
            "movierec_live_calls_total", "Calls to the live-Spark fallback", ["kind", "outcome"], registry=self.registry
        )
        self.live_latency = Histogram(
            "movierec_live_call_duration_seconds",
            "Time a live-Spark call took",
            ["kind", "outcome"],
            buckets=LIVE_BUCKETS,
            registry=self.registry,
        )
        app.before_request(self._start)
        app.after_request(self._finish)

    def _start(self) -> None:
        g.metrics_started = time.perf_counter()

    def _finish(self, response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            # the route template, never the raw path: unmatched paths would explode the labels
            route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
            labels = (request.method, route, str(response.status_code))
            self.requests.labels(*labels).inc()
            self.latency.labels(*labels).observe(time.perf_counter() - started)
        return response

    def observe_live(self, kind: str, outcome: str, seconds: float) -> None:
        self.live_calls.labels(kind, outcome).inc()
        self.live_latency.labels(kind, outcome).observe(seconds)

    def exposition(self) -> Response:
        folder = multiprocess_dir()
        if folder:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=folder)
        else:
            registry = CollectorRegistry()
            registry.register(_Forward(self.registry))
        registry.register(ActiveRunCollector(self.app))
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class _Forward(Collector):
    """The app's own registry, inside the scrape registry."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self) -> Iterable[Any]:
        return self.registry.collect()


class ActiveRunCollector(Collector):
    """movierec_active_run{run_id=...} 1 and movierec_store_up, read at scrape time."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self) -> Iterator:
        up = GaugeMetricFamily("movierec_store_up", "1 when the store answered this scrape")
        active = GaugeMetricFamily(
            "movierec_active_run", "The run the API serves (value 1, id in the label)", labels=["run_id"]
        )
        try:
            with self.app.extensions["movierec"].engine.connect() as conn:
                run_id = store.get_active_run_id(conn)
        except Exception:
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
            if run_id is not None:
                active.add_metric([run_id], 1)
        yield up
        yield active

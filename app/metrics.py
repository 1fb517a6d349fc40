"""Prometheus metrics (prometheus-client), one registry per app; multiprocess-aware."""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from app.predictor import Answer

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
NUMBER_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "digits_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "digits_http_request_duration_seconds",
            "Time to answer, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter("digits_predictions", "Answers given, by predicted digit", ["digit"], registry=r)
        self.confidence = Histogram(
            "digits_prediction_confidence", "Confidence of answers given", buckets=CONFIDENCE_BUCKETS, registry=r
        )
        self.batch_images = Histogram(
            "digits_inference_batch_images", "Images per forward pass", buckets=BATCH_BUCKETS, registry=r
        )
        self.number_digits = Histogram(
            "digits_number_digits", "Digits read per number at /predict/number", buckets=NUMBER_BUCKETS, registry=r
        )
        # an info metric: 1 for the version a worker serves, 0 for one it replaced (a row per worker
        # under several, with its pid)
        self.model = Gauge(
            "digits_model_info",
            "The checkpoint version a worker serves (1) or served before a reload (0)",
            ["version"],
            multiprocess_mode="liveall",
            registry=r,
        )
        self.reloads = Counter(
            "digits_model_reloads",
            "Model reloads by outcome: loaded, unchanged (already serving that file) or failed (old model kept)",
            ["outcome"],
            registry=r,
        )
        self.feedback = Counter(
            "digits_feedback",
            "Corrections taken at POST /feedback, by the model version that read the image and whether its answer "
            "was the label (verdict right or wrong)",
            ["model_version", "verdict"],
            registry=r,
        )
        # labelled children looked up once, not on every request (labels() costs microseconds)
        self._digits = [self.predictions.labels(digit=str(d)) for d in range(10)]
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[str, Any] = {}

    def observe_inference(self, answers: Sequence[Answer]) -> None:
        self.batch_images.observe(len(answers))
        for digit, n in collections.Counter(a.digit for a in answers).items():
            self._digits[digit].inc(n)
        for a in answers:
            self.confidence.observe(a.confidence)

    def observe_number(self, digits: int) -> None:
        self.number_digits.observe(digits)

    def observe_feedback(self, version: str, right: bool) -> None:
        self.feedback.labels(model_version=version, verdict="right" if right else "wrong").inc()

    def model_loaded(self, version: str, previous: str | None = None) -> None:
        if previous is not None and previous != version:
            self.model.labels(version=previous).set(0)
        self.model.labels(version=version).set(1)

    def observe_reload(self, outcome: str) -> None:
        self.reloads.labels(outcome=outcome).inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        if key not in self._requests:
            self._requests[key] = self.requests.labels(route=route, method=method, status=str(status))
            self._latency.setdefault(route, self.latency.labels(route=route))
        self._requests[key].inc()
        self._latency[route].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The text exposition; under several workers (PROMETHEUS_MULTIPROC_DIR set) summed across them."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

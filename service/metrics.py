"""The Prometheus collectors the service exposes at ``/metrics``.

Each app gets its own registry, so that two apps in one process (tests, embedding) never collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "disentangle_requests",
            "HTTP requests by endpoint, model and status code",
            ["endpoint", "model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "disentangle_request_seconds",
            "HTTP request latency, from the first byte read to the last byte sent",
            ["endpoint", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "disentangle_batch_size",
            "rows per onnxruntime run",
            ["model", "network"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "disentangle_queue_depth",
            "requests waiting or running, per model and network",
            ["model", "network"],
            registry=self.registry,
        )
        self.inference = Histogram(
            "disentangle_inference_seconds",
            "time of one batch: the onnxruntime run plus the per-request image encoding",
            ["model", "network"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_failures = Counter(
            "disentangle_batch_failures",
            "batches whose run failed (every request in it got a 500), and requests whose finishing failed",
            ["model", "network"],
            registry=self.registry,
        )
        self.disconnects = Counter(
            "disentangle_client_disconnects",
            "requests whose client hung up before the answer (status 499 in disentangle_requests), by endpoint",
            ["endpoint"],
            registry=self.registry,
        )
        # Read when /metrics is scraped (``Admission`` sets their functions): nothing on the request path.
        self.admitted = Gauge(
            "disentangle_admission_in_progress", "inference requests inside the app (at most admission_limit)",
            registry=self.registry,
        )  # fmt: skip
        self.waiting = Gauge(
            "disentangle_admission_waiting", "inference requests waiting at the gate (at most admission_backlog)",
            registry=self.registry,
        )  # fmt: skip
        self.models = Gauge("disentangle_models_loaded", "artifacts loaded and serving", registry=self.registry)
        self.broken = Gauge("disentangle_artifacts_broken", "artifacts skipped at start-up", registry=self.registry)

"""The server's Prometheus metrics, in a registry of their own."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from keras_transformer.serving.batcher import DynamicBatcher

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServingMetrics:
    """Counters, gauges and histograms of one translation server, kept in a
    dedicated `CollectorRegistry` (so that several servers, or tests, in one
    process do not share them).

    Metrics: `translation_requests_total{path, code}` (HTTP requests by
    status code), `translation_errors_total{reason}` (answers that are not
    200), `translation_sentences_total` (sentences translated),
    `translation_queue_depth` and `translation_queued_requests` (waiting in
    the batcher), `translation_batch_size` (sentences per decoding call),
    `translation_batch_seconds` (time per decoding call) and
    `translation_request_seconds{path}` (request latency).

    Example:

    >>> from keras_transformer.serving import ServingMetrics
    >>> metrics = ServingMetrics()
    >>> metrics.observe_batch(sentences=3, rows=4, seconds=0.02)
    >>> "translation_batch_size_count 1.0" in metrics.exposition().decode()
    True
    """

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "translation_requests",
            "HTTP requests by path and status code.",
            ["path", "code"],
            registry=self.registry,
        )
        self.errors = Counter(
            "translation_errors",
            "Answers other than 200, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.sentences = Counter(
            "translation_sentences", "Sentences translated.", registry=self.registry
        )
        self.latency = Histogram(
            "translation_request_seconds",
            "Time from a request's arrival to its answer.",
            ["path"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "translation_batch_size",
            "Sentences per decoding call.",
            buckets=_BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "translation_batch_seconds",
            "Time per decoding call.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "translation_queue_depth", "Sentences waiting to be decoded.", registry=self.registry
        )
        self.queued_requests = Gauge(
            "translation_queued_requests",
            "Requests with sentences waiting to be decoded.",
            registry=self.registry,
        )

    def watch(self, batcher: DynamicBatcher) -> None:
        """Reads the queue gauges from `batcher` at each scrape."""
        self.queue_depth.set_function(lambda: batcher.stats().queued_sentences)
        self.queued_requests.set_function(lambda: batcher.stats().queued_requests)

    def observe_batch(self, sentences: int, rows: int, seconds: float) -> None:
        """Records one decoding call (a `DynamicBatcher` `on_batch`)."""
        self.batch_size.observe(sentences)
        self.batch_seconds.observe(seconds)

    def observe_request(self, path: str, code: int, seconds: float) -> None:
        """Records one answered HTTP request."""
        self.requests.labels(path=path, code=str(code)).inc()
        self.latency.labels(path=path).observe(seconds)

    def exposition(self) -> bytes:
        """The metrics in Prometheus's text format."""
        return generate_latest(self.registry)

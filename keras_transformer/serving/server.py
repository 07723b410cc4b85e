"""The translation server: a Starlette app on uvicorn, in one process, whose
requests share one `DynamicBatcher` and one model.

    POST /v1/translate  {"sentences": ["...", ...], "beams": 1}
                        -> 200 {"translations": ["...", ...]}
    GET  /healthz       200 while the process serves
    GET  /readyz        200 once the model is loaded and warmed, else 503
    GET  /metrics       Prometheus text

Refusals carry `{"error": "...", "field": "..."}` (`field` null where no
field is at fault): 400 a body that is not a UTF-8 JSON object, 422 a wrong
field, 413 too many or too long sentences, 429 a full queue (with
`Retry-After`), 503 not ready or stopping, 504 the deadline passed first.
"""

import asyncio
import contextlib
import itertools
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from keras_transformer.serving.batcher import (
    BatcherStopped,
    DeadlineExceeded,
    DynamicBatcher,
    QueueFull,
    padded_length,
)
from keras_transformer.serving.metrics import ServingMetrics
from keras_transformer.serving.model import WARM_UP_SENTENCE, TranslatorModel
from keras_transformer.serving.options import ServerOptions
from keras_transformer.serving.requests import RequestError, check_token_counts, parse_request

_LOG = logging.getLogger(__name__)
ROUTES = ("/v1/translate", "/healthz", "/readyz", "/metrics")
# The `translation_errors_total` reason of each refusal of a request's content.
_REASONS = {400: "bad_request", 413: "too_large", 422: "invalid"}


class _Service:
    """The state the routes share: the model and batcher once loaded."""

    def __init__(self, load_model, options: ServerOptions, on_load_failure):
        self.load_model = load_model
        self.options = options
        self.limits = options.limits()
        self.on_load_failure = on_load_failure
        self.metrics = ServingMetrics()
        self.model = None
        self.batcher: DynamicBatcher | None = None
        self.ready = threading.Event()
        self.failed = False

    def load(self) -> None:
        """Loads and warms the model, then starts the batcher; on failure
        the server stays unready and `on_load_failure(error)` is called."""
        started = time.monotonic()
        try:
            model = self.load_model()
            batcher = self._batcher(model)
            _warm_up(model, batcher, self.options.warm_up_tokens)
        except Exception as error:
            self.failed = True
            # A caller told of the failure reports it; else the traceback is all there is.
            traceback = self.on_load_failure is None
            _LOG.error("the model could not be loaded: %s", error, exc_info=traceback)
            if self.on_load_failure is not None:
                self.on_load_failure(error)
            return
        self.model, self.batcher = model, batcher.start()
        self.metrics.watch(batcher)
        self.ready.set()
        _LOG.info("model loaded and warmed in %.1f s; ready", time.monotonic() - started)

    def _batcher(self, model) -> DynamicBatcher:
        options = self.options
        return DynamicBatcher(
            model.translate_batch,
            model.count_tokens,
            max_batch_tokens=options.max_batch_tokens,
            max_batch_size=options.max_batch_size,
            max_wait_ms=options.max_wait_ms,
            max_queue=options.max_queue,
            on_batch=self.metrics.observe_batch,
        )

    def stop(self) -> None:
        """Refuses new requests and decodes the waiting ones."""
        if self.batcher is not None:
            self.batcher.stop()
            _LOG.info("batcher drained and stopped")


def _warm_up(model, batcher: DynamicBatcher, tokens: int) -> None:
    """Translates (greedily) a batch of each row count of each length step
    up to `tokens` source tokens, so that the decoders those requests use
    are compiled before the first one: sentences made of the warm-up
    sentence repeated, one per length step their token counts reach."""
    for sentence in _warm_up_sentences(model, batcher.length_step, tokens):
        length = padded_length(model.count_tokens([sentence])[0], batcher.length_step)
        for rows in batcher.row_counts(length):
            model.translate_batch([sentence], 1, rows)


def _warm_up_sentences(model, step: int, tokens: int) -> list[str]:
    """The shortest repetition of `WARM_UP_SENTENCE` in each length step,
    up to `tokens` tokens (and the longest source the model takes)."""
    limit = min(tokens, model.source_token_limit)
    sentences = {}
    for repeats in itertools.count(1):
        sentence = " ".join([WARM_UP_SENTENCE] * repeats)
        count = model.count_tokens([sentence])[0]
        if count > limit and sentences:  # the first one is translated whatever its length
            return list(sentences.values())
        sentences.setdefault(padded_length(count, step), sentence)


def create_app(
    load_model: Callable[[], object],
    options: ServerOptions | None = None,
    on_load_failure: Callable[[BaseException], None] | None = None,
) -> Starlette:
    """The Starlette app of the translation server.

    At start-up, a thread calls `load_model()`, which returns the model: a
    `TranslatorModel`, or any object with its `count_tokens`,
    `translate_batch` and `source_token_limit`; the model is warmed up and
    `/readyz` answers 200 from then on. At shutdown the batcher decodes
    what waits before the app stops. `app.state.service` holds the
    `batcher` and `metrics`.

    Example:

    >>> from keras_transformer.serving import ServerOptions, create_app
    >>> class Echo:
    ...     source_token_limit = 64
    ...     def count_tokens(self, sentences):
    ...         return [len(sentence) for sentence in sentences]
    ...     def translate_batch(self, sentences, beams, rows):
    ...         return sentences
    >>> app = create_app(Echo, ServerOptions(max_batch_size=8))
    >>> sorted(route.path for route in app.routes)
    ['/healthz', '/metrics', '/readyz', '/v1/translate']
    """
    service = _Service(load_model, options or ServerOptions(), on_load_failure)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        threading.Thread(target=service.load, name="model-loader", daemon=True).start()
        yield
        await asyncio.to_thread(service.stop)

    app = Starlette(
        routes=[
            Route("/v1/translate", _translate, methods=["POST"]),
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/readyz", _readyz, methods=["GET"]),
            Route("/metrics", _metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(_RequestLog, metrics=service.metrics)
    return app


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "alive"})


async def _readyz(request: Request) -> Response:
    service = request.app.state.service
    if service.ready.is_set():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "failed" if service.failed else "loading"}, status_code=503)


async def _metrics(request: Request) -> Response:
    return Response(request.app.state.service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _translate(request: Request) -> Response:
    service = request.app.state.service
    deadline = time.monotonic() + service.options.timeout_s
    if not service.ready.is_set():
        message = "the model is not loaded yet"
        return _error(service, 503, message, None, "not_ready", {"Retry-After": "1"})
    try:
        translations = await _translations(request, service, deadline)
    except RequestError as error:
        return _error(service, error.status, error.message, error.field, _REASONS[error.status])
    except QueueFull:
        headers = {"Retry-After": str(service.batcher.retry_after_s())}
        return _error(service, 429, "the queue is full; retry later", None, "queue_full", headers)
    except DeadlineExceeded:
        message = f"not translated within {service.options.timeout_s:g} s"
        return _error(service, 504, message, None, "timeout")
    except BatcherStopped:
        return _error(service, 503, "the server is stopping", None, "stopping")
    except Exception:
        _LOG.exception("translation failed")
        return _error(service, 500, "the translation failed", None, "internal")
    service.metrics.sentences.inc(len(translations))
    return JSONResponse({"translations": translations})


async def _translations(request: Request, service: _Service, deadline: float) -> list[str]:
    """Reads and checks the request, queues its sentences and waits for
    their translations until `deadline`."""
    parsed = parse_request(await _read_body(request, service.limits.max_body_bytes), service.limits)
    request.state.sentences = len(parsed.sentences)
    counts = service.model.count_tokens(parsed.sentences)
    check_token_counts(counts, service.model.source_token_limit)
    future = service.batcher.submit(
        parsed.sentences, parsed.beams, deadline - time.monotonic(), lengths=counts
    )
    try:
        # On timeout the wrapper cancels `future`: if it still waits, it is dropped.
        return await asyncio.wait_for(asyncio.wrap_future(future), deadline - time.monotonic())
    except asyncio.TimeoutError:
        raise DeadlineExceeded("The request's deadline passed.") from None


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or a 413 `RequestError` as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is longer than {limit} bytes", "body")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(service, status, message, field, reason, headers=None) -> Response:
    service.metrics.errors.labels(reason=reason).inc()
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


class _RequestLog:
    """ASGI middleware: one log line and the request metrics per request."""

    def __init__(self, app, metrics: ServingMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.monotonic(), 500
        state = scope.setdefault("state", {})

        async def send_and_note_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            seconds = time.monotonic() - started
            path = scope["path"] if scope["path"] in ROUTES else "other"
            self.metrics.observe_request(path, status, seconds)
            _LOG.info(
                "%s %s %d sentences=%d %.1f ms",
                scope["method"],
                scope["path"][:200],
                status,
                state.get("sentences", 0),
                seconds * 1000,
            )


def serve(
    run_directory: str,
    options: ServerOptions | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
) -> None:
    """Serves the translator of `run_directory` (its `model.keras`) on
    `host:port` until SIGTERM or SIGINT. SIGTERM stops taking connections,
    finishes the requests in flight and returns; a model that cannot be
    loaded stops the server and raises its error."""
    from keras_transformer.translation.run import load_translator

    failures = []

    def stop_on_failure(error: BaseException) -> None:
        failures.append(error)
        server.should_exit = True

    app = create_app(
        lambda: TranslatorModel(load_translator(run_directory)), options, stop_on_failure
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    )
    with _sigterm_returns():
        server.run()
    if failures:
        raise failures[0]


@contextlib.contextmanager
def _sigterm_returns() -> Iterator[None]:
    """uvicorn raises the SIGTERM it caught again once it has shut down, with
    the handler it found; a handler that does nothing lets the process end
    with status 0 after the graceful shutdown."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""A batching translation server: `keras-transformer serve --model RUN`.

`DynamicBatcher` (no HTTP, no model) merges concurrent requests into few
decoding calls; `create_app` and `serve` put it behind HTTP with Starlette
and uvicorn (`pip install "keras-transformer[serve]"`).

Its modules are imported when one of their names is first used, so that the
batcher needs neither Starlette nor a model.
"""

from keras_transformer.lazy import lazy_names

# Each public name, and the module of this package that defines it.
_MODULES = {
    "BatcherStats": "batcher",
    "BatcherStopped": "batcher",
    "DeadlineExceeded": "batcher",
    "DynamicBatcher": "batcher",
    "QueueFull": "batcher",
    "RequestError": "requests",
    "RequestLimits": "requests",
    "ServerOptions": "options",
    "ServingMetrics": "metrics",
    "TranslatorModel": "model",
    "create_app": "server",
    "padded_length": "batcher",
    "parse_request": "requests",
    "serve": "server",
}

__all__ = sorted(_MODULES)


__getattr__, __dir__ = lazy_names(__name__, _MODULES)

"""A batching translation server: `keras-transformer serve --model RUN`.

`DynamicBatcher` (no HTTP, no model) merges concurrent requests into few
decoding calls; `create_app` and `serve` put it behind HTTP with Starlette
and uvicorn (`pip install "keras-transformer[serve]"`).

Its modules are imported when one of their names is first used, so that the
batcher needs neither Starlette nor a model.
"""

import importlib

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


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULES})

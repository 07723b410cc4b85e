"""Packages whose public names are imported from their modules on first use
(PEP 562), so that importing the package costs nothing until a name is used."""

import importlib
import sys
from collections.abc import Callable


def lazy_names(package: str, modules: dict[str, str]) -> tuple[Callable, Callable]:
    """The module-level `__getattr__` and `__dir__` of `package`, whose
    public names are the keys of `modules`, each defined by the module of
    the package its value names. A name, once imported, is set on the
    package, so the next use is a plain attribute.

    Example:

    >>> from keras_transformer.lazy import lazy_names
    >>> getattr_, dir_ = lazy_names("keras_transformer.serving", {"padded_length": "batcher"})
    >>> getattr_("padded_length")(17)
    32
    """

    def __getattr__(name: str):
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{modules[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *modules})

    return __getattr__, __dir__

"""From sentence pairs to a saved translator: tokenizers, training run,
evaluation and pictures.

Its modules are imported when one of their names is first used, so that
`import keras_transformer` does not load the training workflow (keras-nlp,
TensorFlow's text ops, matplotlib) until it is needed.
"""

import importlib

# Each public name, and the module of this package that defines it.
_MODULES = {
    "END_ID": "tokenizers",
    "PADDING_ID": "tokenizers",
    "START_ID": "tokenizers",
    "UNKNOWN_ID": "tokenizers",
    "RunDirectoryError": "run",
    "TokenBatches": "batching",
    "TokenCorpus": "batching",
    "TrainingOptions": "options",
    "Translator": "translator",
    "detokenize": "tokenizers",
    "evaluate_translator": "evaluation",
    "export_translator": "export",
    "load_translator": "run",
    "output_length_factor_of": "translator",
    "same_characters": "tokenizers",
    "score_translations": "evaluation",
    "tokenize": "tokenizers",
    "train_tokenizer": "tokenizers",
    "train_tokenizers": "tokenizers",
    "train_translator": "run",
    "training_arrays": "tokenizers",
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

"""From sentence pairs to a saved translator: tokenizers, training run,
evaluation and pictures.

Its modules are imported when one of their names is first used, so that
`import keras_transformer` does not load the training workflow (keras-nlp,
TensorFlow's text ops, matplotlib) until it is needed.
"""

from keras_transformer.lazy import lazy_names

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


__getattr__, __dir__ = lazy_names(__name__, _MODULES)

"""From sentence pairs to a saved translator: tokenizers, training run,
evaluation and pictures."""

from keras_transformer.translation.batching import TokenBatches, TokenCorpus
from keras_transformer.translation.evaluation import evaluate_translator, score_translations
from keras_transformer.translation.run import (
    RunDirectoryError,
    TrainingOptions,
    load_translator,
    train_translator,
)
from keras_transformer.translation.tokenizers import (
    END_ID,
    PADDING_ID,
    START_ID,
    UNKNOWN_ID,
    detokenize,
    same_characters,
    tokenize,
    train_tokenizer,
    train_tokenizers,
    training_arrays,
)
from keras_transformer.translation.translator import Translator

__all__ = [
    "END_ID",
    "PADDING_ID",
    "START_ID",
    "UNKNOWN_ID",
    "RunDirectoryError",
    "TokenBatches",
    "TokenCorpus",
    "TrainingOptions",
    "Translator",
    "detokenize",
    "evaluate_translator",
    "load_translator",
    "same_characters",
    "score_translations",
    "tokenize",
    "train_tokenizer",
    "train_tokenizers",
    "train_translator",
    "training_arrays",
]

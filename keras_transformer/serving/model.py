"""A `Translator` as the batcher and the server use it: token counts, the
longest source it takes, and batches filled to a fixed row count."""

from collections.abc import Sequence

from keras_transformer.translation.tokenizers import tokenize

# Translated once before the server reports ready, to compile the decoder.
WARM_UP_SENTENCE = "Hello, world."


class TranslatorModel:
    """A `Translator` behind a `DynamicBatcher`.

    `translate_batch` fills a batch up to `rows` rows by repeating its
    first sentence and translates them as one `Translator` batch, so that
    batches of one length step and row count share a shape `(rows,
    length)` and reuse one compiled decoder.

    Args:
        translator: a `keras_transformer.Translator`.

    Attributes:
        source_token_limit: the longest source, in tokens, the server takes:
            the transformer's `max_length` (learned positions), else the
            translator's `max_output_length`.

    Example:

    >>> from keras_transformer.serving import TranslatorModel
    >>> from keras_transformer.translation import train_tokenizer
    >>> source = train_tokenizer(["one", "two"], "character")
    >>> target = train_tokenizer(["un", "deux"], "character")
    >>> translator = keras_transformer.Translator(keras_transformer.Transformer(
    ...     source.vocabulary_size(), target.vocabulary_size(),
    ...     num_layers=1, d_model=16, num_heads=2, ff_dim=32), source, target)
    >>> model = TranslatorModel(translator)
    >>> model.count_tokens(["one", "three"]), model.source_token_limit
    ([3, 5], 64)
    """

    def __init__(self, translator):
        self.translator = translator
        limit = translator.transformer.max_length
        self.source_token_limit = int(limit or translator.max_output_length)

    def count_tokens(self, sentences: Sequence[str]) -> list[int]:
        """The source token count of each sentence."""
        return [len(row) for row in tokenize(self.translator.source_tokenizer, sentences)]

    def translate_batch(self, sentences: Sequence[str], beams: int, rows: int) -> list[str]:
        """Translations of `sentences`, decoded as one batch of `rows` rows."""
        sentences = list(sentences)
        filled = sentences + sentences[:1] * (rows - len(sentences))
        return self.translator.translate(filled, beams, batch_size=len(filled))[: len(sentences)]

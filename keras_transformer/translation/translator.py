"""A Transformer together with its tokenizers: text in, text out."""

import math
from collections.abc import Callable, Sequence

import keras
import numpy as np

from keras_transformer.translation.tokenizers import (
    END_ID,
    PADDING_ID,
    START_ID,
    detokenize,
    pack,
    tokenize,
    tokens_of,
)
from keras_transformer.validation import check_positive, check_positive_int
from keras_transformer.version import __version__

# Source batches are padded to a multiple of this many tokens, so that
# compiled decoders are reused across batches.
SOURCE_LENGTH_STEP = 16


def output_length_factor_of(
    source_lengths: Sequence[int], target_lengths: Sequence[int], margin: float = 1.5
) -> float:
    """`margin` times the largest ratio, over pairs of token counts, of a
    target's tokens (start and end included) to its source's padded length:
    a `Translator.output_length_factor` that leaves room for every pair
    like these.

    Example:

    >>> from keras_transformer.translation import output_length_factor_of
    >>> output_length_factor_of([3, 20], [30, 40])  # (30 + 2) / 16 * 1.5
    3.0
    """
    padded = padded_source_length(np.asarray(source_lengths))
    return margin * float(np.max((np.asarray(target_lengths) + 2) / padded))


def padded_source_length(tokens, step: int = SOURCE_LENGTH_STEP):
    """`tokens` (an int or an array) rounded up to a multiple of `step`, at
    least one step: the length `Translator` pads a batch of sources to."""
    return np.maximum(1, -(-tokens // step)) * step


@keras.saving.register_keras_serializable(package="keras_transformer")
class Translator(keras.Model):
    """A trained `Transformer` with its source and target tokenizers, saved
    and loaded as one `.keras` file.

    Args:
        transformer: a `keras_transformer.Transformer`.
        source_tokenizer: keras-nlp tokenizer of the source language, from
            `keras_transformer.translation.train_tokenizer`.
        target_tokenizer: keras-nlp tokenizer of the target language.
        max_output_length: int. Longest translation in target tokens, the
            start and end tokens included.
        output_length_factor: float or None. A translation also has at most
            this many target tokens per source token of its batch, the
            source length taken as padded (a multiple of 16): with 4, a
            batch of sources of up to 16 tokens decodes at most 64 steps,
            even when a row never produces its end token, where it would
            otherwise run to `max_output_length`. None: `max_output_length`
            alone bounds it. Each row of a batch keeps the bound of its own
            source, so a greedy translation is the same in any batch (a
            beam search cut short may pick another hypothesis in a batch
            with longer sources). Defaults to None; a training run sets it
            from its training pairs (`output_length_factor_of`).
        **kwargs: other keyword arguments of `keras.Model`, such as `name`.

    Called on `{"encoder_inputs", "decoder_inputs"}` ids it returns the
    transformer's logits; `translate` works on text.

    Example:

    >>> from keras_transformer.translation import train_tokenizer
    >>> pairs = [("one", "un"), ("two", "deux")]
    >>> source = train_tokenizer([s for s, _ in pairs], "character")
    >>> target = train_tokenizer([t for _, t in pairs], "character")
    >>> model = keras_transformer.Transformer(
    ...     source.vocabulary_size(), target.vocabulary_size(),
    ...     num_layers=1, d_model=16, num_heads=2, ff_dim=32)
    >>> translator = keras_transformer.Translator(model, source, target)
    >>> len(translator.translate(["one", "two"]))
    2

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    def __init__(
        self,
        transformer: keras.Model,
        source_tokenizer: keras.layers.Layer,
        target_tokenizer: keras.layers.Layer,
        max_output_length: int = 64,
        output_length_factor: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("max_output_length", max_output_length)
        if output_length_factor is not None:
            output_length_factor = check_positive("output_length_factor", output_length_factor)
        self.transformer = transformer
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_output_length = max_output_length
        self.output_length_factor = output_length_factor
        # The transformer (a functional model) is built; the tokenizers have no weights.
        self.built = True

    def call(self, inputs, training=None):
        return self.transformer(inputs, training=training)

    def encode_sources(self, sentences: Sequence[str]) -> np.ndarray:
        """Source ids `(len(sentences), length)`, padded with 0 to a multiple
        of 16 tokens."""
        return self._pack_sources(tokenize(self.source_tokenizer, sentences))

    def _pack_sources(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
        longest = max((len(row) for row in rows), default=1)
        return pack(rows, int(padded_source_length(longest)))

    def translate(
        self,
        sentences: Sequence[str],
        beams: int = 1,
        batch_size: int = 64,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[str]:
        """Translations of `sentences`, in their order: greedy with
        `beams=1`, else beam search with the paper's length penalty. A blank
        sentence (empty or only spaces) is translated to `""`.

        Sentences are translated in batches of similar token lengths, so
        that short ones are not padded to the longest; `progress(done,
        total)` is called after each batch, `total` counting the sentences
        that are not blank."""
        check_positive_int("beams", beams)
        check_positive_int("batch_size", batch_size)
        sentences = list(sentences)
        translations = [""] * len(sentences)
        to_translate = [index for index, sentence in enumerate(sentences) if sentence.strip()]
        rows = tokenize(self.source_tokenizer, [sentences[index] for index in to_translate])
        order = sorted(range(len(rows)), key=lambda position: len(rows[position]))
        batch_rows = min(batch_size, max(len(rows), 1))
        for begin in range(0, len(order), batch_rows):
            batch = order[begin : begin + batch_rows]
            texts = self._translate_batch([rows[position] for position in batch], beams, batch_rows)
            for position, text in zip(batch, texts, strict=True):
                translations[to_translate[position]] = text
            if progress is not None:
                progress(begin + len(batch), len(order))
        return translations

    def generate_ids(self, sentences: Sequence[str], beams: int = 1) -> np.ndarray:
        """The target ids of the translations, start and end ids included."""
        return self._generate(self.encode_sources(sentences), beams)

    def output_length(self, source_length: int) -> int:
        """The most target tokens (start and end included) of a translation
        whose source is padded to `source_length` tokens."""
        if self.output_length_factor is None:
            return self.max_output_length
        bound = math.ceil(self.output_length_factor * source_length)
        return max(2, min(self.max_output_length, bound))

    def _generate(self, source_ids: np.ndarray, beams: int) -> np.ndarray:
        sampler = {"sampler": "greedy"} if beams == 1 else {"sampler": "beam", "num_beams": beams}
        token_ids = self.transformer.generate(
            source_ids,
            START_ID,
            END_ID,
            max_length=self.output_length(source_ids.shape[1]),
            **sampler,
        )  # (batch, up to the output length of the batch's source length)
        return self._cut_to_own_length(token_ids, source_ids)

    def _cut_to_own_length(self, token_ids: np.ndarray, source_ids: np.ndarray) -> np.ndarray:
        """Each row of `token_ids` cut to the output length of its own
        source, so that a greedy translation does not depend on the longer
        sources it is batched with (the decoder is causal: a row's first
        tokens do not depend on how long the batch decodes)."""
        if self.output_length_factor is None:
            return token_ids
        source_lengths = padded_source_length((source_ids != PADDING_ID).sum(axis=1))  # (batch,)
        limits = np.array([self.output_length(length) for length in source_lengths])
        inside = np.arange(token_ids.shape[1]) < limits[:, None]  # (batch, output_len)
        return np.where(inside, token_ids, PADDING_ID)

    def export(self, directory: str, beams: int = 1) -> None:
        """Writes this translator as a TensorFlow SavedModel in `directory`,
        tokenizers and decoding loop inside, for use without Keras or this
        package: see `keras_transformer.translation.export_translator`.
        Needs the TensorFlow backend."""
        from keras_transformer.translation.export import export_translator

        export_translator(self, directory, beams)

    def attention_maps(self, sentence: str, beams: int = 1) -> dict:
        """Translates `sentence` and returns the attention that produced the
        translation: `"source_tokens"`, `"output_tokens"` (each generated token,
        the end token included), and numpy `(num_heads, query_len, key_len)`
        arrays of the last layers: `"encoder_self_attention"` (source over
        source) and `"cross_attention"` (output over source)."""
        token_ids = self.generate_ids([sentence], beams)[0]
        token_ids = (
            token_ids[: list(token_ids).index(END_ID) + 1] if END_ID in token_ids else token_ids
        )
        source_ids = tokenize(self.source_tokenizer, [sentence])[0]
        scores = self.transformer.attention_scores(
            np.array([source_ids], "int32"), token_ids[None, :-1]
        )
        return {
            "source_tokens": tokens_of(self.source_tokenizer, source_ids),
            "output_tokens": tokens_of(self.target_tokenizer, token_ids[1:]),
            "encoder_self_attention": keras.ops.convert_to_numpy(scores["encoder"][-1])[0],
            "cross_attention": keras.ops.convert_to_numpy(scores["decoder_cross"][-1])[0],
        }

    def _translate_batch(self, source_rows, beams, rows):
        # A short last batch is filled up so that it reuses the compiled decoder.
        filled = source_rows + source_rows[:1] * (rows - len(source_rows))
        token_ids = self._generate(self._pack_sources(filled), beams)[: len(source_rows)]
        return detokenize(self.target_tokenizer, token_ids)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "transformer": keras.saving.serialize_keras_object(self.transformer),
                "source_tokenizer": keras.saving.serialize_keras_object(self.source_tokenizer),
                "target_tokenizer": keras.saving.serialize_keras_object(self.target_tokenizer),
                "max_output_length": self.max_output_length,
                "output_length_factor": self.output_length_factor,
                "keras_transformer_version": __version__,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("keras_transformer_version", None)  # the version that saved it
        for name in ("transformer", "source_tokenizer", "target_tokenizer"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)

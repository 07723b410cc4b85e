"""The Transformer's input stage: token embedding, positions and dropout."""

import math

import keras
from keras import ops

from keras_transformer.layers.positional_encoding import PositionalEncoding
from keras_transformer.validation import check_choice, check_positive_int, check_rate

POSITION_ENCODINGS = ("sinusoidal", "learned")


@keras.saving.register_keras_serializable(package="keras_transformer")
class InputEmbedding(keras.layers.Layer):
    """Embeds token ids and adds their positions, as in the paper's input stage.

    Computes `dropout(E[ids] * sqrt(d_model) + P[positions])` (Vaswani et al.,
    2017, sections 3.4 and 3.5 and 5.4), where `E` is a learned token
    embedding and `P` is either the sinusoidal `PositionalEncoding` or a
    learned position embedding (the paper reports the two nearly identical).

    Called with `reverse=True` on a sequence of vectors `(batch, length,
    d_model)`, the layer instead projects them onto the vocabulary with the
    transposed token embedding, `x @ E^T`, giving logits `(batch, length,
    vocabulary_size)`: the paper's sharing of the embedding and pre-softmax
    weights.

    Args:
        vocabulary_size: int. Number of token ids; id `0` is padding.
        d_model: int. Width of the embeddings.
        position_encoding: `"sinusoidal"` (default, no weights, any length)
            or `"learned"` (a trained embedding of `max_length` positions).
        max_length: int or None. Longest sequence for `"learned"` positions;
            required there and unused otherwise.
        dropout: float in [0, 1). Dropout applied to the sum. Defaults to `0`.
        scale_embeddings: bool. Multiply the token embeddings by
            `sqrt(d_model)`, as the paper does. Defaults to `True`.
        max_wavelength: int. Base of the sinusoidal encoding. Defaults to
            `10000`.
        embeddings_initializer: initializer of the token (and position)
            embeddings. Defaults to a normal with standard deviation
            `d_model ** -0.5`, so that the scaled embeddings have unit scale.
        seed: int or None. Seed of the dropout.
        **kwargs: other keyword arguments of `keras.layers.Layer`.

    Call arguments:
        inputs: int tensor `(batch, length)` of token ids, or with
            `reverse=True` a float tensor `(batch, length, d_model)`.
        start_index: int or scalar int tensor. Position of the first token,
            for one-step decoding. Defaults to `0`.
        reverse: bool. Project vectors to vocabulary logits instead.
        training: bool. Whether dropout is active.

    Masking: ids equal to `0` are padding; the output carries the Keras mask
    `ids != 0`. In reverse mode the input's mask is passed through.

    Example:

    >>> ids = keras.ops.convert_to_tensor([[5, 7, 2, 0]])
    >>> embedding = keras_transformer.InputEmbedding(100, 16)
    >>> tuple(embedding(ids).shape)
    (1, 4, 16)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    def __init__(
        self,
        vocabulary_size: int,
        d_model: int,
        position_encoding: str = "sinusoidal",
        max_length: int | None = None,
        dropout: float = 0.0,
        scale_embeddings: bool = True,
        max_wavelength: int = 10000,
        embeddings_initializer=None,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = check_positive_int("vocabulary_size", vocabulary_size)
        self.d_model = check_positive_int("d_model", d_model)
        self.position_encoding = check_choice(
            "position_encoding", position_encoding, POSITION_ENCODINGS
        )
        if position_encoding == "learned":
            check_positive_int("max_length", max_length)
        elif max_length is not None:
            check_positive_int("max_length", max_length)
        self.max_length = max_length
        self.dropout = check_rate("dropout", dropout)
        self.scale_embeddings = bool(scale_embeddings)
        self.max_wavelength = check_positive_int("max_wavelength", max_wavelength)
        if embeddings_initializer is None:
            embeddings_initializer = keras.initializers.RandomNormal(
                stddev=d_model**-0.5, seed=seed
            )
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.seed = seed

    def build(self, inputs_shape):
        if len(inputs_shape) != 2:
            raise ValueError(
                "`inputs` of `InputEmbedding` must be token ids of rank 2, "
                f"(batch, length). Received: inputs.shape={tuple(inputs_shape)}"
            )
        self._check_length(inputs_shape[1])
        self.token_embedding = keras.layers.Embedding(
            self.vocabulary_size,
            self.d_model,
            embeddings_initializer=self.embeddings_initializer,
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.token_embedding.build(inputs_shape)
        if self.position_encoding == "learned":
            self.position_embedding = keras.layers.Embedding(
                self.max_length,
                self.d_model,
                embeddings_initializer=self.embeddings_initializer,
                dtype=self.dtype_policy,
                name="position_embedding",
            )
            self.position_embedding.build((None,))
        else:
            self.position_embedding = PositionalEncoding(
                self.max_wavelength, dtype=self.dtype_policy, name="position_encoding"
            )
        self.embedding_dropout = keras.layers.Dropout(
            self.dropout, seed=self.seed, dtype=self.dtype_policy, name="dropout"
        )
        self.built = True

    def _check_length(self, length):
        if self.max_length is not None and length is not None and length > self.max_length:
            raise ValueError(
                f"Sequences of length {length} exceed `max_length`="
                f"{self.max_length} of the learned position embedding."
            )

    def call(self, inputs, start_index=0, reverse=False, training=None):
        if reverse:
            return self._project_to_vocabulary(inputs)
        _check_token_ids(inputs)
        x = self.token_embedding(inputs)  # (batch, length, d_model)
        if self.scale_embeddings:
            x = x * ops.cast(math.sqrt(self.d_model), x.dtype)
        x = self._add_positions(x, start_index)
        return self.embedding_dropout(x, training=training)

    def _add_positions(self, x, start_index):
        if self.position_encoding == "sinusoidal":
            return self.position_embedding(x, start_index=start_index)
        positions = ops.arange(ops.shape(x)[1]) + start_index  # (length,)
        return x + ops.expand_dims(self.position_embedding(positions), 0)

    def _project_to_vocabulary(self, inputs):
        kernel = ops.cast(self.token_embedding.embeddings, inputs.dtype)
        return ops.matmul(inputs, ops.transpose(kernel))  # (batch, length, vocab)

    def compute_mask(self, inputs, mask=None):
        if _is_integer(inputs.dtype):
            return ops.not_equal(inputs, 0)
        return mask

    def compute_output_shape(self, inputs_shape):
        return (*inputs_shape, self.d_model)

    def compute_output_spec(self, inputs, start_index=0, reverse=False, training=None):
        if reverse:
            shape = (*inputs.shape[:-1], self.vocabulary_size)
        else:
            _check_token_ids(inputs)
            shape = self.compute_output_shape(inputs.shape)
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "d_model": self.d_model,
                "position_encoding": self.position_encoding,
                "max_length": self.max_length,
                "dropout": self.dropout,
                "scale_embeddings": self.scale_embeddings,
                "max_wavelength": self.max_wavelength,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
                "seed": self.seed,
            }
        )
        return config


def _check_token_ids(inputs) -> None:
    if not _is_integer(inputs.dtype):
        raise ValueError(
            "`inputs` of `InputEmbedding` must be integer token ids. "
            f"Received: inputs.dtype={keras.backend.standardize_dtype(inputs.dtype)}"
        )


def _is_integer(dtype) -> bool:
    return "int" in keras.backend.standardize_dtype(dtype)

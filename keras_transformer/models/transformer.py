"""The encoder-decoder Transformer as a functional Keras model."""

import keras
import numpy as np
from keras import ops

from keras_transformer.layers.decoder_block import DecoderBlock
from keras_transformer.layers.encoder_block import EncoderBlock
from keras_transformer.layers.input_embedding import InputEmbedding
from keras_transformer.layers.utils import sub_seed
from keras_transformer.models.decoding import (
    CacheInfo,
    CompiledDecoder,
    DecoderCache,
    ShrinkingGreedyDecoder,
    check_generate_arguments,
    pad_after_end,
)
from keras_transformer.models.samplers import choose_sampler, is_greedy, sampler_key
from keras_transformer.validation import check_positive_int
from keras_transformer.version import __version__


@keras.saving.register_keras_serializable(package="keras_transformer")
class Transformer(keras.Model):
    """The sequence-to-sequence Transformer of "Attention Is All You Need".

    A functional model: the source ids go through `InputEmbedding` and
    `num_layers` `EncoderBlock`s; the target ids (shifted right, starting with
    a start token) through `InputEmbedding` and `num_layers` `DecoderBlock`s
    that attend the encoder outputs; a final projection gives the logits of
    the next target token at every position. The defaults are the paper's
    base model (Table 3): 6 layers, d_model 512, 8 heads, ff_dim 2048,
    dropout 0.1.

    Args:
        source_vocabulary_size: int. Number of source token ids (0 = padding).
        target_vocabulary_size: int. Number of target token ids (0 = padding).
        num_layers: int. Blocks in the encoder and in the decoder.
        d_model: int. Width of the embeddings and of every block.
        num_heads: int. Attention heads; must divide `d_model`.
        ff_dim: int. Inner width of the feed-forward networks.
        dropout: float in [0, 1). Dropout on embeddings and sublayer outputs.
        attention_dropout: float in [0, 1). Dropout on attention
            probabilities. Defaults to `0`, which keeps fused kernels usable.
        activation: activation of the feed-forward networks.
        norm_first: bool. Pre-norm blocks (with a final layer normalization
            after each stack) instead of the paper's post-norm.
        layer_norm_epsilon: float. Epsilon of every layer normalization.
        position_encoding: `"sinusoidal"` (the paper's) or `"learned"`.
        max_length: int or None. Longest sequence for learned positions.
        share_embeddings: bool. One token embedding for source and target
            (the paper's shared vocabulary); needs equal vocabulary sizes.
        tie_output_embedding: bool. Project to logits with the transposed
            target embedding instead of a separate dense layer.
        seed: int or None. Seed of the dropout layers and of the embedding
            initializers.
        dtype: dtype or `keras.DTypePolicy` of every layer, for instance
            `"mixed_bfloat16"`. Defaults to the global policy.
        **kwargs: other keyword arguments of `keras.Model`, such as `name`.

    Inputs: a dict `{"encoder_inputs": (batch, source_len) int,
    "decoder_inputs": (batch, target_len) int}`, with 0 as padding.
    Output: logits `(batch, target_len, target_vocabulary_size)`, carrying
    the Keras mask of the target padding, so Keras losses and metrics skip
    padded positions.

    `generate` compiles one decoder per sampler setting and keeps the
    `max_cached_decoders` (8) most recently used; `decoder_cache_info()`
    says how many were compiled.

    Example:

    >>> model = keras_transformer.Transformer(
    ...     source_vocabulary_size=100, target_vocabulary_size=120,
    ...     num_layers=2, d_model=32, num_heads=4, ff_dim=64)
    >>> logits = model({"encoder_inputs": keras.ops.ones((2, 7), "int32"),
    ...                 "decoder_inputs": keras.ops.ones((2, 5), "int32")})
    >>> tuple(logits.shape)
    (2, 5, 120)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    max_cached_decoders = 8

    def __init__(
        self,
        source_vocabulary_size: int,
        target_vocabulary_size: int,
        num_layers: int = 6,
        d_model: int = 512,
        num_heads: int = 8,
        ff_dim: int = 2048,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation="relu",
        norm_first: bool = False,
        layer_norm_epsilon: float = 1e-5,
        position_encoding: str = "sinusoidal",
        max_length: int | None = None,
        share_embeddings: bool = False,
        tie_output_embedding: bool = False,
        seed: int | None = None,
        dtype=None,
        **kwargs,
    ):
        # The layers check the other arguments as they are created and built.
        check_positive_int("source_vocabulary_size", source_vocabulary_size)
        check_positive_int("target_vocabulary_size", target_vocabulary_size)
        check_positive_int("num_layers", num_layers)
        if share_embeddings and source_vocabulary_size != target_vocabulary_size:
            raise ValueError(
                "`share_embeddings=True` needs equal vocabularies. Received: "
                f"source_vocabulary_size={source_vocabulary_size}, "
                f"target_vocabulary_size={target_vocabulary_size}"
            )
        block_kwargs = {
            "num_heads": num_heads,
            "ff_dim": ff_dim,
            "dropout": dropout,
            "attention_dropout": attention_dropout,
            "activation": activation,
            "norm_first": norm_first,
            "layer_norm_epsilon": layer_norm_epsilon,
            "dtype": dtype,
        }

        # === Layers ===
        def embedding(vocabulary_size, name):
            return InputEmbedding(
                vocabulary_size,
                d_model,
                position_encoding=position_encoding,
                max_length=max_length,
                dropout=dropout,
                seed=sub_seed(seed, name),
                dtype=dtype,
                name=name,
            )

        def final_norm(name):
            if not norm_first:
                return None
            return keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=dtype, name=name
            )

        self.source_embedding = embedding(source_vocabulary_size, "source_embedding")
        self.target_embedding = (
            self.source_embedding
            if share_embeddings
            else embedding(target_vocabulary_size, "target_embedding")
        )
        self.encoder_blocks = [
            EncoderBlock(
                **block_kwargs, seed=sub_seed(seed, "encoder_block", i), name=f"encoder_block_{i}"
            )
            for i in range(num_layers)
        ]
        self.decoder_blocks = [
            DecoderBlock(
                **block_kwargs, seed=sub_seed(seed, "decoder_block", i), name=f"decoder_block_{i}"
            )
            for i in range(num_layers)
        ]
        self.encoder_norm = final_norm("encoder_norm")
        self.decoder_norm = final_norm("decoder_norm")
        self.output_projection = None
        if not tie_output_embedding:
            self.output_projection = keras.layers.Dense(
                target_vocabulary_size, dtype=dtype, name="output_projection"
            )

        # === Functional model ===
        encoder_inputs = keras.Input(shape=(None,), dtype="int32", name="encoder_inputs")
        decoder_inputs = keras.Input(shape=(None,), dtype="int32", name="decoder_inputs")
        encoder_outputs = self.encode(encoder_inputs)
        logits = self.decode(decoder_inputs, encoder_outputs)
        super().__init__(
            inputs={"encoder_inputs": encoder_inputs, "decoder_inputs": decoder_inputs},
            outputs=logits,
            dtype=dtype,
            **kwargs,
        )
        self._functional_built = True

        # === Config ===
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.num_layers = num_layers
        self.d_model = d_model
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation = activation
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.position_encoding = position_encoding
        self.max_length = max_length
        self.share_embeddings = share_embeddings
        self.tie_output_embedding = tie_output_embedding
        self.seed = seed

    def __setattr__(self, name, value):
        # Until the functional constructor has run, keep layers as plain
        # attributes: torch's Module refuses them before its own __init__, and
        # leaving them to the functional graph gives every backend the same
        # layer (and so optimizer variable) order.
        if "_functional_built" not in self.__dict__:
            return object.__setattr__(self, name, value)
        return super().__setattr__(name, value)

    def encode(self, encoder_inputs, training=None):
        """Source ids `(batch, source_len)` to `(batch, source_len, d_model)`,
        carrying the source padding mask."""
        x = self.source_embedding(encoder_inputs, training=training)
        for block in self.encoder_blocks:
            x = block(x, training=training)
        return x if self.encoder_norm is None else self.encoder_norm(x)

    def decode(self, decoder_inputs, encoder_outputs, training=None):
        """Target ids and encoder outputs to logits `(batch, target_len, vocab)`."""
        y = self.target_embedding(decoder_inputs, training=training)
        for block in self.decoder_blocks:
            y = block(y, encoder_outputs, training=training)
        return self.project_to_vocabulary(y)

    def attention_scores(self, encoder_inputs, decoder_inputs) -> dict[str, list]:
        """The attention probabilities of every block for a batch of source
        ids and decoder input ids (teacher forcing, no dropout).

        Returns a dict of lists with one `(batch, num_heads, query_len,
        key_len)` tensor per layer: `"encoder"` (source over source),
        `"decoder_self"` (target over earlier target) and `"decoder_cross"`
        (target over source).
        """
        scores = {"encoder": [], "decoder_self": [], "decoder_cross": []}
        x = self.source_embedding(encoder_inputs)
        for block in self.encoder_blocks:
            x, block_scores = block(x, return_attention_scores=True)
            scores["encoder"].append(block_scores)
        encoder_outputs = x if self.encoder_norm is None else self.encoder_norm(x)
        y = self.target_embedding(decoder_inputs)
        for block in self.decoder_blocks:
            y, block_scores = block(y, encoder_outputs, return_attention_scores=True)
            scores["decoder_self"].append(block_scores["self_attention"])
            scores["decoder_cross"].append(block_scores["cross_attention"])
        return scores

    def project_to_vocabulary(self, decoder_outputs):
        """The last decoder block's outputs to logits over the target ids."""
        if self.decoder_norm is not None:
            decoder_outputs = self.decoder_norm(decoder_outputs)
        if self.output_projection is None:
            return self.target_embedding(decoder_outputs, reverse=True)
        return self.output_projection(decoder_outputs)

    def generate(
        self,
        encoder_inputs,
        start_token_id: int,
        end_token_id: int,
        max_length: int = 64,
        sampler="greedy",
        num_beams: int | None = None,
        seed: int | None = None,
        run_eagerly: bool | None = None,
    ) -> np.ndarray:
        """Translates a batch of source sentences, one cached step per token.

        Args:
            encoder_inputs: int array `(batch, source_len)` of source ids, 0 =
                padding; rows may have different lengths.
            start_token_id: target id every output begins with.
            end_token_id: target id that ends a row.
            max_length: int >= 1. Longest output, the start token included.
            sampler: a name, `"greedy"`, `"beam"` (`BeamSearch`: 4 beams and
                the paper's length penalty 0.6), `"top_k"` (k = 10) or
                `"top_p"` (p = 0.9) sampling; or a sampler object, as
                keras-hub's `CausalLM.compile(sampler=...)` takes:
                `keras_nlp.samplers.TopPSampler(p=0.5, temperature=0.7,
                seed=0)`, `BeamSearch(num_beams=8, length_penalty=1.0)`.
            num_beams: int >= 1 or None. Beams of `sampler="beam"`.
            seed: int or None. Seed of `"top_k"` and `"top_p"`. A seeded
                sampler (by name or object) restarts from its seed at every
                call: equal inputs give equal outputs.
            run_eagerly: bool or None. Decode op by op instead of in one
                compiled function (TensorFlow, JAX) or traced steps (torch),
                for debugging. Defaults to the model's `run_eagerly`, as
                `compile(run_eagerly=True)` sets it.

        Returns:
            int32 numpy array `(batch, length)`: each row begins with the start
            token and stops at its end token, with 0 after it. Decoding stops
            when every row has ended, so `length <= max_length`.
        """
        encoder_inputs = ops.convert_to_numpy(encoder_inputs)
        check_generate_arguments(
            self,
            encoder_inputs,
            start_token_id,
            end_token_id,
            max_length,
            run_eagerly,
        )
        sampler = choose_sampler(sampler, num_beams, seed)
        run_eagerly = self.run_eagerly if run_eagerly is None else run_eagerly
        decoder = self._decoder(sampler, run_eagerly)
        prompt = np.zeros((len(encoder_inputs), max_length), "int32")
        prompt[:, 0] = start_token_id
        token_ids = decoder(encoder_inputs.astype("int32"), prompt, end_token_id)
        token_ids = pad_after_end(ops.convert_to_numpy(token_ids), end_token_id)
        return _trim_padding_columns(token_ids)

    def decoder_cache_info(self) -> CacheInfo:
        """How `generate` used its compiled decoders: `hits`, `misses` (each
        a decoder compiled), `maxsize` and `currsize`, as
        `functools.lru_cache`'s `cache_info()`. Requests with equal samplers
        (the same name and settings, or sampler objects of one class with an
        equal `get_config()`) share one decoder; the least recently used is
        dropped beyond `max_cached_decoders`."""
        return self._decoders().info()

    def _decoder(self, sampler, run_eagerly) -> CompiledDecoder:
        key = (sampler_key(sampler), run_eagerly)
        decoder_class = ShrinkingGreedyDecoder if is_greedy(sampler) else CompiledDecoder
        return self._decoders().get(key, lambda: decoder_class(self, sampler, run_eagerly))

    def _decoders(self) -> DecoderCache:
        """Made on first use; plain state, kept out of Keras's tracking and
        saving."""
        if "_decoder_cache" not in self.__dict__:
            self.__dict__["_decoder_cache"] = DecoderCache(self.max_cached_decoders)
        return self.__dict__["_decoder_cache"]

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "source_vocabulary_size": self.source_vocabulary_size,
            "target_vocabulary_size": self.target_vocabulary_size,
            "num_layers": self.num_layers,
            "d_model": self.d_model,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "activation": keras.activations.serialize(keras.activations.get(self.activation)),
            "norm_first": self.norm_first,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "position_encoding": self.position_encoding,
            "max_length": self.max_length,
            "share_embeddings": self.share_embeddings,
            "tie_output_embedding": self.tie_output_embedding,
            "seed": self.seed,
            "keras_transformer_version": __version__,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("keras_transformer_version", None)  # the version that saved it
        if "dtype" in config and isinstance(config["dtype"], dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


def _trim_padding_columns(token_ids):
    """Drops the trailing columns that are padding in every row."""
    used = np.flatnonzero(np.any(token_ids != 0, axis=0))
    return token_ids[:, : used[-1] + 1].astype("int32")

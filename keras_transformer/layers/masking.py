"""Attention masks: the `CausalMask` layer and the helpers every block shares.

All masks here are boolean with True meaning "may attend". An attention mask
has shape `(batch, query_len, key_len)`, or a shape that broadcasts to it such
as `(batch, 1, key_len)` for a padding mask.
"""

import keras
from keras import ops


def causal_mask(query_length, key_length, start_index=0):
    """The look-ahead mask: query `i` (at position `start_index + i`) may
    attend key `j` only when `j <= start_index + i`.

    Returns a boolean tensor of shape `(query_length, key_length)`.
    """
    query_positions = ops.arange(query_length) + start_index  # (query_len,)
    key_positions = ops.arange(key_length)  # (key_len,)
    return ops.greater_equal(
        ops.expand_dims(query_positions, 1), ops.expand_dims(key_positions, 0)
    )  # (query_len, key_len)


def padding_to_attention_mask(padding_mask):
    """Turns a key padding mask `(batch, key_len)` into `(batch, 1, key_len)`."""
    if padding_mask is None:
        return None
    return ops.expand_dims(ops.cast(padding_mask, "bool"), 1)


def merge_masks(*masks):
    """Logical AND of the masks that are not None (broadcasting), or None."""
    merged = None
    for mask in masks:
        if mask is None:
            continue
        mask = ops.cast(mask, "bool")
        merged = mask if merged is None else ops.logical_and(merged, mask)
    return merged


def unblock_empty_rows(mask):
    """Lets a query row with nothing to attend to attend every key instead.

    Such rows (a padded query whose keys are all padding, say) would otherwise
    give a softmax over no entries: NaN on some backends. Their outputs are
    padding and are ignored downstream, but they stay finite.
    """
    has_any = ops.any(mask, axis=-1, keepdims=True)  # (batch, query_len, 1)
    return ops.logical_or(mask, ops.logical_not(has_any))


@keras.saving.register_keras_serializable(package="keras_transformer")
class CausalMask(keras.layers.Layer):
    """Builds the decoder's look-ahead mask from a sequence.

    Maps a sequence `(batch, length, ...)` to the boolean mask
    `(batch, length, length)` in which position `i` may attend position `j`
    only when `j <= i` (True = may attend), so that the prediction for
    position `i` depends only on the known outputs before it (Vaswani et al.,
    2017, section 3.2.3). If the sequence carries a Keras padding mask, padded
    keys are masked out too.

    The output is a mask, so it carries no Keras mask of its own. Shapes may be
    dynamic (any batch size and length) and the layer compiles under
    `jit_compile` on every backend.

    Example:

    >>> x = keras.ops.ones((2, 4, 8))
    >>> tuple(keras_transformer.CausalMask()(x).shape)
    (2, 4, 4)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        shape = ops.shape(inputs)
        batch_size, length = shape[0], shape[1]
        look_ahead = causal_mask(length, length)  # (length, length)
        look_ahead = ops.broadcast_to(
            ops.expand_dims(look_ahead, 0), (batch_size, length, length)
        )  # (batch, length, length)
        return merge_masks(look_ahead, padding_to_attention_mask(mask))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0], inputs_shape[1], inputs_shape[1])

    def compute_output_spec(self, inputs, mask=None):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype="bool")

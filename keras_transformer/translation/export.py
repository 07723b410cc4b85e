"""A trained `Translator` as a TensorFlow SavedModel with its decoding loop
inside: text in, text out, in a process without Keras or this package."""

import os
import shutil
import tempfile

import keras

from keras_transformer.models.decoding import CompiledDecoder
from keras_transformer.models.samplers import choose_sampler
from keras_transformer.translation.tokenizers import END_ID, PADDING_ID, START_ID, tokenize_graph
from keras_transformer.translation.translator import SOURCE_LENGTH_STEP
from keras_transformer.validation import check_positive_int

# The endpoints of an export; the first is also `serving_default`.
ENDPOINTS = ("translate", "translate_ids")


def export_translator(translator, directory: str | os.PathLike, beams: int = 1) -> None:
    """Writes `translator` as a TensorFlow SavedModel in `directory`.

    The SavedModel has two endpoints, each taking any batch size:
    - `translate` (also `serving_default`): `tf.string` sentences `(batch,)`
      -> `tf.string` translations `(batch,)`, tokenizers and decoding
      inside; the texts of `translator.translate(sentences, beams)`, but
      where TensorFlow Text's SentencePiece ops split a source otherwise
      than the Python SentencePiece library `translate` runs (between
      equally likely pieces) or drop a translation's leading spaces.
      It needs TensorFlow Text's ops where the tokenizers use them
      (SentencePiece, WordPiece): `import tensorflow_text` before loading.
    - `translate_ids`: int32 source ids `(batch, length)` (0 = padding, no
      start or end id) -> int32 target ids `(batch, output_length)`,
      `output_length` being `translator.output_length` of the source length
      rounded up to a multiple of 16; each row the start id, the
      translation, the end id and then 0: plain TensorFlow ops, for
      servers without TensorFlow Text.

    Decoding is greedy with `beams=1`, else beam search with the paper's
    length penalty. The export runs on the TensorFlow backend (a model
    trained on another backend loads there from its `.keras` file: the
    `keras-transformer export` command does that). `directory` must not
    exist, or be empty; the SavedModel is written beside it and renamed
    into place once complete, so a failed export leaves nothing behind.

    Example (with `KERAS_BACKEND=tensorflow`):

    ```python
    translator = keras_transformer.translation.load_translator("runs/fr")
    translator.export("exports/fr")
    # Elsewhere, with TensorFlow and TensorFlow Text only:
    import tensorflow as tf, tensorflow_text
    exported = tf.saved_model.load("exports/fr")
    exported.translate(tf.constant(["seventy-one"]))  # [b"soixante et onze"]
    ```
    """
    check_positive_int("beams", beams)
    directory = os.fspath(directory)
    check_export_directory(directory)
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "Exporting a SavedModel needs the TensorFlow backend; the backend is "
            f"{keras.backend.backend()!r}. Load the model with KERAS_BACKEND=tensorflow "
            "(`keras-transformer export` does)."
        )
    archive = _export_archive(translator, beams)
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        archive.write_out(temporary, verbose=False)
        os.replace(temporary, directory)
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary)


def check_export_directory(directory: str | os.PathLike) -> None:
    """Raises `ValueError` if `directory` exists and is not an empty directory."""
    if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
        raise ValueError(
            f"The export directory {directory!r} exists and is not empty: choose a new "
            "directory (nothing is overwritten)."
        )


def _export_archive(translator, beams: int):
    import tensorflow as tf

    decode_ids = _ids_decoder(translator, beams)

    def translate(sentences):  # (batch,) string
        source_ids = _source_ids(translator.source_tokenizer, sentences)
        texts = _detokenize(translator.target_tokenizer, decode_ids(source_ids))  # (batch,)
        blank = tf.equal(tf.strings.length(tf.strings.strip(sentences)), 0)
        return tf.where(blank, tf.constant(""), texts)

    archive = keras.export.ExportArchive()
    # The model's variables, and the tokenizers' resources (SentencePiece
    # models, vocabulary tables), which no variable holds.
    archive.track(translator)
    archive.add_endpoint("translate", translate, [tf.TensorSpec([None], tf.string)])
    archive.add_endpoint("translate_ids", decode_ids, [tf.TensorSpec([None, None], tf.int32)])
    return archive


def _ids_decoder(translator, beams: int):
    """The cached decoding loop as a function of source ids. It is compiled
    by XLA, as `Translator.translate` decodes on TensorFlow (the same sums,
    so the same close calls), once per shape of source ids the export
    meets; the string ops of the tokenizers stay outside it."""
    import tensorflow as tf

    sampler = choose_sampler("greedy") if beams == 1 else choose_sampler("beam", beams)
    decoder = CompiledDecoder(translator.transformer, sampler, run_eagerly=True)

    @tf.function(jit_compile=True)
    def decode(source_ids, prompt):
        return tf.cast(decoder(source_ids, prompt, END_ID), tf.int32)  # (batch, max_len)

    def decode_ids(source_ids):  # (batch, source_len) int32
        source_ids = _pad_to_step(source_ids)  # (batch, padded_len)
        batch, length = tf.shape(source_ids)[0], tf.shape(source_ids)[1]
        max_length = _output_length(translator, length)
        prompt = tf.concat(
            [tf.fill([batch, 1], START_ID), tf.zeros([batch, max_length - 1], tf.int32)], axis=1
        )  # (batch, max_len)
        token_ids = decode(source_ids, prompt)  # (batch, max_len)
        ended_before = tf.cumsum(tf.cast(tf.equal(token_ids, END_ID), tf.int32), 1, exclusive=True)
        token_ids = tf.where(ended_before > 0, PADDING_ID, token_ids)  # 0 after the end id
        if translator.output_length_factor is None:
            return token_ids
        # Each row cut to the output length of its own source, as Translator does.
        source_lengths = tf.reduce_sum(tf.cast(source_ids != PADDING_ID, tf.int32), axis=1)
        limits = _output_length(translator, _padded_length(source_lengths))  # (batch,)
        inside = tf.range(max_length)[None, :] < limits[:, None]  # (batch, max_len)
        return tf.where(inside, token_ids, PADDING_ID)

    return decode_ids


def _output_length(translator, source_length):
    """`Translator.output_length` of a padded source length, in TF ops."""
    import tensorflow as tf

    if translator.output_length_factor is None:
        return tf.constant(translator.max_output_length)
    scaled = tf.math.ceil(translator.output_length_factor * tf.cast(source_length, tf.float64))
    return tf.clip_by_value(tf.cast(scaled, tf.int32), 2, translator.max_output_length)


def _padded_length(length):
    """`padded_source_length` in TF ops."""
    import tensorflow as tf

    return (
        (tf.maximum(length, 1) + SOURCE_LENGTH_STEP - 1) // SOURCE_LENGTH_STEP * SOURCE_LENGTH_STEP
    )


def _pad_to_step(source_ids):
    import tensorflow as tf

    length = tf.shape(source_ids)[1]
    return tf.pad(source_ids, [[0, 0], [0, _padded_length(length) - length]])


def _source_ids(tokenizer, sentences):
    """Dense int32 ids `(batch, longest)` of `sentences`, as `tokenize`
    gives them."""
    return tokenize_graph(tokenizer, sentences).to_tensor(default_value=PADDING_ID)


def _detokenize(tokenizer, token_ids):
    """Texts of target ids as `detokenize` gives them: each row up to its
    end id, without padding or the start id."""
    import tensorflow as tf

    is_end = tf.cast(tf.equal(token_ids, END_ID), tf.int32)
    keep = (
        (tf.cumsum(is_end, axis=1) == 0)
        & tf.not_equal(token_ids, PADDING_ID)
        & tf.not_equal(token_ids, START_ID)
    )
    return tokenizer.detokenize(tf.ragged.boolean_mask(token_ids, keep))

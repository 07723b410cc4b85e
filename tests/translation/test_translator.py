import keras
import numpy as np
import pytest

from keras_transformer import Transformer, Translator
from keras_transformer.translation import (
    END_ID,
    START_ID,
    output_length_factor_of,
    tokenize,
    train_tokenizer,
)

PAIRS = [
    ("one", "un"),
    ("two", "deux"),
    ("twenty-one", "vingt et un"),
    ("seventy-one", "soixante et onze"),
    ("ninety-nine thousand", "quatre-vingt-dix-neuf mille"),
]
SOURCES = [source for source, _ in PAIRS]


def make_translator(kind="wordpiece"):
    source = train_tokenizer(SOURCES, kind, vocabulary_size=100)
    target = train_tokenizer([target for _, target in PAIRS], kind, vocabulary_size=100)
    transformer = Transformer(
        source.vocabulary_size(),
        target.vocabulary_size(),
        num_layers=1,
        d_model=16,
        num_heads=2,
        ff_dim=32,
        seed=3,
    )
    return Translator(transformer, source, target, max_output_length=12)


@pytest.fixture(scope="module")
def translator():
    return make_translator()


def test_translate_decodes_what_generate_produces(translator):
    token_ids = translator.generate_ids(SOURCES)
    assert np.all(token_ids[:, 0] == START_ID) and token_ids.shape[1] <= 12
    expected = []
    for row in token_ids:
        row = list(row[1:])
        row = row[: row.index(END_ID)] if END_ID in row else row
        kept = [t for t in row if t not in (0, START_ID)]
        expected.append(translator.target_tokenizer.detokenize([kept])[0])
    assert translator.translate(SOURCES) == expected


def test_batches_do_not_change_translations(translator):
    together = translator.translate(SOURCES)
    assert translator.translate(SOURCES, batch_size=2) == together
    assert [translator.translate([s])[0] for s in SOURCES] == together


def test_sources_pad_to_a_multiple_of_16(translator):
    ids = translator.encode_sources(SOURCES)
    rows = tokenize(translator.source_tokenizer, SOURCES)
    longest = max(map(len, rows))
    assert ids.shape[0] == 5 and ids.shape[1] % 16 == 0 and longest <= ids.shape[1] < longest + 16
    assert [list(row[row > 0]) for row in ids] == rows


@pytest.mark.parametrize("kind", ["wordpiece", "character"])
def test_keras_file_keeps_tokenizers_and_weights(kind, tmp_path):
    translator = make_translator(kind)
    path = str(tmp_path / "translator.keras")
    translator.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, Translator)
    assert restored.max_output_length == 12
    assert tokenize(restored.source_tokenizer, SOURCES) == tokenize(
        translator.source_tokenizer, SOURCES
    )
    assert restored.translate(SOURCES) == translator.translate(SOURCES)


def test_the_output_length_factor_cuts_each_row_short_and_changes_nothing_before():
    translator = make_translator()
    translator.max_output_length = 60
    translator.output_length_factor = None
    unbounded = translator.generate_ids(SOURCES)  # (5, up to 60)
    translator.output_length_factor = 0.75  # 12 tokens for sources padded to 16, 24 for 32
    assert translator.output_length(16) == 12 and translator.output_length(96) == 60
    limits = [translator.output_length(translator.encode_sources([s]).shape[1]) for s in SOURCES]
    assert sorted(set(limits)) == [12, 24]  # short and long sources, batched together
    bounded = translator.generate_ids(SOURCES)
    assert unbounded.shape[1] > 24 == bounded.shape[1]
    for row, full, limit in zip(bounded, unbounded, limits, strict=True):
        np.testing.assert_array_equal(row[:limit], full[:limit])
        assert not row[limit:].any()
    # Each translation is the one its source gets alone.
    assert [translator.translate([s])[0] for s in SOURCES] == translator.translate(SOURCES)


def test_the_output_length_factor_is_saved_and_checked(tmp_path):
    translator = make_translator()
    assert translator.output_length_factor is None  # the default: no bound
    translator.output_length_factor = 2.5
    restored = Translator.from_config(translator.get_config())
    assert restored.output_length_factor == 2.5
    with pytest.raises(ValueError, match="`output_length_factor` must be a number > 0"):
        Translator(translator.transformer, None, None, output_length_factor=0)


def test_the_output_length_factor_of_training_pairs_leaves_room_for_each():
    sources, targets = [1, 16, 17, 40], [10, 44, 30, 12]
    factor = output_length_factor_of(sources, targets, margin=1.0)
    assert factor == (44 + 2) / 16  # the 16-token source padded to 16
    padded = [16, 16, 32, 48]
    assert all(t + 2 <= factor * p for t, p in zip(targets, padded, strict=True))


def test_attention_maps_label_every_row_and_column(translator):
    maps = translator.attention_maps("seventy-one")
    source_tokens, output_tokens = maps["source_tokens"], maps["output_tokens"]
    assert source_tokens == [
        translator.source_tokenizer.id_to_token(i)
        for i in tokenize(translator.source_tokenizer, ["seventy-one"])[0]
    ]
    assert maps["cross_attention"].shape == (2, len(output_tokens), len(source_tokens))
    assert maps["encoder_self_attention"].shape == (2, len(source_tokens), len(source_tokens))
    np.testing.assert_allclose(maps["cross_attention"].sum(-1), 1.0, atol=1e-5)


def test_bad_arguments_name_themselves(translator):
    with pytest.raises(ValueError, match="`beams` must be a positive integer"):
        translator.translate(SOURCES, beams=0)
    with pytest.raises(ValueError, match="`max_output_length`"):
        Translator(translator.transformer, None, None, max_output_length=0)


def test_training_run_pictures(translator, tmp_path):
    from keras_transformer.translation.run import _draw_pictures

    history = {"loss": [2.0, 1.0], "val_loss": [2.1, 1.2]}
    _draw_pictures(tmp_path, translator, "seventy-one", history)
    for name in (
        "attention_cross.png",
        "attention_encoder.png",
        "positional_encoding.png",
        "training_curves.png",
    ):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_progress_is_reported_after_each_batch_in_input_order(translator):
    calls = []
    sources = SOURCES[::-1] * 3
    translations = translator.translate(
        sources, batch_size=4, progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(4, 15), (8, 15), (12, 15), (15, 15)]
    assert translations == translator.translate(SOURCES[::-1]) * 3


def test_blank_sentences_stay_blank_and_are_not_counted(translator):
    calls = []
    sentences = ["", SOURCES[0], "  ", SOURCES[1], ""]
    translations = translator.translate(
        sentences, progress=lambda done, total: calls.append((done, total))
    )
    assert translations == [
        "",
        *translator.translate(SOURCES[:1]),
        "",
        translator.translate(SOURCES[1:2])[0],
        "",
    ]
    assert calls == [(2, 2)]
    assert translator.translate(["", " "]) == ["", ""]

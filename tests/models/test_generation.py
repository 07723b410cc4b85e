import keras
import keras_nlp
import numpy as np
import pytest

from keras_transformer import BeamSearch, Transformer
from keras_transformer.data import END_TOKEN_ID, START_TOKEN_ID, make_reverse_task
from keras_transformer.models.decoding import ShrinkingGreedyDecoder, pad_after_end
from keras_transformer.models.samplers import choose_sampler
from tests.helpers import to_numpy

MAX_LENGTH = 12


@pytest.fixture(scope="module")
def sources():
    """Held-out sources of 4 to 10 tokens, padded to 10."""
    inputs, _ = make_reverse_task(6, seed=3)
    return inputs["encoder_inputs"]


def recomputed_greedy(model, sources, max_length):
    """Greedy decoding by running the whole model on the prefix at each step
    (on a fixed-size buffer: later positions cannot reach earlier ones)."""
    decoded = np.zeros((len(sources), max_length), "int32")
    decoded[:, 0] = START_TOKEN_ID
    for index in range(1, max_length):
        inputs = {"encoder_inputs": sources, "decoder_inputs": decoded}
        logits = to_numpy(model.predict_on_batch(inputs))[:, index - 1]
        decoded[:, index] = 1 + np.argmax(logits[:, 1:], axis=-1)  # never padding
        if np.all(np.any(decoded[:, 1 : index + 1] == END_TOKEN_ID, axis=1)):
            return decoded[:, : index + 1]
    return decoded


def log_probability(model, sources, outputs):
    """Log-probability of each output row (end token included) under the
    distribution decoding samples from: the model's, padding excluded."""
    logits = to_numpy(model({"encoder_inputs": sources, "decoder_inputs": outputs[:, :-1]}))
    logits = logits[..., 1:]
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = outputs[:, 1:]
    picked = np.take_along_axis(log_probs, np.maximum(targets - 1, 0)[..., None], -1)[..., 0]
    return np.where(targets != 0, picked, 0.0).sum(-1)


def generate(model, sources, **kwargs):
    return model.generate(sources, START_TOKEN_ID, END_TOKEN_ID, MAX_LENGTH, **kwargs)


def test_cached_greedy_equals_full_recomputation(trained_reverser, sources):
    cached = generate(trained_reverser, sources)
    recomputed = recomputed_greedy(trained_reverser, sources, MAX_LENGTH)
    np.testing.assert_array_equal(cached, pad_after_end(recomputed, END_TOKEN_ID))


def test_greedy_reverses_the_held_out_sources(trained_reverser, sources):
    outputs = generate(trained_reverser, sources)
    for source, output in zip(sources, outputs, strict=True):
        words = source[source != 0]
        np.testing.assert_array_equal(output[1 : len(words) + 1], words[::-1])
        assert output[len(words) + 1] == END_TOKEN_ID


def test_rows_start_with_start_token_and_pad_after_end(trained_reverser, sources):
    outputs = generate(trained_reverser, sources)
    assert (outputs[:, 0] == START_TOKEN_ID).all()
    for row in outputs:
        end = list(row).index(END_TOKEN_ID)
        assert (row[end + 1 :] == 0).all()
    # Every row ends before MAX_LENGTH, so the loop stops early.
    assert outputs.shape[1] == 1 + max((sources != 0).sum(1)) + 1


def record_round_rows(model, monkeypatch):
    """A list of the row count of every round the model's greedy decoder
    decodes after its first, in order."""
    decoder = model._decoder(choose_sampler("greedy"), run_eagerly=False)
    rows = []
    advance = decoder.advance

    def recorded(state, index, stop, end):
        if int(index) < int(stop):  # not the call that only compiles
            rows.append(int(state["ended"].shape[0]))
        return advance(state, index, stop, end)

    monkeypatch.setattr(decoder, "advance", recorded)
    return rows


def test_greedy_drops_ended_rows_and_decodes_each_as_alone(trained_reverser, sources, monkeypatch):
    monkeypatch.setattr(ShrinkingGreedyDecoder, "ROUND_STEPS", 2)
    monkeypatch.setattr(ShrinkingGreedyDecoder, "MIN_ROUND_ROWS", 2)
    rows = record_round_rows(trained_reverser, monkeypatch)
    batched = generate(trained_reverser, sources)  # sources of 4 to 10 tokens
    assert rows == sorted(rows, reverse=True) and rows[-1] < len(sources)
    for source, output in zip(sources, batched, strict=True):
        alone = generate(trained_reverser, source[None])[0]
        np.testing.assert_array_equal(output[: len(alone)], alone)
        assert (output[len(alone) :] == 0).all()


def test_greedy_of_rows_that_never_end_fills_every_step(monkeypatch):
    monkeypatch.setattr(ShrinkingGreedyDecoder, "MIN_ROUND_ROWS", 2)  # rounds of 8 steps
    keras.utils.set_random_seed(2)
    model = Transformer(
        12, 12, num_layers=1, d_model=8, num_heads=2, ff_dim=16, tie_output_embedding=False
    )
    model.output_projection.bias.assign(np.where(np.arange(12) == 2, -1e4, 0.0))
    outputs = model.generate(np.full((3, 4), 5, "int32"), 1, 2, max_length=11)
    assert outputs.shape == (3, 11)
    assert (outputs[:, 1:] != 0).all() and (outputs != 2).all()


def test_beam_of_one_equals_greedy(trained_reverser, sources):
    np.testing.assert_array_equal(
        generate(trained_reverser, sources, sampler="beam", num_beams=1),
        generate(trained_reverser, sources),
    )


@pytest.mark.parametrize("length_penalty", [0.0, 0.6])
def test_more_beams_never_lose_probability(trained_reverser, sources, length_penalty):
    greedy = generate(trained_reverser, sources)
    beam = generate(
        trained_reverser, sources, sampler=BeamSearch(num_beams=4, length_penalty=length_penalty)
    )
    width = max(greedy.shape[1], beam.shape[1])
    greedy = np.pad(greedy, ((0, 0), (0, width - greedy.shape[1])))
    beam = np.pad(beam, ((0, 0), (0, width - beam.shape[1])))
    assert np.all(
        log_probability(trained_reverser, sources, beam)
        >= log_probability(trained_reverser, sources, greedy) - 1e-4
    )


def test_beam_search_finds_the_best_sequence_of_an_untrained_model():
    """On a random model beams matter: the 4-beam result is at least as likely
    as greedy's (without a length penalty) for every row."""
    model = Transformer(15, 15, num_layers=1, d_model=16, num_heads=2, ff_dim=32, seed=0)
    sources = np.random.default_rng(0).integers(3, 15, (8, 5)).astype("int32")
    greedy = model.generate(sources, 1, 2, max_length=6)
    beam = model.generate(sources, 1, 2, max_length=6, sampler=BeamSearch(length_penalty=0.0))
    width = max(greedy.shape[1], beam.shape[1])
    greedy = np.pad(greedy, ((0, 0), (0, width - greedy.shape[1])))
    beam = np.pad(beam, ((0, 0), (0, width - beam.shape[1])))
    assert np.all(
        log_probability(model, sources, beam) >= log_probability(model, sources, greedy) - 1e-4
    )


def test_sampling_is_seeded(trained_reverser, sources):
    sampler = keras_nlp.samplers.TopKSampler(k=5, temperature=5.0, seed=1)
    first = generate(trained_reverser, sources, sampler=sampler)
    np.testing.assert_array_equal(generate(trained_reverser, sources, sampler=sampler), first)
    assert not np.array_equal(first, generate(trained_reverser, sources))  # it does sample
    top_p = generate(trained_reverser, sources, sampler="top_p", seed=2)
    np.testing.assert_array_equal(
        generate(trained_reverser, sources, sampler="top_p", seed=2), top_p
    )
    assert (top_p[:, 0] == START_TOKEN_ID).all()


def test_top_k_of_one_is_greedy(trained_reverser, sources):
    np.testing.assert_array_equal(
        generate(trained_reverser, sources, sampler=keras_nlp.samplers.TopKSampler(k=1, seed=0)),
        generate(trained_reverser, sources),
    )


def count_encodings(model, monkeypatch):
    """A list that grows by one each time decoding runs `model.encode`: once
    per trace of a compiled decoder, once per call of an eager one."""
    calls = []
    encode = model.encode

    def counted(*args, **kwargs):
        calls.append(1)
        return encode(*args, **kwargs)

    monkeypatch.setattr(model, "encode", counted)
    return calls


def test_one_trace_per_shape(trained_reverser, sources, monkeypatch):
    generate(trained_reverser, sources)
    encodings = count_encodings(trained_reverser, monkeypatch)
    generate(trained_reverser, sources[::-1])
    assert len(encodings) == (1 if keras.backend.backend() == "torch" else 0)


def test_equal_sampler_objects_share_one_decoder(trained_reverser, sources):
    before = trained_reverser.decoder_cache_info()
    for _ in range(50):
        generate(trained_reverser, sources[:2], sampler=BeamSearch(num_beams=3))
    generate(trained_reverser, sources[:2], sampler="beam", num_beams=3)  # the same sampler
    after = trained_reverser.decoder_cache_info()
    assert after.misses == before.misses + 1
    assert after.hits == before.hits + 50
    generate(trained_reverser, sources[:2], sampler=BeamSearch(num_beams=3, length_penalty=1.0))
    assert trained_reverser.decoder_cache_info().misses == before.misses + 2


def test_decoder_cache_drops_the_least_recently_used(monkeypatch):
    monkeypatch.setattr(Transformer, "max_cached_decoders", 2)
    model = Transformer(15, 15, num_layers=1, d_model=8, num_heads=2, ff_dim=16)
    sources = np.full((2, 4), 3, "int32")
    for sampler in ("greedy", BeamSearch(2), BeamSearch(3), "greedy"):
        model.generate(sources, 1, 2, max_length=4, sampler=sampler)
        assert model.decoder_cache_info().currsize <= 2
    assert model.decoder_cache_info().misses == 4  # greedy was dropped, then made again
    model.generate(sources, 1, 2, max_length=4, sampler=BeamSearch(3))
    assert model.decoder_cache_info().hits == 1


def test_eager_decoding_equals_compiled_decoding(trained_reverser, sources):
    def decode(run_eagerly):
        return trained_reverser.generate(
            sources[:1], START_TOKEN_ID, END_TOKEN_ID, 5, run_eagerly=run_eagerly
        )

    np.testing.assert_array_equal(decode(run_eagerly=True), decode(run_eagerly=False))


def test_rejects_outputs_longer_than_learned_positions():
    model = Transformer(
        15,
        15,
        num_layers=1,
        d_model=16,
        num_heads=2,
        ff_dim=32,
        position_encoding="learned",
        max_length=8,
    )
    sources = np.full((2, 5), 3, "int32")
    assert model.generate(sources, 1, 2, max_length=8).shape[0] == 2
    with pytest.raises(ValueError, match=r"max_length.*learned positions"):
        model.generate(sources, 1, 2, max_length=9)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"start_token_id": 20}, "start_token_id"),
        ({"start_token_id": 0}, "start_token_id"),
        ({"end_token_id": -1}, "end_token_id"),
        ({"max_length": 0}, "max_length"),
        ({"sampler": "nucleus"}, "sampler"),
        ({"sampler": 3}, "sampler"),
        ({"num_beams": 0, "sampler": "beam"}, "num_beams"),
        ({"num_beams": 2, "sampler": "greedy"}, "num_beams"),
        ({"seed": 1, "sampler": BeamSearch()}, "seed"),
        ({"seed": 1.5, "sampler": "top_k"}, "seed"),
        ({"run_eagerly": "yes"}, "run_eagerly"),
        ({"encoder_inputs": np.ones((2, 3, 4), "int32")}, "rank 2"),
        ({"encoder_inputs": np.ones((2, 3), "float32")}, "integer token ids"),
    ],
)
def test_rejects_bad_arguments(trained_reverser, sources, kwargs, message):
    arguments = {
        "encoder_inputs": sources,
        "start_token_id": START_TOKEN_ID,
        "end_token_id": END_TOKEN_ID,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        trained_reverser.generate(**arguments)


@pytest.mark.parametrize(
    "kwargs, argument",
    [({"num_beams": 0}, "num_beams"), ({"length_penalty": -1.0}, "length_penalty")],
)
def test_beam_search_rejects_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        BeamSearch(**kwargs)

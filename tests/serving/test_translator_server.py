"""The server with a real (tiny, untrained) translator loaded from a run
directory: its translations are the offline ones."""

import pytest

from keras_transformer.serving import ServerOptions, TranslatorModel, create_app
from keras_transformer.translation import load_translator
from tests.serving.conftest import MAX_OUTPUT_LENGTH, running

SENTENCES = ["one", "two three", "four one", "three"]  # one batch of max_batch_size rows


@pytest.fixture(scope="module")
def server(tiny_run):
    options = ServerOptions(max_batch_size=len(SENTENCES), max_queue=16, max_sentences=8)
    app = create_app(lambda: TranslatorModel(load_translator(tiny_run)), options)
    with running(app) as server:
        yield server


@pytest.mark.parametrize("beams", [1, 2])
def test_translations_equal_the_offline_ones(server, beams):
    translator = server.service.model.translator
    status, _, body = server.translate({"sentences": SENTENCES, "beams": beams})
    assert status == 200
    assert body["translations"] == translator.translate(SENTENCES, beams=beams)


def test_a_source_longer_than_the_model_takes_is_refused_with_413(server):
    long = "one " * 4  # 16 characters, one token each
    assert len(long) > MAX_OUTPUT_LENGTH
    status, _, error = server.translate({"sentences": ["two", long]})
    assert (status, error["field"]) == (413, "sentences[1]")
    assert server.translate({"sentences": ["two"]})[0] == 200


def test_a_batch_is_filled_to_a_power_of_two_rows(server, monkeypatch):
    model = server.service.model
    assert model.source_token_limit == MAX_OUTPUT_LENGTH
    assert model.count_tokens(["one", "four one"]) == [3, 8]
    calls = []
    translate = model.translator.translate

    def recording(sentences, beams=1, batch_size=64, progress=None):
        calls.append((list(sentences), batch_size))
        return translate(sentences, beams, batch_size, progress)

    monkeypatch.setattr(model.translator, "translate", recording)
    assert server.translate({"sentences": ["two"]})[0] == 200
    assert server.translate({"sentences": ["two", "three", "one"]})[0] == 200
    assert calls == [(["two"], 1), (["two", "three", "one", "two"], 4)]

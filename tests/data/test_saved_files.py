"""Models saved by every earlier version of the package still load, on
every backend, and compute what they computed when saved."""

import json
import os
import zipfile

import keras
import numpy as np
import pytest

from tests.data.make_saved_files import DECODER_IDS, GENERATED_LENGTH, ROOT, SENTENCES, SOURCE_IDS
from tests.helpers import to_numpy

VERSIONS = sorted(os.listdir(ROOT))


def read_expected(version: str) -> dict:
    with open(os.path.join(ROOT, version, "expected.json"), encoding="utf-8") as file:
        return json.load(file)


def test_there_are_saved_files():
    assert VERSIONS


@pytest.mark.parametrize("version", VERSIONS)
def test_a_saved_transformer_loads_and_computes_the_same(version):
    expected = read_expected(version)
    model = keras.saving.load_model(os.path.join(ROOT, version, "transformer.keras"))
    inputs = {"encoder_inputs": np.array(SOURCE_IDS), "decoder_inputs": np.array(DECODER_IDS)}
    np.testing.assert_allclose(to_numpy(model(inputs)), expected["logits"], atol=1e-4)
    generated = model.generate(np.array(SOURCE_IDS), 1, 2, max_length=GENERATED_LENGTH)
    assert generated.tolist() == expected["generated"]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_saved_translator_loads_and_translates_the_same(version):
    translator = keras.saving.load_model(os.path.join(ROOT, version, "translator.keras"))
    assert translator.translate(SENTENCES) == read_expected(version)["translations"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", ["transformer.keras", "translator.keras"])
def test_saved_files_record_the_version_that_saved_them(version, name):
    with zipfile.ZipFile(os.path.join(ROOT, version, name)) as archive:
        config = json.loads(archive.read("config.json"))
    assert config["config"]["keras_transformer_version"] == version

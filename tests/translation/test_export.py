"""`keras-transformer export`: a SavedModel that translates, in a process
without Keras or this package, exactly as the `Translator` it came from."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from benchmarks.exported_translate import translate_in_batches
from keras_transformer import Transformer, Translator
from keras_transformer.translation import export_translator
from keras_transformer.translation.run import MODEL_FILE, load_translator
from keras_transformer.translation.tokenizers import END_ID, START_ID
from keras_transformer_cli import main
from tests.data.make_saved_files import SOURCE_IDS, make_transformer, make_translator

WORDS = ["one", "two", "seven", "twenty", "ninety-nine", "hundred", "and", "thousand"]
# 66 sentences of one to three words, and two blank ones.
SENTENCES = [*WORDS, *(f"{a} {b}" for a in WORDS for b in WORDS[:7]), "", "  "]
BATCH_SIZES = (1, 7, 64)
FILES = ("export", "sentences.json", "outputs.json")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A translator saved under this backend, its run directory, and what
    its export, made by the command, gives: under TensorFlow, exported in
    this process and used in a process that cannot import keras-nlp or this
    package; under the other backends, exported by the command in a process
    it starts under TensorFlow, and used here."""
    root = tmp_path_factory.mktemp("export")
    translator = make_translator()
    translator.output_length_factor = 0.4  # 7 tokens for sources of up to 16
    os.makedirs(root / "run")
    translator.save(root / "run" / MODEL_FILE)
    arguments = ["export", "--model", str(root / "run"), "--out", str(root / "export")]
    if keras.backend.backend() == "tensorflow":
        assert main(arguments) == 0
        outputs = use_in_a_process_without_this_package(root)
    else:
        done = subprocess.run(
            [sys.executable, "-m", "keras_transformer", *arguments],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs = use_here(root / "export")
    return {"translator": translator, "root": root, "outputs": outputs}


def use_in_a_process_without_this_package(root) -> dict:
    (root / "sentences.json").write_text(json.dumps(SENTENCES), encoding="utf-8")
    (root / "ids.json").write_text(json.dumps(SOURCE_IDS), encoding="utf-8")
    script = os.path.join(ROOT, "benchmarks", "exported_translate.py")
    used = subprocess.run(
        [sys.executable, script, *(str(root / name) for name in FILES), "--ids"]
        + [str(root / "ids.json"), "--batch-sizes", *map(str, BATCH_SIZES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert used.returncode == 0, used.stderr[-3000:]
    return json.loads((root / "outputs.json").read_text(encoding="utf-8"))


def use_here(export) -> dict:
    import tensorflow as tf

    model = tf.saved_model.load(str(export))
    return {
        "translations": {
            str(size): translate_in_batches(model, SENTENCES, size) for size in BATCH_SIZES
        },
        "translate_ids": model.translate_ids(tf.constant(SOURCE_IDS, tf.int32)).numpy().tolist(),
    }


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="used by another process under TensorFlow"
)
def test_the_export_loads_without_keras_or_this_package(exported):
    """Neither this package nor keras-nlp is there, and translating imports
    nothing from Keras (which TensorFlow Text imports for its own layers)."""
    modules = exported["outputs"]["modules"]
    packages = {name.split(".")[0] for name in modules}
    assert {"tensorflow", "tensorflow_text"} <= packages
    assert not {"keras_hub", "keras_nlp", "keras_transformer"} & packages
    added = set(modules) - set(exported["outputs"]["imported_before"])
    assert not [name for name in added if name.split(".")[0] == "keras"]


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_the_export_translates_as_the_translator(exported, batch_size):
    expected = exported["translator"].translate(SENTENCES)
    assert exported["outputs"]["translations"][str(batch_size)] == expected
    assert expected[-2:] == ["", ""] and any(expected)


def test_translate_ids_gives_the_generated_ids_padded_to_the_longest_output(exported):
    translator = exported["translator"]
    source_ids = np.array(SOURCE_IDS)  # (batch, length), length <= 16
    output_length = translator.output_length(16)
    assert output_length == 7 < translator.max_output_length
    generated = translator.transformer.generate(
        source_ids, START_ID, END_ID, max_length=output_length
    )
    width = output_length - generated.shape[1]
    expected = np.pad(generated, [(0, 0), (0, width)])
    np.testing.assert_array_equal(exported["outputs"]["translate_ids"], expected)


def test_a_directory_that_is_not_empty_is_refused_and_kept(exported, capsys):
    run = exported["root"] / "run"
    assert main(["export", "--model", str(run), "--out", str(run)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"keras-transformer: error: The export directory '{run}' exists and")
    assert len(error.strip().splitlines()) == 1
    assert os.listdir(run) == [MODEL_FILE]


def test_a_directory_that_is_not_a_run_is_one_error_line(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path), "--out", str(tmp_path / "export")]) == 1
    assert capsys.readouterr().err == (
        f"keras-transformer: error: {tmp_path}: does not hold a model ({MODEL_FILE} is missing)\n"
    )
    assert not os.path.exists(tmp_path / "export")


def test_export_needs_the_tensorflow_backend_or_says_so(tmp_path):
    translator = make_translator()
    if keras.backend.backend() == "tensorflow":
        pytest.skip("the export itself is tested under TensorFlow below")
    with pytest.raises(ValueError, match="needs the TensorFlow backend"):
        export_translator(translator, tmp_path / "export")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="exports run on TensorFlow")
def test_an_export_with_beam_search_decodes_as_beam_search(tmp_path):
    """With the initial weights, whose outputs are close calls that beam
    search decides otherwise than greedy decoding, the export's ids equal
    `generate`'s (both compiled by XLA, as sums in another order would
    decide some close calls otherwise)."""
    import tensorflow as tf

    spread = make_translator()
    transformer = Transformer.from_config(spread.transformer.get_config())
    translator = Translator(transformer, spread.source_tokenizer, spread.target_tokenizer, 10)
    translator.export(tmp_path / "export", beams=4)
    assert os.listdir(tmp_path) == ["export"]  # no temporary directory left beside it
    exported = tf.saved_model.load(str(tmp_path / "export"))
    source_ids = translator.encode_sources(SENTENCES[:-2])
    exported_ids = exported.translate_ids(tf.constant(source_ids)).numpy()
    beam, greedy = (
        transformer.generate(source_ids, START_ID, END_ID, 10, sampler)
        for sampler in ("beam", "greedy")
    )
    np.testing.assert_array_equal(exported_ids[:, : beam.shape[1]], beam)
    assert not np.any(exported_ids[:, beam.shape[1] :])
    assert beam.shape != greedy.shape or np.any(beam != greedy)


def test_a_model_that_is_not_a_translator_is_refused(tmp_path):
    make_transformer(20, seed=0).save(tmp_path / MODEL_FILE)
    with pytest.raises(ValueError, match="not a Translator"):
        load_translator(tmp_path)

"""The Example of every public docstring runs and prints what it says."""

import doctest

import keras
import pytest

import keras_transformer
from keras_transformer import serving, training

PUBLIC = [
    getattr(keras_transformer, name)
    for name in keras_transformer.__all__
    if name not in ("training", "translation")
] + [getattr(training, name) for name in training.__all__ if name != "paper_optimizer"]
# The serving names whose docstrings carry an Example (the exceptions and
# records of `keras_transformer.serving` have none).
PUBLIC += [
    getattr(serving, name)
    for name in (
        "DynamicBatcher",
        "ServerOptions",
        "ServingMetrics",
        "TranslatorModel",
        "create_app",
        "padded_length",
        "parse_request",
    )
]


@pytest.mark.parametrize("public", PUBLIC, ids=lambda public: public.__name__)
def test_docstring_example(public):
    globs = {"keras": keras, "keras_transformer": keras_transformer}
    tests = doctest.DocTestFinder(recurse=False).find(public, globs=globs)
    examples = [test for test in tests if test.examples]
    assert examples, f"{public.__name__} has no Example"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in examples:
        runner.run(test)
    assert runner.failures == 0

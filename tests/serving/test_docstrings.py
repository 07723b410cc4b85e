"""The Example of every public docstring of `keras_transformer.serving` runs
and prints what it says."""

import doctest

import keras
import pytest

import keras_transformer
from keras_transformer import serving

WITH_EXAMPLES = [
    "DynamicBatcher",
    "ServerOptions",
    "ServingMetrics",
    "TranslatorModel",
    "create_app",
    "padded_length",
    "parse_request",
]


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_example(name):
    globs = {"keras": keras, "keras_transformer": keras_transformer}
    tests = doctest.DocTestFinder(recurse=False).find(getattr(serving, name), globs=globs)
    examples = [test for test in tests if test.examples]
    assert examples, f"{name} has no Example"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in examples:
        runner.run(test)
    assert runner.failures == 0

"""The `keras-transformer` command line (see `commands`).

A package of its own, beside `keras_transformer`, so that parsing the
arguments and `--help` need neither Keras nor a backend: importing
`keras_transformer` imports Keras, to register its layers for
`keras.saving.load_model`.
"""

from keras_transformer_cli.commands import build_parser, console, main

__all__ = ["build_parser", "console", "main"]

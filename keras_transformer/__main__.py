"""`python -m keras_transformer` runs the `keras-transformer` command."""

import sys

from keras_transformer_cli import console

sys.exit(console())

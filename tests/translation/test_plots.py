import matplotlib.image
import numpy as np

from keras_transformer.layers.positional_encoding import sinusoidal_encoding
from keras_transformer.translation import plots
from tests.helpers import to_numpy


def read_png(path):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.05  # not a blank canvas
    return image


def test_attention_heatmap_grows_with_heads(tmp_path, rng):
    scores = rng.dirichlet(np.ones(5), size=(4, 3))  # (heads, query_len, key_len)
    plots.plot_attention(scores, ["un", "deux", "[END]"], list("abcde"), tmp_path / "a.png")
    one_head = scores[:1]
    plots.plot_attention(one_head, ["un", "deux", "[END]"], list("abcde"), tmp_path / "b.png")
    four, one = read_png(tmp_path / "a.png"), read_png(tmp_path / "b.png")
    assert four.shape[0] * four.shape[1] > 2 * one.shape[0] * one.shape[1]


def test_positional_encoding_and_curves(tmp_path):
    encoding = to_numpy(sinusoidal_encoding(np.arange(32, dtype="float32"), 16))
    plots.plot_positional_encoding(encoding, tmp_path / "pe.png")
    read_png(tmp_path / "pe.png")
    history = {"loss": [3.0, 1.0], "val_loss": [2.0, 1.1], "masked_accuracy": [0.4, 0.9]}
    plots.plot_training_curves(history, tmp_path / "curves.png")
    read_png(tmp_path / "curves.png")

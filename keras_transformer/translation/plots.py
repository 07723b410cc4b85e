"""PNG pictures of a training run: attention, positional encoding, curves."""

import os
from collections.abc import Mapping, Sequence

import numpy as np


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "The pictures need matplotlib: pip install 'keras-transformer[translate]'"
        ) from error
    return Figure(figsize=(width, height), layout="constrained")


def plot_attention(
    scores: np.ndarray,
    query_tokens: Sequence[str],
    key_tokens: Sequence[str],
    path: str | os.PathLike,
    title: str = "Attention",
) -> None:
    """Writes a heatmap of one sentence's attention `(num_heads, query_len,
    key_len)` to `path`: the average over heads, then one panel per head,
    with the query tokens down the side and the key tokens along the top."""
    scores = np.asarray(scores, "float32")[:, : len(query_tokens), : len(key_tokens)]
    panels = [("mean of heads", scores.mean(0))]
    panels += [(f"head {head}", weights) for head, weights in enumerate(scores)]
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    side = 0.35 * max(len(query_tokens), len(key_tokens)) + 1.5
    figure = _figure(columns * side, rows * side + 0.5)
    figure.suptitle(title)
    for index, (name, weights) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        axes.set_title(name, fontsize=9)
        axes.set_xticks(range(len(key_tokens)), key_tokens, rotation=90, fontsize=7)
        axes.set_yticks(range(len(query_tokens)), query_tokens, fontsize=7)
    figure.savefig(path, dpi=120)


def plot_positional_encoding(
    encoding: np.ndarray, path: str | os.PathLike, title: str = "Sinusoidal positional encoding"
) -> None:
    """Writes the `(length, depth)` positional encoding as an image to `path`."""
    figure = _figure(8, 4)
    axes = figure.add_subplot()
    image = axes.imshow(np.asarray(encoding), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    axes.set_xlabel("dimension")
    axes.set_ylabel("position")
    axes.set_title(title)
    figure.colorbar(image, ax=axes)
    figure.savefig(path, dpi=120)


def plot_training_curves(
    history: Mapping[str, Sequence[float]], path: str | os.PathLike, title: str = "Training"
) -> None:
    """Writes loss and accuracy per epoch (training and validation) to
    `path`; `history` maps metric names such as `"loss"` and `"val_loss"` to
    one value per epoch, as `History.history` does."""
    figure = _figure(10, 4)
    figure.suptitle(title)
    for index, metric in enumerate(("loss", "masked_accuracy")):
        axes = figure.add_subplot(1, 2, index + 1)
        for prefix, label in (("", "training"), ("val_", "validation")):
            values = history.get(prefix + metric)
            if values:
                axes.plot(range(1, len(values) + 1), values, marker="o", label=label)
        axes.set_xlabel("epoch")
        axes.set_title(metric.replace("_", " "))
        if axes.lines:
            axes.legend()
    figure.savefig(path, dpi=120)

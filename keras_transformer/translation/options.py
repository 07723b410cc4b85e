"""The options of a training run, in groups, each with the help line of its
command-line flag: the one description `TrainingOptions` and `keras-transformer
train --help` share. Imports nothing heavier than the standard library."""

import dataclasses
from collections.abc import Callable

from keras_transformer.validation import (
    check_choice,
    check_positive_int,
    check_rate,
    parse_duration,
)

DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
TOKENIZER_KINDS = ("sentencepiece", "wordpiece", "character")
# Epochs without a time budget when `epochs` is not given; with one, the
# budget decides, within this many.
DEFAULT_EPOCHS = 5
BUDGET_EPOCHS = 10_000
OPTION_GROUPS = ("model", "optimisation", "batches and data", "run control", "evaluation")


def _option(default, group: str, help: str, parse: Callable | None = None):
    """A `TrainingOptions` field: its default, the group and help line of its
    flag, and for an option that may be None, how a given value is read."""
    return dataclasses.field(
        default=default, metadata={"group": group, "help": help, "parse": parse}
    )


@dataclasses.dataclass
class TrainingOptions:
    """What a training run builds and how long it trains. The defaults are
    chosen on a suite of generated tasks (`benchmarks/tasks.py`,
    docs/tasks.md) and on real translations (docs/real_text.md), not on one.

    `epochs` is a maximum (None: 5, or no limit with a `time_budget`):
    training stops earlier after `patience` epochs without a lower
    validation loss, and the best epoch's weights are kept (or, with
    `average_checkpoints` > 1, the mean of the last that many epochs'
    weights). With `time_budget` (seconds, or a string such as `"10m"`),
    training also stops when that much time has been spent training, and
    the learning rate decays to zero there instead of at the last epoch: how
    many batches fit is estimated from timed steps before training.

    Batches hold about `batch_tokens` tokens of pairs of similar lengths;
    `accumulate_steps` > 1 averages the gradients of that many batches per
    update. The learning rate follows the paper's warmup and
    inverse-square-root schedule, times a linear decay that reaches zero at
    the end of training unless `decay_to_zero` is False. `vocabulary_size`
    None sizes the vocabulary from the data; `shared_vocabulary` trains one
    vocabulary for both sides and shares the embeddings and the output
    projection, as the paper does (None: where both sides are written in
    the same characters, `same_characters`).
    `beams` is the beam width of the evaluation on the test split (the
    paper's 4, with its length penalty 0.6; 1 decodes greedily).

    Each field's group and help line are in its metadata.
    """

    # Model
    num_layers: int = _option(2, "model", "encoder and decoder blocks")
    d_model: int = _option(128, "model", "width of the embeddings and blocks")
    num_heads: int = _option(4, "model", "attention heads; must divide --d-model")
    ff_dim: int = _option(512, "model", "inner width of the feed-forward networks")
    dropout: float = _option(0.1, "model", "dropout on embeddings and sublayer outputs")
    dtype_policy: str = _option("float32", "model", ", ".join(DTYPE_POLICIES))
    # Optimisation
    label_smoothing: float = _option(0.1, "optimisation", "label smoothing of the loss")
    warmup_steps: int = _option(500, "optimisation", "updates of learning-rate warmup")
    learning_rate_scale: float = _option(
        1.0, "optimisation", "factor on the paper's learning-rate schedule"
    )
    decay_to_zero: bool = _option(
        True, "optimisation", "decay the learning rate linearly to zero at the end of training"
    )
    accumulate_steps: int = _option(1, "optimisation", "batches whose gradients make one update")
    # Batches and data
    batch_tokens: int = _option(
        1024, "batches and data", "tokens per batch, pairs grouped by length"
    )
    max_length: int = _option(
        128, "batches and data", "longest pair side in tokens; longer pairs are left out"
    )
    tokenizer: str = _option("sentencepiece", "batches and data", ", ".join(TOKENIZER_KINDS))
    vocabulary_size: int | None = _option(
        None, "batches and data", "largest vocabulary (default: sized from the data)", parse=int
    )
    shared_vocabulary: bool | None = _option(
        None,
        "batches and data",
        "one vocabulary and embedding for both sides "
        "(default: where both sides are written in the same characters)",
    )
    # Run control
    epochs: int | None = _option(
        None,
        "run control",
        "most epochs to train (default: 5, or no limit with --time-budget)",
        parse=int,
    )
    time_budget: float | str | None = _option(
        None,
        "run control",
        "stop training after this long (seconds, or such as 90s, 10m, 1.5h); "
        "the learning rate reaches zero there (default: none)",
        parse=parse_duration,
    )
    patience: int = _option(
        3, "run control", "stop after this many epochs without a lower validation loss"
    )
    average_checkpoints: int = _option(
        1, "run control", "average the last N epochs' weights instead of keeping the best"
    )
    seed: int = _option(0, "run control", "seed of the splits, shuffling and initialisation")
    # Evaluation
    beams: int = _option(
        4, "evaluation", "beam width of the evaluation on the test split (1: greedy)"
    )

    def check(self) -> "TrainingOptions":
        """Raises `ValueError` naming the first option out of range."""
        if self.epochs is not None:
            check_positive_int("epochs", self.epochs)
        if self.time_budget is not None:
            self.time_budget = parse_duration(self.time_budget)
        for name in (
            "patience",
            "batch_tokens",
            "accumulate_steps",
            "num_layers",
            "d_model",
            "num_heads",
            "ff_dim",
            "warmup_steps",
            "max_length",
            "average_checkpoints",
            "beams",
        ):
            check_positive_int(name, getattr(self, name))
        if self.vocabulary_size is not None:
            check_positive_int("vocabulary_size", self.vocabulary_size)
        check_rate("dropout", self.dropout)
        check_rate("label_smoothing", self.label_smoothing)
        check_choice("tokenizer", self.tokenizer, TOKENIZER_KINDS)
        check_choice("dtype_policy", self.dtype_policy, DTYPE_POLICIES)
        if self.d_model % self.num_heads:
            raise ValueError(
                f"`d_model` must be divisible by `num_heads`. "
                f"Received: d_model={self.d_model}, num_heads={self.num_heads}"
            )
        if not self.learning_rate_scale > 0:
            raise ValueError(
                "`learning_rate_scale` must be > 0. "
                f"Received: learning_rate_scale={self.learning_rate_scale}"
            )
        return self

    @property
    def max_epochs(self) -> int:
        """`epochs`, or its default with or without a time budget."""
        if self.epochs is not None:
            return self.epochs
        return DEFAULT_EPOCHS if self.time_budget is None else BUDGET_EPOCHS

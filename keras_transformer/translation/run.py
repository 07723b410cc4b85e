"""A complete training run: tokenizers, the paper's recipe with `model.fit`,
checkpoints that survive an interruption, evaluation, saving and pictures."""

import contextlib
import csv
import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence

import keras

from keras_transformer.data.pairs import Pair
from keras_transformer.layers.positional_encoding import sinusoidal_encoding
from keras_transformer.models.transformer import Transformer
from keras_transformer.saving import save_atomically
from keras_transformer.training import MaskedAccuracy, MaskedCrossEntropy, paper_optimizer
from keras_transformer.training.distribution import TrainingDevices
from keras_transformer.translation import plots
from keras_transformer.translation.evaluation import evaluate_translator
from keras_transformer.translation.tokenizers import (
    TOKENIZER_KINDS,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
    training_arrays,
)
from keras_transformer.translation.translator import Translator
from keras_transformer.validation import check_choice, check_positive_int, check_rate

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
TRANSLATIONS_FILE = "test_translations.tsv"
STATE_DIRECTORY = "training_state"


@dataclasses.dataclass
class TrainingOptions:
    """What a training run builds and how long it trains. The defaults train
    the built-in number translation to >= 99% exact match in a few minutes
    on a 2-core CPU."""

    epochs: int = 12
    batch_size: int = 64
    num_layers: int = 2
    d_model: int = 64
    num_heads: int = 4
    ff_dim: int = 256
    dropout: float = 0.1
    label_smoothing: float = 0.1
    warmup_steps: int = 1000
    learning_rate_scale: float = 0.5
    tokenizer: str = "wordpiece"
    vocabulary_size: int = 8000
    max_length: int = 64
    beams: int = 1
    seed: int = 0

    def check(self) -> "TrainingOptions":
        """Raises `ValueError` naming the first option out of range."""
        for name in (
            "epochs",
            "batch_size",
            "num_layers",
            "d_model",
            "num_heads",
            "ff_dim",
            "warmup_steps",
            "vocabulary_size",
            "max_length",
            "beams",
        ):
            check_positive_int(name, getattr(self, name))
        check_rate("dropout", self.dropout)
        check_rate("label_smoothing", self.label_smoothing)
        check_choice("tokenizer", self.tokenizer, TOKENIZER_KINDS)
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


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked."""


def train_translator(
    splits: Mapping[str, Sequence[Pair]],
    directory: str | os.PathLike,
    options: TrainingOptions | None = None,
    verbose: int | str = "auto",
    log: Callable[[str], None] = print,
    pictures: bool = True,
    devices: TrainingDevices | None = None,
) -> dict:
    """Trains a `Translator` on `splits["train"]`, validating on
    `splits["validation"]` each epoch, and evaluates it on `splits["test"]`.

    Writes to `directory`: `model.keras` (the translator with its
    tokenizers), `metrics.json`, `test_translations.tsv` and, with
    `pictures`, the PNGs (training curves, attention of the first test
    sentence, positional encoding). Checkpoints go to `directory/training_state` after every
    epoch: run the same call again after an interruption and training goes on
    from the last finished epoch, on the same devices or on others. Returns
    the metrics.

    With `devices` (a `TrainingDevices`), the model is built and trained over
    several devices; `options.batch_size` stays the global batch.
    """
    options = (options or TrainingOptions()).check()
    if devices is not None:
        devices.check_batch_size(options.batch_size)
        devices.check_widths(d_model=options.d_model, ff_dim=options.ff_dim)
    for split in ("train", "validation", "test"):
        if not splits.get(split):
            raise ValueError(f"`splits[{split!r}]` must hold at least one pair.")
    state = _RunState(directory, options)
    keras.utils.set_random_seed(options.seed)
    source_tokenizer, target_tokenizer = state.tokenizers(splits["train"])
    inputs, labels, skipped = training_arrays(
        source_tokenizer, target_tokenizer, splits["train"], options.max_length
    )
    validation = training_arrays(
        source_tokenizer, target_tokenizer, splits["validation"], options.max_length
    )[:2]
    log(
        f"{len(labels)} training pairs ({skipped} longer than {options.max_length} tokens left "
        f"out), {len(validation[1])} validation; vocabularies "
        f"{source_tokenizer.vocabulary_size()} / {target_tokenizer.vocabulary_size()}"
    )
    if devices is not None:
        inputs, labels, validation = devices.pad_rows((inputs, labels, validation))
        log(f"Training on {len(devices.devices)} devices ({devices.mode} parallel)")
    with _scope(devices):
        transformer = Transformer(
            source_vocabulary_size=source_tokenizer.vocabulary_size(),
            target_vocabulary_size=target_tokenizer.vocabulary_size(),
            num_layers=options.num_layers,
            d_model=options.d_model,
            num_heads=options.num_heads,
            ff_dim=options.ff_dim,
            dropout=options.dropout,
            seed=options.seed,
        )
        transformer.compile(
            optimizer=paper_optimizer(
                options.d_model, options.warmup_steps, options.learning_rate_scale
            ),
            loss=MaskedCrossEntropy(label_smoothing=options.label_smoothing),
            metrics=[MaskedAccuracy()],
        )
        started = time.time()
        transformer.fit(
            inputs,
            labels,
            batch_size=options.batch_size,
            epochs=options.epochs,
            validation_data=validation,
            callbacks=state.callbacks(),
            verbose=verbose,
        )
    training_seconds = time.time() - started
    translator = Translator(
        transformer,
        source_tokenizer,
        target_tokenizer,
        max_output_length=min(2 * labels.shape[1] + 8, 4 * options.max_length),
    )
    save_atomically(translator, os.path.join(directory, MODEL_FILE))
    started = time.time()
    results = evaluate_translator(translator, splits["test"], beams=options.beams)
    translations = results.pop("translations")
    metrics = {
        "backend": keras.backend.backend(),
        **results,
        "training_seconds": round(training_seconds, 1),
        "evaluation_seconds": round(time.time() - started, 1),
        "epochs": options.epochs,
        "devices": 1 if devices is None else len(devices.devices),
        "distribute": None if devices is None else devices.mode,
        "options": dataclasses.asdict(options),
    }
    _write_text(os.path.join(directory, METRICS_FILE), json.dumps(metrics, indent=2) + "\n")
    _write_text(
        os.path.join(directory, TRANSLATIONS_FILE),
        "".join(
            f"{source}\t{target}\t{translation}\n"
            for (source, target), translation in zip(splits["test"], translations, strict=True)
        ),
    )
    if pictures:
        _draw_pictures(directory, translator, splits["test"][0][0], state.history())
    return {**metrics, "translations": translations}


def load_translator(directory: str | os.PathLike):
    """The `Translator` saved in `directory/model.keras`; raises
    `RunDirectoryError` when there is none or it cannot be read."""
    path = os.path.join(directory, MODEL_FILE)
    if not os.path.isdir(directory):
        raise RunDirectoryError(f"{directory}: no such directory")
    if not os.path.isfile(path):
        raise RunDirectoryError(f"{directory}: does not hold a model ({MODEL_FILE} is missing)")
    try:
        translator = keras.saving.load_model(path, compile=False)
    except Exception as error:
        raise RunDirectoryError(f"{path}: cannot be loaded as a model ({error})") from error
    if not hasattr(translator, "translate"):
        raise RunDirectoryError(f"{path}: holds a {type(translator).__name__}, not a Translator")
    return translator


class _RunState:
    """The files under `directory/training_state` that let an interrupted
    run resume: the options, the tokenizers, the per-epoch history and the
    last checkpoint."""

    def __init__(self, directory, options: TrainingOptions):
        self.root = os.path.join(directory, STATE_DIRECTORY)
        self.backup = os.path.join(self.root, "backup")
        self.history_path = os.path.join(self.root, "history.csv")
        self.options = dataclasses.asdict(options)
        self.resuming = os.path.exists(os.path.join(self.backup, "training_metadata.json"))
        os.makedirs(self.root, exist_ok=True)
        options_path = os.path.join(self.root, "options.json")
        if self.resuming:
            with open(options_path, encoding="utf-8") as file:
                saved = json.load(file)
            changed = {k: (saved.get(k), v) for k, v in self.options.items() if saved.get(k) != v}
            if changed:
                raise RunDirectoryError(
                    f"{directory} holds an unfinished run with other options "
                    f"({', '.join(f'{k}: {a} -> {b}' for k, (a, b) in changed.items())}); "
                    "repeat its command to resume it, or choose another directory"
                )
        else:
            _write_text(options_path, json.dumps(self.options, indent=2) + "\n")
            if os.path.exists(self.history_path):
                os.remove(self.history_path)

    def tokenizers(self, train_pairs):
        """The run's tokenizers: trained on the training pairs for a new run,
        read back from disk for a resumed one."""
        tokenizers = []
        for side, texts in (
            ("source", [s for s, _ in train_pairs]),
            ("target", [t for _, t in train_pairs]),
        ):
            path = os.path.join(self.root, f"{side}_tokenizer")
            if self.resuming:
                tokenizers.append(load_tokenizer(path))
                continue
            tokenizer = train_tokenizer(
                texts, self.options["tokenizer"], self.options["vocabulary_size"]
            )
            save_tokenizer(tokenizer, path)
            tokenizers.append(tokenizer)
        return tokenizers

    def callbacks(self):
        return [
            keras.callbacks.CSVLogger(self.history_path, append=True),
            keras.callbacks.BackupAndRestore(self.backup, double_checkpoint=True),
        ]

    def history(self) -> dict[str, list[float]]:
        """Metric name -> one value per epoch, the last record of an epoch
        winning if an interruption repeated it."""
        if not os.path.exists(self.history_path):
            return {}
        with open(self.history_path, encoding="utf-8") as file:
            records = {int(row["epoch"]): row for row in csv.DictReader(file)}
        epochs = [records[epoch] for epoch in sorted(records)]
        names = [name for name in (epochs[0] if epochs else {}) if name != "epoch"]
        return {name: [float(record[name]) for record in epochs] for name in names}


def _scope(devices: TrainingDevices | None):
    return contextlib.nullcontext() if devices is None else devices.scope()


def _draw_pictures(directory, translator, sentence: str, history) -> None:
    maps = translator.attention_maps(sentence)
    attention_pictures = (
        (
            "cross_attention",
            "output_tokens",
            "attention_cross.png",
            "Cross-attention, last decoder",
        ),
        (
            "encoder_self_attention",
            "source_tokens",
            "attention_encoder.png",
            "Self-attention, last encoder",
        ),
    )
    for scores, query_tokens, file_name, title in attention_pictures:
        plots.plot_attention(
            maps[scores],
            maps[query_tokens],
            maps["source_tokens"],
            os.path.join(directory, file_name),
            title=f"{title} layer: {sentence!r}",
        )
    plots.plot_positional_encoding(
        keras.ops.convert_to_numpy(
            sinusoidal_encoding(
                keras.ops.arange(64, dtype="float32"), translator.transformer.d_model
            )
        ),
        os.path.join(directory, "positional_encoding.png"),
    )
    if history:
        plots.plot_training_curves(history, os.path.join(directory, "training_curves.png"))


def _write_text(path, text: str) -> None:
    """Writes `text` through a temporary file renamed into place."""
    temporary = f"{path}.partial"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, path)

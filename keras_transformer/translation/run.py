"""A complete training run: tokenizers, the paper's recipe with `model.fit`,
checkpoints that survive an interruption, evaluation, saving and pictures."""

import contextlib
import csv
import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence

import keras

from keras_transformer.data.pairs import Pair, as_field, fingerprint_pairs
from keras_transformer.layers.positional_encoding import sinusoidal_encoding
from keras_transformer.models.transformer import Transformer
from keras_transformer.saving import (
    outside_distribution,
    readable_variables,
    save_atomically,
    write_text_atomically,
)
from keras_transformer.training import MaskedAccuracy, MaskedCrossEntropy, paper_optimizer
from keras_transformer.training.checkpoints import EpochCheckpoints, average_weights
from keras_transformer.training.distribution import TrainingDevices
from keras_transformer.training.time_budget import (
    BudgetPlan,
    TimeBudget,
    time_training_step,
)
from keras_transformer.translation import plots
from keras_transformer.translation.batching import EpochShuffle, TokenBatches, TokenCorpus
from keras_transformer.translation.evaluation import evaluate_translator
from keras_transformer.translation.options import BUDGET_EPOCHS, DEFAULT_EPOCHS, TrainingOptions
from keras_transformer.translation.tokenizers import (
    load_tokenizer,
    same_characters,
    save_tokenizer,
    train_tokenizers,
)
from keras_transformer.translation.translator import Translator, output_length_factor_of

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
TRANSLATIONS_FILE = "test_translations.tsv"
STATE_DIRECTORY = "training_state"
# The tokenizers of a larger corpus are fitted to about this many characters
# of its training pairs, spread evenly: SentencePiece's training took about
# 21 bytes per character on the spelled_digits task (docs/tasks.md), so some
# 200 MiB here, whatever the size of the corpus.
TOKENIZER_CHARACTERS = 10_000_000
SPLITS = ("train", "validation", "test")
# Options that change no trained weight: a resumed run may change them.
EVALUATION_OPTIONS = ("beams",)


def tokenizer_sample(pairs: Sequence[Pair], characters: int = TOKENIZER_CHARACTERS) -> list[Pair]:
    """The pairs the tokenizers are fitted to: all of them, or every n-th
    pair of a corpus of more than `characters` characters (both sides), n
    chosen so that the sample holds about that many. Reads `pairs` twice."""
    total = sum(len(source) + len(target) for source, target in pairs)
    step = max(1, -(-total // characters))  # ceil
    return [pair for index, pair in enumerate(pairs) if index % step == 0]


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
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict:
    """Trains a `Translator` on `splits["train"]`, validating on
    `splits["validation"]` each epoch, and evaluates it on `splits["test"]`.

    Writes to `directory`: `model.keras` (the translator with its
    tokenizers), `metrics.json`, `test_translations.tsv` and, with
    `pictures`, the PNGs (training curves, attention of the first test
    sentence, positional encoding). The tokenized splits, the checkpoints and
    the training history live in `directory/training_state`: run the same
    call again after an interruption and training goes on from the last
    finished epoch, on the same devices or on others. Returns the metrics.
    `callbacks` go to `model.fit` beside the run's own.

    With `devices` (a `TrainingDevices`), the model is built and trained over
    several devices; each batch's rows are a multiple of the devices that
    split it. With `devices.cluster` (several processes, each calling this
    with the same arguments and `directory`), every process checks that
    the others were given the same options and pairs; process 0 writes the
    tokenizers and token caches and the others read them; each process
    reads its own rows of every batch; process 0 alone writes checkpoints,
    history and, after training, evaluates and writes the model, reports
    and pictures, while the others return `{"process_id": ...}` alone.
    """
    options = (options or TrainingOptions()).check()
    _check_splits(splits)
    if devices is not None:
        devices.check_widths(d_model=options.d_model, ff_dim=options.ff_dim)
    cluster = None if devices is None else devices.cluster
    if cluster is not None and options.time_budget is not None:
        raise ValueError(
            "`time_budget` stops training by each process's own clock, and processes that "
            "train together must stop at the same step: use `epochs` with several processes. "
            f"Received: time_budget={options.time_budget!r}, "
            f"num_processes={cluster.num_processes}"
        )
    sample = tokenizer_sample(splits["train"])
    if options.shared_vocabulary is None:
        shared = same_characters([source for source, _ in sample], [target for _, target in sample])
        options = dataclasses.replace(options, shared_vocabulary=shared)
    data = {split: fingerprint_pairs(splits[split]) for split in SPLITS}
    if cluster is not None:
        cluster.check_same(
            "options", {**dataclasses.asdict(options), **data, "devices": list(devices.devices)}
        )
    chief = devices is None or devices.is_chief
    with contextlib.nullcontext() if devices is None else devices.chief_first("run files"):
        state = _RunState(
            directory,
            options,
            data,
            writes=chief,
            saves_everywhere=devices is not None and devices.saves_everywhere,
        )
        keras.utils.set_random_seed(options.seed)
        source_tokenizer, target_tokenizer = state.tokenizers(sample, options.shared_vocabulary)
        train, validation = state.batches(source_tokenizer, target_tokenizer, splits, devices)
    log(
        f"{len(train.corpus)} training pairs ({train.corpus.skipped} longer than "
        f"{options.max_length} tokens left out), {len(validation.corpus)} validation; "
        f"vocabularies {source_tokenizer.vocabulary_size()} / "
        f"{target_tokenizer.vocabulary_size()}; {train.num_batches} batches of about "
        f"{options.batch_tokens} tokens, {train.padding_share():.0%} padding"
    )
    if devices is not None:
        processes = "" if cluster is None else f" of {cluster.num_processes} processes"
        log(f"Training on {len(devices.devices)} devices{processes} ({devices.mode} parallel)")
    with _scope(devices):
        started = time.monotonic()
        transformer = build_transformer(
            options, source_tokenizer, target_tokenizer, steps_per_epoch=train.num_batches
        )
        callbacks = [EpochShuffle(train), *callbacks]
        if options.time_budget is not None:
            plan = state.budget_plan(lambda: _plan_budget(transformer, train, validation, options))
            log(plan.describe(train.num_batches))
            compile_transformer(
                transformer, options, total_steps=-(-plan.total_batches // options.accumulate_steps)
            )
            callbacks.append(
                TimeBudget(
                    options.time_budget,
                    plan.total_batches,
                    train.num_batches,
                    started=started,
                    spent=state.history().get("training_seconds", [0.0])[-1],
                    log=log,
                )
            )
        checkpoints = state.checkpoints()
        transformer.fit(
            train.fit_input(devices),
            epochs=options.max_epochs,
            validation_data=validation.fit_input(devices),
            callbacks=[*callbacks, *state.callbacks(checkpoints)],
            shuffle=False,  # the batches shuffle themselves, by length bucket
            verbose=verbose,
        )
        training_seconds = time.monotonic() - started
    if cluster is not None:
        cluster.leave()
        if not cluster.is_chief:
            return {"process_id": cluster.process_id}
        # Process 0 evaluates and saves on its own devices.
        transformer = Transformer.from_config(transformer.get_config())
    with _scope(None if cluster else devices):
        _final_weights(transformer, checkpoints, options.average_checkpoints)
    translator = Translator(
        transformer,
        source_tokenizer,
        target_tokenizer,
        max_output_length=min(
            2 * int(train.corpus.target_lengths.max()) + 10, 2 * options.max_length
        ),
        output_length_factor=output_length_factor_of(
            train.corpus.source_lengths, train.corpus.target_lengths
        ),
    )
    save_atomically(translator, os.path.join(directory, MODEL_FILE))
    history = state.history()
    metrics = {
        "backend": keras.backend.backend(),
        **_evaluate(translator, splits["test"], directory, options.beams),
        "training_seconds": round(training_seconds, 1),
        "epochs": len(history.get("loss", [])),
        "best_epoch": checkpoints.best_epoch + 1,
        "padding_share": round(train.padding_share(), 4),
        "devices": 1 if devices is None else len(devices.devices),
        "processes": 1 if cluster is None else cluster.num_processes,
        "distribute": None if devices is None else devices.mode,
        "options": dataclasses.asdict(options),
    }
    translations = metrics.pop("translations")
    _write_json(os.path.join(directory, METRICS_FILE), metrics)
    if pictures:
        _draw_pictures(directory, translator, splits["test"][0][0], history)
    return {**metrics, "translations": translations}


def _check_splits(splits) -> None:
    for split in SPLITS:
        if not splits.get(split):
            raise ValueError(f"`splits[{split!r}]` must hold at least one pair.")


def build_transformer(
    options: TrainingOptions,
    source_tokenizer,
    target_tokenizer,
    steps_per_epoch: int,
    total_steps: int | None = None,
):
    """The compiled `Transformer` that `train_translator` trains for
    `options`, sized to the tokenizers' vocabularies. With
    `options.decay_to_zero`, the learning rate reaches zero after
    `total_steps` updates, by default `steps_per_epoch` (batches) times the
    most epochs."""
    transformer = Transformer(
        source_vocabulary_size=source_tokenizer.vocabulary_size(),
        target_vocabulary_size=target_tokenizer.vocabulary_size(),
        num_layers=options.num_layers,
        d_model=options.d_model,
        num_heads=options.num_heads,
        ff_dim=options.ff_dim,
        dropout=options.dropout,
        share_embeddings=options.shared_vocabulary,
        tie_output_embedding=options.shared_vocabulary,
        seed=options.seed,
        dtype=options.dtype_policy,
    )
    updates_per_epoch = -(-steps_per_epoch // options.accumulate_steps)
    compile_transformer(transformer, options, total_steps or options.max_epochs * updates_per_epoch)
    return transformer


def compile_transformer(transformer, options: TrainingOptions, total_steps: int) -> None:
    """Compiles `transformer` with a fresh optimizer of the paper's recipe
    whose learning rate (with `options.decay_to_zero`) reaches zero after
    `total_steps` updates, the label-smoothed loss and token accuracy."""
    transformer.compile(
        optimizer=paper_optimizer(
            options.d_model,
            options.warmup_steps,
            options.learning_rate_scale,
            gradient_accumulation_steps=(
                options.accumulate_steps if options.accumulate_steps > 1 else None
            ),
            total_steps=total_steps if options.decay_to_zero else None,
        ),
        loss=MaskedCrossEntropy(label_smoothing=options.label_smoothing),
        metrics=[MaskedAccuracy()],
    )


def _plan_budget(transformer, train: TokenBatches, validation: TokenBatches, options):
    """How many batches fit `options.time_budget`, from training steps on
    the two most common batch shapes, timed on `transformer` (whose weights
    are left as they were)."""
    common, *others = [train.batch_of_shape(shape) for shape, _ in train.shapes().most_common(2)]
    timing = time_training_step(transformer, common, others[0] if others else None)
    return BudgetPlan.estimate(
        options.time_budget,
        timing,
        batches_per_epoch=train.num_batches,
        train_shapes=len(train.shapes()),
        validation_batches=validation.num_batches,
        validation_shapes=len(validation.shapes()),
        max_batches=options.max_epochs * train.num_batches,
    )


def _final_weights(transformer, checkpoints: EpochCheckpoints, average: int) -> None:
    """The best epoch's weights, or the mean of the last `average` epochs'."""
    if average > 1:
        average_weights(transformer, checkpoints.last_paths)
    else:
        transformer.load_weights(checkpoints.best_path)


def _evaluate(translator, test_pairs, directory, beams) -> dict:
    """Scores on the test pairs; writes them with their translations to
    `test_translations.tsv`."""
    started = time.time()
    results = evaluate_translator(translator, test_pairs, beams=beams)
    write_text_atomically(
        os.path.join(directory, TRANSLATIONS_FILE),
        "".join(
            f"{source}\t{target}\t{as_field(translation)}\n"
            for (source, target), translation in zip(
                test_pairs, results["translations"], strict=True
            )
        ),
    )
    return {**results, "evaluation_seconds": round(time.time() - started, 1)}


def check_run_directory(directory: str | os.PathLike) -> str:
    """The path of the model file of the run in `directory`; raises
    `RunDirectoryError` when there is none."""
    path = os.path.join(directory, MODEL_FILE)
    if not os.path.isdir(directory):
        raise RunDirectoryError(f"{directory}: no such directory")
    if not os.path.isfile(path):
        raise RunDirectoryError(f"{directory}: does not hold a model ({MODEL_FILE} is missing)")
    return path


def load_translator(directory: str | os.PathLike):
    """The `Translator` saved in `directory/model.keras`; raises
    `RunDirectoryError` when there is none or it cannot be read."""
    path = check_run_directory(directory)
    try:
        translator = keras.saving.load_model(path, compile=False)
    except Exception as error:
        raise RunDirectoryError(f"{path}: cannot be loaded as a model ({error})") from error
    if not hasattr(translator, "translate"):
        raise RunDirectoryError(f"{path}: holds a {type(translator).__name__}, not a Translator")
    return translator


class _RunState:
    """The files under `directory/training_state` that let an interrupted
    run resume: the options, the tokenizers, the tokenized splits, the
    per-epoch history, the checkpoints and Keras's backup of the last
    epoch. Without `writes` (the processes of a multi-process run other
    than process 0), it reads them only, once process 0 has written them;
    with `saves_everywhere` too (every process must take part in each save),
    such a process saves its checkpoints and backups as process 0 does, to a
    scratch folder of its own that starts as a copy of process 0's."""

    def __init__(
        self,
        directory,
        options: TrainingOptions,
        data: dict,
        writes: bool = True,
        saves_everywhere: bool = False,
    ):
        self.directory = directory
        self.writes = writes
        self.scratch = None if writes or not saves_everywhere else tempfile.TemporaryDirectory()
        self.root = os.path.join(directory, STATE_DIRECTORY)
        self.backup = os.path.join(self.root, "backup")
        self.history_path = os.path.join(self.root, "history.csv")
        self.options = options
        self.resuming = os.path.exists(os.path.join(self.backup, "training_metadata.json"))
        os.makedirs(self.root, exist_ok=True)
        options_path = os.path.join(self.root, "options.json")
        data_path = os.path.join(self.root, "data.json")
        if self.resuming:
            self._check_resumable(_read_json(options_path), _read_json(data_path), data)
        if self.resuming or not writes:
            return
        _write_json(options_path, dataclasses.asdict(options))
        _write_json(data_path, data)
        for stale in (self.history_path, os.path.join(self.root, "checkpoints")):
            _remove(stale)

    def _check_resumable(self, saved_options: dict, saved_data: dict | None, data: dict) -> None:
        """Raises `RunDirectoryError` unless the unfinished run was trained
        with the same options (those that change its weights) on the same
        pairs (runs that saved no fingerprint of their pairs are not
        checked for them)."""
        saved, given = _weight_options(saved_options), _weight_options(self.options)
        if saved.get("shared_vocabulary") is None:  # decided from the same data then
            saved["shared_vocabulary"] = given["shared_vocabulary"]
        changed = [
            f"{name}: {saved.get(name)} -> {given.get(name)}"
            for name in {**saved, **given}
            if saved.get(name) != given.get(name)
        ]
        if changed:
            raise RunDirectoryError(
                f"{self.directory} holds an unfinished run with other options "
                f"({', '.join(changed)}); repeat its command to resume it, "
                "or choose another directory"
            )
        if saved_data is not None and saved_data != data:
            described = {
                split: (_describe_pairs(saved_data.get(split)), _describe_pairs(data[split]))
                for split in SPLITS
                if saved_data.get(split) != data[split]
            }
            changed = [f"{split}: {old} -> {new}" for split, (old, new) in described.items()]
            raise RunDirectoryError(
                f"{self.directory} holds an unfinished run on other pairs "
                f"({'; '.join(changed)}); resume it with its own data, "
                "or choose another directory"
            )

    def tokenizers(self, sample, shared: bool):
        """The run's tokenizers: fitted to `sample` (of the training pairs)
        for a new run, one for both sides if `shared`; read back from disk
        for a resumed one."""
        paths = [os.path.join(self.root, f"{side}_tokenizer") for side in ("source", "target")]
        if self.resuming or not self.writes:
            return [load_tokenizer(path) for path in paths]
        tokenizers = train_tokenizers(
            [source for source, _ in sample],
            [target for _, target in sample],
            self.options.tokenizer,
            self.options.vocabulary_size,
            shared=shared,
        )
        for tokenizer, path in zip(tokenizers, paths, strict=True):
            save_tokenizer(tokenizer, path)
        return tokenizers

    def batches(self, source_tokenizer, target_tokenizer, splits, devices):
        """Token batches of the training split (shuffled each epoch) and of
        the validation split, read from the token cache of each (this
        process's rows of each batch)."""
        options = self.options
        row_multiple = 1 if devices is None else devices.batch_splits
        local_rows = None if devices is None else devices.local_rows
        return [
            TokenBatches(
                TokenCorpus.build(
                    os.path.join(self.root, "tokens", split),
                    source_tokenizer,
                    target_tokenizer,
                    splits[split],
                    options.max_length,
                ),
                options.batch_tokens,
                options.max_length,
                seed=options.seed if split == "train" else None,
                row_multiple=row_multiple,
                local_rows=local_rows,
            )
            for split in ("train", "validation")
        ]

    def budget_plan(self, estimate: Callable[[], BudgetPlan]) -> BudgetPlan:
        """The run's `BudgetPlan`: `estimate()` for a new run (saved), the
        saved one for a resumed run, so that its learning rate follows the
        same schedule."""
        path = os.path.join(self.root, "budget.json")
        if self.resuming and os.path.exists(path):
            with open(path, encoding="utf-8") as file:
                return BudgetPlan(**json.load(file))
        plan = estimate()
        _write_json(path, dataclasses.asdict(plan))
        return plan

    def checkpoints(self) -> EpochCheckpoints:
        directory = os.path.join(self.root, "checkpoints")
        if self.scratch is not None:
            directory = self._scratch_copy(directory, only=("checkpoints.json",))
        return EpochCheckpoints(
            directory,
            patience=self.options.patience,
            keep=self.options.average_checkpoints,
            save=self.writes or self.scratch is not None,
        )

    def callbacks(self, checkpoints: EpochCheckpoints):
        # The checkpoints are written before Keras's backup of the epoch.
        if self.scratch is not None:
            return [checkpoints, _Backup(self._scratch_copy(self.backup), double_checkpoint=True)]
        if not self.writes:
            return [checkpoints, _RestoreOnly(self.backup, double_checkpoint=True)]
        return [
            checkpoints,
            keras.callbacks.CSVLogger(self.history_path, append=True),
            _Backup(self.backup, double_checkpoint=True),
        ]

    def _scratch_copy(self, directory: str, only: Sequence[str] | None = None) -> str:
        """A copy of `directory` (of its files named in `only`, if given) in
        the scratch folder."""
        copy = os.path.join(self.scratch.name, os.path.basename(directory))
        os.makedirs(copy, exist_ok=True)
        names = os.listdir(directory) if os.path.isdir(directory) else []
        for name in names if only is None else set(only) & set(names):
            source = os.path.join(directory, name)
            (shutil.copytree if os.path.isdir(source) else shutil.copy)(
                source, os.path.join(copy, name)
            )
        return copy

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


class _Backup(keras.callbacks.BackupAndRestore):
    """Keras's backup of each epoch, saved outside the distribution with
    every variable readable (see `outside_distribution`,
    `readable_variables`)."""

    def on_epoch_end(self, epoch, logs=None):
        with outside_distribution(), readable_variables(self.model):
            super().on_epoch_end(epoch, logs)


class _RestoreOnly(keras.callbacks.BackupAndRestore):
    """Restores a resumed run from the backup that another process writes,
    and neither writes nor deletes it."""

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


def _weight_options(options: TrainingOptions | dict) -> dict:
    """The options that change a run's trained weights, `epochs` as the
    maximum it stands for."""
    if isinstance(options, TrainingOptions):
        options = dataclasses.asdict(options)
    weights = {name: value for name, value in options.items() if name not in EVALUATION_OPTIONS}
    if weights.get("epochs") is None:
        budget = weights.get("time_budget") is not None
        weights["epochs"] = BUDGET_EPOCHS if budget else DEFAULT_EPOCHS
    return weights


def _describe_pairs(fingerprint: dict | None) -> str:
    if fingerprint is None:
        return "none"
    return f"{fingerprint['pairs']} pairs, sha256 {fingerprint['sha256'][:12]}"


def _write_json(path: str, value) -> None:
    write_text_atomically(path, json.dumps(value, indent=2) + "\n")


def _read_json(path: str) -> dict | None:
    """The JSON object in `path`, or None where there is no file."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


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

"""The `keras-transformer` command: train, translate, evaluate, export and serve.

    keras-transformer train --out runs/fr                 # built-in number data
    keras-transformer train --data pairs.tsv --out runs/mine --epochs 20
    keras-transformer train --backend jax --distribute data --out runs/fr
    keras-transformer train --backend jax --distribute data --out /shared/fr \
        --coordinator host0:4321 --num-processes 2 --process-id 0   # and 1 on host1
    echo "seventy-one" | keras-transformer translate --model runs/fr
    keras-transformer evaluate --model runs/fr --data pairs.tsv
    keras-transformer export --model runs/fr --out exports/fr
    keras-transformer serve --model runs/fr --port 8080  # HTTP, batched

The backend comes from `--backend`, else from `KERAS_BACKEND`. Errors in the
input print one line and exit with status 1; an interrupted `train` exits
with status 130 and resumes when the same command is run again.
"""

import argparse
import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import Sequence

from keras_transformer_cli.startup import option_modules, third_party_logs_filtered

# Only the modules that describe the options are imported before the
# arguments are parsed; Keras, the backend and the translation workflow
# (keras-nlp and its TensorFlow text ops, sacrebleu) come with the command.
_OPTIONS = option_modules()
TrainingOptions = _OPTIONS["translation.options"].TrainingOptions
OPTION_GROUPS = _OPTIONS["translation.options"].OPTION_GROUPS
ServerOptions = _OPTIONS["serving.options"].ServerOptions
DISTRIBUTE_MODES = _OPTIONS["validation"].DISTRIBUTE_MODES

BACKENDS = ("tensorflow", "jax", "torch")
_PROGRESS_ABOVE = 256  # sentences; fewer are translated without progress lines
PROGRAM = "keras-transformer"


def console() -> int:
    """The `keras-transformer` program: `main` on `sys.argv`, with the lines
    that TensorFlow's and SentencePiece's C++ code log filtered out of the
    standard error stream."""
    with third_party_logs_filtered():
        return main()


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line with `argv` (default: `sys.argv[1:]`) and returns
    the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    # TensorFlow's C++ INFO and WARNING logs (for the text ops of the
    # tokenizers, or as the backend) are left out unless asked for; its
    # errors still show. A re-run under another backend inherits it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if args.backend and _imported_backend() not in (None, args.backend):
            args.check(args)  # what can be checked before a process under another backend
            return _run_with_backend(args.backend, argv)
        if args.backend:  # Keras is not imported yet
            os.environ["KERAS_BACKEND"] = args.backend
        return args.run(args)
    except KeyboardInterrupt:
        print(f"{PROGRAM}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"{PROGRAM}: error: {where}{error.strerror or error}", file=sys.stderr)
    except (ValueError, ImportError) as error:  # bad pairs files and run directories too
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
    return 1


def _imported_backend() -> str | None:
    """The backend of Keras if this process has imported it (then fixed),
    else None."""
    keras = sys.modules.get("keras")
    return keras.backend.backend() if keras is not None else None


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--backend", choices=BACKENDS, help="Keras backend (default: $KERAS_BACKEND)"
    )
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Train and use Transformer translators (Vaswani et al., 2017)."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    parser.set_defaults(check=lambda args: None)
    _add_train(commands, common)

    translate = commands.add_parser(
        "translate", parents=[common], help="translate sentences (arguments or stdin lines)"
    )
    translate.add_argument("--model", required=True, help="run directory written by train")
    translate.add_argument("--beams", type=int, default=4, help=_BEAMS_HELP)
    translate.add_argument(
        "--input", metavar="FILE", help="translate each line of FILE (blank lines stay blank)"
    )
    translate.add_argument(
        "--attention", metavar="PNG", help="plot the first sentence's cross-attention here"
    )
    translate.add_argument(
        "sentences", nargs="*", help="sentences (default: the lines of --input or of stdin)"
    )
    translate.set_defaults(run=_translate)

    evaluate = commands.add_parser(
        "evaluate", parents=[common], help="exact match, BLEU and chrF on a pairs file"
    )
    evaluate.add_argument("--model", required=True, help="run directory written by train")
    evaluate.add_argument("--data", required=True, help="source<TAB>target pairs")
    evaluate.add_argument("--beams", type=int, default=4, help=_BEAMS_HELP)
    evaluate.set_defaults(run=_evaluate)
    _add_serve(commands, common)
    _add_export(commands)
    return parser


_BEAMS_HELP = "beam width, length penalty 0.6 (default: 4, as in the paper; 1: greedy)"


def _add_train(commands, common) -> None:
    train = commands.add_parser(
        "train", parents=[common], help="train, evaluate and save a translator"
    )
    run = train.add_argument_group("run")
    run.add_argument("--out", required=True, help="run directory for the model and reports")
    run.add_argument("--no-pictures", action="store_true", help="skip the PNGs")
    data = train.add_argument_group("data")
    data.add_argument("--data", help="source<TAB>target pairs (default: built-in number words)")
    data.add_argument(
        "--language", default="fr", help="target language of the built-in data (default: fr)"
    )
    data.add_argument(
        "--pairs", type=int, default=20000, help="pairs of built-in data (default: 20000)"
    )
    groups = {name: train.add_argument_group(name) for name in OPTION_GROUPS}
    for field in dataclasses.fields(TrainingOptions):
        groups[field.metadata["group"]].add_argument(
            "--" + field.name.replace("_", "-"),
            **_option_kind(field),
            default=field.default,
            help=_option_help(field),
        )
    devices = train.add_argument_group("devices")
    devices.add_argument(
        "--distribute",
        choices=DISTRIBUTE_MODES,
        help="spread training over every device: data parallel (jax, tensorflow) or "
        "model parallel (jax); --batch-tokens is the global batch",
    )
    devices.add_argument(
        "--model-axis-size",
        type=int,
        help="with --distribute model: devices that split each kernel (default: all of "
        "one process's; a larger axis spans processes, and each save gathers the kernels)",
    )
    processes = train.add_argument_group(
        "processes",
        "several processes, on one host or many, that train together (jax, tensorflow); start "
        "each with the same options and --out (a shared folder), and its own --process-id",
    )
    processes.add_argument(
        "--coordinator",
        metavar="HOST:PORT[,HOST:PORT...]",
        help="where process 0 listens, reachable by every process; on tensorflow, where each "
        "process listens, process 0 first (default: $JAX_COORDINATOR_ADDRESS, else "
        "$KERAS_DISTRIBUTION_JOB_ADDRESSES, else $TF_CONFIG)",
    )
    processes.add_argument(
        "--num-processes",
        type=int,
        help="processes that train together (default: $KERAS_DISTRIBUTION_NUM_PROCESSES)",
    )
    processes.add_argument(
        "--process-id",
        type=int,
        help="this process, 0 to N-1; 0 writes the files (default: $KERAS_DISTRIBUTION_PROCESS_ID)",
    )
    processes.add_argument(
        "--join-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for every process to join (default: %(default)g)",
    )
    train.set_defaults(run=_train)


def _add_export(commands) -> None:
    export = commands.add_parser(
        "export",
        help="write a run's translator as a TensorFlow SavedModel (runs on tensorflow)",
        description="Writes the translator of a run as a TensorFlow SavedModel, tokenizers "
        "and decoding loop inside, loaded with tf.saved_model.load (and tensorflow_text) alone. "
        "Endpoints: translate (strings -> strings, also serving_default) and translate_ids "
        "(int32 ids -> int32 ids). A model trained on any backend is loaded under TensorFlow.",
    )
    export.add_argument("--model", required=True, help="run directory written by train")
    export.add_argument("--out", required=True, help="new (or empty) directory for the SavedModel")
    export.add_argument(
        "--beams", type=int, default=1, help="beam width of the exported decoding (default: 1)"
    )
    export.set_defaults(run=_export, check=_check_export, backend="tensorflow")


def _add_serve(commands, common) -> None:
    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="serve translations over HTTP, batching concurrent requests",
        description='Serves POST /v1/translate ({"sentences": [...], "beams": 1}), '
        "/healthz, /readyz and /metrics (Prometheus) from one process; SIGTERM finishes the "
        'requests in flight. Needs pip install "keras-transformer[serve]".',
    )
    serve.add_argument("--model", required=True, help="run directory written by train")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=8080, help="port to listen on (default: %(default)s)"
    )
    for field in dataclasses.fields(ServerOptions):
        serve.add_argument(
            "--" + field.name.replace("_", "-"),
            type=field.type,
            default=field.default,
            help=f"{field.metadata['help']} (default: {field.default:g})",
        )
    serve.set_defaults(run=_serve)


def _option_kind(field) -> dict:
    """argparse's `type` (or `action`) for a `TrainingOptions` field: an
    on/off flag for a bool, else how its metadata or its type reads it."""
    if field.type in (bool, bool | None):
        return {"action": argparse.BooleanOptionalAction}
    parse = field.metadata["parse"] or field.type
    return {"type": parse if isinstance(parse, type) else _argument_type(parse)}


def _argument_type(parse):
    """`parse` with its `ValueError` shown by argparse as it is."""

    def argument(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return argument


def _option_help(field) -> str:
    help_text = field.metadata["help"]
    return help_text if "(default:" in help_text else f"{help_text} (default: {field.default})"


def _run_with_backend(backend: str, argv: list[str]) -> int:
    """Runs the command again in a process whose Keras uses `backend` (the
    backend is fixed when Keras is first imported)."""
    environment = {**os.environ, "KERAS_BACKEND": backend}
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_transformer_cli", *argv], env=environment
    )
    try:
        return process.wait()
    except KeyboardInterrupt:
        return process.wait()


def _train(args) -> int:
    from keras_transformer.data import number_splits, split_pairs_file
    from keras_transformer.data.pairs import read_split_files
    from keras_transformer.training import RaiseOnInterrupt
    from keras_transformer.translation.run import MODEL_FILE, STATE_DIRECTORY, train_translator

    options = TrainingOptions(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(TrainingOptions)}
    ).check()
    devices = _training_devices(args)
    if args.data:
        # Streamed into split files of the run, never held in memory whole;
        # with several processes, process 0 writes them.
        directory = os.path.join(args.out, STATE_DIRECTORY, "splits")
        with contextlib.nullcontext() if devices is None else devices.chief_first("splits"):
            if devices is None or devices.is_chief:
                splits = split_pairs_file(
                    args.data, directory, validation=0.1, test=0.1, seed=options.seed
                )
            else:
                splits = read_split_files(directory)
    else:
        splits = number_splits(count=args.pairs, language=args.language, seed=options.seed)
    # A progress bar on a terminal, one line per epoch in a log file.
    with RaiseOnInterrupt() as interrupts:
        metrics = train_translator(
            splits,
            args.out,
            options,
            verbose=1 if sys.stdout.isatty() else 2,
            pictures=not args.no_pictures,
            devices=devices,
            callbacks=[interrupts],
        )
    if "process_id" in metrics:
        print(f"Process {metrics['process_id']} done; process 0 evaluates and saves the model.")
        return 0
    print(_format_scores(metrics))
    for (source, target), translation in list(
        zip(splits["test"], metrics["translations"], strict=True)
    )[:5]:
        print(
            f"  {source}  ->  {translation}"
            + ("" if translation == target else f"  (expected {target})")
        )
    print(f"Saved {os.path.join(args.out, MODEL_FILE)} and the reports beside it.")
    return 0


def _training_devices(args):
    from keras_transformer.training.distribution import Cluster, TrainingDevices

    cluster = Cluster.from_environment(
        args.coordinator, args.num_processes, args.process_id, args.join_timeout, _print_error
    )
    if args.distribute is None:
        if args.model_axis_size is not None:
            raise ValueError("--model-axis-size needs --distribute model")
        if cluster is not None:
            raise ValueError("several processes (--coordinator ...) need --distribute data|model")
        return None
    # train_translator checks the batch size and widths against the devices.
    return TrainingDevices.create(args.distribute, args.model_axis_size, cluster)


def _print_error(message: str) -> None:
    print(f"{PROGRAM}: error: {message}", file=sys.stderr, flush=True)


def _translate(args) -> int:
    from keras_transformer.data.pairs import as_field
    from keras_transformer.translation.run import load_translator

    sentences = args.sentences or _read_lines(args.input)
    if not any(sentences):
        raise ValueError("no sentences to translate: pass them as arguments, --input or stdin")
    translator = load_translator(args.model)
    progress = _print_progress if len(sentences) > _PROGRESS_ABOVE else None
    for translation in translator.translate(sentences, args.beams, progress=progress):
        print(as_field(translation))
    if args.attention:
        from keras_transformer.translation.plots import plot_attention

        maps = translator.attention_maps(sentences[0], beams=args.beams)
        plot_attention(
            maps["cross_attention"],
            maps["output_tokens"],
            maps["source_tokens"],
            args.attention,
            title=f"Cross-attention, last decoder layer: {sentences[0]!r}",
        )
    return 0


def _read_lines(path: str | None) -> list[str]:
    if path is None:
        return [line.strip() for line in sys.stdin]
    with open(path, encoding="utf-8") as file:
        return [line.strip() for line in file]


def _print_progress(done: int, total: int) -> None:
    print(f"{PROGRAM}: {done}/{total} sentences translated", file=sys.stderr)


def _evaluate(args) -> int:
    from keras_transformer.data import read_pairs
    from keras_transformer.translation.evaluation import evaluate_translator
    from keras_transformer.translation.run import load_translator

    pairs = read_pairs(args.data)
    translator = load_translator(args.model)
    print(_format_scores(evaluate_translator(translator, pairs, beams=args.beams)))
    return 0


def _check_export(args) -> None:
    from keras_transformer.translation.export import check_export_directory
    from keras_transformer.translation.run import check_run_directory

    check_run_directory(args.model)
    check_export_directory(args.out)


def _export(args) -> int:
    from keras_transformer.translation.run import load_translator

    _check_export(args)  # before the seconds of loading and tracing
    load_translator(args.model).export(args.out, beams=args.beams)
    print(f"Exported {args.model} to {args.out} (endpoints: translate, translate_ids).")
    return 0


def _serve(args) -> int:
    import logging

    options = ServerOptions(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(ServerOptions)}
    )
    try:
        from keras_transformer.serving.server import serve
    except ImportError as error:
        if error.name not in _SERVE_PACKAGES:
            raise
        raise ImportError(
            f'serving needs {error.name}: pip install "keras-transformer[serve]"'
        ) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        serve(args.model, options, host=args.host, port=args.port)
    except KeyboardInterrupt:  # the server has shut down
        return 130
    return 0


_SERVE_PACKAGES = ("starlette", "uvicorn", "prometheus_client")


def _format_scores(scores) -> str:
    return (
        f"exact match {scores['exact_match']:.4f}  BLEU {scores['bleu']:.2f}  "
        f"chrF {scores['chrf']:.2f}  ({scores['sentences']} sentences)"
    )


if __name__ == "__main__":
    sys.exit(console())

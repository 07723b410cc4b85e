"""Translates with a SavedModel written by `keras-transformer export`, in a
process that has TensorFlow and TensorFlow Text only: keras-nlp and this
package are made unimportable here, as if not installed (TensorFlow Text
imports Keras for its own layers, so the modules that loading the export
adds are recorded too).

    python benchmarks/exported_translate.py EXPORT SENTENCES.json OUT.json \
        [--batch-sizes 1 7 64] [--ids IDS.json]

SENTENCES.json is a list of strings; OUT.json gets, for each batch size,
the translations through the `translate` endpoint (`serving_default` is
checked to give the same on the first batch) and their seconds, the ids
`translate_ids` gives for the int rows of IDS.json, and the modules.
"""

import argparse
import json
import sys
import time

BLOCKED = ("keras_hub", "keras_nlp", "keras_transformer")


class Unimportable:
    """A finder that makes the `BLOCKED` packages look uninstalled."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def translate_in_batches(exported, sentences: list[str], batch_size: int) -> list[str]:
    import tensorflow as tf

    texts = []
    for begin in range(0, len(sentences), batch_size):
        batch = tf.constant(sentences[begin : begin + batch_size])
        translations = exported.translate(batch).numpy().tolist()
        if begin == 0:
            served = exported.signatures["serving_default"](batch)
            assert next(iter(served.values())).numpy().tolist() == translations
        texts += [text.decode("utf-8") for text in translations]
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export")
    parser.add_argument("sentences")
    parser.add_argument("out")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64])
    parser.add_argument("--ids", help="a JSON list of rows of source ids for translate_ids")
    args = parser.parse_args()
    sys.meta_path.insert(0, Unimportable())
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the SentencePiece and WordPiece ops)

    with open(args.sentences, encoding="utf-8") as file:
        sentences = json.load(file)
    imported_before = set(sys.modules)
    exported = tf.saved_model.load(args.export)
    outputs = {"translations": {}, "seconds": {}}
    for batch_size in args.batch_sizes:
        started = time.perf_counter()
        outputs["translations"][batch_size] = translate_in_batches(exported, sentences, batch_size)
        outputs["seconds"][batch_size] = round(time.perf_counter() - started, 2)
    if args.ids:
        with open(args.ids, encoding="utf-8") as file:
            ids = tf.constant(json.load(file), tf.int32)
        outputs["translate_ids"] = exported.translate_ids(ids).numpy().tolist()
    outputs["modules"] = sorted(sys.modules)
    outputs["imported_before"] = sorted(imported_before)
    with open(args.out, "w", encoding="utf-8") as file:
        json.dump(outputs, file)


if __name__ == "__main__":
    main()

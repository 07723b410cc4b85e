"""Peak memory of reading a token cache for training, at two corpus sizes:

    KERAS_BACKEND=jax python -m benchmarks.corpus_memory [--pairs 100000,1000000]

For each size one process generates the pairs (the `spelled_digits` task), trains the
tokenizers on the first 20000 and writes the token cache; a second process
opens the cache and reads one shuffled epoch of `TokenBatches`, as training
does, and reports its peak resident memory. The padded arrays that training
used to hold are given for comparison.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

from keras_transformer.translation.run import TrainingOptions

OPTIONS = TrainingOptions()


def build(directory: str, count: int) -> None:
    from benchmarks.tasks import task_pairs
    from keras_transformer.translation.batching import TokenCorpus
    from keras_transformer.translation.tokenizers import train_tokenizers

    pairs = task_pairs("spelled_digits", count)
    tokenizers = train_tokenizers(*zip(*pairs[:20000], strict=True))
    TokenCorpus.build(directory, *tokenizers, pairs, OPTIONS.max_length)


def read_epoch(directory: str) -> dict:
    from keras_transformer.translation.batching import TokenBatches, TokenCorpus

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    corpus = TokenCorpus(directory)
    batches = TokenBatches(corpus, OPTIONS.batch_tokens, OPTIONS.max_length, seed=0)
    for index in range(batches.num_batches):
        batches[index]
    longest = int(corpus.source_lengths.max()), int(corpus.target_lengths.max()) + 1
    return {
        "pairs": len(corpus),
        "peak_rss_mib_before_opening": round(before / 1024),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "index_mib": round(corpus.source_lengths.nbytes * 6 / 2**20, 1),
        "cache_mib": round(
            sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)) / 2**20
        ),
        "padded_arrays_mib": round(len(corpus) * (longest[0] + 2 * longest[1]) * 4 / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="100000,1000000")
    parser.add_argument("--step", choices=("build", "read"), help=argparse.SUPPRESS)
    parser.add_argument("--directory", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "build":
        return build(args.directory, args.count)
    if args.step == "read":
        return print(json.dumps(read_epoch(args.directory)))
    for count in map(int, args.pairs.split(",")):
        with tempfile.TemporaryDirectory() as directory:
            for step in ("build", "read"):
                command = [sys.executable, "-m", "benchmarks.corpus_memory", "--step", step]
                command += ["--directory", directory, "--count", str(count)]
                result = subprocess.run(command, check=True, capture_output=True, text=True)
            print(result.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()

"""A built-in translation data set: numbers written out in two languages.

English number words to number words in another language, generated with
the `num2words` package ("seventy-one" -> "soixante et onze"), so nothing is
downloaded and the same seed always gives the same pairs.
"""

import random

from keras_transformer.data.pairs import Pair, split_pairs


def number_pairs(
    count: int = 20000,
    max_number: int = 100000,
    language: str = "fr",
    seed: int = 0,
) -> list[Pair]:
    """`count` distinct numbers below `max_number`, drawn with `seed`, as
    (English words, `language` words) pairs."""
    try:
        from num2words import num2words
    except ImportError as error:
        raise ImportError(
            "The built-in number data set needs num2words: pip install 'keras-transformer[data]'"
        ) from error
    if not 0 < count <= max_number:
        raise ValueError(
            f"`count` must be in [1, max_number]. Received: count={count}, max_number={max_number}"
        )
    try:
        num2words(1, lang=language)
    except NotImplementedError as error:
        raise ValueError(f"num2words has no language {language!r}") from error
    numbers = random.Random(seed).sample(range(max_number), count)
    return [(num2words(n, lang="en"), num2words(n, lang=language)) for n in numbers]


def number_splits(
    count: int = 20000,
    max_number: int = 100000,
    language: str = "fr",
    seed: int = 0,
    validation: float = 0.05,
    test: float = 0.05,
) -> dict[str, list[Pair]]:
    """Train, validation and test splits of `number_pairs`: no number, and
    so no pair, is in two splits."""
    pairs = number_pairs(count, max_number, language, seed)
    return split_pairs(pairs, validation=validation, test=test, seed=seed)

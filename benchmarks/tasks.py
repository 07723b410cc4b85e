"""Generated seq2seq tasks of different shapes, to choose and check the
training defaults on more than one kind of data. Each task writes
`source<TAB>target` lines with distinct sources, so the splits that
`keras-transformer train` makes never share a source:

    python -m benchmarks.tasks dates --pairs 20000 > dates.tsv
    python -m benchmarks.tasks --list
"""

import argparse
import random
import sys
from collections.abc import Callable

Generator = Callable[[random.Random], tuple[str, str]]

DIGIT_WORDS = "zero one two three four five six seven eight nine".split()
MONTHS = {
    "en": "January February March April May June July August September October November "
    "December".split(),
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre "
    "décembre".split(),
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November "
    "Dezember".split(),
}
CYRILLIC = {
    "shch": "щ", "sh": "ш", "ch": "ч", "zh": "ж", "ts": "ц", "ya": "я", "yu": "ю", "yo": "ё",
    "kh": "х", "a": "а", "b": "б", "v": "в", "g": "г", "d": "д", "e": "е", "z": "з", "i": "и",
    "y": "й", "k": "к", "l": "л", "m": "м", "n": "н", "o": "о", "p": "п", "r": "р", "s": "с",
    "t": "т", "u": "у", "f": "ф", "h": "х",
}  # fmt: skip


def pseudo_words(count: int, seed: int, syllables=(1, 3)) -> list[str]:
    """`count` distinct pronounceable made-up words."""
    rng = random.Random(seed)
    onsets = ["b", "d", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "ch", "zh"]
    vowels = ["a", "e", "i", "o", "u", "ya", "yu"]
    codas = ["", "", "n", "r", "s", "k", "t", "l"]
    words = set()
    while len(words) < count:
        length = rng.randint(*syllables)
        words.add(
            "".join(
                rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(length)
            )
        )
    return sorted(words)


def number_words(language: str) -> Generator:
    from num2words import num2words

    def generate(rng):
        number = rng.randrange(1_000_000)
        return num2words(number, lang=language), str(number)

    return generate


def digits_to_words(language: str) -> Generator:
    from num2words import num2words

    def generate(rng):
        number = rng.randrange(1_000_000)
        return str(number), num2words(number, lang=language)

    return generate


def reordering() -> Generator:
    """Subject-verb-object sentences of made-up words to verb-final order
    with adjectives after their noun: `the ADJ N1 V a N2` -> `N1 ADJ the N2
    a V`."""
    nouns, adjectives, verbs = (pseudo_words(n, seed) for n, seed in ((150, 1), (60, 2), (60, 3)))
    determiners = ["the", "a", "this", "every"]

    def phrase(rng):
        words = [rng.choice(adjectives) for _ in range(rng.randint(0, 2))]
        return rng.choice(determiners), words, rng.choice(nouns)

    def generate(rng):
        (d1, a1, n1), verb, (d2, a2, n2) = phrase(rng), rng.choice(verbs), phrase(rng)
        source = " ".join([d1, *a1, n1, verb, d2, *a2, n2])
        target = " ".join([n1, *a1, d1, n2, *a2, d2, verb])
        return source, target

    return generate


def transliteration() -> Generator:
    """Made-up Latin-script words to Cyrillic by rules with digraphs."""
    keys = sorted(CYRILLIC, key=len, reverse=True)
    lexicon = pseudo_words(3000, 4, syllables=(1, 4))

    def cyrillic(word):
        letters, index = [], 0
        while index < len(word):
            key = next(k for k in keys if word.startswith(k, index))
            letters.append(CYRILLIC[key])
            index += len(key)
        return "".join(letters)

    def generate(rng):
        words = [rng.choice(lexicon) for _ in range(rng.randint(1, 3))]
        words[0] = words[0].capitalize()
        return " ".join(words), " ".join(cyrillic(w.lower()) for w in words).capitalize()

    return generate


def morphology() -> Generator:
    """Turkish-like inflection: stem and tags to the inflected word, with
    vowel harmony (back/front vowels choose -lar/-ler, -da/-de...) and
    devoicing of the case suffix after a voiceless consonant."""
    stems = pseudo_words(2000, 5, syllables=(1, 3))
    suffixes = {"PL": ("lar", "ler"), "LOC": ("da", "de"), "ABL": ("dan", "den"),
                "DAT": ("a", "e"), "POSS": ("im", "im")}  # fmt: skip
    cases = ["LOC", "ABL", "DAT"]

    def inflect(stem, tags):
        word = stem
        for tag in tags:
            vowels = [c for c in word if c in "aeiou"]
            back = vowels[-1] in "aou" if vowels else True
            suffix = suffixes[tag][0 if back else 1]
            if suffix.startswith("d") and word[-1] in "ptksh":
                suffix = "t" + suffix[1:]
            if suffix[0] in "aei" and word[-1] in "aeiou":
                suffix = "y" + suffix
            word += suffix
        return word

    def generate(rng):
        stem = rng.choice(stems)
        tags = (["PL"] if rng.random() < 0.5 else []) + (["POSS"] if rng.random() < 0.3 else [])
        tags += [rng.choice(cases)] if rng.random() < 0.8 else []
        return " ".join([stem, *tags]), inflect(stem, tags)

    return generate


def dates() -> Generator:
    """Dates written in English, French or German, or with slashes or dots,
    to ISO 8601."""

    def generate(rng):
        year, month, day = rng.randint(1900, 2099), rng.randint(1, 12), rng.randint(1, 28)
        language = rng.choice(list(MONTHS))
        name = MONTHS[language][month - 1]
        forms = [
            f"{day} {name} {year}",
            f"{name} {day}, {year}" if language == "en" else f"{day}. {name} {year}",
            f"{day:02d}/{month:02d}/{year}",
            f"{day}.{month}.{year}",
            f"le {day} {name} {year}" if language == "fr" else f"{name[:3]} {day} {year}",
        ]
        return rng.choice(forms), f"{year}-{month:02d}-{day:02d}"

    return generate


def spelled_digits() -> Generator:
    """Long outputs: a string of 8-20 digits to one word per digit."""

    def generate(rng):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(8, 20)))
        return digits, " ".join(DIGIT_WORDS[int(d)] for d in digits)

    return generate


TASKS: dict[str, Callable[[], Generator]] = {
    "words_to_digits_de": lambda: number_words("de"),
    "digits_to_words_es": lambda: digits_to_words("es"),
    "reordering": reordering,
    "transliteration": transliteration,
    "morphology": morphology,
    "dates": dates,
    "spelled_digits": spelled_digits,
}


def task_pairs(name: str, count: int, seed: int = 0) -> list[tuple[str, str]]:
    """`count` pairs of task `name` with distinct sources."""
    generate = TASKS[name]()
    rng = random.Random(seed)
    pairs, sources, attempts = [], set(), 0
    while len(pairs) < count:
        attempts += 1
        if attempts > 50 * count:
            raise ValueError(f"task {name!r} has fewer than {count} distinct sources")
        source, target = generate(rng)
        if source not in sources:
            sources.add(source)
            pairs.append((source, target))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", choices=sorted(TASKS))
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list", action="store_true", help="name a sample pair of each task")
    args = parser.parse_args()
    if args.list or args.task is None:
        for name in TASKS:
            source, target = task_pairs(name, 1, args.seed)[0]
            print(f"{name}: {source!r} -> {target!r}")
        return
    for source, target in task_pairs(args.task, args.pairs, args.seed):
        sys.stdout.write(f"{source}\t{target}\n")


if __name__ == "__main__":
    main()

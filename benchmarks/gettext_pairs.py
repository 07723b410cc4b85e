"""English -> X sentence pairs from the gettext catalogs installed on this
machine: the messages real programs ship (git, coreutils, postgres, gtk,
...) with their translators' work.

    python -m benchmarks.gettext_pairs fr > fr.tsv
    python -m benchmarks.gettext_pairs --counts

One pair per distinct English message: single-line messages only, the
catalog's context prefix removed, plural entries by their singular form, the
first catalog (in file-name order) winning where several translate the same
message. Catalogs of code lists (ISO language, country, script and currency
names) are left out: names, not sentences.
"""

import argparse
import gettext
import glob
import os
import sys

LOCALE_DIRECTORY = "/usr/share/locale"
LANGUAGES = ("fr", "es", "it", "pt_BR")
# Catalogs of code lists: names of languages, countries, scripts, currencies.
_NAME_LISTS = ("iso_",)
_CONTEXT_SEPARATOR = "\x04"
MAX_CHARACTERS = 200


def catalog_paths(language: str, root: str = LOCALE_DIRECTORY) -> list[str]:
    """The `.mo` files of `language`, by file name, code lists left out."""
    paths = sorted(glob.glob(os.path.join(root, language, "LC_MESSAGES", "*.mo")))
    return [path for path in paths if not os.path.basename(path).startswith(_NAME_LISTS)]


def catalog_pairs(path: str) -> list[tuple[str, str]]:
    """`(english, translation)` for each translated single-line message of
    one catalog, in the catalog's order."""
    with open(path, "rb") as file:
        catalog = gettext.GNUTranslations(file)._catalog
    pairs = []
    for key, translation in catalog.items():
        if isinstance(key, tuple):  # (msgid, plural index): keep the singular
            key, index = key
            if index != 0:
                continue
        english = key.split(_CONTEXT_SEPARATOR)[-1].strip()
        translation = translation.strip()
        if _usable(english) and _usable(translation):
            pairs.append((english, translation))
    return pairs


def _usable(text: str) -> bool:
    return 0 < len(text) <= MAX_CHARACTERS and text.isprintable()


def language_pairs(language: str, root: str = LOCALE_DIRECTORY) -> list[tuple[str, str]]:
    """One pair per distinct English message of every catalog of
    `language`."""
    chosen: dict[str, str] = {}
    for path in catalog_paths(language, root):
        for english, translation in catalog_pairs(path):
            chosen.setdefault(english, translation)
    if not chosen:
        raise ValueError(
            f"no gettext catalogs with messages for language={language!r} under {root}"
        )
    return list(chosen.items())


def write_pairs(pairs, path: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        file.writelines(f"{english}\t{translation}\n" for english, translation in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("language", nargs="?", default="fr")
    parser.add_argument("--counts", action="store_true", help="pairs per language, then exit")
    args = parser.parse_args()
    if args.counts:
        for language in LANGUAGES:
            print(language, len(language_pairs(language)))
        return
    for english, translation in language_pairs(args.language):
        sys.stdout.write(f"{english}\t{translation}\n")


if __name__ == "__main__":
    main()

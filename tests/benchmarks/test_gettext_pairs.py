"""The real-text suite's sentence pairs, read from gettext catalogs."""

import struct

import pytest

from benchmarks.gettext_pairs import catalog_pairs, language_pairs

HEADER = "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n != 1);\n"


def write_catalog(path, messages: dict[str, str]) -> None:
    """A GNU `.mo` file of `messages` (msgid -> msgstr), with a UTF-8 header."""
    entries = sorted({"": HEADER, **messages}.items())
    ids = [key.encode() for key, _ in entries]
    strings = [value.encode() for _, value in entries]
    count = len(entries)
    table_start = 7 * 4
    data_start = table_start + 2 * 8 * count
    data, id_table, string_table = b"", [], []
    for texts, table in ((ids, id_table), (strings, string_table)):
        for text in texts:
            table.append((len(text), data_start + len(data)))
            data += text + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, count, table_start, table_start + 8 * count, 0, 0)
    tables = b"".join(struct.pack("<2I", *entry) for entry in id_table + string_table)
    path.write_bytes(header + tables + data)


@pytest.fixture
def locale(tmp_path):
    messages = tmp_path / "fr" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    write_catalog(
        messages / "a.mo",
        {
            "Cannot open %s": "Impossible d'ouvrir %s",
            "menu\x04Open": "Ouvrir",  # a context before \x04
            "%d file\x00%d files": "%d fichier\x00%d fichiers",  # plural forms
            "two\nlines": "deux\nlignes",
            "untranslated": "",
            " Done ": " Fini ",
        },
    )
    write_catalog(messages / "b.mo", {"Cannot open %s": "Ouverture de %s impossible"})
    write_catalog(messages / "iso_3166-1.mo", {"France": "France"})
    return tmp_path


def test_a_catalog_gives_its_single_line_translated_messages(locale):
    pairs = catalog_pairs(str(locale / "fr" / "LC_MESSAGES" / "a.mo"))
    assert sorted(pairs) == [
        ("%d file", "%d fichier"),
        ("Cannot open %s", "Impossible d'ouvrir %s"),
        ("Done", "Fini"),
        ("Open", "Ouvrir"),
    ]


def test_one_pair_per_message_the_first_catalog_winning_code_lists_left_out(locale):
    pairs = dict(language_pairs("fr", root=str(locale)))
    assert pairs["Cannot open %s"] == "Impossible d'ouvrir %s"
    assert "France" not in pairs and len(pairs) == 4


def test_a_language_without_catalogs_is_named(locale):
    with pytest.raises(ValueError, match="language='xx'"):
        language_pairs("xx", root=str(locale))

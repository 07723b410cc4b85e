import os

import pytest

from keras_transformer.data import (
    PairsFileError,
    iter_pairs,
    read_pairs,
    split_pairs,
    split_pairs_file,
)
from keras_transformer.data.pairs import as_field


def write(tmp_path, content, mode="w"):
    path = tmp_path / "pairs.tsv"
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as file:
        file.write(content)
    return path


def test_reads_pairs_and_ignores_extra_columns_and_blank_lines(tmp_path):
    path = write(tmp_path, "Go.\tVa !\tCC-BY 2.0 (France)\r\n\nHi.\tSalut !\n")
    assert read_pairs(path) == [("Go.", "Va !"), ("Hi.", "Salut !")]


@pytest.mark.parametrize(
    "content, message",
    [
        ("Go.\tVa !\nno tab here\n", r"pairs.tsv:2: no tab"),
        ("Go.\tVa !\n\t\tx\n", r"pairs.tsv:2: empty source"),
        ("Go.\t \n", r"pairs.tsv:1: empty target"),
        ("", r"no sentence pairs"),
        ("\n\n", r"no sentence pairs"),
    ],
)
def test_bad_files_name_the_line(tmp_path, content, message):
    with pytest.raises(PairsFileError, match=message):
        read_pairs(write(tmp_path, content))


def test_not_utf8(tmp_path):
    path = write(tmp_path, "caf\xe9\tcoffee\n".encode("latin-1"), mode="wb")
    with pytest.raises(PairsFileError, match="not UTF-8"):
        read_pairs(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_pairs(tmp_path / "absent.tsv")


def test_splits_are_disjoint_deterministic_and_complete():
    pairs = [(f"s{i}", f"t{i}") for i in range(100)] + [("s1", "t1")]
    splits = split_pairs(pairs, validation=0.1, test=0.2, seed=3)
    assert [len(splits[name]) for name in ("train", "validation", "test")] == [70, 10, 20]
    sets = [set(split) for split in splits.values()]
    assert set.union(*sets) == set(pairs)
    assert sum(len(s) for s in sets) == len(set(pairs))
    assert split_pairs(pairs, 0.1, 0.2, seed=3) == splits
    assert split_pairs(pairs, 0.1, 0.2, seed=4) != splits


def test_a_split_file_holds_each_distinct_pair_once_in_file_order(tmp_path):
    pairs = [(f"s{i}", f"t{i}") for i in range(200)]
    lines = [*pairs[:120], ("s7", "t7"), ("s7", "t8"), *pairs[120:], ("s150", "t150")]
    path = write(tmp_path, "".join(f"{source}\t{target}\n" for source, target in lines))
    splits = split_pairs_file(path, tmp_path / "splits", validation=0.1, test=0.2, seed=3)
    distinct = [*pairs[:120], ("s7", "t8"), *pairs[120:]]  # in file order
    # The sizes of split_pairs; every distinct pair in exactly one split.
    assert [len(splits[name]) for name in ("train", "validation", "test")] == [141, 20, 40]
    assert sorted(pair for split in splits.values() for pair in split) == sorted(distinct)
    for name, split in splits.items():
        assert list(split) == sorted(split, key=distinct.index), name
        assert split[0] == list(split)[0] and split[-1] == list(split)[-1]
        assert split[1:3] == list(split)[1:3]
        assert os.path.isfile(tmp_path / "splits" / f"{name}.tsv")
    again = split_pairs_file(path, tmp_path / "again", validation=0.1, test=0.2, seed=3)
    assert {name: list(split) for name, split in again.items()} == {
        name: list(split) for name, split in splits.items()
    }
    other = split_pairs_file(path, tmp_path / "other", validation=0.1, test=0.2, seed=4)
    assert list(other["test"]) != list(splits["test"])


def test_split_files_keep_awkward_text_exactly(tmp_path):
    pairs = [
        ("café\u00a0au lait", "Kaffee\u202fmit Milch"),
        ("a\rb", "c\x85d\u2028e"),
        ("🙂 ok,fine!", "«\u00a0oui\u00a0»"),
    ]
    path = write(tmp_path, "".join(f"{source}\t{target}\n" for source, target in pairs))
    assert list(iter_pairs(path)) == read_pairs(path) == pairs
    splits = split_pairs_file(path, tmp_path / "splits", validation=0.0, test=0.0)
    assert list(splits["train"]) == pairs


def test_split_files_report_bad_lines_like_read_pairs(tmp_path):
    path = write(tmp_path, "one\tun\ntwo deux\n")
    with pytest.raises(PairsFileError, match=r"pairs.tsv:2: no tab"):
        split_pairs_file(path, tmp_path / "splits")
    with pytest.raises(PairsFileError, match="no sentence pairs"):
        split_pairs_file(write(tmp_path, "\n\n"), tmp_path / "splits")
    assert not os.path.exists(tmp_path / "splits")


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="validation"):
        split_pairs([("a", "b")], validation=0.6, test=0.5)
    with pytest.raises(ValueError, match="validation"):
        split_pairs_file("unused.tsv", "unused", validation=0.6, test=0.5)


def test_a_field_never_holds_tabs_or_line_breaks():
    text = "a\tb\nc\r\nd\x1ee\u2028f\x85g\x1fh"
    assert as_field(text) == "a b c  d e f g\x1fh"
    assert as_field(text).splitlines() == [as_field(text)]

import pytest

from keras_transformer.data import number_pairs, number_splits


def test_english_to_french_number_words():
    pairs = dict(number_pairs(count=1000, max_number=1000, seed=0))
    assert pairs["seventy-one"] == "soixante et onze"
    assert pairs["eighty"] == "quatre-vingts"


def test_other_languages_by_flag():
    pairs = dict(number_pairs(count=100, max_number=100, language="de"))
    assert pairs["seventy-one"] == "einundsiebzig"


def test_deterministic_for_a_seed():
    assert number_pairs(50, seed=1) == number_pairs(50, seed=1)
    assert number_pairs(50, seed=1) != number_pairs(50, seed=2)


def test_splits_never_share_a_pair():
    splits = number_splits(count=2000, seed=0, validation=0.1, test=0.1)
    sources = {name: {source for source, _ in split} for name, split in splits.items()}
    assert len(sources["test"]) == 200 and len(sources["validation"]) == 200
    assert not sources["train"] & sources["test"]
    assert not sources["train"] & sources["validation"]
    assert not sources["validation"] & sources["test"]


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="count"):
        number_pairs(count=10, max_number=5)
    with pytest.raises(ValueError, match="language"):
        number_pairs(count=5, language="xx")

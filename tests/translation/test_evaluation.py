import pytest
import sacrebleu

from keras_transformer.translation import score_translations


def test_exact_match_counts_identical_strings():
    scores = score_translations(["un", "deux", "trois x"], ["un", "deux", "trois"])
    assert scores["exact_match"] == pytest.approx(2 / 3)
    assert scores["sentences"] == 3


def test_perfect_translations_score_100():
    # BLEU needs 4-grams: sentences of four words or more.
    references = ["soixante et onze mille cent", "quatre-vingt-dix-neuf mille deux cent trois"]
    scores = score_translations(references, references)
    assert scores["bleu"] == pytest.approx(100.0)
    assert scores["chrf"] == pytest.approx(100.0)


def test_bleu_and_chrf_are_sacrebleu_corpus_scores():
    hypotheses = ["le chat est sur le tapis", "il fait beau aujourd'hui"]
    references = ["le chat est sur la natte", "il fait très beau aujourd'hui"]
    scores = score_translations(hypotheses, references)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score)
    assert 0 < scores["bleu"] < 100


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="same length. Received: 1 and 2"):
        score_translations(["a"], ["a", "b"])

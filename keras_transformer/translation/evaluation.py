"""Scores of translations against references: exact match, BLEU and chrF."""

from collections.abc import Sequence


def score_translations(translations: Sequence[str], references: Sequence[str]) -> dict:
    """Exact match (fraction of identical strings), and corpus BLEU and chrF
    (0-100) computed by sacrebleu with its default settings."""
    try:
        import sacrebleu
    except ImportError as error:
        raise ImportError(
            "Scoring translations needs sacrebleu: pip install 'keras-transformer[translate]'"
        ) from error
    if len(translations) != len(references) or not references:
        raise ValueError(
            "`translations` and `references` must be non-empty and of the same length. "
            f"Received: {len(translations)} and {len(references)} sentences"
        )
    exact = sum(t == r for t, r in zip(translations, references, strict=True))
    return {
        "exact_match": exact / len(references),
        "bleu": sacrebleu.corpus_bleu(list(translations), [list(references)]).score,
        "chrf": sacrebleu.corpus_chrf(list(translations), [list(references)]).score,
        "sentences": len(references),
    }


def evaluate_translator(translator, pairs: Sequence[tuple[str, str]], beams: int = 1) -> dict:
    """Translates the sources of `pairs` and scores them against the
    targets; the result also holds every translation under
    `"translations"`."""
    translations = translator.translate([source for source, _ in pairs], beams=beams)
    scores = score_translations(translations, [target for _, target in pairs])
    return {**scores, "translations": translations}

"""The JSON body of a translation request, checked field by field."""

import dataclasses
import json

from keras_transformer.validation import check_positive_int, is_int

FIELDS = ("sentences", "beams")


class RequestError(Exception):
    """A request the server refuses: the HTTP `status`, a message and the
    `field` at fault (`"body"` for the body as a whole)."""

    def __init__(self, status: int, message: str, field: str):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def as_json(self) -> dict:
        """The error body: `{"error": message, "field": field}`."""
        return {"error": self.message, "field": self.field}


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """What one request may ask for.

    Attributes:
        max_sentences: int. Most sentences in a request (more: 413).
        max_characters: int. Most characters in a sentence (more: 413).
        beams_limit: int. Largest beam width (more: 422).
    """

    max_sentences: int = 64
    max_characters: int = 1000
    beams_limit: int = 8

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check_positive_int(field.name, getattr(self, field.name))

    @property
    def max_body_bytes(self) -> int:
        """The largest body worth reading: every sentence at its longest,
        each character escaped in JSON, and room for the rest."""
        return self.max_sentences * (self.max_characters * 12 + 8) + 1024


@dataclasses.dataclass(frozen=True)
class TranslationRequest:
    """A checked request: its sentences and beam width."""

    sentences: list[str]
    beams: int = 1


def parse_request(body: bytes, limits: RequestLimits) -> TranslationRequest:
    """The request in `body`, a JSON object `{"sentences": [str, ...],
    "beams": int}` (`beams` optional, default 1); raises `RequestError`:
    400 for a body that is not a UTF-8 JSON object, 422 for a wrong field,
    413 for too many or too long sentences.

    Example:

    >>> from keras_transformer.serving.requests import RequestLimits, parse_request
    >>> parse_request(b'{"sentences": ["one", "two"], "beams": 2}', RequestLimits())
    TranslationRequest(sentences=['one', 'two'], beams=2)
    >>> try:
    ...     parse_request(b'{"sentences": ["one", 2]}', RequestLimits())
    ... except Exception as error:
    ...     print(error.status, error.as_json())
    422 {'error': 'must be a string', 'field': 'sentences[1]'}
    """
    document = _json_object(body)
    unknown = sorted(set(document) - set(FIELDS))
    if unknown:
        raise RequestError(422, f"unknown field; the fields are {list(FIELDS)}", unknown[0])
    return TranslationRequest(
        _sentences(document.get("sentences"), limits), _beams(document.get("beams", 1), limits)
    )


def _json_object(body: bytes) -> dict:
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError(400, "the body is not valid UTF-8", "body") from None
    except json.JSONDecodeError as error:
        raise RequestError(400, f"the body is not valid JSON: {error}", "body") from None
    if not isinstance(document, dict):
        raise RequestError(400, "the body must be a JSON object", "body")
    return document


def _sentences(sentences, limits: RequestLimits) -> list[str]:
    if sentences is None:
        raise RequestError(422, "is required: a list of sentences", "sentences")
    if not isinstance(sentences, list) or not sentences:
        raise RequestError(422, "must be a non-empty list of strings", "sentences")
    if len(sentences) > limits.max_sentences:
        raise RequestError(
            413, f"{len(sentences)} sentences; at most {limits.max_sentences}", "sentences"
        )
    for index, sentence in enumerate(sentences):
        field = f"sentences[{index}]"
        if not isinstance(sentence, str):
            raise RequestError(422, "must be a string", field)
        if not sentence.strip():
            raise RequestError(422, "must not be empty or blank", field)
        if not _is_unicode(sentence):
            raise RequestError(422, "must be valid Unicode (it holds a lone surrogate)", field)
        if len(sentence) > limits.max_characters:
            raise RequestError(
                413, f"{len(sentence)} characters; at most {limits.max_characters}", field
            )
    return sentences


def _is_unicode(text: str) -> bool:
    """False for a JSON string with a lone surrogate escape, such as `"\\ud800"`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _beams(beams, limits: RequestLimits) -> int:
    if not is_int(beams) or not 1 <= beams <= limits.beams_limit:
        raise RequestError(422, f"must be an integer from 1 to {limits.beams_limit}", "beams")
    return int(beams)


def check_token_counts(counts: list[int], limit: int) -> None:
    """Raises a 413 `RequestError` naming the first sentence longer than
    `limit` tokens."""
    for index, count in enumerate(counts):
        if count > limit:
            message = f"{count} source tokens; the model takes at most {limit}"
            raise RequestError(413, message, f"sentences[{index}]")

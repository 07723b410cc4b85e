"""The options of the translation server, each with the help line of its
command-line flag: the one description `ServerOptions` and
`keras-transformer serve --help` share. Needs neither Starlette nor a model."""

import dataclasses

from keras_transformer.serving.requests import RequestLimits
from keras_transformer.validation import check_non_negative, check_positive_int


def _option(default, help: str):
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """How the server batches, and what one request may ask for. Each
    field's help line is in its metadata.

    Example:

    >>> from keras_transformer.serving import ServerOptions
    >>> options = ServerOptions(max_batch_size=16, timeout_s=5)
    >>> options.limits().beams_limit
    8
    """

    max_batch_tokens: int = _option(
        4096, "most padded source tokens (rows x length) per decoding call"
    )
    max_batch_size: int = _option(
        64, "most sentences per decoding call (rows: a power of two, filled by repeating one)"
    )
    max_wait_ms: float = _option(
        0.0,
        "longest wait for a batch to fill, in milliseconds (0: decode what waits at once; "
        "batches still form while a call runs)",
    )
    max_queue: int = _option(1024, "most sentences waiting; a request beyond gets 429")
    timeout_s: float = _option(
        30.0, "seconds from a request's arrival to its answer; later: 504, undecoded"
    )
    beams_limit: int = _option(8, "largest beam width a request may ask for (more: 422)")
    max_sentences: int = _option(64, "most sentences per request (more: 413)")
    max_characters: int = _option(1000, "most characters per sentence (more: 413)")
    warm_up_tokens: int = _option(
        64, "before ready, compile every batch shape of sources up to this many tokens"
    )

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check = check_positive_int if field.type is int else check_non_negative
            check(field.name, getattr(self, field.name))
        if self.max_sentences > self.max_queue:
            raise ValueError(
                f"`max_sentences` ({self.max_sentences}) must be at most `max_queue` "
                f"({self.max_queue}): a larger request could never be queued."
            )

    def limits(self) -> RequestLimits:
        """The `RequestLimits` of one request."""
        return RequestLimits(self.max_sentences, self.max_characters, self.beams_limit)

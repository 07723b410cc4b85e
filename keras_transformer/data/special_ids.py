"""The ids every vocabulary of this package reserves: 0 is padding (and the
Keras mask), 1 starts a target, 2 ends it, 3 stands for an unknown token."""

PADDING_ID, START_ID, END_ID, UNKNOWN_ID = 0, 1, 2, 3
RESERVED_TOKENS = ("[PAD]", "[START]", "[END]", "[UNK]")

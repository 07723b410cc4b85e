"""The package's version, recorded in every model it saves."""

__version__ = "0.1.0"

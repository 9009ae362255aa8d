"""Exceptions. Everything derived from :class:`UserInputError` is the user's to fix: the CLI prints
its message as one line on stderr and exits with code 2, never a traceback."""


class SpinlearnError(Exception):
    """Base class of spinlearn's own exceptions."""


class UserInputError(SpinlearnError):
    """Bad input from the user: configuration, data file, instrument answer."""


class ConfigError(UserInputError, ValueError):
    """A configuration value is unknown, of the wrong type or out of its allowed range."""


class DataError(UserInputError):
    """A data file is missing, unreadable or malformed."""


class TrainingDiverged(SpinlearnError):
    """NaN or Inf appeared during training; the message names the epoch and the layer."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): for one-line
    errors about code or files that are not ours."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

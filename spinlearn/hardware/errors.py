"""Errors of the instrument path. Both are the user's to fix: one line on stderr, exit code 2."""

from spinlearn.errors import UserInputError


class SafetyLimitError(UserInputError):
    """A requested bias lies beyond the device profile's limits (or is not a number).

    Raised *before* any command reaches the instrument.
    """


class InstrumentError(UserInputError):
    """The instrument cannot be reached, timed out, reported an error, or gave a wrong or garbled answer."""

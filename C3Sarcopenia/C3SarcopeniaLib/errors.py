"""The one error type a user sees: what is wrong with the input and what to do about it."""


class InputError(ValueError):
    """Bad or unsuitable input. The message is written for a clinician, not a programmer.

    The command line prints it as one line on stderr and exits with status 2.
    """


class Cancelled(Exception):
    """Raised from a progress callback to stop a long computation at the user's request."""

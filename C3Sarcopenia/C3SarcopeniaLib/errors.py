"""What a user is told: bad input (and what to do about it), cancellation, review warnings."""


class InputError(ValueError):
    """Bad or unsuitable input. The message is written for a clinician, not a programmer.

    The command line prints it as one line on stderr and exits with status 2.
    """


class Cancelled(Exception):
    """Raised from a progress callback to stop a long computation at the user's request."""


SYNTHETIC_MODELS_WARNING = ("a model used here was trained on synthetic phantoms only, not on "
                            "patients: review the slice and the muscle before clinical use.")

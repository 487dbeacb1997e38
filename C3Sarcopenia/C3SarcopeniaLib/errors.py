"""What a user is told: bad input (and what to do about it), cancellation, review warnings."""


class InputError(ValueError):
    """Bad or unsuitable input. The message is written for a clinician, not a programmer.

    The command line prints it as one line on stderr and exits with status 2.
    """


class Cancelled(Exception):
    """Raised from a progress callback to stop a long computation at the user's request."""


SYNTHETIC_MODELS_WARNING = ("a model used here was trained on synthetic phantoms only, not on "
                            "patients: review the slice and the muscle before clinical use.")

# The fixed phrase of each review warning, written into the warning and recognised by the
# review report (cohort/review_priority.py): rewording a warning keeps the two in step.
FOLDS_MISSING_PHRASE = "folds found a C3 section"
LEVEL_DISAGREEMENT_PHRASE = "the folds disagree on the C3 level"
THIN_SECTION_PHRASE = "the C3 section is only"
SECTION_AT_EDGE_PHRASE = "the C3 section reaches the edge of the scan"
MUSCLE_DISAGREEMENT_PHRASE = "the folds disagree on the muscle"
IMPLAUSIBLE_CSA_PHRASE = "the C3 muscle CSA of"

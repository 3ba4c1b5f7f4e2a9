"""The one exception type that charrnn raises for anything a user can fix."""


class CharRNNError(Exception):
    """A problem with the user's input, files or settings, worded as one line that says what to do.

    The CLI prints the message (no traceback) and exits non-zero; library callers can catch it.
    """

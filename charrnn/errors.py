"""The one exception type that charrnn raises for anything a user can fix, and the stop that a
signal asks for before anything was written."""

import signal
from pathlib import Path

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class CharRNNError(Exception):
    """A problem with the user's input, files or settings, worded as one line that says what to do.

    The CLI prints the message (no traceback) and exits non-zero; library callers can catch it.
    """


class Interrupted(BaseException):
    """SIGINT or SIGTERM while a command reads or prepares (nothing written yet): it stops at
    once. A BaseException, like KeyboardInterrupt, so no `except Exception` turns it into an
    error about a file; the CLI prints the message and exits 130 or 143."""

    def __init__(self, signum: int, message: str = ""):
        self.signum = signum
        self.exit_code = EXIT_CODES.get(signum, 1)
        name = signal.Signals(signum).name
        super().__init__(message or f"interrupted by {name}; no file was written or changed")


def install_command(extra: str) -> str:
    """How to add an optional extra: from a source checkout installed in editable mode,
    `pip install -e "/path/to/clone[extra]"`; otherwise `pip install "charrnn[extra]"`."""
    source = Path(__file__).resolve().parents[1]
    if (source / "pyproject.toml").exists() and (source / "charrnn" / "cells").is_dir():
        return f'pip install -e "{source}[{extra}]"'
    return f'pip install "charrnn[{extra}]"'

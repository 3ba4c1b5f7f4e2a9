"""What every charrnn command shares: error translation and the default checkpoint."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from charrnn.config import DEFAULT_CONFIG, load_config
from charrnn.errors import CharRNNError


def friendly_errors(command):
    """Turn CharRNNError into click's one-line 'Error: ...' and exit status 1."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CharRNNError as error:
            raise click.ClickException(str(error)) from None
        except MemoryError as error:  # whatever no size check foresaw: still one line
            raise click.ClickException(f"out of memory ({str(error) or 'MemoryError'}); lower "
                                       f"model.hidden_size, training.batch_size, --num or "
                                       f"--length") from None
    return wrapper


def default_checkpoint() -> Path:
    try:
        return Path(load_config(DEFAULT_CONFIG).training.out)
    except CharRNNError:
        return Path("checkpoints/names.npz")


def command_line_text(value: str) -> str:
    """Text given on the command line, as the UTF-8 the user typed even under a C/POSIX locale,
    where Python hands non-ASCII bytes over as lone surrogates."""
    try:
        return value.encode(sys.getfilesystemencoding(), "surrogateescape").decode("utf-8")
    except UnicodeError:
        return value


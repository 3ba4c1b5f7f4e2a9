"""What every charrnn command shares: error translation and the default checkpoint."""

from __future__ import annotations

import functools
import signal
import sys
import threading
from pathlib import Path

import click

from charrnn.config import DEFAULT_CONFIG, MAX_SEED, load_config
from charrnn.errors import CharRNNError, Interrupted
from charrnn.plumbing.terminal import printable

# --seed means the same in every command: what training.seed accepts
SEED = click.IntRange(0, MAX_SEED)


def _terminated(signum, frame):
    raise Interrupted(signum)


# what each command can do with less memory (a hint names the real cause, never another's)
MEMORY_HINTS = {
    "train": "lower model.hidden_size or training.batch_size",
    "sample": "lower --num or --length (or --beam)",
    "viz": "lower --length, or use a smaller model",
    "gradflow": "lower --length, or use a smaller model",
    "eval_command": "evaluate a shorter text, or a smaller model",
    "sweep": "lower --workers, or the trials' model.hidden_size and training.batch_size",
}


def friendly_errors(command):
    """Turn CharRNNError into click's one-line 'Error: ...' and exit status 1; what the message
    quotes from files (paths, config values) reaches the terminal escaped (`printable`).

    SIGINT and SIGTERM stop any command at once, with one line and exit status 130 or 143
    (the trainer catches them itself once it trains); files being written are left as they
    were, since every write goes through charrnn.plumbing.writing's atomic writer.
    """
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
        try:
            return command(*args, **kwargs)
        except CharRNNError as error:
            raise click.ClickException(printable(error)) from None
        except MemoryError as error:  # whatever no size check foresaw: still one line
            hint = MEMORY_HINTS.get(command.__name__, "free some memory, or give it less to do")
            raise click.ClickException(f"out of memory ({str(error) or 'MemoryError'}) in "
                                       f"charrnn {command.__name__.removesuffix('_command')}; "
                                       f"{hint}") from None
        except (Interrupted, KeyboardInterrupt) as stop:
            if not isinstance(stop, Interrupted):
                stop = Interrupted(signal.SIGINT)
            click.echo(str(stop), err=True)
            sys.exit(stop.exit_code)
        finally:
            if main_thread and signal.getsignal(signal.SIGTERM) is _terminated:
                signal.signal(signal.SIGTERM, previous)
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


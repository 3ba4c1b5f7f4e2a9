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


class Seed(click.ParamType):
    """--seed means the same in every command: what training.seed accepts, a whole number from
    0 to 2**63 - 1, shown in help as INTEGER (not as its range)."""

    name = "integer"

    def convert(self, value, param, ctx):
        value = click.INT.convert(value, param, ctx)
        if not 0 <= value <= MAX_SEED:
            self.fail(f"{value} is not a seed: give a whole number from 0 to {MAX_SEED}",
                      param, ctx)
        return value


SEED = Seed()


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


def checkpoint_option(what: str):
    """--checkpoint FILE, the same in every command that reads a model; its help shows the
    real default (the default config's training.out)."""
    return click.option("--checkpoint", type=click.Path(dir_okay=False), metavar="FILE",
                        help=f"{what} [default: {default_checkpoint()}]")


def checkpoint_path(option: str | None, positional: str | None = None) -> Path:
    """The model a command reads: --checkpoint, or the positional CHECKPOINT that an older
    spelling gives (info, export); the default checkpoint when neither is given."""
    if option and positional and option != positional:
        raise click.UsageError(f"two checkpoints given, --checkpoint {option} and {positional}; "
                               f"give one")
    chosen = option or positional
    return Path(chosen) if chosen else default_checkpoint()


def examples(*lines: str) -> str:
    """A command's epilog: its help ends with these command lines, printed as they are."""
    return "\b\nExamples:\n" + "".join(f"  {line}\n" for line in lines)


def command_line_text(value: str) -> str:
    """Text given on the command line, as the UTF-8 the user typed even under a C/POSIX locale,
    where Python hands non-ASCII bytes over as lone surrogates."""
    try:
        return value.encode(sys.getfilesystemencoding(), "surrogateescape").decode("utf-8")
    except UnicodeError:
        return value


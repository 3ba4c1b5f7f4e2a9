"""The `charrnn` command's entry point: a Ctrl-C while the libraries load ends quietly.

Loading NumPy and the command line takes about a quarter of a second; Python's own handler
would turn a Ctrl-C in that window into KeyboardInterrupt and a traceback from deep inside an
import. Until the command line is loaded, SIGINT ends the process at once with status 130 and
no output instead; then Python's handler is back and the commands handle signals as they
always have.
"""

from __future__ import annotations

import os
import signal
import sys


def _exit_quietly(signum, frame) -> None:
    # os._exit, not SystemExit: an exception raised inside the import machinery can surface as
    # "Exception ignored in ..." with a traceback; nothing has been opened or written yet
    os._exit(130)


def main() -> None:
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler:  # not when the parent made us ignore SIGINT
        signal.signal(signal.SIGINT, _exit_quietly)
    from charrnn.cli.group import main as command_line

    signal.signal(signal.SIGINT, previous)
    command_line(prog_name="charrnn")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""SIGINT and SIGTERM during training: a flag the loop checks between steps, so it saves first."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from charrnn.errors import Interrupted

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM arrived; the checkpoint at the current step was saved first."""

    def __init__(self, signum: int, path: Path, step: int):
        self.signum, self.path, self.step = signum, path, step
        self.exit_code = EXIT_CODES.get(signum, 1)
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")


class SignalCatcher:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps (main thread only).

    While the run is being set up (the corpus read, decoded and cached, a checkpoint loaded),
    nothing is saved yet, so a signal stops it at once: Interrupted, even out of a blocking read
    of a pipe that no one writes to. `training()` switches to the flag for the loop.
    """

    def __init__(self):
        self.signum: int | None = None
        self.setting_up = True
        self._previous = {}

    def training(self) -> None:
        self.setting_up = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                self._previous[signum] = signal.signal(signum, self._catch)
        return self

    def _catch(self, signum, frame):
        if self.setting_up:
            raise Interrupted(signum, f"interrupted by {signal.Signals(signum).name} before "
                                      f"training started; nothing was trained or saved")
        self.signum = self.signum or signum  # a second Ctrl-C during the save changes nothing

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

"""The `charrnn` group. Every module of charrnn.cli that defines `command` (a click command)
joins it: a new command is one new module here, and nothing else changes."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

import charrnn.cli as package

NOT_COMMANDS = {"common", "group", "launch"}


def _utf8_stdout() -> None:
    """Samples are UTF-8 whatever the terminal's locale says."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(encoding="utf-8", errors="replace")
            except (ValueError, OSError):  # pragma: no cover - a stream that cannot switch
                pass


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="charrnn")
def main():
    """charrnn: train, sample and check character-level RNN, LSTM and GRU models on NumPy."""
    _utf8_stdout()


for _module in sorted(info.name for info in pkgutil.iter_modules(package.__path__)):
    if _module not in NOT_COMMANDS:
        main.add_command(importlib.import_module(f"charrnn.cli.{_module}").command)

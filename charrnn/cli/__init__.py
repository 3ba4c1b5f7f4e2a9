"""The command line: a thin layer over the library, one module per command.

- group.py: the `charrnn` group; every other module here that defines `command` joins it.
- common.py: what every command shares: our errors as one-line messages, --seed, defaults.
- launch.py: the console script's entry point (quiet Ctrl-C while the libraries load).

`from charrnn.cli import main` gives the group; it loads on first use, so importing this package
(as launch.py does) costs nothing before SIGINT is handled.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name == "main":
        from charrnn.cli.group import main

        return main
    raise AttributeError(f"module 'charrnn.cli' has no attribute {name!r}")

"""`charrnn configs`: the configs and sweep files installed with charrnn, to see and to copy."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from charrnn.cli.common import examples, friendly_errors
from charrnn.config import closest, shipped_configs, shipped_sweeps
from charrnn.errors import CharRNNError

EXAMPLES = examples(
    "charrnn configs                              # what is shipped, one line each",
    "charrnn configs show names > my.yaml         # a config to copy and edit",
    "charrnn configs show sweeps/names            # a sweep file (charrnn sweep sweeps/names)")


def shipped() -> dict[str, Path]:
    """Every shipped file by the name `configs show` takes: configs by their name, sweep
    files as sweeps/NAME."""
    return {**shipped_configs(),
            **{f"sweeps/{name}": path for name, path in shipped_sweeps().items()}}


def summary(path: Path) -> str:
    """A file's first comment line, which says what it is."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").rstrip()
        if line.strip():
            break
    return ""


def find(name: str) -> Path:
    files = shipped()
    key = name.removesuffix(".yaml").removesuffix(".yml").removeprefix("configs/")
    if key in files:
        return files[key]
    meant = closest(key, files)
    hint = f" (did you mean {meant!r}?)" if meant else ""
    raise CharRNNError(f"no shipped config or sweep named {name!r}{hint}; shipped: "
                       f"{', '.join(files)}")


@click.group(invoke_without_command=True, epilog=EXAMPLES)
@click.pass_context
def configs(context):
    """The configs and sweep files shipped with charrnn: list them, or print one (`charrnn
    configs show NAME`) to copy and edit. `charrnn train --config NAME` and `charrnn sweep
    sweeps/NAME` use them by name."""
    if context.invoked_subcommand is not None:
        return
    files = shipped()
    width = max(map(len, files))
    for kind, names in (("configs (charrnn train --config NAME)",
                         [n for n in files if not n.startswith("sweeps/")]),
                        ("sweeps (charrnn sweep NAME)",
                         [n for n in files if n.startswith("sweeps/")])):
        click.echo(kind)
        for name in names:
            click.echo(f"  {name:<{width}}  {summary(files[name])}")


@configs.command(epilog=EXAMPLES)
@click.argument("name")
@friendly_errors
def show(name):
    """Print the shipped config or sweep file NAME (as `charrnn configs` lists it), ready to
    copy into a file of your own: its paths point at the shipped files from anywhere."""
    sys.stdout.write(portable_text(find(name)))


PATH_LINE = re.compile(r"^(\s*(?:corpus|base):\s*)(\S+)(.*)$")


def portable_text(path: Path) -> str:
    """The file's text with each path that is relative to the file (a config's data.corpus, a
    sweep's base) made to work from any folder: the shipped corpus's absolute path, or the
    shipped config's name."""
    configs_by_path = {found.resolve(): name for name, found in shipped_configs().items()}
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        match = PATH_LINE.match(line.rstrip("\n"))
        target = (path.parent / match.group(2)).resolve() if match else None
        if target is not None and not Path(match.group(2)).is_absolute() and target.exists():
            key = match.group(1).strip().rstrip(":")
            value = configs_by_path.get(target) if key == "base" else None
            value = value or json.dumps(str(target))  # YAML reads a JSON string as it is
            line = (f"{match.group(1)}{value}  # the shipped "
                    f"{'config' if key == 'base' else 'corpus'}: give your own here\n")
        lines.append(line)
    return "".join(lines)


command = configs

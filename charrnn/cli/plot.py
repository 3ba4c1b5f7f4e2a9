"""`charrnn plot`: training curves from a metrics log (pictures from charrnn.plots)."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from charrnn.cli.common import examples, friendly_errors
from charrnn.errors import CharRNNError
from charrnn.plumbing.paths import check_outputs


@click.command(epilog=examples(
    "charrnn plot checkpoints/names.jsonl             # writes checkpoints/names.png",
    "charrnn plot checkpoints/names.csv --out curves.png"))
@click.argument("log", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), metavar="FILE",
              help="PNG to write [default: LOG with .png for its suffix]")
@friendly_errors
def plot(log, out):
    """Training curves from a metrics log (JSONL or CSV): loss, grad norm, clip fraction."""
    from charrnn.plots import draw_training_curves, read_metrics, require_matplotlib, save_figure

    require_matplotlib()
    out = Path(out) if out else Path(log).with_suffix(".png")
    check_outputs({"LOG": log}, {"--out": out})  # before any work: never write over the log
    records = read_metrics(log, refuse=_refuse_checkpoint)
    figure = draw_training_curves(records, title=Path(log).name)
    click.echo(f"wrote {save_figure(figure, out)} ({len(records)} evaluations, last step "
               f"{records[-1]['step']:.15g})")


def _refuse_checkpoint(path: Path, data: bytes) -> None:
    """A checkpoint (a zip archive) given where a log belongs: say which file to pass.

    data: the file's bytes, read once by read_metrics (a FIFO could not be read twice)."""
    if data.startswith(b"PK\x03\x04"):
        raise CharRNNError(f"{path} is a checkpoint, not a metrics log; {_log_hint(path)}")


def _log_hint(checkpoint: Path) -> str:
    """Where training wrote this checkpoint's log: beside it, named after the run's checkpoint
    (X.best.npz's log is X.jsonl or X.csv); named only when it is there."""
    from charrnn.train import best_path, log_path

    out = checkpoint
    if checkpoint.stem.endswith(".best"):
        run = checkpoint.with_name(checkpoint.stem[:-len(".best")] + checkpoint.suffix)
        out = run if best_path(run) == checkpoint else checkpoint
    logs = [log_path(out, log_format) for log_format in ("jsonl", "csv")]
    for log in logs:
        if log.is_file():
            return f"pass the log training wrote beside it: charrnn plot {shlex.quote(str(log))}"
    return (f"pass the log training wrote beside it ({logs[0].name} or {logs[1].name}), which "
            f"is not in {out.parent}")


command = plot

"""`charrnn export`: a checkpoint's model for PyTorch, ONNX runtimes or a web page (a thin
layer over charrnn.export)."""

from __future__ import annotations

import click

from charrnn.cli.common import checkpoint_option, checkpoint_path, friendly_errors
from charrnn.export import FORMATS, export_checkpoint

EXAMPLES = """\b
Examples:
  charrnn export checkpoints/names.npz --to html --out names.html
  charrnn export checkpoints/shakespeare-lstm.npz --to onnx --out shakespeare.onnx
  charrnn export checkpoints/names.npz --to torch --out names.pt
"""


@click.command(name="export", epilog=EXAMPLES)
@checkpoint_option("the model to export (or give it as CHECKPOINT)")
@click.argument("positional", required=False, metavar="[CHECKPOINT]",
                type=click.Path(dir_okay=False))
@click.option("--to", "to", required=True, type=click.Choice(list(FORMATS)),
              help="; ".join(f"{name}: {fmt.what}" for name, fmt in FORMATS.items()))
@click.option("--out", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="the file to write (e.g. model.pt, model.onnx, model.html)")
@friendly_errors
def export(checkpoint, positional, to, out):
    """Write a checkpoint's model for use outside charrnn: a PyTorch state_dict, an ONNX graph,
    or a self-contained web page that samples in the browser (docs/export.md)."""
    for path in export_checkpoint(checkpoint_path(checkpoint, positional), to, out):
        click.echo(f"wrote {path} ({path.stat().st_size:,} bytes)")


command = export

"""`charrnn gradcheck`: every analytic gradient against centred differences, in float64."""

from __future__ import annotations

import dataclasses

import click

from charrnn.cells import CELLS
from charrnn.checkpoint import load_checkpoint
from charrnn.cli.common import SEED, examples, friendly_errors
from charrnn.config import load_config
from charrnn.gradcheck import TOLERANCE, default_specs, run_gradcheck
from charrnn.model import ModelSpec


class RegisteredCell(click.Choice):
    """The cells in the registry when the option is read, so a cell registered later counts."""

    def __init__(self):
        super().__init__(())

    @property
    def choices(self):
        return tuple(CELLS)

    @choices.setter
    def choices(self, value):  # click.Choice's __init__ assigns it; the registry decides
        pass


@click.command(name="gradcheck", epilog=examples(
    "charrnn gradcheck                          # every cell, a few seconds",
    "charrnn gradcheck --cell lstm --seed 3",
    "charrnn gradcheck --checkpoint checkpoints/names.npz"))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), metavar="NAME|FILE",
              help="check this config's model (cell, layers, dropout; hidden size up to 8): a "
                   "shipped config's name or a YAML file")
@click.option("--checkpoint", type=click.Path(dir_okay=False), metavar="FILE",
              help="check the gradient at this checkpoint's weights (in float64)")
@click.option("--cell", type=RegisteredCell(), help="check only this cell")
@click.option("--seed", type=SEED, default=0, show_default=True, help="random seed")
@friendly_errors
def gradcheck(config_path, checkpoint, cell, seed):
    """Compare every analytic gradient with centred finite differences, in float64."""
    if config_path and checkpoint:
        raise click.UsageError("give --config or --checkpoint, not both")
    params = None
    if checkpoint:
        saved = load_checkpoint(checkpoint)
        params = saved.params
        specs = [saved.spec]
    elif config_path:
        config = load_config(config_path)
        spec = ModelSpec.from_config(config.model, 7)
        specs = [dataclasses.replace(spec, hidden_size=min(spec.hidden_size, 8), init_scale=0.5)]
    else:
        specs = default_specs()
    specs = [spec for spec in specs if cell is None or spec.cell == cell]
    if not specs:
        raise click.UsageError(f"--cell {cell} does not match the model of --checkpoint or "
                               f"--config")
    failed = False
    for label, rows in run_gradcheck(specs, params, seed):
        click.echo(f"{label} (float64, tolerance {TOLERANCE:g})")
        click.echo(f"  {'parameter':<12}{'shape':<14}{'max rel error':>15}{'checked':>9}"
                   f"{'kinks':>7}  ")
        for row in rows:
            failed |= not row.ok
            click.echo(f"  {row.name:<12}{str(row.shape):<14}{row.max_rel_error:>15.3e}"
                       f"{row.checked:>9}{row.skipped_at_kinks:>7}  "
                       f"{'ok' if row.ok else 'FAIL'}")
    if failed:
        raise click.ClickException("gradient check failed: a backward disagrees with finite "
                                   "differences")
    click.echo("all gradients agree with finite differences")


command = gradcheck

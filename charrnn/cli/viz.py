"""The `charrnn viz` command: a thin click layer over charrnn.viz."""

from __future__ import annotations

import click

from charrnn.checkpoint import corpus_inputs, load_checkpoint
from charrnn.cli.common import (
    checkpoint_option,
    checkpoint_path,
    command_line_text,
    examples,
    friendly_errors,
)
from charrnn.plumbing.terminal import printable
from charrnn.viz import (
    DEFAULT_LENGTH,
    FINDINGS,
    MAX_LENGTH,
    build_page,
    check_length,
    check_output_path,
    checkpoint_facts,
    default_text,
    find_units,
    prepare_text,
    read_start,
    trace_model,
    write_page,
)

DEFAULT_OUT = "viz.html"


@click.command(epilog=examples(
    "charrnn viz                                     # the default model, held-out text",
    "charrnn viz --checkpoint checkpoints/shakespeare.npz --out shakespeare.html",
    "charrnn viz --text letter.txt --length 3000"))
@checkpoint_option("model to look inside")
@click.option("--text", "text_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="run the model over this file [default: held-out text of the checkpoint's "
                   "corpus: a stretch of its validation split, or held-out names]")
@click.option("--prime", metavar="TEXT", help="run the model over this text instead")
@click.option("--length", type=int, metavar="N",
              help=f"characters to show [default: {DEFAULT_LENGTH}; at most "
                   f"{MAX_LENGTH}, to keep the page a few MB and quick in a browser]")
@click.option("--out", default=DEFAULT_OUT, show_default=True, metavar="FILE",
              help="the HTML page to write")
@click.option("--encoding", default="utf-8", show_default=True, metavar="NAME",
              help="--text's encoding")
@click.option("--units", "listed", type=click.IntRange(min=0), default=FINDINGS,
              show_default=True, metavar="N", help="units to list as worth a look")
@friendly_errors
def viz(checkpoint, text_file, prime, length, out, encoding, listed):
    """Write one self-contained HTML page of what the model does on a text: each character
    coloured by its surprise, the top guesses, and every unit's activation."""
    if text_file is not None and prime is not None:
        raise click.UsageError("give --text FILE or --prime TEXT, not both")
    length = check_length(length)
    path = checkpoint_path(checkpoint)
    inputs = {"--checkpoint": path, "--text": text_file}
    check_output_path(out, inputs)  # before any work: never write over an input
    saved = load_checkpoint(path)
    inputs.update(corpus_inputs(saved.config, saved.meta))  # read when no --text is given
    check_output_path(out, inputs)
    mode = saved.config.data.mode
    more = False
    if prime is not None:
        text, source = command_line_text(prime), "--prime"
    elif text_file is not None:  # only the start the page shows is read
        (text, more), source = read_start(text_file, mode, length, encoding), str(text_file)
    else:
        text, source = default_text(saved, length)
    text, source = prepare_text(text, mode, length, source, more)
    trace = trace_model(saved, text, mode, facts=checkpoint_facts(saved, path, source))
    findings = find_units(trace.text, trace.series, mode, trace.known, limit=listed)
    written = write_page(out, build_page(trace, findings), inputs)
    unknown = int((~trace.known).sum())
    mean = trace.mean_loss()
    click.echo(printable(f"{len(trace.text):,} characters, {source}: "  # source: a stored path
                         + ("no character scored" if mean is None else f"{mean:.4f} nats/char")
                         + (f"; {unknown} outside the vocabulary (shown greyed, not scored)"
                            if unknown else "")), err=True)
    for finding in findings[:3]:
        click.echo(f"  {finding.series} unit {finding.unit}: {finding.feature}, "
                   f"r = {finding.r:+.2f}", err=True)
    size = written.stat().st_size
    click.echo(printable(f"wrote {out} ({size / 1e6:.1f} MB): open it in a browser"), err=True)


command = viz

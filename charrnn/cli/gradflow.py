"""`charrnn gradflow`: how the gradient shrinks or grows back in time. The numbers, the text
analysed and the report come from charrnn.gradflow; this module reads the options, loads, calls,
prints and writes files."""

from __future__ import annotations

import json
from pathlib import Path

import click

from charrnn.checkpoint import corpus_inputs, load_checkpoint
from charrnn.cli.common import (
    checkpoint_option,
    checkpoint_path,
    command_line_text,
    examples,
    friendly_errors,
)
from charrnn.gradflow import (
    DEFAULT_LENGTH,
    analyse_checkpoints,
    analyse_chunk,
    chunk_text,
    compare_curves,
    comparison_report,
    gradflow_report,
    header_report,
    impulse_report,
    impulse_response,
    lines_crossed,
    model_header,
    model_labels,
)
from charrnn.plumbing.corpus_cache import text_chunks
from charrnn.plumbing.paths import check_outputs
from charrnn.plumbing.terminal import printable


def _given_text(text_file: str | None, prime: str | None, length: int) -> dict:
    """chunk_text's text and source for --prime or --text (none: the checkpoint's default)."""
    if prime is not None:
        return {"text": command_line_text(prime), "source": "--prime"}
    if text_file is not None:
        return {"text": _text_start(text_file, length), "source": f"--text {text_file}"}
    return {}


def _text_start(path: str, length: int) -> str:
    """As much of --text as chunk_text can keep (length + 1 characters, twice that for the line
    breaks that normalising lines may fold): reading stops there, pipes included."""
    wanted, pieces, count = 2 * (length + 1), [], 0
    for text in text_chunks(Path(path), "utf-8", "strict", False, "--text"):
        pieces.append(text[: wanted - count])
        count += len(pieces[-1])
        if count >= wanted:
            break
    return "".join(pieces)


@click.command(epilog=examples(
    "charrnn gradflow                                # where the default model's gradient dies",
    "charrnn gradflow --checkpoint checkpoints/names-lstm.npz --plot flow.png",
    "charrnn gradflow --compare rnn.npz --compare lstm.npz --length 100"))
@checkpoint_option("model to analyse")
@click.option("--compare", "compared", multiple=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="compare several models on the same text (repeat: "
              "--compare rnn.npz --compare lstm.npz ...): the last loss's gradient by lag, "
              "side by side; the text comes from the first")
@click.option("--text", "text_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="analyse the start of this UTF-8 file [default: the checkpoint's corpus: "
                   "its longest line (lines mode) or its start]")
@click.option("--prime", metavar="TEXT", help="analyse this text")
@click.option("--length", type=click.IntRange(min=1), default=DEFAULT_LENGTH, show_default=True,
              metavar="T", help="T: characters fed in (one more is read as the last target)")
@click.option("--impulse", is_flag=True, help="impulse responses of h_t = w h_{t-1} + x_t for "
              "w = -0.9 and 1.1 next to the model's, instead of the gradient report")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="also draw a PNG here (needs matplotlib)")
@friendly_errors
def gradflow(checkpoint, compared, text_file, prime, length, impulse, as_json, plot_path):
    """How far back the gradient reaches: BPTT on one chunk, in float64, without dropout."""
    if text_file is not None and prime is not None:
        raise click.UsageError("--text and --prime exclude each other: give a file or a text")
    if compared and checkpoint:
        raise click.UsageError("--compare takes every model to compare; drop --checkpoint and "
                               "pass it as one more --compare")
    if compared and impulse:
        raise click.UsageError("--compare and --impulse exclude each other: compare the "
                               "gradients, or look at one model's impulse response")
    if plot_path:
        from charrnn.plots import require_matplotlib
        require_matplotlib()  # fail before the work, not after it
    path = None if compared else checkpoint_path(checkpoint)
    check_outputs({"--checkpoint": path, "--text": text_file,
                   **{f"--compare #{i}": p for i, p in enumerate(compared, start=1)}},
                  {"--plot": plot_path})  # before any work: never write over an input
    if compared:
        _compare([Path(p) for p in compared], text_file, prime, length, as_json, plot_path)
        return
    saved = load_checkpoint(path)
    check_outputs({**corpus_inputs(saved.config, saved.meta), "--text": text_file},
                  {"--plot": plot_path})  # its corpus too: read when no --text is given
    text, source = chunk_text(saved, length, **_given_text(text_file, prime, length))
    ids = saved.vocab.encode(text, source)
    x, y = ids[:-1], ids[1:]
    header = {**model_header(saved, path), "text_source": source, "text": text,
              "length": len(x), "lines_crossed": lines_crossed(saved, text)}
    if header["lines_crossed"]:
        click.echo(f"note: the text carries the state across {header['lines_crossed']} "
                   f"newline(s); this lines-mode model always restarted from zero after one in "
                   f"training", err=True)
    model = saved.model
    result = impulse_response(model, x) if impulse else analyse_chunk(model, x, y)
    if as_json:
        click.echo(json.dumps({**header, **result.to_dict()}))
    else:
        # paths and text from files, escaped (printable); the report's own lines kept
        click.echo(printable(header_report({**header, "text_source": printable(source),
                                            "checkpoint": printable(str(path))}), newlines=True))
        click.echo(printable(impulse_report(result) if impulse
                             else gradflow_report(result, text), newlines=True))
    if plot_path:
        from charrnn.plots import draw_gradflow, draw_impulse, save_figure
        title = f"{path.name} ({header['model']}): {len(x)} characters from {source}"
        figure = (draw_impulse(result, title) if impulse
                  else draw_gradflow(result, text[:-1], title))
        click.echo(printable(f"wrote {save_figure(figure, plot_path)}"), err=True)
    if not impulse and not result.sum_ok:
        raise click.ClickException("the dW_xh components do not add up to the trainer's "
                                   "gradient; a backward is wrong")


def _compare(paths: list[Path], text_file, prime, length, as_json, plot_path) -> None:
    saved = [load_checkpoint(path) for path in paths]
    check_outputs(corpus_inputs(saved[0].config, saved[0].meta), {"--plot": plot_path})
    text, source = chunk_text(saved[0], length, **_given_text(text_file, prime, length))
    labels = model_labels(paths)
    flows = analyse_checkpoints(saved, labels, text)
    curves = compare_curves(flows, labels)
    models = [{**model_header(checkpoint, path), "label": label, "sum_check_ok": flow.sum_ok}
              for label, checkpoint, path, flow in zip(labels, saved, paths, flows)]
    T = len(text) - 1
    if as_json:
        click.echo(json.dumps({"text_source": source, "text": text, "length": T,
                               "lines_crossed": lines_crossed(saved[0], text),
                               "models": models, "curves": [c.to_dict() for c in curves]}))
    else:
        click.echo(printable(comparison_report(models, curves, text, printable(source)),
                             newlines=True))
    if plot_path:
        from charrnn.plots import draw_comparison, save_figure
        title = f"the last loss's gradient on {T} characters from {source}"
        click.echo(printable(f"wrote {save_figure(draw_comparison(curves, title), plot_path)}"),
                   err=True)
    failed = [m["label"] for m in models if not m["sum_check_ok"]]
    if failed:
        raise click.ClickException(f"the dW_xh components of {', '.join(failed)} do not add up "
                                   f"to the trainer's gradient; a backward is wrong")


command = gradflow

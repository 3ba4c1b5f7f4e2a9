"""Click commands for gradient diagnostics (gradflow) and pictures (plot).

The numbers come from charrnn.gradflow and the pictures from charrnn.plots; this module only picks
the text, prints and writes files. cli.py adds COMMANDS to the `charrnn` group.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from charrnn.checkpoint import Checkpoint, load_checkpoint
from charrnn.cli_support import command_line_text, default_checkpoint, friendly_errors
from charrnn.corpus import normalise_lines, read_text
from charrnn.errors import CharRNNError
from charrnn.gradflow import (
    SATURATION,
    SUM_TOLERANCE,
    VANISHED,
    Decay,
    GradFlow,
    Impulse,
    analyse_chunk,
    impulse_response,
)
from charrnn.sample import sample_text

DEFAULT_LENGTH = 50
SAMPLE_SEED = 0  # the fallback text is the model's own sample from this seed
SAMPLE_LENGTH = 1000  # characters sampled, to pick the longest line from (lines mode)
PER_LINE = 8  # numbers a line in the printed curves
TABLE_ROWS, TABLE_COLUMNS = 8, 8  # the corner of the t-by-k table printed (--json has it all)


# --- the chunk of text -------------------------------------------------------------------------

def chunk_text(saved: Checkpoint, text_file: str | None, prime: str | None,
               length: int) -> tuple[str, str]:
    """The characters to analyse (T inputs and the last target) and where they came from.

    A lines-mode model is read as it was trained: each line after a newline and followed by one,
    so a newline is added at the start and the end of the text where missing. Without --text or
    --prime the text is default_text's. At most length + 1 characters are kept.
    """
    if prime is not None:
        text, source = command_line_text(prime), "--prime"
    elif text_file is not None:
        text, source = read_text(text_file, what="text"), f"--text {text_file}"
    else:
        text, source = default_text(saved, length)
    if saved.config.data.mode == "lines":
        text = normalise_lines(text)
        text = text if text.startswith("\n") else "\n" + text
        text = text if text.endswith("\n") else text + "\n"
    text = text[: length + 1]
    if len(text) < 2:
        raise CharRNNError(f"{source} gives {len(text)} character(s); gradflow needs at least 2 "
                           f"(an input and the next character as its target)")
    return text, source


def default_text(saved: Checkpoint, length: int) -> tuple[str, str]:
    """The checkpoint's corpus (data.corpus, relative to the current directory): its longest line
    for a lines-mode model, which never carried its state from one line to the next, else its
    start. When the corpus cannot be read, the model's own sample from a fixed seed instead."""
    data = saved.config.data
    lines = data.mode == "lines"
    try:
        text = read_text(data.corpus, data.encoding, data.errors)
        origin = f"corpus {data.corpus}"
    except CharRNNError:
        text = sample_text(saved.params, saved.vocab, max(length + 1, SAMPLE_LENGTH),
                           np.random.default_rng(SAMPLE_SEED), saved.config.model.activation,
                           reset_at_boundary=lines)
        origin = f"the model's sample (seed {SAMPLE_SEED}; corpus {data.corpus} unreadable)"
    if lines:
        return max(normalise_lines(text).split("\n"), key=len), f"the longest line of {origin}"
    return text, f"the start of {origin}"


# --- gradflow ----------------------------------------------------------------------------------

@click.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="model to analyse [default: the default config's training.out]")
@click.option("--text", "text_file", type=click.Path(dir_okay=False),
              help="analyse the start of this UTF-8 file [default: the checkpoint's corpus: "
                   "its longest line (lines mode) or its start]")
@click.option("--prime", help="analyse this text")
@click.option("--length", type=click.IntRange(min=1), default=DEFAULT_LENGTH, show_default=True,
              help="T: characters fed in (one more is read as the last target)")
@click.option("--impulse", is_flag=True, help="impulse responses of h_t = w h_{t-1} + x_t for "
              "w = -0.9 and 1.1 next to the model's, instead of the gradient report")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="also draw a PNG here (needs matplotlib)")
@friendly_errors
def gradflow(checkpoint, text_file, prime, length, impulse, as_json, plot_path):
    """How far back the gradient reaches: BPTT on one chunk, in float64."""
    if text_file is not None and prime is not None:
        raise click.UsageError("--text and --prime exclude each other: give a file or a text")
    if plot_path:
        from charrnn.plots import require_matplotlib
        require_matplotlib()  # fail before the work, not after it
    path = Path(checkpoint) if checkpoint else default_checkpoint()
    saved = load_checkpoint(path)
    text, source = chunk_text(saved, text_file, prime, length)
    ids = saved.vocab.encode(text, source)
    x, y = ids[:-1], ids[1:]
    activation = saved.config.model.activation
    header = {"checkpoint": str(path), "checkpoint_step": saved.step, "activation": activation,
              "hidden_size": saved.params["W_hh"].shape[0], "vocab_size": len(saved.vocab),
              "text_source": source, "text": text, "length": len(x),
              "lines_crossed": _lines_crossed(saved, text)}
    if header["lines_crossed"]:
        click.echo(f"note: the text carries the state across {header['lines_crossed']} "
                   f"newline(s); this lines-mode model always restarted from zero after one in "
                   f"training", err=True)
    result = (impulse_response(saved.params, x, activation=activation) if impulse
              else analyse_chunk(saved.params, x, y, activation=activation))
    if as_json:
        click.echo(json.dumps({**header, **result.to_dict()}))
    else:
        _echo_header(header)
        if impulse:
            _echo_impulse(result)
        else:
            _echo_gradflow(result, text)
    if plot_path:
        from charrnn.plots import draw_gradflow, draw_impulse, save_figure
        title = f"{path.name}: {len(x)} characters from {source}"
        figure = (draw_impulse(result, title) if impulse
                  else draw_gradflow(result, text[:-1], title))
        click.echo(f"wrote {save_figure(figure, plot_path)}", err=True)
    if not impulse and not result.sum_ok:
        raise click.ClickException("the dW_xh components do not add up to the trainer's "
                                   "gradient; a backward is wrong")


def _lines_crossed(saved: Checkpoint, text: str) -> int:
    """Newlines among the inputs after the first, where a lines-mode model would have reset."""
    return text[1:-1].count("\n") if saved.config.data.mode == "lines" else 0


def _echo_header(header: dict) -> None:
    shown = header["text"] if len(header["text"]) <= 70 else header["text"][:67] + "..."
    click.echo(f"checkpoint {header['checkpoint']} (step {header['checkpoint_step']}): "
               f"{header['activation']}, hidden {header['hidden_size']}, vocabulary "
               f"{header['vocab_size']}; analysed in float64")
    click.echo(f"text: {header['length']} inputs (+1 target) from {header['text_source']}: "
               f"{shown!r}")


def _decay_words(decay: Decay, what: str, per: str = "per step back",
                 unit: str = "lag") -> str:
    rate = decay.rate_per_step
    if rate is None:
        return f"{what}: too few nonzero values to fit a rate"
    trend = "shrinks" if rate < 1 else "grows"
    tenfold = ("" if decay.steps_per_tenfold is None
               else f" (10x every {decay.steps_per_tenfold:.1f} steps)")
    fraction = f"1/{1 / VANISHED:g}"
    if decay.vanished_at_lag is not None:
        died = f"; below {fraction} of its size at {unit}=0 from {unit}={decay.vanished_at_lag}"
    else:
        died = f"; never below {fraction} of its size at {unit}=0 here" if rate < 1 else ""
    return f"{what}: {trend} x{rate:.3f} {per}{tenfold}{died}"


def _echo_rows(values: np.ndarray, label: str) -> None:
    for first in range(0, len(values), PER_LINE):
        chunk = values[first:first + PER_LINE]
        span = f"{first}-{first + len(chunk) - 1}"
        click.echo(f"  {label} {span:>7}: " + " ".join(f"{v:.2e}" for v in chunk))


def _echo_gradflow(flow: GradFlow, text: str) -> None:
    T = len(flow.losses)
    click.echo(f"loss at the last step (step {T - 1}, predicting {text[-1]!r}): "
               f"{flow.losses[-1]:.4f} nats; mean over the chunk {flow.losses.mean():.4f} "
               f"nats/char")
    click.echo("")
    click.echo("1. the last loss's gradient at each earlier step, ||dL_{T-1}/dh_k||, by lag "
               "T-1-k")
    _echo_rows(flow.last_loss_grad_norms[::-1], "lags")
    click.echo("  " + _decay_words(flow.decay, "fitted"))
    click.echo("")
    rows, columns = min(T, TABLE_ROWS), min(T, TABLE_COLUMNS)
    click.echo(f"2. dL/dW_xh split by loss step t and input step k <= t: component norms "
               f"(last {rows} x {columns}; --json has all {T} x {T})")
    ks = range(T - columns, T)
    click.echo(" " * 14 + "".join(f"{f'k={k}':>9}" for k in ks))
    click.echo(" " * 14 + "".join(f"{text[k]!r:>9}" for k in ks))
    for t in range(T - rows, T):
        cells = "".join(f"{flow.component_norms[t, k]:>9.2e}" if k <= t else f"{'.':>9}"
                        for k in ks)
        click.echo(f"  {f't={t}':<7}{text[t]!r:>5}" + cells)
    click.echo("  mean norm by distance t-k:")
    _echo_rows(flow.mean_norm_by_distance, "t-k")
    verdict = "ok" if flow.sum_ok else "FAILED"
    click.echo(f"  check: the {T * (T + 1) // 2} components sum to the trainer's dW_xh "
               f"(charrnn.model.loss_and_grads) within {flow.sum_difference:.1e} "
               f"(max |dW_xh| {flow.gradient_scale:.2e}, tolerance {SUM_TOLERANCE:g} "
               f"relative): {verdict}")
    click.echo("")
    s = flow.singular_values
    click.echo("3. what sets the rate: W_hh and the activations along the chunk")
    click.echo(f"  singular values of W_hh: largest {s[0]:.3f}, {int((s > 1).sum())} of {len(s)} "
               f"above 1")
    if flow.saturated is not None:
        click.echo(f"  hidden values with |h| > {SATURATION}: {flow.saturated:.1%}; mean "
                   f"tanh'(a) = 1 - h^2: {flow.mean_derivative:.3f}")
    else:
        click.echo(f"  relu units active (relu'(a) = 1): {flow.mean_derivative:.1%}")


def _echo_impulse(impulse: Impulse) -> None:
    names = [f"w={w:g}" for w in impulse.weights]
    click.echo("impulse responses: h_t = w h_{t-1} + x_t for x = (1, 0, 0, ...), next to the "
               "trained model's")
    click.echo("rms gain ||dh_t/dh_0|| / sqrt(H) along the chunk, and W_hh alone, "
               "rms ||W_hh^t|| / sqrt(H)")
    click.echo(f"  {'t':>4}" + "".join(f"{name:>11}" for name in names)
               + f"{'model':>11}{'W_hh alone':>12}")
    for t in range(len(impulse.model_gain)):
        click.echo(f"  {t:>4}" + "".join(f"{v:>11.3e}" for v in impulse.scalar[t])
                   + f"{impulse.model_gain[t]:>11.3e}{impulse.linear_gain[t]:>12.3e}")
    for what, decay in (("model", impulse.model_decay), ("W_hh alone", impulse.linear_decay)):
        click.echo("  " + _decay_words(decay, f"{what}, fitted", "per step", "t"))
    click.echo("  (a scalar recurrence changes by |w| per step; the fitted rate is the model's "
               "|w|)")


# --- plot --------------------------------------------------------------------------------------

@click.command()
@click.argument("log", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False),
              help="PNG to write [default: LOG with .png for its suffix]")
@friendly_errors
def plot(log, out):
    """Training curves from a metrics log (JSONL or CSV): loss, grad norm, clip fraction."""
    from charrnn.plots import draw_training_curves, read_metrics, require_matplotlib, save_figure

    require_matplotlib()
    records = read_metrics(log)
    out = Path(out) if out else Path(log).with_suffix(".png")
    if out.resolve() == Path(log).resolve():
        raise click.BadParameter("would overwrite the log; choose a .png path", param_hint="--out")
    figure = draw_training_curves(records, title=Path(log).name)
    click.echo(f"wrote {save_figure(figure, out)} ({len(records)} evaluations, last step "
               f"{int(records[-1]['step'])})")


COMMANDS = [gradflow, plot]

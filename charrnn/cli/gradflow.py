"""`charrnn gradflow`: how the gradient shrinks or grows back in time (numbers from
charrnn.gradflow); this module picks the text, prints and writes files."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from charrnn.checkpoint import Checkpoint, load_checkpoint
from charrnn.cli.common import command_line_text, default_checkpoint, friendly_errors
from charrnn.corpus import longest_line, normalise_lines, read_text, text_start
from charrnn.errors import CharRNNError
from charrnn.gradflow import (
    SATURATION,
    SUM_TOLERANCE,
    VANISHED,
    Curve,
    Decay,
    GradFlow,
    Impulse,
    LayerFlow,
    analyse_chunk,
    compare_curves,
    impulse_response,
)
from charrnn.plumbing.paths import check_outputs
from charrnn.sample import sample_text

DEFAULT_LENGTH = 50
SAMPLE_SEED = 0  # the fallback text is the model's own sample from this seed
SAMPLE_LENGTH = 1000  # characters sampled, to pick the longest line from (lines mode)
PER_LINE = 8  # numbers a line in the printed curves
TABLE_ROWS, TABLE_COLUMNS = 8, 8  # the corner of the t-by-k table printed (--json has it all)
ALL_LAGS = 20  # the comparison table prints every lag up to this T, else a selection
GATE_WORDS = {  # what each cell's reported gate scales, for the text report
    "forget_gate": ("forget gate f",
                    "dc_k back to c_{k-1} almost whole (dc_{k-1} = f_k * dc_k + ...)"),
    "update_gate": ("update gate z",
                    "dh_k back to h_{k-1} almost whole (dh_{k-1} = z_k * dh_k + ...)"),
}


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
    try:  # only what is needed, in one bounded pass: never the whole corpus in memory
        if lines:
            line = longest_line(data.corpus, length + 1, data.encoding, data.errors)
            return line, f"the longest line of corpus {data.corpus}"
        text = text_start(data.corpus, length + 1, data.encoding, data.errors)
        return text, f"the start of corpus {data.corpus}"
    except CharRNNError:
        text = sample_text(saved.model, saved.vocab, max(length + 1, SAMPLE_LENGTH),
                           np.random.default_rng(SAMPLE_SEED), reset_at_boundary=lines)
        origin = f"the model's sample (seed {SAMPLE_SEED}; corpus {data.corpus} unreadable)"
    if lines:
        return max(normalise_lines(text).split("\n"), key=len), f"the longest line of {origin}"
    return text, f"the start of {origin}"


# --- gradflow ----------------------------------------------------------------------------------

@click.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="model to analyse [default: the default config's training.out]")
@click.option("--compare", "compared", multiple=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="compare several models on the same text (repeat: "
              "--compare rnn.npz --compare lstm.npz ...): the last loss's gradient by lag, "
              "side by side; the text comes from the first")
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
    path = None if compared else Path(checkpoint) if checkpoint else default_checkpoint()
    check_outputs({"--checkpoint": path, "--text": text_file,
                   **{f"--compare #{i}": p for i, p in enumerate(compared, start=1)}},
                  {"--plot": plot_path})  # before any work: never write over an input
    if compared:
        _compare([Path(p) for p in compared], text_file, prime, length, as_json, plot_path)
        return
    saved = load_checkpoint(path)
    text, source = chunk_text(saved, text_file, prime, length)
    ids = saved.vocab.encode(text, source)
    x, y = ids[:-1], ids[1:]
    header = {**_model_header(saved, path), "text_source": source, "text": text,
              "length": len(x), "lines_crossed": _lines_crossed(saved, text)}
    if header["lines_crossed"]:
        click.echo(f"note: the text carries the state across {header['lines_crossed']} "
                   f"newline(s); this lines-mode model always restarted from zero after one in "
                   f"training", err=True)
    model = saved.model
    result = impulse_response(model, x) if impulse else analyse_chunk(model, x, y)
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
        title = f"{path.name} ({header['model']}): {len(x)} characters from {source}"
        figure = (draw_impulse(result, title) if impulse
                  else draw_gradflow(result, text[:-1], title))
        click.echo(f"wrote {save_figure(figure, plot_path)}", err=True)
    if not impulse and not result.sum_ok:
        raise click.ClickException("the dW_xh components do not add up to the trainer's "
                                   "gradient; a backward is wrong")


def _model_header(saved: Checkpoint, path: Path) -> dict:
    spec = saved.spec
    return {"checkpoint": str(path), "checkpoint_step": saved.step, "model": spec.describe(),
            "cell": spec.cell, "num_layers": spec.num_layers,
            "activation": spec.chosen_activation,
            "hidden_size": spec.hidden_size, "vocab_size": len(saved.vocab),
            "training_dropout": spec.dropout}


def _lines_crossed(saved: Checkpoint, text: str) -> int:
    """Newlines among the inputs after the first, where a lines-mode model would have reset."""
    return text[1:-1].count("\n") if saved.config.data.mode == "lines" else 0


def _echo_header(header: dict) -> None:
    shown = header["text"] if len(header["text"]) <= 70 else header["text"][:67] + "..."
    dropout = (f" (dropout {header['training_dropout']:g} in training, off here)"
               if header["training_dropout"] else "")
    click.echo(f"checkpoint {header['checkpoint']} (step {header['checkpoint_step']}): "
               f"{header['model']}{dropout}, vocabulary {header['vocab_size']}; analysed in "
               f"float64")
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
    states = list(flow.layers[0].norms)
    through = "" if states == ["h"] else ", and through the cell state ||dL_{T-1}/dc_k||"
    click.echo("1. the last loss's gradient at each earlier step, ||dL_{T-1}/dh_k||"
               f"{through}, by lag T-1-k")
    labelled = flow.num_layers > 1 or len(states) > 1
    for layer in flow.layers:
        for state, norms in layer.norms.items():
            if labelled:
                click.echo(f"  layer {layer.layer}, {state}:")
            _echo_rows(norms[::-1], "lags")
            click.echo("  " + _decay_words(layer.decays[state], "fitted"))
    click.echo("")
    rows, columns = min(T, TABLE_ROWS), min(T, TABLE_COLUMNS)
    gates = "" if flow.cell == "rnn" else " (layer 0's W_xh: the rows of all its gates)"
    click.echo(f"2. dL/dW_xh split by loss step t and input step k <= t{gates}: component norms "
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
               f"(charrnn.model.Model.loss_and_grads) within {flow.sum_difference:.1e} "
               f"(max |dW_xh| {flow.gradient_scale:.2e}, tolerance {SUM_TOLERANCE:g} "
               f"relative): {verdict}")
    click.echo("")
    click.echo("3. what sets the rate: W_hh and the activations along the chunk")
    for layer in flow.layers:
        _echo_layer_causes(layer, flow.num_layers > 1)


def _echo_layer_causes(layer: LayerFlow, labelled: bool) -> None:
    indent = "  "
    if labelled:
        click.echo(f"  layer {layer.layer}:")
        indent = "    "
    w = layer.W_hh
    size = len(w["singular_values"])
    blocks = w["gate_sigma_max"]
    shape = "" if blocks is None else f" ({len(blocks)}H x H)"
    click.echo(f"{indent}singular values of W_hh{shape}: largest {w['sigma_max']:.3f}, "
               f"{w['singular_values_above_1']} of {size} above 1")
    if blocks is not None:
        click.echo(f"{indent}largest singular value of each gate's block: "
                   + ", ".join(f"{name} {value:.3f}" for name, value in blocks.items()))
    if layer.saturated is not None:
        click.echo(f"{indent}hidden values with |h| > {SATURATION}: {layer.saturated:.1%}; mean "
                   f"tanh'(a) = 1 - h^2: {layer.mean_derivative:.3f}")
    elif layer.mean_derivative is not None:
        click.echo(f"{indent}relu units active (relu'(a) = 1): {layer.mean_derivative:.1%}")
    for key, summary in layer.gates.items():
        name, path = GATE_WORDS.get(key, (key, "the gradient on"))
        click.echo(f"{indent}{name} along the chunk: mean {summary['mean']:.3f}; "
                   f"{summary['near_1']:.1%} of its values above {summary['threshold']:g}, "
                   f"near 1, where a unit passes {path}")


def _echo_impulse(impulse: Impulse) -> None:
    names = [f"w={w:g}" for w in impulse.weights]
    click.echo("impulse responses: h_t = w h_{t-1} + x_t for x = (1, 0, 0, ...), next to the "
               "trained model's")
    gains = {"model": impulse.model_gain}
    if impulse.linear_gain is not None:
        click.echo("rms gain ||dh_t/dh_0|| / sqrt(H) of layer 0 along the chunk (the exact "
                   "Jacobian product), and W_hh alone, rms ||W_hh^t|| / sqrt(H)")
        gains["W_hh alone"] = impulse.linear_gain
    else:
        click.echo(f"rms gain ||dh_t/dh_0|| / sqrt(H) of layer 0 along the chunk ({impulse.cell}; "
                   f"{impulse.method} in float64, the rest of the state at step 0 held fixed)")
        for key, values in (impulse.state_gains or {}).items():
            if key != "h<-h" and key.split("<-")[0] == key.split("<-")[1]:
                click.echo(f"and the cell state's, rms ||dc_t/dc_0|| / sqrt(H) ({key})")
                gains[key] = values
    click.echo(f"  {'t':>4}" + "".join(f"{name:>11}" for name in names)
               + "".join(f"{name:>12}" for name in gains))
    for t in range(len(impulse.model_gain)):
        click.echo(f"  {t:>4}" + "".join(f"{v:>11.3e}" for v in impulse.scalar[t])
                   + "".join(f"{values[t]:>12.3e}" for values in gains.values()))
    decays = {"model": impulse.model_decay}
    if impulse.linear_decay is not None:
        decays["W_hh alone"] = impulse.linear_decay
    decays.update({key: decay for key, decay in impulse.state_decays.items()
                   if key in gains})
    for what, decay in decays.items():
        click.echo("  " + _decay_words(decay, f"{what}, fitted", "per step", "t"))
    click.echo("  (a scalar recurrence changes by |w| per step; the fitted rate is the model's "
               "|w|)")


# --- gradflow --compare ------------------------------------------------------------------------

def _labels(paths: list[Path]) -> list[str]:
    """Each model's name in the table: its file name, or its path where two names agree."""
    names = [path.name for path in paths]
    return [name if names.count(name) == 1 else str(path) for name, path in zip(names, paths)]


def _compare(paths: list[Path], text_file, prime, length, as_json, plot_path) -> None:
    saved = [load_checkpoint(path) for path in paths]
    text, source = chunk_text(saved[0], text_file, prime, length)
    labels = _labels(paths)
    flows = []
    for label, checkpoint in zip(labels, saved):
        ids = checkpoint.vocab.encode(text, f"the text for {label}")
        flows.append(analyse_chunk(checkpoint.model, ids[:-1], ids[1:]))
    curves = compare_curves(flows, labels)
    models = [{**_model_header(checkpoint, path), "label": label, "sum_check_ok": flow.sum_ok}
              for label, checkpoint, path, flow in zip(labels, saved, paths, flows)]
    T = len(text) - 1
    if as_json:
        click.echo(json.dumps({"text_source": source, "text": text, "length": T,
                               "lines_crossed": _lines_crossed(saved[0], text),
                               "models": models, "curves": [c.to_dict() for c in curves]}))
    else:
        _echo_comparison(models, curves, text, source)
    if plot_path:
        from charrnn.plots import draw_comparison, save_figure
        title = f"the last loss's gradient on {T} characters from {source}"
        click.echo(f"wrote {save_figure(draw_comparison(curves, title), plot_path)}", err=True)
    failed = [m["label"] for m in models if not m["sum_check_ok"]]
    if failed:
        raise click.ClickException(f"the dW_xh components of {', '.join(failed)} do not add up "
                                   f"to the trainer's gradient; a backward is wrong")


def shown_lags(T: int) -> list[int]:
    """Every lag for short chunks, else 0..9, every 5th and the last."""
    if T <= ALL_LAGS:
        return list(range(T))
    return sorted(set(range(10)) | set(range(10, T, 5)) | {T - 1})


def _echo_comparison(models: list[dict], curves: list[Curve], text: str, source: str) -> None:
    T = len(text) - 1
    shown = text if len(text) <= 70 else text[:67] + "..."
    click.echo(f"comparing {len(models)} models on {T} inputs (+1 target) from {source}: "
               f"{shown!r}; analysed in float64, without dropout")
    for m in models:
        click.echo(f"  {m['label']}: {m['model']}, step {m['checkpoint_step']}")
    click.echo("")
    click.echo("the last loss's gradient at each earlier step of layer 0, ||dL_{T-1}/dh_k|| "
               "(h) and, for the LSTM, ||dL_{T-1}/dc_k|| (c), by lag T-1-k")
    width = max(12, *(len(c.label) + 2 for c in curves))
    click.echo(f"  {'lag':>18}" + "".join(f"{c.label:>{width}}" for c in curves))
    for lag in shown_lags(T):
        click.echo(f"  {lag:>18}" + "".join(f"{c.norms_by_lag[lag]:>{width}.2e}" for c in curves))

    def row(name: str, values) -> None:
        click.echo(f"  {name:>18}" + "".join(f"{v:>{width}}" for v in values))

    click.echo("")
    row("last loss (nats)", [f"{c.last_loss:.3f}" for c in curves])
    row("mean loss", [f"{c.mean_loss:.3f}" for c in curves])
    row("rate per step", [_number(c.decay.rate_per_step, "x{:.3f}") for c in curves])
    row("10x every (steps)", [_number(c.decay.steps_per_tenfold, "{:.1f}") for c in curves])
    row(f"< 1/{1 / VANISHED:g} from lag", [_number(c.decay.vanished_at_lag, "{}", "never")
                                           for c in curves])
    click.echo("")
    click.echo(f"  rate: a least-squares fit of log(norm) on the lag (below 1 the gradient "
               f"vanishes); '< 1/{1 / VANISHED:g}': the first lag where the norm is below "
               f"1/{1 / VANISHED:g} of its lag-0 size ('never': not within these {T} steps)")


def _number(value, form: str, missing: str = "-") -> str:
    return missing if value is None else form.format(value)


command = gradflow

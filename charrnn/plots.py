"""Pictures: the training curves from a metrics log, and gradflow's heat map, impulse responses and
comparison of cells.

matplotlib is an optional extra (`pip install 'charrnn[plot]'`), imported only when a picture is
drawn; without it `require_matplotlib` raises a CharRNNError that says how to install it. Figures
are built with matplotlib's object API on the Agg canvas, never through pyplot, so drawing touches
no global backend or figure state (a notebook's own backend is left alone).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from charrnn.errors import CharRNNError, install_command
from charrnn.plumbing.reading import Reading
from charrnn.plumbing.terminal import shown
from charrnn.plumbing.writing import atomic_write

DPI = 100
NEWLINE_MARK = "\u21b5"  # how a newline input is labelled on a heat map axis
MAX_CHAR_TICKS = 40  # label every input with its character up to this chunk length
MARKED_POINTS = 40  # curves up to this many points get a marker on each
LARGEST = 1e300  # a logged value beyond +-this is drawn as missing: matplotlib's axes overflow
MAX_LOG_BYTES = 1 << 28  # as charrnn.plumbing.metrics_log: a larger file is no metrics log of ours
NOT_A_LOG = "is this a charrnn metrics log? pass the .jsonl or .csv written beside the checkpoint"
MISSING_LOG = "training writes it beside the checkpoint (e.g. checkpoints/names.jsonl)"


def require_matplotlib():
    """matplotlib's Figure and Agg canvas classes, or a CharRNNError with the install hint."""
    try:
        import matplotlib  # noqa: F401  (first, so a missing package is never half-imported)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CharRNNError(f"pictures need matplotlib, which is not installed; install it "
                           f"with: {install_command('plot')}") from None
    return Figure, FigureCanvasAgg


def new_figure(width: float, height: float):
    Figure, FigureCanvasAgg = require_matplotlib()
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: str | Path) -> Path:
    """Write the PNG through the one atomic writer (charrnn.plumbing.writing): a failed write leaves
    the previous picture byte-identical."""
    return atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=DPI),
                        "picture", "choose another path")


# --- the metrics log ---------------------------------------------------------------------------

def read_metrics(path: str | Path,
                 refuse: Callable[[Path, bytes], None] | None = None) -> list[dict]:
    """The records of a training log, JSONL or CSV (told apart by the first character), by step.

    Every record has 'step' and 'train_loss'; other values are floats or None (not measured, not
    finite, or beyond +-LARGEST, where matplotlib's axes cannot be drawn). The file is read once,
    up to MAX_LOG_BYTES; refuse(path, data) may reject it first (e.g. a checkpoint given).
    """
    path = Path(path)
    try:
        data = b"".join(Reading(path, "log", MAX_LOG_BYTES, NOT_A_LOG, MISSING_LOG).chunks())
    except OSError as error:
        raise CharRNNError(f"log {path} cannot be read: {error.strerror or error}") from None
    if refuse is not None:
        refuse(path, data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CharRNNError(f"log {path} is not UTF-8 (byte {error.start}); {NOT_A_LOG}") from None
    rows = _jsonl_rows(text, path) if text.lstrip().startswith("{") else _csv_rows(text, path)
    if not rows:
        raise CharRNNError(f"log {path} holds no records; train for at least training.eval_every "
                           f"steps first")
    records = []
    for line, row in rows:
        record = {key: _number(value, path, line, key) for key, value in row.items()}
        for key in ("step", "train_loss"):
            if record.get(key) is None:
                if row.get(key) not in (None, ""):
                    raise CharRNNError(f"log {path} line {line}: {key} = {shown(row[key], 40)} "
                                       f"is not a finite number within +-{LARGEST:g}; the file "
                                       f"is damaged")
                raise CharRNNError(f"log {path} line {line}: no {key}; is this a charrnn "
                                   f"metrics log?")
        records.append(record)
    return sorted(records, key=lambda record: record["step"])


def _jsonl_rows(text: str, path: Path) -> list[tuple[int, dict]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise CharRNNError(f"log {path} line {number} is not JSON ({error.msg}); the file "
                               f"is damaged") from None
        except RecursionError:
            raise CharRNNError(f"log {path} line {number} is nested too deeply to be a metrics "
                               f"record; the file is damaged") from None
        except ValueError as error:  # an integer of more digits than Python converts
            raise CharRNNError(f"log {path} line {number} cannot be read ({shown(str(error))}); "
                               f"the file is damaged") from None
        if not isinstance(row, dict):
            raise CharRNNError(f"log {path} line {number} is not a JSON object")
        rows.append((number, row))
    return rows


def _csv_rows(text: str, path: Path) -> list[tuple[int, dict]]:
    reader = csv.DictReader(text.splitlines())
    try:
        if not reader.fieldnames or "step" not in reader.fieldnames:
            raise CharRNNError(f"log {path} is neither JSONL nor a CSV with a 'step' column; "
                               f"pass the .jsonl or .csv written beside the checkpoint")
        return [(number, row) for number, row in enumerate(reader, start=2)]
    except csv.Error as error:  # a field over csv's size limit, a NUL byte
        raise CharRNNError(f"log {path} line {reader.line_num} is not CSV ({error}); the file "
                           f"is damaged") from None


def _number(value, path: Path, line: int, key: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: as out of range as 1e308
        return None
    except (TypeError, ValueError):
        raise CharRNNError(f"log {path} line {line}: {key} = {shown(value, 40)} is not a "
                           f"number") from None
    return number if math.isfinite(number) and abs(number) <= LARGEST else None


def _column(records: list[dict], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else r[key] for r in records], dtype=float)


# --- training curves ---------------------------------------------------------------------------

def draw_training_curves(records: list[dict], title: str = ""):
    """Loss (nats/char) against step with characters seen on top; grad norm and clip fraction."""
    figure = new_figure(8.0, 6.0)
    loss_axes, grad_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    step = _column(records, "step")
    for key, label, style in (("train_loss", "train", "-"), ("val_loss", "validation", "-o")):
        values = _column(records, key)
        if np.isfinite(values).any():
            loss_axes.plot(step, values, style, markersize=3, label=label)
    loss_axes.set_ylabel("loss (nats/char)")
    loss_axes.legend()
    loss_axes.grid(alpha=0.3)
    loss_axes.set_title(title)
    chars = _column(records, "chars_seen")
    if np.isfinite(chars).sum() >= 1:
        _chars_axis(loss_axes, step[np.isfinite(chars)], chars[np.isfinite(chars)])
    _gradient_panel(grad_axes, step, _column(records, "grad_norm"),
                    _column(records, "clip_fraction"))
    grad_axes.set_xlabel("step")
    return figure


def _chars_axis(axes, step: np.ndarray, chars: np.ndarray) -> None:
    """A top axis in characters seen: chars(step) through (0, 0) and the logged points."""
    step = np.concatenate([[0.0], step])
    chars = np.concatenate([[0.0], chars])
    if np.any(np.diff(step) <= 0) or np.any(np.diff(chars) <= 0):
        return  # not a one-to-one map (a log of several runs): no honest second axis
    slope = chars[-1] / step[-1]  # beyond the last point, the run's average rate

    def to_chars(s):
        return np.where(s <= step[-1], np.interp(s, step, chars), chars[-1] + (s - step[-1])
                        * slope)

    def to_steps(c):
        return np.where(c <= chars[-1], np.interp(c, chars, step), step[-1] + (c - chars[-1])
                        / slope)

    from matplotlib.ticker import EngFormatter

    top = axes.secondary_xaxis("top", functions=(to_chars, to_steps))
    top.xaxis.set_major_formatter(EngFormatter())  # 2M, not 0.2 x 1e7
    top.set_xlabel("characters seen")


def _gradient_panel(axes, step: np.ndarray, norm: np.ndarray, clip: np.ndarray) -> None:
    if not (np.isfinite(norm).any() or np.isfinite(clip).any()):
        axes.text(0.5, 0.5, "no grad_norm or clip_fraction in this log", ha="center",
                  va="center", transform=axes.transAxes)
        return
    axes.plot(step, norm, color="C2", label="gradient norm (before clipping)")
    axes.set_ylabel("gradient norm", color="C2")
    axes.grid(alpha=0.3)
    clip_axes = axes.twinx()
    clip_axes.plot(step, clip, "--", color="C3", label="clip fraction")
    clip_axes.set_ylabel("fraction clipped", color="C3")
    clip_axes.set_ylim(bottom=0)
    lines = axes.get_lines() + clip_axes.get_lines()
    axes.legend(lines, [line.get_label() for line in lines], loc="best", framealpha=0.8)


# --- gradient flow -----------------------------------------------------------------------------

STATE_STYLES = {"h": "-", "c": "--"}  # the hidden state solid, the LSTM's cell state dashed
FIT_STYLES = {"h": ":", "c": "-."}  # and their fitted lines
GATE_LABELS = {"forget_gate": "forget gate f", "update_gate": "update gate z"}


def _legend_below(axes, ncol: int = 1, fontsize: float = 8) -> None:
    """A legend under the axes (constrained layout makes room), so it never hides a curve."""
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, fontsize=fontsize,
                frameon=False)


def _positive(values: np.ndarray) -> np.ndarray:
    """Zeros and non-finite values as NaN: gaps on a log axis instead of warnings."""
    values = np.asarray(values, dtype=float).copy()
    values[~np.isfinite(values) | (values <= 0)] = np.nan
    return values


def draw_gradflow(flow, inputs: str = "", title: str = ""):
    """Heat map of the dW_xh components (loss step t by input step k), ||dL_{T-1}/state_k|| of
    every layer and state, and what scales the gradient at each step (f'(a), the forget gate f
    or the update gate z).

    flow: a gradflow.GradFlow; inputs: the chunk's T input characters, for the axis labels.
    """
    figure = new_figure(15.0, 5.2)
    heat_axes, curve_axes, cause_axes = figure.subplots(1, 3, width_ratios=(1.2, 1, 0.85))
    norms = flow.component_norms
    T = norms.shape[0]
    with np.errstate(divide="ignore"):
        shown = np.log10(norms)
    shown[np.triu_indices(T, 1)] = np.nan  # k > t: a loss never reaches later inputs
    shown[~np.isfinite(shown)] = np.nan
    image = heat_axes.imshow(shown, cmap="viridis", origin="upper", interpolation="nearest",
                             aspect="auto")
    colorbar = figure.colorbar(image, ax=heat_axes, shrink=0.9)
    colorbar.set_label("log10 ||dL_t/dW_xh from input k||")
    heat_axes.set_xlabel("input step k")
    heat_axes.set_ylabel("loss step t")
    heat_axes.set_title("dL/dW_xh (layer 0) split by loss and input step")
    if inputs and T <= MAX_CHAR_TICKS:
        labels = [NEWLINE_MARK if ch == "\n" else ch for ch in inputs[:T]]
        # font sizes in points that keep T labels from overlapping along each side of the map
        heat_axes.set_xticks(range(T), labels, fontsize=min(10.0, 300.0 / T))
        heat_axes.set_yticks(range(T), labels, fontsize=min(10.0, 240.0 / T))
        heat_axes.set_xlabel("input step k (the character fed in)")
        heat_axes.set_ylabel("loss step t (input at t)")
    k = np.arange(T)
    lag = T - 1 - k
    for layer in flow.layers:
        color = f"C{layer.layer}"
        for state, values in layer.norms.items():
            where = f"layer {layer.layer}, " if flow.num_layers > 1 else ""
            name = f"||dL_{{T-1}}/d{state}_k||"
            curve_axes.semilogy(k, _positive(values), STATE_STYLES.get(state, ":"),
                                marker="o" if T <= MARKED_POINTS else None, markersize=3,
                                color=color, label=f"{where}{name}")
            rate = layer.decays[state].rate_per_step
            if rate is not None:
                curve_axes.semilogy(k, _fit_line(values, lag, rate), FIT_STYLES.get(state, ":"),
                                    color=color, alpha=0.7, linewidth=1,
                                    label=f"{where}{state} fit: x{rate:.3f} per step back")
    curve_axes.set_xlabel("step k (lag T-1-k: the last step is lag 0)")
    curve_axes.set_ylabel("gradient norm (log scale)")
    curve_axes.set_title(f"the last loss's gradient at earlier steps ({flow.cell})")
    curve_axes.grid(alpha=0.3, which="both")
    _legend_below(curve_axes, ncol=2 if len(curve_axes.get_lines()) > 3 else 1)
    _draw_causes(cause_axes, flow)
    if title:
        figure.suptitle(title)
    return figure


def _draw_causes(axes, flow) -> None:
    """Per step, the mean of what scales the gradient's direct path back: f'(a) for the RNN, the
    forget gate f for the LSTM, the update gate z for the GRU; with the share near 1 for gates."""
    k = np.arange(len(flow.losses))
    marker = "o" if len(k) <= MARKED_POINTS else None
    drawn = False
    for layer in flow.layers:
        color = f"C{layer.layer}"
        where = f"layer {layer.layer}: " if flow.num_layers > 1 else ""
        if layer.derivative_by_step is not None:
            what = "tanh'(a_k) = 1 - h_k^2" if flow.activation == "tanh" else "relu'(a_k)"
            axes.plot(k, layer.derivative_by_step, "-", marker=marker, markersize=3, color=color,
                      label=f"{where}mean {what}")
            drawn = True
        for key, summary in layer.gates.items():
            name = GATE_LABELS.get(key, key)
            axes.plot(k, summary["mean_by_step"], "-", marker=marker, markersize=3, color=color,
                      label=f"{where}mean {name}")
            if "near_1_by_step" in summary:
                axes.plot(k, summary["near_1_by_step"], ":", color=color,
                          label=f"{where}share of {name.split()[-1]} > {summary['threshold']:g}")
            drawn = True
    if not drawn:
        axes.text(0.5, 0.5, "no per-step statistics for this cell", ha="center", va="center",
                  transform=axes.transAxes)
    axes.set_ylim(0, 1.05)
    axes.axhline(1.0, color="gray", linewidth=0.8)
    axes.set_xlabel("step k")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_ylabel("mean over the hidden units")
    axes.set_title("what scales the gradient at each step")
    axes.grid(alpha=0.3)
    if drawn:
        _legend_below(axes)


def _fit_line(norms: np.ndarray, lag: np.ndarray, rate: float) -> np.ndarray:
    """C * rate^lag with C the geometric-mean fit over the positive norms."""
    usable = np.isfinite(norms) & (norms > 0)
    log_c = np.mean(np.log(norms[usable]) - lag[usable] * math.log(rate))
    return np.exp(log_c + lag * math.log(rate))


def draw_impulse(impulse, title: str = ""):
    """Scalar impulse responses |h_t| = |w|^t (sign shown by the markers) next to the trained
    model's gains, both on a log scale.

    impulse: a gradflow.Impulse.
    """
    figure = new_figure(12.0, 5.0)
    scalar_axes, gain_axes = figure.subplots(1, 2, sharey=True)
    T = len(impulse.model_gain)
    t = np.arange(T)
    for i, w in enumerate(impulse.weights):
        h = impulse.scalar[:, i]
        color = f"C{i}"
        scalar_axes.semilogy(t, np.abs(h), "-", color=color,
                             label=f"w = {w:g}: |h_t| = {abs(w):g}^t")
        positive, negative = h > 0, h < 0
        scalar_axes.semilogy(t[positive], h[positive], "o", markersize=4, color=color)
        scalar_axes.semilogy(t[negative], -h[negative], "o", markersize=4, color=color,
                             markerfacecolor="white")
        gain_axes.semilogy(t, np.abs(h), "-", color=color, alpha=0.25,
                           label=f"|w|^t, w = {w:g} (for scale)")
    scalar_axes.plot([], [], "o", color="gray", label="filled: h_t > 0")
    scalar_axes.plot([], [], "o", color="gray", markerfacecolor="white", label="open: h_t < 0")
    scalar_axes.set_xlabel("t")
    scalar_axes.set_ylabel("size (log scale)")
    scalar_axes.set_title("h_t = w h_{t-1} + x_t, x = (1, 0, 0, ...)")
    scalar_axes.grid(alpha=0.3, which="both")
    _legend_below(scalar_axes, ncol=2)
    gain_axes.semilogy(t, _positive(impulse.model_gain), "o-", markersize=3, color="C2",
                       label="model: rms ||dh_t/dh_0||")
    if impulse.linear_gain is not None:
        gain_axes.semilogy(t, _positive(impulse.linear_gain), ":", color="C4",
                           label="W_hh alone (no f'): rms ||W_hh^t||")
    for key, values in (impulse.state_gains or {}).items():
        out, into = key.split("<-")
        if out == into and out != "h":
            gain_axes.semilogy(t, _positive(values), "s--", markersize=3, color="C3",
                               label=f"model: rms ||d{out}_t/d{into}_0|| (cell state)")
    gain_axes.set_xlabel("t")
    gain_axes.tick_params(labelleft=True)
    method = "" if impulse.method == "exact Jacobian product" else f" ({impulse.method})"
    gain_axes.set_title(f"the trained model's gain along the chunk{method}")
    gain_axes.grid(alpha=0.3, which="both")
    _legend_below(gain_axes, ncol=2)
    if title:
        figure.suptitle(title)
    return figure


def draw_comparison(curves, title: str = ""):
    """Several models' ||dL_{T-1}/state_k|| (layer 0) against the lag, as measured and relative
    to lag 0 with the 1/1000 line; one colour a model, solid h and dashed c.

    curves: gradflow.compare_curves()."""
    from charrnn.gradflow import VANISHED

    figure = new_figure(12.0, 5.2)
    raw_axes, relative_axes = figure.subplots(1, 2)
    models = list(dict.fromkeys(c.model for c in curves))
    marker = "o" if max((len(c.norms_by_lag) for c in curves), default=0) <= MARKED_POINTS else None
    for curve in curves:
        color = f"C{models.index(curve.model) % 10}"
        lag = np.arange(len(curve.norms_by_lag))
        style = STATE_STYLES.get(curve.state, ":")
        rate = curve.decay.rate_per_step
        fitted = "" if rate is None else f", x{rate:.3f}/step"
        label = f"{curve.model} ({curve.cell}) {curve.state}{fitted}"
        raw_axes.semilogy(lag, _positive(curve.norms_by_lag), style, marker=marker, markersize=3,
                          color=color, label=label)
        start = curve.norms_by_lag[0]
        relative = curve.norms_by_lag / start if start > 0 else np.full(len(lag), np.nan)
        relative_axes.semilogy(lag, _positive(relative), style, marker=marker, markersize=3,
                               color=color)
    relative_axes.axhline(VANISHED, color="gray", linestyle=":", linewidth=1)
    relative_axes.annotate(f"1/{1 / VANISHED:g} of lag 0", (0, VANISHED), xytext=(2, 3),
                           textcoords="offset points", fontsize=8, color="gray")
    raw_axes.set_ylabel("gradient norm (log scale)")
    raw_axes.set_title("as measured")
    relative_axes.set_ylabel("relative to lag 0 (log scale)")
    relative_axes.set_title("relative to its size at lag 0")
    for axes in (raw_axes, relative_axes):
        axes.set_xlabel("lag T-1-k (steps back from the last loss)")
        axes.grid(alpha=0.3, which="both")
    figure.legend(loc="outside lower center", ncol=max(1, min(3, len(curves))), fontsize=9,
                  frameon=False)
    if title:
        figure.suptitle(title)
    return figure

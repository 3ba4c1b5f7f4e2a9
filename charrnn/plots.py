"""Pictures: the training curves from a metrics log, and gradflow's heat map and impulse responses.

matplotlib is an optional extra (`pip install 'charrnn[plot]'`), imported only when a picture is
drawn; without it `require_matplotlib` raises a CharRNNError that says how to install it. Figures
are built with matplotlib's object API on the Agg canvas, never through pyplot, so drawing touches
no global backend or figure state (a notebook's own backend is left alone).
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from charrnn.errors import CharRNNError

INSTALL_HINT = ("pictures need matplotlib, which is not installed; install it with: "
                "pip install 'charrnn[plot]'")
DPI = 100
NEWLINE_MARK = "\u21b5"  # how a newline input is labelled on a heat map axis
MAX_CHAR_TICKS = 40  # label every input with its character up to this chunk length


def require_matplotlib():
    """matplotlib's Figure and Agg canvas classes, or a CharRNNError with the install hint."""
    try:
        import matplotlib  # noqa: F401  (first, so a missing package is never half-imported)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CharRNNError(INSTALL_HINT) from None
    return Figure, FigureCanvasAgg


def new_figure(width: float, height: float):
    Figure, FigureCanvasAgg = require_matplotlib()
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: str | Path) -> Path:
    """Write the PNG atomically: a temporary file in the same directory, then os.replace."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise CharRNNError(f"cannot write {path}: {error.strerror or error}; choose another "
                           f"path") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            figure.savefig(handle, format="png", dpi=DPI)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp_name, 0o666 & ~umask)  # a picture is for sharing: mkstemp's 0600 is not
        os.replace(temp_name, path)
    except OSError as error:
        _remove_quietly(temp_name)
        raise CharRNNError(f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        _remove_quietly(temp_name)
        raise
    return path


def _remove_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


# --- the metrics log ---------------------------------------------------------------------------

def read_metrics(path: str | Path) -> list[dict]:
    """The records of a training log, JSONL or CSV (told apart by the first character), by step.

    Every record has 'step' and 'train_loss'; other values are floats or None (not measured).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CharRNNError(f"log {path} not found; training writes it beside the checkpoint "
                           f"(e.g. checkpoints/names.jsonl)") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise CharRNNError(f"log {path} cannot be read: {reason}") from None
    rows = _jsonl_rows(text, path) if text.lstrip().startswith("{") else _csv_rows(text, path)
    if not rows:
        raise CharRNNError(f"log {path} holds no records; train for at least training.eval_every "
                           f"steps first")
    records = []
    for line, row in rows:
        record = {key: _number(value, path, line, key) for key, value in row.items()}
        for key in ("step", "train_loss"):
            if record.get(key) is None:
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
        if not isinstance(row, dict):
            raise CharRNNError(f"log {path} line {number} is not a JSON object")
        rows.append((number, row))
    return rows


def _csv_rows(text: str, path: Path) -> list[tuple[int, dict]]:
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "step" not in reader.fieldnames:
        raise CharRNNError(f"log {path} is neither JSONL nor a CSV with a 'step' column; pass "
                           f"the .jsonl or .csv written beside the checkpoint")
    return [(number, row) for number, row in enumerate(reader, start=2)]


def _number(value, path: Path, line: int, key: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CharRNNError(f"log {path} line {line}: {key} = {value!r} is not a number") from None
    return number if math.isfinite(number) else None


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
    axes.legend(lines, [line.get_label() for line in lines], loc="upper right")


# --- gradient flow -----------------------------------------------------------------------------

def draw_gradflow(flow, inputs: str = "", title: str = ""):
    """Heat map of the dW_xh components (loss step t by input step k) and ||dL_{T-1}/dh_k||.

    flow: a gradflow.GradFlow; inputs: the chunk's T input characters, for the axis labels.
    """
    figure = new_figure(11.0, 4.6)
    heat_axes, curve_axes = figure.subplots(1, 2, width_ratios=(1.15, 1))
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
    heat_axes.set_title("dL/dW_xh split by loss and input step")
    if inputs and T <= MAX_CHAR_TICKS:
        labels = [NEWLINE_MARK if ch == "\n" else ch for ch in inputs[:T]]
        # font sizes in points that keep T labels from overlapping along each side of the map
        heat_axes.set_xticks(range(T), labels, fontsize=min(10.0, 300.0 / T))
        heat_axes.set_yticks(range(T), labels, fontsize=min(10.0, 240.0 / T))
        heat_axes.set_xlabel("input step k (the character fed in)")
        heat_axes.set_ylabel("loss step t (input at t)")
    k = np.arange(T)
    curve_axes.semilogy(k, flow.last_loss_grad_norms, "o-", markersize=3,
                        label="||dL_{T-1}/dh_k||")
    rate = flow.decay.rate_per_step
    if rate is not None:
        lag = T - 1 - k
        fitted = _fit_line(flow.last_loss_grad_norms, lag, rate)
        curve_axes.semilogy(k, fitted, "--", color="gray", label=f"fit: x{rate:.3g} per step back")
    curve_axes.set_xlabel("step k")
    curve_axes.set_ylabel("gradient norm")
    curve_axes.set_title("the last loss's gradient at earlier steps")
    curve_axes.grid(alpha=0.3, which="both")
    curve_axes.legend()
    if title:
        figure.suptitle(title)
    return figure


def _fit_line(norms: np.ndarray, lag: np.ndarray, rate: float) -> np.ndarray:
    """C * rate^lag with C the geometric-mean fit over the positive norms."""
    usable = np.isfinite(norms) & (norms > 0)
    log_c = np.mean(np.log(norms[usable]) - lag[usable] * math.log(rate))
    return np.exp(log_c + lag * math.log(rate))


def draw_impulse(impulse, title: str = ""):
    """Scalar impulse responses (signed, then on a log scale) next to the trained model's gains.

    impulse: a gradflow.Impulse.
    """
    figure = new_figure(11.0, 4.2)
    signed_axes, log_axes = figure.subplots(1, 2)
    T = len(impulse.model_gain)
    t = np.arange(T)
    for i, w in enumerate(impulse.weights):
        signed_axes.plot(t, impulse.scalar[:, i], "o-", markersize=3, label=f"w = {w:g}")
        log_axes.semilogy(t, np.abs(impulse.scalar[:, i]), "-", label=f"|h_t|, w = {w:g}")
    signed_axes.set_yscale("symlog", linthresh=1.0)  # linear within [-1, 1], log beyond
    signed_axes.set_xlabel("t")
    signed_axes.set_ylabel("h_t (symmetric log scale)")
    signed_axes.set_title("h_t = w h_{t-1} + x_t, x = (1, 0, 0, ...)")
    signed_axes.grid(alpha=0.3)
    signed_axes.legend()
    log_axes.semilogy(t, impulse.model_gain, "o-", markersize=3, color="C2",
                      label="model: rms ||dh_t/dh_0||")
    log_axes.semilogy(t, impulse.linear_gain, ":", color="C4",
                      label="W_hh alone (no f'): rms ||W_hh^t||")
    log_axes.set_xlabel("t")
    log_axes.set_ylabel("gain (log scale)")
    log_axes.set_title("impulse gains: scalar recurrences and the trained model")
    log_axes.grid(alpha=0.3, which="both")
    log_axes.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    return figure

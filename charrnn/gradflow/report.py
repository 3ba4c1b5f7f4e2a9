"""The text report of `charrnn gradflow`: each function returns the lines it prints, joined.

Facts about a cell (which gate carries the gradient, whether it has gate blocks) come from the
cell registry, so a new cell is reported without a line here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from charrnn.cells import CELLS
from charrnn.checkpoint import Checkpoint
from charrnn.gradflow.analysis import (
    SATURATION,
    SUM_TOLERANCE,
    VANISHED,
    Decay,
    GradFlow,
    LayerFlow,
)
from charrnn.gradflow.compare import Curve
from charrnn.gradflow.impulse import Impulse

PER_LINE = 8  # numbers a line in the printed curves
TABLE_ROWS, TABLE_COLUMNS = 8, 8  # the corner of the t-by-k table printed (--json has it all)
ALL_LAGS = 20  # the comparison table prints every lag up to this T, else a selection
SHOWN_TEXT = 70  # characters of the analysed text quoted in a header


def model_header(saved: Checkpoint, path: Path) -> dict:
    """What the report and its JSON say about the model analysed."""
    spec = saved.spec
    return {"checkpoint": str(path), "checkpoint_step": saved.step, "model": spec.describe(),
            "cell": spec.cell, "num_layers": spec.num_layers,
            "activation": spec.chosen_activation,
            "hidden_size": spec.hidden_size, "vocab_size": len(saved.vocab),
            "training_dropout": spec.dropout}


def _shortened(text: str) -> str:
    return text if len(text) <= SHOWN_TEXT else text[:SHOWN_TEXT - 3] + "..."


def header_report(header: dict) -> str:
    """The two lines above a report: the model (model_header's, plus text_source, text and
    length) and the text analysed."""
    dropout = (f" (dropout {header['training_dropout']:g} in training, off here)"
               if header["training_dropout"] else "")
    return "\n".join([
        f"checkpoint {header['checkpoint']} (step {header['checkpoint_step']}): "
        f"{header['model']}{dropout}, vocabulary {header['vocab_size']}; analysed in float64",
        f"text: {header['length']} inputs (+1 target) from {header['text_source']}: "
        f"{_shortened(header['text'])!r}"])


def _decay_words(decay: Decay, what: str, per: str = "per step back", unit: str = "lag") -> str:
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


def _rows(values: np.ndarray, label: str) -> list[str]:
    lines = []
    for first in range(0, len(values), PER_LINE):
        chunk = values[first:first + PER_LINE]
        span = f"{first}-{first + len(chunk) - 1}"
        lines.append(f"  {label} {span:>7}: " + " ".join(f"{v:.2e}" for v in chunk))
    return lines


def gradflow_report(flow: GradFlow, text: str) -> str:
    """The three-part report of analyse_chunk's result on text (T inputs and the last target):
    the last loss's gradient by lag, dL/dW_xh by loss step and input step, what sets the rate."""
    T = len(flow.losses)
    cell = CELLS[flow.cell]
    lines = [f"loss at the last step (step {T - 1}, predicting {text[-1]!r}): "
             f"{flow.losses[-1]:.4f} nats; mean over the chunk {flow.losses.mean():.4f} "
             f"nats/char", ""]
    states = list(flow.layers[0].norms)
    through = "" if states == ["h"] else ", and through the cell state ||dL_{T-1}/dc_k||"
    lines.append("1. the last loss's gradient at each earlier step, ||dL_{T-1}/dh_k||"
                 f"{through}, by lag T-1-k")
    labelled = flow.num_layers > 1 or len(states) > 1
    for layer in flow.layers:
        for state, norms in layer.norms.items():
            if labelled:
                lines.append(f"  layer {layer.layer}, {state}:")
            lines += _rows(norms[::-1], "lags")
            lines.append("  " + _decay_words(layer.decays[state], "fitted"))
    lines.append("")
    rows, columns = min(T, TABLE_ROWS), min(T, TABLE_COLUMNS)
    gates = " (layer 0's W_xh: the rows of all its gates)" if cell.gates > 1 else ""
    lines.append(f"2. dL/dW_xh split by loss step t and input step k <= t{gates}: component "
                 f"norms (last {rows} x {columns}; --json has all {T} x {T})")
    ks = range(T - columns, T)
    lines.append(" " * 14 + "".join(f"{f'k={k}':>9}" for k in ks))
    lines.append(" " * 14 + "".join(f"{text[k]!r:>9}" for k in ks))
    for t in range(T - rows, T):
        cells = "".join(f"{flow.component_norms[t, k]:>9.2e}" if k <= t else f"{'.':>9}"
                        for k in ks)
        lines.append(f"  {f't={t}':<7}{text[t]!r:>5}" + cells)
    lines.append("  mean norm by distance t-k:")
    lines += _rows(flow.mean_norm_by_distance, "t-k")
    verdict = "ok" if flow.sum_ok else "FAILED"
    lines.append(f"  check: the {T * (T + 1) // 2} components sum to the trainer's dW_xh "
                 f"(charrnn.model.Model.loss_and_grads) within {flow.sum_difference:.1e} "
                 f"(max |dW_xh| {flow.gradient_scale:.2e}, tolerance {SUM_TOLERANCE:g} "
                 f"relative): {verdict}")
    lines.append("")
    lines.append("3. what sets the rate: W_hh and the activations along the chunk")
    for layer in flow.layers:
        lines += _layer_causes(layer, flow.num_layers > 1, cell.carrying_gate)
    return "\n".join(lines)


def _layer_causes(layer: LayerFlow, labelled: bool, carrying) -> list[str]:
    """Part 3 for one layer; carrying: the cell's CarryingGate (None: it has none)."""
    lines, indent = [], "  "
    if labelled:
        lines.append(f"  layer {layer.layer}:")
        indent = "    "
    w = layer.W_hh
    size = len(w["singular_values"])
    blocks = w["gate_sigma_max"]
    shape = "" if blocks is None else f" ({len(blocks)}H x H)"
    lines.append(f"{indent}singular values of W_hh{shape}: largest {w['sigma_max']:.3f}, "
                 f"{w['singular_values_above_1']} of {size} above 1")
    if blocks is not None:
        lines.append(f"{indent}largest singular value of each gate's block: "
                     + ", ".join(f"{name} {value:.3f}" for name, value in blocks.items()))
    if layer.saturated is not None:
        lines.append(f"{indent}hidden values with |h| > {SATURATION}: {layer.saturated:.1%}; "
                     f"mean tanh'(a) = 1 - h^2: {layer.mean_derivative:.3f}")
    elif layer.mean_derivative is not None:
        lines.append(f"{indent}relu units active (relu'(a) = 1): {layer.mean_derivative:.1%}")
    for key, summary in layer.gates.items():
        name, path = ((carrying.label, carrying.path) if carrying is not None
                      and key == carrying.key else (key, "the gradient on"))
        lines.append(f"{indent}{name} along the chunk: mean {summary['mean']:.3f}; "
                     f"{summary['near_1']:.1%} of its values above {summary['threshold']:g}, "
                     f"near 1, where a unit passes {path}")
    return lines


def impulse_report(impulse: Impulse) -> str:
    """impulse_response's result: the scalar recurrences and the model's gains, step by step."""
    names = [f"w={w:g}" for w in impulse.weights]
    lines = ["impulse responses: h_t = w h_{t-1} + x_t for x = (1, 0, 0, ...), next to the "
             "trained model's"]
    gains = {"model": impulse.model_gain}
    if impulse.linear_gain is not None:
        lines.append("rms gain ||dh_t/dh_0|| / sqrt(H) of layer 0 along the chunk (the exact "
                     "Jacobian product), and W_hh alone, rms ||W_hh^t|| / sqrt(H)")
        gains["W_hh alone"] = impulse.linear_gain
    else:
        lines.append(f"rms gain ||dh_t/dh_0|| / sqrt(H) of layer 0 along the chunk "
                     f"({impulse.cell}; {impulse.method} in float64, the rest of the state at "
                     f"step 0 held fixed)")
        for key, values in (impulse.state_gains or {}).items():
            if key != "h<-h" and key.split("<-")[0] == key.split("<-")[1]:
                lines.append(f"and the cell state's, rms ||dc_t/dc_0|| / sqrt(H) ({key})")
                gains[key] = values
    lines.append(f"  {'t':>4}" + "".join(f"{name:>11}" for name in names)
                 + "".join(f"{name:>12}" for name in gains))
    for t in range(len(impulse.model_gain)):
        lines.append(f"  {t:>4}" + "".join(f"{v:>11.3e}" for v in impulse.scalar[t])
                     + "".join(f"{values[t]:>12.3e}" for values in gains.values()))
    decays = {"model": impulse.model_decay}
    if impulse.linear_decay is not None:
        decays["W_hh alone"] = impulse.linear_decay
    decays.update({key: decay for key, decay in impulse.state_decays.items() if key in gains})
    for what, decay in decays.items():
        lines.append("  " + _decay_words(decay, f"{what}, fitted", "per step", "t"))
    lines.append("  (a scalar recurrence changes by |w| per step; the fitted rate is the model's "
                 "|w|)")
    return "\n".join(lines)


def shown_lags(T: int) -> list[int]:
    """Every lag for short chunks, else 0..9, every 5th and the last."""
    if T <= ALL_LAGS:
        return list(range(T))
    return sorted(set(range(10)) | set(range(10, T, 5)) | {T - 1})


def comparison_report(models: list[dict], curves: list[Curve], text: str, source: str) -> str:
    """compare_curves' table. models: each one's label, model (its description) and
    checkpoint_step, as model_header gives them plus a label; text: T inputs and the target."""
    T = len(text) - 1
    lines = [f"comparing {len(models)} models on {T} inputs (+1 target) from {source}: "
             f"{_shortened(text)!r}; analysed in float64, without dropout"]
    lines += [f"  {m['label']}: {m['model']}, step {m['checkpoint_step']}" for m in models]
    lines.append("")
    lines.append("the last loss's gradient at each earlier step of layer 0, ||dL_{T-1}/dh_k|| "
                 "(h) and, for the LSTM, ||dL_{T-1}/dc_k|| (c), by lag T-1-k")
    width = max(12, *(len(c.label) + 2 for c in curves))
    lines.append(f"  {'lag':>18}" + "".join(f"{c.label:>{width}}" for c in curves))
    for lag in shown_lags(T):
        lines.append(f"  {lag:>18}" + "".join(f"{c.norms_by_lag[lag]:>{width}.2e}"
                                              for c in curves))

    def row(name: str, values) -> None:
        lines.append(f"  {name:>18}" + "".join(f"{v:>{width}}" for v in values))

    lines.append("")
    row("last loss (nats)", [f"{c.last_loss:.3f}" for c in curves])
    row("mean loss", [f"{c.mean_loss:.3f}" for c in curves])
    row("rate per step", [_number(c.decay.rate_per_step, "x{:.3f}") for c in curves])
    row("10x every (steps)", [_number(c.decay.steps_per_tenfold, "{:.1f}") for c in curves])
    row(f"< 1/{1 / VANISHED:g} from lag", [_number(c.decay.vanished_at_lag, "{}", "never")
                                           for c in curves])
    lines.append("")
    lines.append(f"  rate: a least-squares fit of log(norm) on the lag (below 1 the gradient "
                 f"vanishes); '< 1/{1 / VANISHED:g}': the first lag where the norm is below "
                 f"1/{1 / VANISHED:g} of its lag-0 size ('never': not within these {T} steps)")
    return "\n".join(lines)


def _number(value, form: str, missing: str = "-") -> str:
    return missing if value is None else form.format(value)

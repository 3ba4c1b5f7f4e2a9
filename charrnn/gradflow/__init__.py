"""Where the gradient dies: backpropagation through time taken apart, one loss step at a time.

Everything here is plain NumPy in float64 and without dropout (the model as evaluated), usable
from a notebook: `analyse_chunk` and `impulse_response` return dataclasses whose `to_dict()` is
the JSON that `charrnn gradflow` prints, `compare_curves` lines several models up, and the
report functions return the text the command prints.

One module a job, in the order the command meets them:

- `chunk`: the text analysed (the text given, or the checkpoint corpus's longest line or start);
- `analysis`: per-loss BPTT on one chunk (analyse_chunk, GradFlow, LayerFlow) and decay fits;
- `impulse`: impulse responses, the RNN's exact Jacobian gains, central differences for others;
- `compare`: several models on the same text (compare_curves, Curve);
- `report`: the text report (gradflow_report, impulse_report, comparison_report).
"""

from charrnn.gradflow.analysis import (
    MAX_WORK_BYTES,
    NEAR_ONE,
    SATURATION,
    SUM_TOLERANCE,
    VANISHED,
    Decay,
    GradFlow,
    LayerFlow,
    PerLoss,
    analyse_chunk,
    analysis_model,
    check_work_size,
    fit_decay,
    gate_summary,
    initial_state,
    layer_statistics,
    per_loss_backward,
    recurrent_weights,
    saturation_fraction,
    xh_components,
)
from charrnn.gradflow.chunk import DEFAULT_LENGTH, chunk_text, default_text, lines_crossed
from charrnn.gradflow.compare import Curve, analyse_checkpoints, compare_curves, model_labels
from charrnn.gradflow.impulse import (
    DIFFERENCE_STEP,
    IMPULSE_WEIGHTS,
    Impulse,
    impulse_response,
    jacobian_gains,
    layer0_projections,
    linear_recurrence,
    state_gains_by_differences,
)
from charrnn.gradflow.report import (
    comparison_report,
    gradflow_report,
    header_report,
    impulse_report,
    model_header,
    shown_lags,
)

__all__ = [
    "DEFAULT_LENGTH",
    "DIFFERENCE_STEP",
    "IMPULSE_WEIGHTS",
    "MAX_WORK_BYTES",
    "NEAR_ONE",
    "SATURATION",
    "SUM_TOLERANCE",
    "VANISHED",
    "Curve",
    "Decay",
    "GradFlow",
    "Impulse",
    "LayerFlow",
    "PerLoss",
    "analyse_checkpoints",
    "analyse_chunk",
    "analysis_model",
    "check_work_size",
    "chunk_text",
    "compare_curves",
    "comparison_report",
    "default_text",
    "fit_decay",
    "gate_summary",
    "gradflow_report",
    "header_report",
    "impulse_report",
    "impulse_response",
    "initial_state",
    "jacobian_gains",
    "layer0_projections",
    "layer_statistics",
    "lines_crossed",
    "linear_recurrence",
    "model_header",
    "model_labels",
    "per_loss_backward",
    "recurrent_weights",
    "saturation_fraction",
    "shown_lags",
    "state_gains_by_differences",
    "xh_components",
]

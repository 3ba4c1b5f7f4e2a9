"""Several models on the same text: layer 0's gradient curves by lag, side by side.

`charrnn gradflow --compare` analyses every checkpoint on the first one's text and lines their
curves up; from Python, `compare_curves` does the same for GradFlows made any way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.checkpoint import Checkpoint
from charrnn.gradflow.analysis import Decay, GradFlow, analyse_chunk


def model_labels(paths: list[Path]) -> list[str]:
    """Each model's name in the table: its file name, or its path where two names agree."""
    names = [path.name for path in paths]
    return [name if names.count(name) == 1 else str(path) for name, path in zip(names, paths)]


def analyse_checkpoints(checkpoints: list[Checkpoint], labels: list[str],
                        text: str) -> list[GradFlow]:
    """analyse_chunk of every checkpoint on the same text (inputs text[:-1], targets text[1:])."""
    flows = []
    for label, checkpoint in zip(labels, checkpoints):
        ids = checkpoint.vocab.encode(text, f"the text for {label}")
        flows.append(analyse_chunk(checkpoint.model, ids[:-1], ids[1:]))
    return flows


@dataclass
class Curve:
    """One model's ||dL_{T-1}/state_k|| of layer 0 by lag, for the comparison."""

    model: str  # its label (the checkpoint's file name)
    cell: str
    state: str  # "h", or "c" for the LSTM's cell state
    norms_by_lag: np.ndarray  # (T,) lag 0 first
    decay: Decay
    last_loss: float
    mean_loss: float

    @property
    def label(self) -> str:
        return f"{self.model} {self.state}"

    def to_dict(self) -> dict:
        return {"model": self.model, "cell": self.cell, "state": self.state,
                "norms_by_lag": self.norms_by_lag.tolist(), "decay": self.decay.to_dict(),
                "last_loss": self.last_loss, "mean_loss": self.mean_loss}


def compare_curves(flows: list[GradFlow], labels: list[str]) -> list[Curve]:
    """Layer 0's curves of every model: h, and c as well for the LSTM, in the models' order."""
    curves = []
    for flow, label in zip(flows, labels):
        first = flow.layers[0]
        for state, norms in first.norms.items():
            curves.append(Curve(label, flow.cell, state, norms[::-1].copy(), first.decays[state],
                                float(flow.losses[-1]), float(flow.losses.mean())))
    return curves

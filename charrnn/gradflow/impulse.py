"""Impulse responses: the gradient's decay seen forward, as a state's response to a nudge.

The scalar recurrence h_t = w h_{t-1} + x_t answers x = (1, 0, 0, ...) with h_t = w^t, and the
trained model's counterpart is the Jacobian dh_t/dh_0 of layer 0 along the chunk: the exact
product prod_j diag(f'(a_j)) W_hh for a cell that declares its local derivative (the RNN), and
central differences in float64 for the others (see state_gains_by_differences).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from charrnn.gradflow.analysis import Decay, analysis_model, fit_decay, initial_state
from charrnn.model import Model

IMPULSE_WEIGHTS = (-0.9, 1.1)  # one decaying (and alternating), one exploding recurrence
DIFFERENCE_STEP = 1e-5  # central differences on the state: error ~ 1e-10 relative, in float64


def linear_recurrence(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """h_t = w * h_{t-1} + x_t from h_{-1} = 0, for a diagonal w (n,) and inputs x (T, n)."""
    h = np.empty_like(x, dtype=np.float64)
    h_prev = np.zeros(x.shape[1])
    for t in range(x.shape[0]):
        h_prev = h[t] = w * h_prev + x[t]
    return h


def jacobian_gains(df: np.ndarray, W_hh: np.ndarray):
    """RMS gains ||dh_t/dh_0||_F / sqrt(H) of the RNN and ||W_hh^t||_F / sqrt(H) without f.

    df: (T, H) f'(a_t) along a chunk. dh_t/dh_0 = prod_{j=1..t} diag(f'(a_j)) W_hh, and its
    Frobenius norm over sqrt(H) is the root-mean-square response to a unit impulse in a random
    direction; for H = 1 it is the scalar recurrence's |w|^t.
    """
    T, H = df.shape
    J = np.eye(H)
    W_power = np.eye(H)
    gains, linear = np.ones(T), np.ones(T)
    for t in range(1, T):
        J = (df[t][:, None] * W_hh) @ J  # dh_t/dh_{t-1} = diag(f'(a_t)) W_hh
        W_power = W_hh @ W_power
        gains[t] = np.linalg.norm(J) / math.sqrt(H)
        linear[t] = np.linalg.norm(W_power) / math.sqrt(H)
    return gains, linear


def layer0_projections(model: Model, x: np.ndarray) -> np.ndarray:
    """xw_t = W_xh x_t + b_h of layer 0 for every step: (T, G*H), a row lookup as in the model."""
    p = model.layer_params(0)
    return (p["W_xh"].T + p["b_h"])[np.asarray(x, dtype=np.int64)]


def state_gains_by_differences(model: Model, x: np.ndarray, state0=None,
                               eps: float = DIFFERENCE_STEP) -> dict[str, np.ndarray]:
    """RMS gains ||d state_t / d state'_0||_F / sqrt(H) of layer 0 by central differences.

    The state after step 0 of x is nudged by +-eps along each unit of each state (h, and c for
    the LSTM), all 2 * S * H nudges as one batch, and steps 1..T-1 run with cell.step (the
    sampler's step, any cell). Keys "h<-h", "c<-c", "h<-c", "c<-h": the output state, then the
    nudged one, the rest of the state at step 0 held fixed. In float64 the error is about eps^2
    (truncation) plus 1e-16 / eps (rounding), so gains are good to about 1e-10 relative to 1 and
    meaningless below a floor of about 1e-10.
    """
    model = analysis_model(model)
    cell, p, H = model.cell, model.layer_params(0), model.spec.hidden_size
    names = cell.state_names
    S = len(names)
    xw = layer0_projections(model, x)
    T = len(xw)
    start = cell.step(xw[:1], initial_state(model, state0)[0], p)  # the state after step 0
    nudges = np.concatenate([np.eye(H) * eps, -np.eye(H) * eps])  # (2H, H): +e_i, then -e_i
    B = 2 * S * H
    state = []
    for j in range(S):
        rows = np.repeat(start[j], B, axis=0)
        rows[2 * H * j:2 * H * (j + 1)] += nudges  # the block of columns that nudges state j
        state.append(rows)
    state = tuple(state)
    gains = {f"{out}<-{into}": np.zeros(T) for out in names for into in names}
    for name in names:
        gains[f"{name}<-{name}"][0] = 1.0  # d state_0 / d state_0 = I
    for t in range(1, T):
        state = cell.step(np.repeat(xw[t:t + 1], B, axis=0), state, p)
        for i, out in enumerate(names):
            for j, into in enumerate(names):
                block = state[i][2 * H * j:2 * H * (j + 1)]
                J = (block[:H] - block[H:]) / (2 * eps)  # row u: d out_t / d into_0[u]
                gains[f"{out}<-{into}"][t] = np.linalg.norm(J) / math.sqrt(H)
    return gains


@dataclass
class Impulse:
    """Impulse responses of the scalar recurrence next to the trained model's along the chunk."""

    weights: tuple[float, ...]
    scalar: np.ndarray  # (T, len(weights)) h_t for x = (1, 0, 0, ...)
    model_gain: np.ndarray  # (T,) ||dh_t/dh_0||_F / sqrt(H), layer 0
    linear_gain: np.ndarray | None  # (T,) ||W_hh^t||_F / sqrt(H): the RNN without f
    model_decay: Decay
    linear_decay: Decay | None
    cell: str = "rnn"  # the model's cell
    method: str = "exact Jacobian product"
    state_gains: dict[str, np.ndarray] | None = None  # "h<-h", "c<-c", ... (LSTM, GRU)

    @property
    def state_decays(self) -> dict[str, Decay]:
        return {key: fit_decay(v) for key, v in (self.state_gains or {}).items()}

    def to_dict(self) -> dict:
        return {
            "cell": self.cell,
            "method": self.method,
            "length": len(self.model_gain),
            "scalar": {f"{w:g}": self.scalar[:, i].tolist() for i, w in enumerate(self.weights)},
            "model_gain": self.model_gain.tolist(),
            "linear_gain": None if self.linear_gain is None else self.linear_gain.tolist(),
            "model_decay": self.model_decay.to_dict(),
            "linear_decay": None if self.linear_decay is None else self.linear_decay.to_dict(),
            "state_gains": (None if self.state_gains is None
                            else {k: v.tolist() for k, v in self.state_gains.items()}),
            "state_decays": {k: d.to_dict() for k, d in self.state_decays.items()} or None,
        }


def impulse_response(model: Model, x: np.ndarray, state0=None,
                     weights=IMPULSE_WEIGHTS) -> Impulse:
    """The scalar recurrences' response to an impulse, and layer 0's gains along x (T,).

    A cell with a local derivative (the RNN): the exact product of Jacobians (and W_hh's powers
    alone); any other (LSTM, GRU): central differences (state_gains_by_differences), whose
    "h<-h" entry is the model gain."""
    model = analysis_model(model)
    x = np.asarray(x, dtype=np.int64)
    impulse = np.zeros((len(x), len(weights)))
    impulse[0] = 1.0
    scalar = linear_recurrence(np.asarray(weights, dtype=np.float64), impulse)
    if model.cell.local_derivative is not None:
        fwd = model.forward(x[:, None], initial_state(model, state0))
        h = fwd.layers[0][2].h[:, 0]
        gains, linear = jacobian_gains(model.cell.local_derivative(h),
                                       model.layer_params(0)["W_hh"])
        return Impulse(tuple(weights), scalar, gains, linear, fit_decay(gains),
                       fit_decay(linear), cell=model.spec.cell)
    state_gains = state_gains_by_differences(model, x, state0)
    gains = state_gains["h<-h"]
    return Impulse(tuple(weights), scalar, gains, None, fit_decay(gains), None,
                   cell=model.spec.cell, method="central differences",
                   state_gains=state_gains)

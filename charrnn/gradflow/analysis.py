"""Where the gradient dies: backpropagation through time taken apart, one loss step at a time.

For one chunk x_0..x_{T-1} with targets y_0..y_{T-1}, the loss is L = sum_t L_t with
L_t = -log p_t[y_t]. Backpropagating L_t alone through any cell (charrnn.model's backward,
restricted to one loss) reaches the recurrent state s_k = (h_k, and c_k for the LSTM) of every
step k <= t and nothing later. For the vanilla RNN one step back is
    dL_t/dh_{k-1} = W_hh^T (f'(a_k) * dL_t/dh_k)
so the gradient L_t sends back to step k is multiplied by t - k factors W_hh^T diag(f'(a_j)), and
it shrinks or grows geometrically with the singular values of W_hh and with how saturated f is.
The LSTM adds a second path, through its cell state, that multiplies by the forget gate alone:
    dL_t/dc_{k-1} = f_k * dL_t/dc_k + (what reaches c_{k-1} through h_{k-1})
so where f stays near 1 the gradient survives many steps (the seeds' "cure"). The GRU's
h_t = n + z * (h_{t-1} - n) has the same kind of direct path, weighted by the update gate z.
Which gate carries a cell's direct path, if any, is the cell's own fact (cell.carrying_gate).

The loss steps ride the batch axis: the chunk is copied into T columns, column t keeps only
loss t (an identity mask), and one backward pass with keep_state_grads returns
state_grads[layer][i][k, t] = dL_t/dstate_k for every layer, state, k and t at once.

The input weights' gradient splits into one component per loss step t and input step k <= t:
    dL/dW_xh = sum_t sum_{k<=t} dxw_k^(t) x_k^T,       dxw_k^(t) = dL_t/dxw_k
(xw_k = W_xh x_k + b_h is layer 0's input projection, G*H wide for a cell of G gates), and since
x_k is one-hot, component (t, k) has the norm ||dxw_k^(t)||: how much input k moves the weights
to lower loss t. These components must add up to the trainer's gradient of l0.W_xh exactly.

Everything here is plain NumPy in float64 and without dropout (the model as evaluated):
`analyse_chunk` returns a GradFlow whose `to_dict()` is the JSON that `charrnn gradflow` prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.model import (
    Forward,
    Model,
    scatter_rows,
    softmax_loss_backward,
    softmax_loss_forward,
)

SATURATION = 0.95  # |h| above this: tanh'(a) = 1 - h^2 < 0.1, the unit passes little gradient
NEAR_ONE = 0.9  # a gate above this lets most of the gradient through its direct path
SUM_TOLERANCE = 1e-10  # components vs the trainer's gradient, relative to its largest entry
VANISHED = 1e-3  # "the gradient has died": below this fraction of its size at lag 0
MAX_WORK_BYTES = 2**30  # the per-loss forward and backward over T copies must fit in this


# --- the model as gradflow analyses it ---------------------------------------------------------

def analysis_model(model: Model) -> Model:
    """The same weights in float64 and with dropout off: the model as evaluated, and 1e-10
    checks that mean something whatever dtype it was trained in."""
    spec = replace(model.spec, dtype="float64", dropout=0.0)
    return Model(spec, {name: np.asarray(value, dtype=np.float64)
                        for name, value in model.params.items()})


def initial_state(model: Model, state0=None, batch: int = 1) -> tuple:
    """state0 (per layer, a tuple of (H,) or (1, H) arrays; None: zeros) copied into batch rows."""
    if state0 is None:
        return model.zero_state(batch)
    H = model.spec.hidden_size
    return tuple(tuple(np.repeat(np.asarray(a, dtype=np.float64).reshape(1, H), batch, axis=0)
                       for a in layer) for layer in state0)


def check_work_size(length: int, model: Model) -> None:
    """Refuse a chunk whose T copies would not fit in MAX_WORK_BYTES (a rough upper count)."""
    spec = model.spec
    per_pair = 8 * (spec.num_layers * (3 * model.cell.gates + 8) * spec.hidden_size
                    + 3 * spec.vocab_size)
    need = length * length * per_pair
    if need > MAX_WORK_BYTES:
        most = int(math.sqrt(MAX_WORK_BYTES / per_pair))
        raise CharRNNError(f"--length {length} with this model ({spec.describe()}) needs about "
                           f"{need / 2**30:.1f} GiB for the per-loss gradients; use --length "
                           f"{most} or less")


# --- backward, one loss step at a time ---------------------------------------------------------

class PerLoss(NamedTuple):
    """Every loss step's gradient, kept apart (steps and losses numbered 0..T-1)."""

    losses: np.ndarray  # (T,) L_t in nats
    state_grads: list  # [layer][state] (T, T, H) indexed [k, t]: dL_t/dstate_k, 0 where k > t
    dstate0: tuple  # [layer][state] (T, H) indexed [t]: dL_t/dstate_{-1} (the initial state)
    dxw0: np.ndarray  # (T, T, G*H) indexed [k, t]: dL_t/dxw_k of layer 0
    forward: Forward  # the forward over the T copies (all columns equal)


def per_loss_backward(model: Model, x: np.ndarray, y: np.ndarray, state0=None) -> PerLoss:
    """dL_t/dstate_k for every loss t, layer, state and step k, in one batched backward pass.

    x, y: (T,) indices; state0 as initial_state takes it. The chunk is copied into T columns
    (batch rows); the identity mask keeps loss t in column t only, so the backward carries each
    loss's gradient on its own, where the trainer carries their sum.
    """
    model = analysis_model(model)
    x, y = np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64)
    T = len(x)
    model.check_inputs(x[:, None], y[:, None], initial_state(model, state0))
    check_work_size(T, model)
    copies_x = np.repeat(x[:, None], T, axis=1)
    copies_y = np.repeat(y[:, None], T, axis=1)
    fwd = model.forward(copies_x, initial_state(model, state0, T))  # no dropout_rng: no dropout
    _, _, cache = softmax_loss_forward(fwd.h_top, copies_y, np.eye(T, dtype=bool),
                                       model.params["W_hy"], model.params["b_y"])
    p = cache[3]  # (T * T, V) probabilities, row t * T + column; backward overwrites them
    steps = np.arange(T)
    with np.errstate(divide="ignore"):
        losses = -np.log(p[steps * T + steps, y])
    dh_top, _, _ = softmax_loss_backward(1.0, cache)
    _, dstate0, state_grads, dxw0 = model.backward(dh_top, fwd, keep_state_grads=True)
    return PerLoss(losses, list(state_grads), dstate0, dxw0, fwd)


def xh_components(dxw0: np.ndarray, x: np.ndarray, vocab_size: int):
    """Norms of dL/dW_xh's components by loss step t and input step k, and their sum.

    dxw0: (T, T, G*H) [k, t] from per_loss_backward; x: (T,) inputs. Component (t, k) is
    dxw_k^(t) x_k^T with x_k one-hot, so its norm is ||dxw_k^(t)|| and the sum puts each dxw into
    column x_k of W_xh. Returns norms (T, T) indexed [t, k] and the sum (G*H, V).
    """
    norms = np.sqrt(np.einsum("ktg,ktg->tk", dxw0, dxw0))
    total = scatter_rows(np.asarray(x), dxw0.sum(axis=1), vocab_size).T
    return norms, total


# --- reading the numbers -------------------------------------------------------------------------

@dataclass
class Decay:
    """A log-linear fit norm ~ C * rate^lag, and where the measured curve falls below VANISHED."""

    rate_per_step: float | None  # < 1: vanishing, > 1: exploding
    steps_per_tenfold: float | None  # lags for a 10x change (None when the rate is 1 or unknown)
    vanished_at_lag: int | None  # first lag below VANISHED x the lag-0 norm (None: never)

    def to_dict(self) -> dict:
        return {"rate_per_step": self.rate_per_step, "steps_per_tenfold": self.steps_per_tenfold,
                "vanished_at_lag": self.vanished_at_lag}


def fit_decay(norms_by_lag: np.ndarray) -> Decay:
    """Least squares of log(norm) on the lag over the positive, finite norms."""
    norms_by_lag = np.asarray(norms_by_lag, dtype=np.float64)
    lags = np.arange(len(norms_by_lag))
    usable = np.isfinite(norms_by_lag) & (norms_by_lag > 0)
    rate = tenfold = None
    if usable.sum() >= 2:
        slope = np.polyfit(lags[usable], np.log(norms_by_lag[usable]), 1)[0]
        rate = float(math.exp(slope))
        tenfold = None if slope == 0 else float(math.log(10.0) / abs(slope))
    below = np.flatnonzero(norms_by_lag < VANISHED * norms_by_lag[0]) if len(lags) else []
    vanished = int(below[0]) if len(below) and norms_by_lag[0] > 0 else None
    return Decay(rate, tenfold, vanished)


def saturation_fraction(h: np.ndarray, activation: str) -> float | None:
    """Share of hidden values with |h| > SATURATION (tanh only; relu does not saturate)."""
    return float(np.mean(np.abs(h) > SATURATION)) if activation == "tanh" else None


def gate_summary(values: np.ndarray) -> dict:
    """A gate's values (T, H) along the chunk: mean, share above NEAR_ONE, geometric mean (the
    average factor per step of the path the gate scales), and the mean and share at each step."""
    values = np.asarray(values, dtype=np.float64)
    tiny = np.finfo(np.float64).tiny
    return {"mean": float(values.mean()), "near_1": float(np.mean(values > NEAR_ONE)),
            "threshold": NEAR_ONE,
            "geometric_mean": float(np.exp(np.mean(np.log(np.maximum(values, tiny))))),
            "mean_by_step": values.mean(axis=1).tolist(),
            "near_1_by_step": np.mean(values > NEAR_ONE, axis=1).tolist()}


def recurrent_weights(W_hh: np.ndarray, gate_names: tuple[str, ...] | None) -> dict:
    """Singular values of W_hh (G*H, H), and each gate block's largest when G > 1."""
    s = np.linalg.svd(W_hh, compute_uv=False)
    blocks = None
    H = W_hh.shape[1]
    if W_hh.shape[0] > H:
        names = gate_names or tuple(f"block{g}" for g in range(W_hh.shape[0] // H))
        blocks = {name: float(np.linalg.svd(W_hh[g * H:(g + 1) * H], compute_uv=False)[0])
                  for g, name in enumerate(names)}
    return {"sigma_max": float(s[0]), "singular_values_above_1": int((s > 1).sum()),
            "singular_values": s.tolist(), "gate_sigma_max": blocks}


# --- the whole analysis -------------------------------------------------------------------------

@dataclass
class LayerFlow:
    """One layer's numbers: the last loss's gradient through each state, and what sets its rate."""

    layer: int
    norms: dict[str, np.ndarray]  # state name -> (T,) ||dL_{T-1}/state_k|| for k = 0..T-1
    decays: dict[str, Decay]  # fitted to those norms read by lag
    W_hh: dict  # recurrent_weights()
    saturated: float | None  # share of |h| > SATURATION (tanh RNN only)
    mean_derivative: float | None  # mean f'(a) along the chunk (RNN only)
    gates: dict[str, dict]  # cell.carrying_gate.key -> gate_summary() (none without one)
    derivative_by_step: np.ndarray | None = None  # (T,) mean f'(a_k) at each step (RNN only)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "state_names": list(self.norms),
                "last_loss_grad_norms": {name: v.tolist() for name, v in self.norms.items()},
                "decay": {name: d.to_dict() for name, d in self.decays.items()},
                "W_hh": self.W_hh, "saturated_fraction": self.saturated,
                "mean_activation_derivative": self.mean_derivative,
                "mean_activation_derivative_by_step": (None if self.derivative_by_step is None
                                                       else self.derivative_by_step.tolist()),
                **self.gates}


@dataclass
class GradFlow:
    """What analyse_chunk measures on one chunk (steps numbered 0..T-1, lag = T-1-k)."""

    cell: str
    activation: str | None  # the RNN's f; None for the gated cells
    losses: np.ndarray  # (T,) L_t in nats
    component_norms: np.ndarray  # (T, T) [t, k] ||component (t, k) of dL/dW_xh|| (layer 0)
    sum_difference: float  # max |sum of the components - the trainer's dW_xh|
    gradient_scale: float  # max |the trainer's dW_xh|
    layers: list[LayerFlow]

    # layer 0, under the names the one-layer RNN report always had
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def last_loss_grad_norms(self) -> np.ndarray:
        return self.layers[0].norms["h"]

    @property
    def decay(self) -> Decay:
        return self.layers[0].decays["h"]

    @property
    def singular_values(self) -> np.ndarray:
        return np.asarray(self.layers[0].W_hh["singular_values"])

    @property
    def saturated(self) -> float | None:
        return self.layers[0].saturated

    @property
    def mean_derivative(self) -> float | None:
        return self.layers[0].mean_derivative

    @property
    def sum_ok(self) -> bool:
        return self.sum_difference <= SUM_TOLERANCE * max(1.0, self.gradient_scale)

    @property
    def mean_norm_by_distance(self) -> np.ndarray:
        """Mean component norm over the pairs with t - k = d, for d = 0..T-1."""
        T = len(self.losses)
        return np.array([np.diagonal(self.component_norms, -d).mean() for d in range(T)])

    def to_dict(self) -> dict:
        first = self.layers[0]
        return {
            "cell": self.cell,
            "num_layers": self.num_layers,
            "activation": self.activation,
            "length": len(self.losses),
            "losses": self.losses.tolist(),
            "last_loss_grad_norms": self.last_loss_grad_norms.tolist(),
            "decay": self.decay.to_dict(),
            "W_xh_component_norms": self.component_norms.tolist(),
            "W_xh_mean_norm_by_distance": self.mean_norm_by_distance.tolist(),
            "W_xh_sum_check": {"max_abs_difference": self.sum_difference,
                               "max_abs_gradient": self.gradient_scale,
                               "tolerance": SUM_TOLERANCE, "ok": self.sum_ok},
            "W_hh": first.W_hh,
            "saturated_fraction": first.saturated,
            "mean_activation_derivative": first.mean_derivative,
            "layers": [layer.to_dict() for layer in self.layers],
        }


def layer_statistics(model: Model, cache) -> dict:
    """Saturation and f'(a) (RNN), or the gate that scales the direct path (LSTM: f, GRU: z),
    from column 0 of a layer's forward cache (every column holds the same chunk): LayerFlow's
    saturated, mean_derivative, derivative_by_step and gates."""
    found = {"saturated": None, "mean_derivative": None, "derivative_by_step": None, "gates": {}}
    carrying = model.cell.carrying_gate
    if carrying is not None:
        found["gates"] = {carrying.key: gate_summary(getattr(cache, carrying.field)[:, 0])}
    elif model.cell.local_derivative is not None:
        h = cache.h[:, 0]
        df = model.cell.local_derivative(h)
        found.update(saturated=saturation_fraction(h, model.spec.activation),
                     mean_derivative=float(df.mean()), derivative_by_step=df.mean(axis=1))
    return found  # a cell with neither: no statistics, the gradients still work


def analyse_chunk(model: Model, x: np.ndarray, y: np.ndarray, state0=None) -> GradFlow:
    """Gradient flow through one chunk: x, y (T,) indices, state0 per layer (zeros when None).

    Runs in float64 without dropout whatever the model's dtype and dropout."""
    model = analysis_model(model)
    x, y = np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64)
    per_loss = per_loss_backward(model, x, y, state0)
    norms, total = xh_components(per_loss.dxw0, x, model.spec.vocab_size)
    trainer = model.loss_and_grads(x[:, None], y[:, None], initial_state(model, state0))
    dW_xh = trainer.grads["l0.W_xh"]
    gate_names = model.cell.gate_names if model.cell.gates > 1 else None
    layers = []
    for layer, grads in enumerate(per_loss.state_grads):
        last = {name: np.linalg.norm(g[:, -1], axis=1)  # ||dL_{T-1}/state_k||, k = 0..T-1
                for name, g in zip(model.cell.state_names, grads)}
        layers.append(LayerFlow(
            layer=layer, norms=last,
            decays={name: fit_decay(v[::-1]) for name, v in last.items()},
            W_hh=recurrent_weights(model.layer_params(layer)["W_hh"], gate_names),
            **layer_statistics(model, per_loss.forward.layers[layer][2])))
    return GradFlow(
        cell=model.spec.cell,
        activation=model.spec.chosen_activation,
        losses=per_loss.losses,
        component_norms=norms,
        sum_difference=float(np.max(np.abs(total - dW_xh))),
        gradient_scale=float(np.max(np.abs(dW_xh))),
        layers=layers,
    )

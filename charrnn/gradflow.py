"""Where the gradient dies: backpropagation through time taken apart, one loss step at a time.

For one chunk x_0..x_{T-1} with targets y_0..y_{T-1}, the loss is L = sum_t L_t with
L_t = -log p_t[y_t]. Backpropagating L_t alone (model.py's backward, restricted to one loss):
    dL_t/dh_t     = W_hy^T do_t                             the loss reaches h_t directly
    dL_t/dh_{k-1} = W_hh^T (f'(a_k) * dL_t/dh_k)            for k <= t; nothing reaches k > t
so the gradient that L_t sends back to step k is multiplied by t - k factors W_hh^T diag(f'(a_j)),
and it shrinks or grows geometrically with the singular values of W_hh and with how saturated f is.

The input weights' gradient splits into one component per loss step t and input step k <= t:
    dL/dW_xh = sum_t sum_{k<=t} da_k^(t) x_k^T,       da_k^(t) = f'(a_k) * dL_t/dh_k
and since x_k is one-hot, component (t, k) has the norm ||da_k^(t)||: how much input k moves the
weights to lower loss t. These components must add up to the trainer's dW_xh exactly.

The impulse response shows the same thing forward: the scalar recurrence h_t = w h_{t-1} + x_t
answers x = (1, 0, 0, ...) with h_t = w^t, and the trained model's counterpart is the Jacobian
dh_t/dh_0 = prod_j diag(f'(a_j)) W_hh along the chunk.

Everything here is plain NumPy in float64, usable from a notebook: `analyse_chunk` and
`impulse_response` return dataclasses whose `to_dict()` is the JSON that `charrnn gradflow` prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.model import (
    activation_derivative,
    loss_and_grads,
    rnn_forward,
    scatter_rows,
    softmax_loss_backward,
    softmax_loss_forward,
)

SATURATION = 0.95  # |h| above this: tanh'(a) = 1 - h^2 < 0.1, the unit passes little gradient
SUM_TOLERANCE = 1e-10  # components vs the trainer's gradient, relative to its largest entry
VANISHED = 1e-3  # "the gradient has died": below this fraction of its size at lag 0
IMPULSE_WEIGHTS = (-0.9, 1.1)  # one decaying (and alternating), one exploding recurrence
MAX_WORK_BYTES = 2**30  # the (T, T, H) arrays of per-loss gradients must fit in this


# --- the forward pass over one chunk -----------------------------------------------------------

def as_float64(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The analysis runs in float64 whatever the checkpoint's dtype, so 1e-10 checks mean it."""
    return {name: np.asarray(value, dtype=np.float64) for name, value in params.items()}


def chunk_forward(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, h0: np.ndarray,
                  activation: str = "tanh"):
    """Forward one sequence (B = 1) and the loss's direct gradients.

    x, y: (T,) indices; h0: (H,). Returns h (T, H), the losses L_t (T,) in nats,
    dh_out (T, H) = W_hy^T do_t (what L_t sends to h_t directly) and rnn_forward's cache.
    """
    h, rnn_cache = rnn_forward(x[:, None], h0[None, :], params["W_xh"], params["W_hh"],
                               params["b_h"], activation)
    _, _, out_cache = softmax_loss_forward(h, y[:, None], None, params["W_hy"], params["b_y"])
    p = out_cache[3]  # (T, V) probabilities
    losses = -np.log(p[np.arange(len(y)), y])
    dh_out, _, _ = softmax_loss_backward(1.0, out_cache)
    return h[:, 0], losses, dh_out[:, 0], rnn_cache


# --- backward, one loss step at a time ---------------------------------------------------------

def per_loss_backward(dh_out: np.ndarray, cache):
    """dL_t/dh_k for every loss step t and step k <= t, and dL_t/dh_{-1} (the initial state).

    dh_out: (T, H), row t = W_hy^T do_t; cache: rnn_forward's for one sequence (B = 1).
    Returns dh (T, T, H) indexed [k, t], zero where k > t, and dh0 (T, H) indexed [t].
    The loss steps ride along the batch axis: one backward pass carries all T losses' gradients,
    each entering at its own step, where model.rnn_backward carries their sum.
    """
    h, W_hh, activation = cache.h, cache.W_hh, cache.activation
    df = activation_derivative(h[:, 0], activation)  # (T, H) f'(a_k)
    T, H = df.shape
    dh = np.zeros((T, T, H), dtype=df.dtype)
    steps = np.arange(T)
    dh[steps, steps] = dh_out  # dL_t/dh_t = W_hy^T do_t
    for k in range(T - 1, 0, -1):
        # dL_t/dh_{k-1} = W_hh^T (f'(a_k) * dL_t/dh_k), for the losses t >= k that reach step k
        dh[k - 1, k:] = (df[k] * dh[k, k:]) @ W_hh
    dh0 = (df[0] * dh[0]) @ W_hh
    return dh, dh0


def xh_components(dh: np.ndarray, df: np.ndarray, x: np.ndarray, vocab_size: int):
    """Norms of dL/dW_xh's components by loss step t and input step k, and their sum.

    dh: (T, T, H) [k, t] from per_loss_backward; df: (T, H) f'(a_k); x: (T,) inputs.
    Component (t, k) is da_k^(t) x_k^T with x_k one-hot, so its norm is ||da_k^(t)|| and the sum
    puts each da into column x_k of W_xh. Returns norms (T, T) indexed [t, k] and the sum (H, V).
    """
    da = df[:, None, :] * dh  # da_k^(t) = f'(a_k) * dL_t/dh_k, (k, t, H)
    norms = np.sqrt(np.einsum("kth,kth->tk", da, da))
    total = scatter_rows(x, da.sum(axis=1), vocab_size).T  # dW_xh[:, x_k] += sum_t da_k^(t)
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


# --- the whole analysis -------------------------------------------------------------------------

@dataclass
class GradFlow:
    """What analyse_chunk measures on one chunk (steps numbered 0..T-1, lag = T-1-k)."""

    activation: str
    losses: np.ndarray  # (T,) L_t in nats
    last_loss_grad_norms: np.ndarray  # (T,) ||dL_{T-1}/dh_k|| for k = 0..T-1
    decay: Decay  # fitted to last_loss_grad_norms read by lag
    component_norms: np.ndarray  # (T, T) [t, k] ||component (t, k) of dL/dW_xh||
    sum_difference: float  # max |sum of the components - the trainer's dW_xh|
    gradient_scale: float  # max |the trainer's dW_xh|
    singular_values: np.ndarray  # of W_hh, descending
    saturated: float | None  # share of |h| > SATURATION along the chunk
    mean_derivative: float  # mean f'(a) along the chunk

    @property
    def sum_ok(self) -> bool:
        return self.sum_difference <= SUM_TOLERANCE * max(1.0, self.gradient_scale)

    @property
    def mean_norm_by_distance(self) -> np.ndarray:
        """Mean component norm over the pairs with t - k = d, for d = 0..T-1."""
        T = len(self.losses)
        return np.array([np.diagonal(self.component_norms, -d).mean() for d in range(T)])

    def to_dict(self) -> dict:
        s = self.singular_values
        return {
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
            "W_hh": {"sigma_max": float(s[0]), "singular_values_above_1": int((s > 1).sum()),
                     "singular_values": s.tolist()},
            "saturated_fraction": self.saturated,
            "mean_activation_derivative": self.mean_derivative,
        }


def check_work_size(length: int, hidden_size: int) -> None:
    need = 2 * length * length * hidden_size * 8
    if need > MAX_WORK_BYTES:
        most = int(math.sqrt(MAX_WORK_BYTES / (16 * hidden_size)))
        raise CharRNNError(f"--length {length} with hidden_size {hidden_size} needs "
                           f"{need / 2**30:.1f} GiB for the per-loss gradients; use --length "
                           f"{most} or less")


def analyse_chunk(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray,
                  h0: np.ndarray | None = None, activation: str = "tanh") -> GradFlow:
    """Gradient flow through one chunk: x, y (T,) indices, h0 (H,) (zeros when None), float64."""
    params = as_float64(params)
    x, y = np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64)
    H, V = params["W_xh"].shape
    check_work_size(len(x), H)
    h0 = np.zeros(H) if h0 is None else np.asarray(h0, dtype=np.float64)
    h, losses, dh_out, cache = chunk_forward(params, x, y, h0, activation)
    dh, _ = per_loss_backward(dh_out, cache)
    df = activation_derivative(h, activation)
    norms, total = xh_components(dh, df, x, V)
    _, _, grads, _, _ = loss_and_grads(params, x[:, None], y[:, None], h0[None, :], None,
                                       activation)
    last = np.linalg.norm(dh[:, -1], axis=1)  # ||dL_{T-1}/dh_k||, k = 0..T-1
    return GradFlow(
        activation=activation,
        losses=losses,
        last_loss_grad_norms=last,
        decay=fit_decay(last[::-1]),
        component_norms=norms,
        sum_difference=float(np.max(np.abs(total - grads["W_xh"]))),
        gradient_scale=float(np.max(np.abs(grads["W_xh"]))),
        singular_values=np.linalg.svd(params["W_hh"], compute_uv=False),
        saturated=saturation_fraction(h, activation),
        mean_derivative=float(df.mean()),
    )


# --- impulse responses --------------------------------------------------------------------------

def linear_recurrence(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """h_t = w * h_{t-1} + x_t from h_{-1} = 0, for a diagonal w (n,) and inputs x (T, n)."""
    h = np.empty_like(x, dtype=np.float64)
    h_prev = np.zeros(x.shape[1])
    for t in range(x.shape[0]):
        h_prev = h[t] = w * h_prev + x[t]
    return h


def jacobian_gains(df: np.ndarray, W_hh: np.ndarray):
    """RMS gains ||dh_t/dh_0||_F / sqrt(H) of the model and ||W_hh^t||_F / sqrt(H) without f.

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


@dataclass
class Impulse:
    """Impulse responses of the scalar recurrence next to the trained model's along the chunk."""

    weights: tuple[float, ...]
    scalar: np.ndarray  # (T, len(weights)) h_t for x = (1, 0, 0, ...)
    model_gain: np.ndarray  # (T,) ||dh_t/dh_0||_F / sqrt(H)
    linear_gain: np.ndarray  # (T,) ||W_hh^t||_F / sqrt(H): the recurrence without f
    model_decay: Decay
    linear_decay: Decay

    def to_dict(self) -> dict:
        return {
            "length": len(self.model_gain),
            "scalar": {f"{w:g}": self.scalar[:, i].tolist() for i, w in enumerate(self.weights)},
            "model_gain": self.model_gain.tolist(),
            "linear_gain": self.linear_gain.tolist(),
            "model_decay": self.model_decay.to_dict(),
            "linear_decay": self.linear_decay.to_dict(),
        }


def impulse_response(params: dict[str, np.ndarray], x: np.ndarray, h0: np.ndarray | None = None,
                     activation: str = "tanh", weights=IMPULSE_WEIGHTS) -> Impulse:
    """The scalar recurrences' response to an impulse, and the model's gains along x (T,)."""
    params = as_float64(params)
    x = np.asarray(x, dtype=np.int64)
    H = params["W_hh"].shape[0]
    h0 = np.zeros(H) if h0 is None else np.asarray(h0, dtype=np.float64)
    h, _ = rnn_forward(x[:, None], h0[None, :], params["W_xh"], params["W_hh"], params["b_h"],
                       activation)
    impulse = np.zeros((len(x), len(weights)))
    impulse[0] = 1.0
    scalar = linear_recurrence(np.asarray(weights, dtype=np.float64), impulse)
    gains, linear = jacobian_gains(activation_derivative(h[:, 0], activation), params["W_hh"])
    return Impulse(tuple(weights), scalar, gains, linear, fit_decay(gains), fit_decay(linear))

"""The vanilla RNN: forward and hand-written backward (truncated BPTT), batched over (time, batch).

Equations (column form, as in min-char-rnn):
    a_t = W_xh x_t + W_hh h_{t-1} + b_h        h_t = f(a_t), f = tanh (or relu)
    o_t = W_hy h_t + b_y                       p_t = softmax(o_t)      L = sum_t -log p_t[y_t]
Backward:
    do_t = p_t - onehot(y_t)                   dh_t = W_hy^T do_t + dh_next
    da_t = f'(a_t) * dh_t                      dh_next = W_hh^T da_t

Arrays are time-major: h has shape (T, B, H) and each h[t] is a (B, H) block of row vectors, so the
row form of a_t is x_t W_xh^T + h_{t-1} W_hh^T + b_h. The weights keep min-char-rnn's shapes:
W_xh (H, V), W_hh (H, H), W_hy (V, H). Only the recurrence loops over time in Python; the input
lookup, the output layer, the softmax and every weight gradient are whole-array operations.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

PARAM_NAMES = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")


def param_shapes(vocab_size: int, hidden_size: int) -> dict[str, tuple[int, ...]]:
    V, H = vocab_size, hidden_size
    return {"W_xh": (H, V), "W_hh": (H, H), "b_h": (H,), "W_hy": (V, H), "b_y": (V,)}


def init_params(vocab_size: int, hidden_size: int, init_scale: float, rng: np.random.Generator,
                dtype="float64") -> dict[str, np.ndarray]:
    """N(0, 1) * init_scale weights drawn in min-char-rnn's order (Wxh, Whh, Why); zero biases."""
    shapes = param_shapes(vocab_size, hidden_size)
    params = {}
    for name in ("W_xh", "W_hh", "W_hy"):
        params[name] = (rng.standard_normal(shapes[name]) * init_scale).astype(dtype)
    for name in ("b_h", "b_y"):
        params[name] = np.zeros(shapes[name], dtype=dtype)
    return {name: params[name] for name in PARAM_NAMES}


# --- scratch memory ---------------------------------------------------------------------------

class Workspace:
    """Named scratch arrays reused from step to step, so the hot loop allocates nothing.

    get() hands out a view of a buffer at least as large as asked for (lines-mode batches vary in
    length): callers must not keep what it returns past the next call with the same name.
    """

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != np.dtype(dtype):
            buffer = self._buffers[name] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)


def _scratch(workspace: Workspace | None, name: str, shape, dtype) -> np.ndarray:
    return np.empty(shape, dtype=dtype) if workspace is None else workspace.get(name, shape, dtype)


# --- the recurrence ---------------------------------------------------------------------------

class RNNCache(NamedTuple):
    x: np.ndarray  # (T, B) inputs
    h: np.ndarray  # (T, B, H): h_t for t = 0..T-1, a view of states[1:]
    states: np.ndarray  # (T + 1, B, H): h0 then h, so h_{t-1} for every t is states[:-1]
    W_xh_shape: tuple[int, int]
    W_hh: np.ndarray
    activation: str


def rnn_forward(x: np.ndarray, h0: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray,
                b_h: np.ndarray, activation: str = "tanh", workspace: Workspace | None = None):
    """h_t = f(W_xh x_t + W_hh h_{t-1} + b_h) for t = 0..T-1.

    x: (T, B) character indices; h0: (B, H). Returns h (T, B, H) and the cache for rnn_backward.
    """
    T, B = x.shape
    H = W_hh.shape[0]
    states = _scratch(workspace, "states", (T + 1, B, H), W_hh.dtype)
    states[0] = h0
    h = states[1:]  # holds a_t until f is applied
    # x_t W_xh^T for a one-hot x_t is row x_t of W_xh^T: a lookup, never a one-hot product; the
    # bias joins the (V, H) table once rather than all T * B rows.
    table = W_xh.T + b_h
    # mode="clip" lets take() write straight into out=; indices come from a Vocabulary, in range
    np.take(table, x, axis=0, out=h, mode="clip")
    W_hh_T = np.ascontiguousarray(W_hh.T)  # np.dot on contiguous operands: least per-call cost
    recurrent = np.empty((B, H), dtype=W_hh.dtype)
    f = np.tanh if activation == "tanh" else _relu
    rows = list(states)  # the (B, H) views, made once rather than at every step
    dot, add = np.dot, np.add  # at batch 1 the loop's cost is its calls: no lookups in it
    for h_prev, h_t in zip(rows[:-1], rows[1:]):
        dot(h_prev, W_hh_T, out=recurrent)  # W_hh h_{t-1}
        add(h_t, recurrent, out=h_t)
        f(h_t, out=h_t)
    return h, RNNCache(x=x, h=h, states=states, W_xh_shape=W_xh.shape, W_hh=W_hh,
                       activation=activation)


def rnn_backward(dh: np.ndarray, cache: RNNCache, grads_out: dict | None = None,
                 workspace: Workspace | None = None):
    """Gradients of rnn_forward's inputs (h0, W_xh, W_hh, b_h), given dh (T, B, H) from the outputs.

    dh is overwritten: it becomes da. dh_next = W_hh^T da_t carries step t's gradient back to
    t - 1. grads_out: arrays to write dW_xh, dW_hh, db_h into (views of a flat gradient).
    """
    x, h, states, (H, V), W_hh, activation = (cache.x, cache.h, cache.states, cache.W_xh_shape,
                                             cache.W_hh, cache.activation)
    T, B = x.shape
    # f'(a_t) depends only on h_t, so it is one whole-array operation, outside the time loop.
    df = activation_derivative(h, activation, out=_scratch(workspace, "df", h.shape, h.dtype))
    da = dh
    dh_next = np.zeros((B, H), dtype=dh.dtype)
    dot, add, multiply = np.dot, np.add, np.multiply
    for da_t, df_t in zip(reversed(list(da)), reversed(list(df))):
        add(da_t, dh_next, out=da_t)  # dh_t = W_hy^T do_t + dh_next
        multiply(da_t, df_t, out=da_t)  # da_t = f'(a_t) * dh_t
        dot(da_t, W_hh, out=dh_next)  # dh_next = W_hh^T da_t
    grads_out = grads_out or {}
    da_flat = da.reshape(T * B, H)
    # dW_hh = sum_t da_t h_{t-1}^T: one product over all steps, h_{-1} = h0 being states[0]
    dW_hh = np.matmul(da_flat.T, states[:-1].reshape(T * B, H), out=grads_out.get("W_hh"))
    db_h = np.add.reduce(da_flat, axis=0, out=grads_out.get("b_h"))
    dW_xh_T = scatter_rows(x.reshape(-1), da_flat, V)  # dW_xh[:, x_t] += da_t
    dW_xh = grads_out.get("W_xh")
    if dW_xh is None:
        dW_xh = dW_xh_T.T
    else:
        dW_xh[...] = dW_xh_T.T
    dh0 = dh_next
    return dh0, dW_xh, dW_hh, db_h


def activation_derivative(h: np.ndarray, activation: str,
                          out: np.ndarray | None = None) -> np.ndarray:
    """f'(a) from h = f(a): tanh'(a) = 1 - h^2; relu'(a) = [a > 0] = [h > 0]."""
    if out is None:
        out = np.empty_like(h)
    if activation == "tanh":
        np.multiply(h, h, out=out)
        np.subtract(1.0, out, out=out)
        return out
    np.greater(h, 0, out=out)
    return out


def _relu(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0, out=out)


SMALL_SCATTER = 4096  # entries; below this one bincount beats sorting
MANY_GROUPS = 256  # distinct indices; above this one reduceat beats a Python loop over groups


def scatter_rows(indices: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    """out[i] = sum of rows[j] where indices[j] == i, for i < count, without np.add.at.

    Rows are sorted by index (a stable argsort) so that each index's rows form one contiguous
    block, summed in a single call. No one-hot matrix is built. Measured in
    benchmarks/bench_scatter.py: at (6400 rows, H 512) this is 10x faster than np.add.at and 5x
    faster than np.add.reduceat along axis 0; tiny inputs (batch 1) use one bincount instead.
    """
    width = rows.shape[1]
    if indices.size * width <= SMALL_SCATTER:
        bins = (indices.astype(np.intp)[:, None] * width + np.arange(width)).reshape(-1)
        sums = np.bincount(bins, weights=rows.reshape(-1), minlength=count * width)
        return sums.reshape(count, width).astype(rows.dtype, copy=False)
    order = np.argsort(indices, kind="stable")
    sorted_rows = np.take(rows, order, axis=0)
    counts = np.bincount(indices, minlength=count)
    present = np.flatnonzero(counts)
    ends = np.cumsum(counts)
    out = np.zeros((count, width), dtype=rows.dtype)
    if len(present) > MANY_GROUPS:
        out[present] = np.add.reduceat(sorted_rows, ends[present] - counts[present], axis=0)
        return out
    for index in present.tolist():
        sorted_rows[ends[index] - counts[index]: ends[index]].sum(axis=0, out=out[index])
    return out


# --- the output layer and the softmax cross-entropy -------------------------------------------

def softmax_loss_forward(h: np.ndarray, y: np.ndarray, mask: np.ndarray | None,
                         W_hy: np.ndarray, b_y: np.ndarray, workspace: Workspace | None = None):
    """o_t = W_hy h_t + b_y; p_t = softmax(o_t); nll_t = -log p_t[y_t], over all (t, b) at once.

    Returns (sum of nll over unmasked positions, their count, cache). The softmax is max-shifted,
    so logits never overflow: -log p[y] = log sum exp(o - max o) - (o[y] - max o).
    """
    T, B, H = h.shape
    h_rows = h.reshape(T * B, H)
    targets = y.reshape(-1)
    rows = np.arange(T * B)
    p = np.matmul(h_rows, W_hy.T, out=_scratch(workspace, "p", (T * B, W_hy.shape[0]), h.dtype))
    p += b_y  # p holds the logits o until the softmax
    # ufunc.reduce rather than p.max / p.sum: the same sums, without their per-call wrapping
    p -= np.maximum.reduce(p, axis=1, keepdims=True)
    target_logit = p[rows, targets]
    np.exp(p, out=p)
    total = np.add.reduce(p, axis=1)
    nll = np.log(total) - target_logit
    p /= total[:, None]
    weights = None if mask is None else mask.reshape(-1).astype(h.dtype)
    if weights is not None:
        nll *= weights
    count = T * B if mask is None else int(mask.sum())
    return float(np.add.reduce(nll)), count, (h_rows, targets, weights, p, W_hy, h.shape)


def softmax_loss_backward(scale: float, cache, grads_out: dict | None = None,
                          workspace: Workspace | None = None):
    """Gradients (dh, dW_hy, db_y) of scale * (sum of nll) with respect to h, W_hy, b_y."""
    h_rows, targets, weights, p, W_hy, h_shape = cache
    grads_out = grads_out or {}
    do = p  # do_t = p_t - onehot(y_t), reusing p's memory
    do[np.arange(len(targets)), targets] -= 1.0
    if weights is not None:
        do *= weights[:, None]  # padding contributes neither loss nor gradient
    if scale != 1.0:  # batch 1: min-char-rnn's plain sum, nothing to scale
        do *= scale
    dW_hy = np.matmul(do.T, h_rows, out=grads_out.get("W_hy"))  # sum_t do_t h_t^T
    db_y = np.add.reduce(do, axis=0, out=grads_out.get("b_y"))
    dh = np.matmul(do, W_hy, out=_scratch(workspace, "dh", h_rows.shape, h_rows.dtype))
    return dh.reshape(h_shape), dW_hy, db_y  # dh_t = W_hy^T do_t


# --- the whole model ---------------------------------------------------------------------------

def loss_and_grads(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray,
                   h0: np.ndarray, mask: np.ndarray | None = None, activation: str = "tanh",
                   scale: float | None = None, grads_out: dict[str, np.ndarray] | None = None,
                   workspace: Workspace | None = None):
    """The objective scale * sum of -log p_t[y_t] over a chunk and its gradients.

    x, y: (T, B) indices; mask: (T, B) booleans or None; h0: (B, H). scale defaults to 1/B: the
    loss is summed over time and averaged over the streams (min-char-rnn's exactly when B = 1).
    grads_out: arrays (e.g. views of one flat vector) that receive the gradients; workspace:
    scratch memory reused between calls. Returns (nll_sum, count, grads, dh0, h_last), where
    nll_sum / count is nats per character.
    """
    if scale is None:
        scale = 1.0 / x.shape[1]
    h, rnn_cache = rnn_forward(x, h0, params["W_xh"], params["W_hh"], params["b_h"], activation,
                               workspace)
    nll_sum, count, out_cache = softmax_loss_forward(h, y, mask, params["W_hy"], params["b_y"],
                                                     workspace)
    h_last = h[-1].copy()
    dh, dW_hy, db_y = softmax_loss_backward(scale, out_cache, grads_out, workspace)
    dh0, dW_xh, dW_hh, db_h = rnn_backward(dh, rnn_cache, grads_out, workspace)
    grads = {"W_xh": dW_xh, "W_hh": dW_hh, "b_h": db_h, "W_hy": dW_hy, "b_y": db_y}
    return nll_sum, count, grads, dh0, h_last


def forward_loss(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, h0: np.ndarray,
                 mask: np.ndarray | None = None, activation: str = "tanh",
                 workspace: Workspace | None = None):
    """(nll_sum, count, h_last) without the backward pass: for evaluation."""
    h, _ = rnn_forward(x, h0, params["W_xh"], params["W_hh"], params["b_h"], activation,
                       workspace)
    nll_sum, count, _ = softmax_loss_forward(h, y, mask, params["W_hy"], params["b_y"],
                                             workspace)
    return nll_sum, count, h[-1].copy()


def step(params: dict[str, np.ndarray], x_t: np.ndarray, h_prev: np.ndarray,
         activation: str = "tanh"):
    """One step of the recurrence and the output layer, for sampling: (h_t, logits o_t)."""
    a = params["W_xh"].T[x_t] + h_prev @ params["W_hh"].T + params["b_h"]
    h = np.tanh(a) if activation == "tanh" else np.maximum(a, 0)
    return h, h @ params["W_hy"].T + params["b_y"]

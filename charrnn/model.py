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


# --- the recurrence ---------------------------------------------------------------------------

def rnn_forward(x: np.ndarray, h0: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray,
                b_h: np.ndarray, activation: str = "tanh"):
    """h_t = f(W_xh x_t + W_hh h_{t-1} + b_h) for t = 0..T-1.

    x: (T, B) character indices; h0: (B, H). Returns h (T, B, H) and the cache for rnn_backward.
    """
    W_hh_T = np.ascontiguousarray(W_hh.T)  # np.dot on contiguous operands: least per-call cost
    # x_t W_xh^T for a one-hot x_t is row x_t of W_xh^T: a lookup, never a one-hot product.
    h = np.take(np.ascontiguousarray(W_xh.T), x, axis=0)  # (T, B, H), holds a_t until f is applied
    h += b_h
    recurrent = np.empty_like(h0)
    h_prev = h0
    f = np.tanh if activation == "tanh" else _relu
    for t in range(x.shape[0]):
        np.dot(h_prev, W_hh_T, out=recurrent)  # W_hh h_{t-1}
        h[t] += recurrent
        f(h[t], out=h[t])
        h_prev = h[t]
    return h, (x, h0, h, W_xh.shape, W_hh, activation)


def rnn_backward(dh: np.ndarray, cache):
    """Gradients of rnn_forward's inputs (h0, W_xh, W_hh, b_h), given dh (T, B, H) from the outputs.

    dh is overwritten: it becomes da. dh_next carries the gradient from step t back to t-1.
    """
    x, h0, h, W_xh_shape, W_hh, activation = cache
    # f'(a_t) depends only on h_t, so it is one whole-array operation, outside the time loop.
    df = activation_derivative(h, activation)
    da = dh
    dh_next = np.zeros_like(h0)
    for t in reversed(range(x.shape[0])):
        da[t] += dh_next  # dh_t = W_hy^T do_t + dh_next
        da[t] *= df[t]  # da_t = f'(a_t) * dh_t
        np.dot(da[t], W_hh, out=dh_next)  # dh_next = W_hh^T da_t
    T, B, H = h.shape
    da_rows = da.reshape(T * B, H)
    # dW_hh = sum_t da_t h_{t-1}^T, with h_{-1} = h0
    dW_hh = da_rows[B:].T @ h[:-1].reshape((T - 1) * B, H) + da[0].T @ h0
    db_h = da_rows.sum(axis=0)
    dW_xh = scatter_rows(x.reshape(-1), da_rows, W_xh_shape[1]).T  # dW_xh[:, x_t] += da_t
    dh0 = dh_next
    return dh0, dW_xh, dW_hh, db_h


def activation_derivative(h: np.ndarray, activation: str) -> np.ndarray:
    """f'(a) from h = f(a): tanh'(a) = 1 - h^2; relu'(a) = [a > 0] = [h > 0]."""
    if activation == "tanh":
        return 1.0 - h * h
    return (h > 0).astype(h.dtype)


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
                         W_hy: np.ndarray, b_y: np.ndarray):
    """o_t = W_hy h_t + b_y; p_t = softmax(o_t); nll_t = -log p_t[y_t], over all (t, b) at once.

    Returns (sum of nll over unmasked positions, their count, cache). The softmax is max-shifted,
    so logits never overflow: -log p[y] = log sum exp(o - max o) - (o[y] - max o).
    """
    T, B, H = h.shape
    h_rows = h.reshape(T * B, H)
    targets = y.reshape(-1)
    rows = np.arange(T * B)
    p = h_rows @ W_hy.T  # (T*B, V) logits o
    p += b_y
    p -= p.max(axis=1, keepdims=True)
    target_logit = p[rows, targets]
    np.exp(p, out=p)
    total = p.sum(axis=1)
    nll = np.log(total) - target_logit
    p /= total[:, None]
    weights = None if mask is None else mask.reshape(-1).astype(h.dtype)
    if weights is not None:
        nll *= weights
    count = T * B if mask is None else int(mask.sum())
    return float(nll.sum()), count, (h_rows, targets, weights, p, W_hy, h.shape)


def softmax_loss_backward(scale: float, cache):
    """Gradients (dh, dW_hy, db_y) of scale * (sum of nll) with respect to h, W_hy, b_y."""
    h_rows, targets, weights, p, W_hy, h_shape = cache
    do = p  # do_t = p_t - onehot(y_t), reusing p's memory
    do[np.arange(len(targets)), targets] -= 1.0
    if weights is not None:
        do *= weights[:, None]  # padding contributes neither loss nor gradient
    do *= scale
    dW_hy = do.T @ h_rows  # sum_t do_t h_t^T
    db_y = do.sum(axis=0)
    dh = (do @ W_hy).reshape(h_shape)  # W_hy^T do_t
    return dh, dW_hy, db_y


# --- the whole model ---------------------------------------------------------------------------

def loss_and_grads(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray,
                   h0: np.ndarray, mask: np.ndarray | None = None, activation: str = "tanh",
                   scale: float | None = None):
    """The objective scale * sum of -log p_t[y_t] over a chunk and its gradients.

    x, y: (T, B) indices; mask: (T, B) booleans or None; h0: (B, H). scale defaults to 1/B: the
    loss is summed over time and averaged over the streams (min-char-rnn's exactly when B = 1).
    Returns (nll_sum, count, grads, dh0, h_last): nll_sum / count is nats per character.
    """
    if scale is None:
        scale = 1.0 / x.shape[1]
    h, rnn_cache = rnn_forward(x, h0, params["W_xh"], params["W_hh"], params["b_h"], activation)
    nll_sum, count, out_cache = softmax_loss_forward(h, y, mask, params["W_hy"], params["b_y"])
    h_last = h[-1].copy()
    dh, dW_hy, db_y = softmax_loss_backward(scale, out_cache)
    dh0, dW_xh, dW_hh, db_h = rnn_backward(dh, rnn_cache)
    grads = {"W_xh": dW_xh, "W_hh": dW_hh, "b_h": db_h, "W_hy": dW_hy, "b_y": db_y}
    return nll_sum, count, grads, dh0, h_last


def forward_loss(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, h0: np.ndarray,
                 mask: np.ndarray | None = None, activation: str = "tanh"):
    """(nll_sum, count, h_last) without the backward pass: for evaluation."""
    h, _ = rnn_forward(x, h0, params["W_xh"], params["W_hh"], params["b_h"], activation)
    nll_sum, count, _ = softmax_loss_forward(h, y, mask, params["W_hy"], params["b_y"])
    return nll_sum, count, h[-1].copy()


def step(params: dict[str, np.ndarray], x_t: np.ndarray, h_prev: np.ndarray,
         activation: str = "tanh"):
    """One step of the recurrence and the output layer, for sampling: (h_t, logits o_t)."""
    a = params["W_xh"].T[x_t] + h_prev @ params["W_hh"].T + params["b_h"]
    h = np.tanh(a) if activation == "tanh" else np.maximum(a, 0)
    return h, h @ params["W_hy"].T + params["b_y"]

"""The vanilla RNN cell (min-char-rnn's), tanh or relu.

Forward, for t = 0..T-1 (row form; xw_t = W_xh x_t + b_h comes from the model):
    a_t = xw_t + W_hh h_{t-1}          h_t = f(a_t),   f = tanh or relu
Backward, given dh_t from above (the output layer or the layer above):
    dh_t += dh_next                    (the copy node: h_t feeds the output and step t + 1)
    da_t = f'(a_t) * dh_t              tanh'(a) = 1 - h^2, relu'(a) = [h > 0]
    dh_next = W_hh^T da_t              dxw_t = da_t        dW_hh = sum_t da_t h_{t-1}^T
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charrnn.cells.facts import Series
from charrnn.plumbing.workspace import Workspace, scratch


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


def _relu(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return np.maximum(a, 0, out=out)


class RNNCache(NamedTuple):
    h: np.ndarray  # (T, B, H), a view of states[1:]
    states: np.ndarray  # (T + 1, B, H): h0 then h, so h_{t-1} for every t is states[:-1]
    W_hh: np.ndarray


class RNNCell:
    name = "rnn"
    gates = 1
    gate_names = ("a",)  # one block: the pre-activation
    state_names = ("h",)
    activations = ("tanh", "relu")  # f in h_t = f(a_t); the first is the default
    carrying_gate = None  # no gate: the path back is f'(a_t) W_hh, which gradflow reports itself

    def __init__(self, hidden_size: int, activation: str = "tanh", forget_bias: float = 1.0):
        self.hidden_size = hidden_size
        self.activation = activation
        self.f = np.tanh if activation == "tanh" else _relu

    def extra_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def local_derivative(self, h: np.ndarray) -> np.ndarray:
        """f'(a_t) from h_t: the step Jacobian is dh_t/dh_{t-1} = diag(f'(a_t)) W_hh, exactly."""
        return activation_derivative(h, self.activation)

    def shown_series(self) -> tuple[Series, ...]:
        return (Series("h", "h", (-1.0, 1.0) if self.activation == "tanh" else None),)

    def init(self, input_size: int, init_scale: float, rng: np.random.Generator,
             dtype="float64") -> dict[str, np.ndarray]:
        H = self.hidden_size
        W_xh = (rng.standard_normal((H, input_size)) * init_scale).astype(dtype)
        W_hh = (rng.standard_normal((H, H)) * init_scale).astype(dtype)
        return {"W_xh": W_xh, "W_hh": W_hh, "b_h": np.zeros(H, dtype=dtype)}

    def input_buffer(self, T: int, B: int, dtype, workspace: Workspace | None) -> np.ndarray:
        # xw is written straight into h's place (states[1:]), where a_t and then h_t will live
        return scratch(workspace, "states", (T + 1, B, self.hidden_size), dtype)[1:]

    def forward(self, xw: np.ndarray, state0: tuple, params: dict,
                workspace: Workspace | None = None):
        (h0,) = state0
        T, B, H = xw.shape
        W_hh = params["W_hh"]
        states = scratch(workspace, "states", (T + 1, B, H), W_hh.dtype)
        h = states[1:]  # holds a_t until f is applied
        if not np.shares_memory(xw, h):
            h[...] = xw
        states[0] = h0
        W_hh_T = np.ascontiguousarray(W_hh.T)  # np.dot on contiguous operands: least per-call cost
        recurrent = np.empty((B, H), dtype=W_hh.dtype)
        f = self.f
        rows = list(states)  # the (B, H) views, made once rather than at every step
        dot, add = np.dot, np.add  # at batch 1 the loop's cost is its calls: no lookups in it
        for h_prev, h_t in zip(rows[:-1], rows[1:]):
            dot(h_prev, W_hh_T, out=recurrent)  # W_hh h_{t-1}
            add(h_t, recurrent, out=h_t)  # a_t = xw_t + W_hh h_{t-1}
            f(h_t, out=h_t)  # h_t = f(a_t)
        return h, (h[-1].copy(),), RNNCache(h, states, W_hh)

    def backward(self, dh: np.ndarray, cache: RNNCache, grads: dict | None = None,
                 workspace: Workspace | None = None, keep_state_grads: bool = False):
        h, states, W_hh = cache
        T, B, H = h.shape
        # f'(a_t) depends only on h_t: one whole-array operation, outside the time loop
        df = activation_derivative(h, self.activation,
                                   out=scratch(workspace, "df", h.shape, h.dtype))
        da = dh  # overwritten in place: dh_t, then da_t
        dh_total = np.empty_like(dh) if keep_state_grads else None
        dh_next = np.zeros((B, H), dtype=dh.dtype)
        dot, add, multiply = np.dot, np.add, np.multiply
        steps = reversed(list(zip(range(T), da, df)))  # the (B, H) views, made once
        for t, da_t, df_t in steps:
            add(da_t, dh_next, out=da_t)  # dh_t += dh_next
            if dh_total is not None:
                dh_total[t] = da_t
            multiply(da_t, df_t, out=da_t)  # da_t = f'(a_t) * dh_t
            dot(da_t, W_hh, out=dh_next)  # dh_next = W_hh^T da_t
        grads = {} if grads is None else grads
        # dW_hh = sum_t da_t h_{t-1}^T: one product over all steps (h_{-1} = h0 is states[0])
        grads["W_hh"] = np.matmul(da.reshape(T * B, H).T, states[:-1].reshape(T * B, H),
                                  out=grads.get("W_hh"))
        state_grads = None if dh_total is None else (dh_total,)
        return da, (dh_next,), state_grads  # dxw_t = da_t

    def step(self, xw_t: np.ndarray, state: tuple, params: dict) -> tuple:
        (h_prev,) = state
        return (self.f(xw_t + h_prev @ params["W_hh"].T),)

"""A fourth cell, written as a new cell is: one file, one registry line (register_cell below).

The leaky tanh cell keeps half of its old state at every step:
    a_t = xw_t + W_hh h_{t-1}      u_t = tanh(a_t)      h_t = LEAK * h_{t-1} + (1 - LEAK) * u_t
Backward, given dh_t from above:
    dh_t += dh_next                du_t = (1 - LEAK) * dh_t       da_t = du_t * (1 - u_t^2)
    dh_next = LEAK * dh_t + W_hh^T da_t                dxw_t = da_t    dW_hh = sum_t da_t h_{t-1}^T
It has no gate and no closed-form step Jacobian of gradflow's kind, so it exercises every path
where a consumer must make do with the contract alone.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charrnn.cells import register_cell
from charrnn.cells.facts import Series

LEAK = 0.5


class LeakyCache(NamedTuple):
    h: np.ndarray  # (T, B, H)
    u: np.ndarray  # (T, B, H): tanh(a_t)
    states: np.ndarray  # (T + 1, B, H): h0 then h
    W_hh: np.ndarray


class LeakyCell:
    name = "leaky"
    gates = 1
    gate_names = ("a",)
    state_names = ("h",)
    activations = ("tanh",)
    carrying_gate = None
    local_derivative = None

    def __init__(self, hidden_size: int, activation: str = "tanh", forget_bias: float = 1.0):
        self.hidden_size = hidden_size

    def extra_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def shown_series(self) -> tuple[Series, ...]:
        return (Series("h", "h", (-1.0, 1.0)), Series("u", "candidate u", (-1.0, 1.0)))

    def init(self, input_size, init_scale, rng, dtype="float64"):
        H = self.hidden_size
        return {"W_xh": (rng.standard_normal((H, input_size)) * init_scale).astype(dtype),
                "W_hh": (rng.standard_normal((H, H)) * init_scale).astype(dtype),
                "b_h": np.zeros(H, dtype=dtype)}

    def input_buffer(self, T, B, dtype, workspace=None):
        return np.empty((T, B, self.hidden_size), dtype=dtype)

    def forward(self, xw, state0, params, workspace=None):
        (h0,) = state0
        T, B, H = xw.shape
        W_hh = params["W_hh"]
        states = np.empty((T + 1, B, H), dtype=W_hh.dtype)
        states[0] = h0
        u = np.empty((T, B, H), dtype=W_hh.dtype)
        for t in range(T):
            u[t] = np.tanh(xw[t] + states[t] @ W_hh.T)  # u_t = tanh(a_t)
            states[t + 1] = LEAK * states[t] + (1 - LEAK) * u[t]
        h = states[1:]
        return h, (h[-1].copy(),), LeakyCache(h, u, states, W_hh)

    def backward(self, dh, cache, grads=None, workspace=None, keep_state_grads=False):
        h, u, states, W_hh = cache
        T, B, H = h.shape
        da = np.empty_like(dh)
        dh_total = np.empty_like(dh) if keep_state_grads else None
        dh_next = np.zeros((B, H), dtype=dh.dtype)
        for t in reversed(range(T)):
            dh_t = dh[t] + dh_next
            if dh_total is not None:
                dh_total[t] = dh_t
            da[t] = (1 - LEAK) * dh_t * (1 - u[t] ** 2)
            dh_next = LEAK * dh_t + da[t] @ W_hh
        grads = {} if grads is None else grads
        grads["W_hh"] = np.matmul(da.reshape(T * B, H).T, states[:-1].reshape(T * B, H),
                                  out=grads.get("W_hh"))
        return da, (dh_next,), None if dh_total is None else (dh_total,)

    def step(self, xw_t, state, params):
        (h_prev,) = state
        return (LEAK * h_prev + (1 - LEAK) * np.tanh(xw_t + h_prev @ params["W_hh"].T),)


register_cell(LeakyCell)

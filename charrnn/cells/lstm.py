"""The LSTM cell, with PyTorch's gate order (i, f, g, o) along the 4H axis of W_xh, W_hh and b_h.

Forward, for t = 0..T-1 (row form; xw_t = W_xh x_t + b_h comes from the model):
    a_t = xw_t + W_hh h_{t-1}               (B, 4H), blocks a_i, a_f, a_g, a_o
    i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g               h_t = o * tanh(c_t)
Backward, given dh_t from above (the output layer or the layer above):
    dh_t += dh_next                         (the copy node: h_t feeds the output and step t + 1)
    do = dh_t * tanh(c_t)
    dc_t = dc_next + dh_t * o * (1 - tanh(c_t)^2)      (c_t feeds h_t and c_{t+1})
    di = dc_t * g   df = dc_t * c_{t-1}   dg = dc_t * i   dc_next = dc_t * f
    da_t = [di * i(1 - i), df * f(1 - f), dg * (1 - g^2), do * o(1 - o)]
    dh_next = W_hh^T da_t                   dxw_t = da_t        dW_hh = sum_t da_t h_{t-1}^T

sigmoid(a) = (1 + tanh(a / 2)) / 2 never overflows, and it lets one tanh cover all four blocks:
halve a's i, f and o blocks, take tanh of the whole row, then map those blocks by t / 2 + 1 / 2.
The backward computes the gates' local derivatives step by step, on rows that are in cache,
rather than for all steps at once before the loop: whole-array passes over (T, B, 4H) go through
main memory and measured twice as slow (H = 512, B = 64, T = 100, float32).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charrnn.cells.facts import CarryingGate, Series
from charrnn.plumbing.workspace import Workspace, scratch


def sigmoid(a: np.ndarray) -> np.ndarray:
    """sigmoid(a) = (1 + tanh(a / 2)) / 2: no exp, so no overflow at any |a|."""
    s = np.tanh(a * 0.5)
    s *= 0.5
    s += 0.5
    return s


def gate_scale(H: int, dtype) -> np.ndarray:
    """(4H,): 1/2 on the sigmoid blocks (i, f, o), 1 on g: a_t * scale is what tanh takes."""
    scale = np.full(4 * H, 0.5, dtype=dtype)
    scale[2 * H:3 * H] = 1.0
    return scale


class LSTMCache(NamedTuple):
    """What backward needs, and the gates for anyone who wants to look at them (all (T, B, H),
    views of the buffers below)."""

    h: np.ndarray  # states[1:]
    c: np.ndarray  # cells[1:]
    i: np.ndarray  # input gate
    f: np.ndarray  # forget gate
    g: np.ndarray  # candidate cell
    o: np.ndarray  # output gate
    tanh_c: np.ndarray
    gates: np.ndarray  # (T, B, 4H): i, f, g, o side by side
    states: np.ndarray  # (T + 1, B, H): h0 then h, so h_{t-1} for every t is states[:-1]
    cells: np.ndarray  # (T + 1, B, H): c0 then c
    W_hh: np.ndarray


class LSTMCell:
    name = "lstm"
    gates = 4
    gate_names = ("i", "f", "g", "o")  # the blocks along the 4H axis, PyTorch's order
    state_names = ("h", "c")
    activations = ("tanh",)
    local_derivative = None  # no closed-form step Jacobian: gradflow uses differences
    carrying_gate = CarryingGate(
        "f", "forget_gate", "forget gate f",
        "dc_k back to c_{k-1} almost whole (dc_{k-1} = f_k * dc_k + ...)")

    def __init__(self, hidden_size: int, activation: str = "tanh", forget_bias: float = 1.0):
        self.hidden_size = hidden_size
        self.forget_bias = forget_bias

    def extra_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def shown_series(self) -> tuple[Series, ...]:
        return (Series("h", "h", (-1.0, 1.0)), Series("c", "c", None),
                Series("i", "gate i", (0.0, 1.0)), Series("f", "gate f", (0.0, 1.0)),
                Series("o", "gate o", (0.0, 1.0)), Series("g", "candidate g", (-1.0, 1.0)))

    def init(self, input_size: int, init_scale: float, rng: np.random.Generator,
             dtype="float64") -> dict[str, np.ndarray]:
        H = self.hidden_size
        W_xh = (rng.standard_normal((4 * H, input_size)) * init_scale).astype(dtype)
        W_hh = (rng.standard_normal((4 * H, H)) * init_scale).astype(dtype)
        b_h = np.zeros(4 * H, dtype=dtype)
        b_h[H:2 * H] = self.forget_bias  # a forget gate open at the start lets gradient through c
        return {"W_xh": W_xh, "W_hh": W_hh, "b_h": b_h}

    def input_buffer(self, T: int, B: int, dtype, workspace: Workspace | None) -> np.ndarray:
        # xw is written straight into the gates buffer, where a_t and then the gates will live
        return scratch(workspace, "gates", (T, B, 4 * self.hidden_size), dtype)

    def forward(self, xw: np.ndarray, state0: tuple, params: dict,
                workspace: Workspace | None = None):
        h0, c0 = state0
        T, B, _ = xw.shape
        H = self.hidden_size
        W_hh = params["W_hh"]
        dtype = W_hh.dtype
        gates = scratch(workspace, "gates", (T, B, 4 * H), dtype)  # holds a_t until activated
        if not np.shares_memory(xw, gates):
            gates[...] = xw
        states = scratch(workspace, "states", (T + 1, B, H), dtype)
        cells = scratch(workspace, "cells", (T + 1, B, H), dtype)
        tanh_c = scratch(workspace, "tanh_c", (T, B, H), dtype)
        states[0] = h0
        cells[0] = c0
        W_hh_T = W_hh.T.copy()  # np.dot on contiguous operands: measured 15% faster per step
        scale = gate_scale(H, dtype)
        recurrent = np.empty((B, 4 * H), dtype=dtype)
        ig = np.empty((B, H), dtype=dtype)
        i, f, g, o = (gates[..., k * H:(k + 1) * H] for k in range(4))
        i_f = gates[..., :2 * H]  # i and f side by side: one sigmoid pass for both
        # the (B, ...) views of every step, made once rather than at every step
        steps = list(zip(gates, i_f, i, f, g, o, states[:-1], states[1:], cells[:-1], cells[1:],
                         tanh_c))
        dot, add, multiply, tanh = np.dot, np.add, np.multiply, np.tanh
        for a_t, if_t, i_t, f_t, g_t, o_t, h_prev, h_t, c_prev, c_t, tc_t in steps:
            dot(h_prev, W_hh_T, out=recurrent)
            add(a_t, recurrent, out=a_t)  # a_t = xw_t + W_hh h_{t-1}
            multiply(a_t, scale, out=a_t)
            tanh(a_t, out=a_t)  # g, and tanh(a / 2) on i, f, o
            for s in (if_t, o_t):
                multiply(s, 0.5, out=s)
                add(s, 0.5, out=s)  # i, f, o = sigmoid(a) = tanh(a / 2) / 2 + 1 / 2
            multiply(f_t, c_prev, out=c_t)
            multiply(i_t, g_t, out=ig)
            add(c_t, ig, out=c_t)  # c_t = f * c_{t-1} + i * g
            tanh(c_t, out=tc_t)
            multiply(o_t, tc_t, out=h_t)  # h_t = o * tanh(c_t)
        h, c = states[1:], cells[1:]
        cache = LSTMCache(h, c, i, f, g, o, tanh_c, gates, states, cells, W_hh)
        return h, (h[-1].copy(), c[-1].copy()), cache

    def backward(self, dh: np.ndarray, cache: LSTMCache, grads: dict | None = None,
                 workspace: Workspace | None = None, keep_state_grads: bool = False):
        """dh is overwritten: it ends up holding dh_t + dh_next, the total gradient of h_t."""
        _, _, i, f, g, o, tanh_c, gates, states, cells, W_hh = cache
        T, B, H = dh.shape
        dtype = dh.dtype
        da = scratch(workspace, "da", (T, B, 4 * H), dtype)
        dh_total = np.empty_like(dh) if keep_state_grads else None
        dc_total = np.empty_like(dh) if keep_state_grads else None
        dh_next = np.zeros((B, H), dtype=dtype)
        dc = np.zeros((B, H), dtype=dtype)  # dc_next, then dc_t
        tmp = np.empty((B, H), dtype=dtype)
        da_i, da_f, da_g, da_o = (da[..., k * H:(k + 1) * H] for k in range(4))
        i_f, da_if = gates[..., :2 * H], da[..., :2 * H]
        steps = reversed(list(zip(range(T), dh, gates, da, i_f, da_if, i, f, g, o, da_i, da_f,
                                  da_g, da_o, tanh_c, cells[:-1])))
        dot, add, subtract, multiply = np.dot, np.add, np.subtract, np.multiply
        for (t, dh_t, gates_t, da_t, if_t, daif_t, i_t, f_t, g_t, o_t, di_t, df_t, dg_t, do_t,
             tc_t, c_prev) in steps:
            # da_t first holds the local derivatives: sigmoid' = s - s^2, tanh'(a_g) = 1 - g^2
            multiply(gates_t, gates_t, out=da_t)
            subtract(if_t, daif_t, out=daif_t)
            subtract(o_t, do_t, out=do_t)
            subtract(1.0, dg_t, out=dg_t)
            add(dh_t, dh_next, out=dh_t)  # dh_t += dh_next
            multiply(dh_t, tc_t, out=tmp)
            multiply(do_t, tmp, out=do_t)  # da_o = dh_t * tanh(c_t) * o(1 - o)
            multiply(tc_t, tc_t, out=tmp)
            subtract(1.0, tmp, out=tmp)
            multiply(tmp, o_t, out=tmp)
            multiply(tmp, dh_t, out=tmp)
            add(dc, tmp, out=dc)  # dc_t = dc_next + dh_t * o * (1 - tanh(c_t)^2)
            if dh_total is not None:
                dh_total[t] = dh_t
                dc_total[t] = dc
            multiply(dc, g_t, out=tmp)
            multiply(di_t, tmp, out=di_t)  # da_i = dc_t * g * i(1 - i)
            multiply(dc, c_prev, out=tmp)
            multiply(df_t, tmp, out=df_t)  # da_f = dc_t * c_{t-1} * f(1 - f)
            multiply(dc, i_t, out=tmp)
            multiply(dg_t, tmp, out=dg_t)  # da_g = dc_t * i * (1 - g^2)
            multiply(dc, f_t, out=dc)  # dc_next = dc_t * f
            dot(da_t, W_hh, out=dh_next)  # dh_next = W_hh^T da_t
        grads = {} if grads is None else grads
        # dW_hh = sum_t da_t h_{t-1}^T: one product over all steps (h_{-1} = h0 is states[0])
        grads["W_hh"] = np.matmul(da.reshape(T * B, 4 * H).T, states[:-1].reshape(T * B, H),
                                  out=grads.get("W_hh"))
        state_grads = None if dh_total is None else (dh_total, dc_total)
        return da, (dh_next, dc), state_grads  # dxw_t = da_t

    def step(self, xw_t: np.ndarray, state: tuple, params: dict) -> tuple:
        h_prev, c_prev = state
        H = self.hidden_size
        a = xw_t + h_prev @ params["W_hh"].T
        i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 3 * H:])
        c = f * c_prev + i * np.tanh(a[:, 2 * H:3 * H])
        return o * np.tanh(c), c

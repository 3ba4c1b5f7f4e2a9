"""The GRU cell in PyTorch's convention: gates (r, z, n), the reset gate applied to W_hn h + b_hn.

Forward, for t = 0..T-1 (row form; xw_t = W_xh x_t + b_h comes from the model):
    u_t = W_hh h_{t-1}                      (B, 3H), blocks u_r, u_z, u_n: one product per step
    r = sigmoid(xw_r + u_r)   z = sigmoid(xw_z + u_z)
    hn = u_n + b_hn           n = tanh(xw_n + r * hn)
    h_t = (1 - z) * n + z * h_{t-1}  =  n + z * (h_{t-1} - n)
Backward, given dh_t from above (the output layer or the layer above):
    dh_t += dh_next                         (the copy node: h_t feeds the output and step t + 1)
    da_n = dh_t * (1 - z) * (1 - n^2)
    da_z = dh_t * (h_{t-1} - n) * z(1 - z)
    da_r = da_n * hn * r(1 - r)
    du_t = [da_r, da_z, r * da_n]           dxw_t = [da_r, da_z, da_n]
    dh_next = W_hh^T du_t + z * dh_t        dW_hh = sum_t du_t h_{t-1}^T    db_hn = sum_t r * da_n

How this maps to torch.nn.GRU (one layer): W_xh = weight_ih_l0, W_hh = weight_hh_l0;
b_h = bias_ih_l0 + bias_hh_l0 on the r and z blocks and bias_ih_l0 on the n block;
b_hn = the n block of bias_hh_l0 (it sits inside the reset gate's product, so it cannot be folded).

sigmoid(a) = (1 + tanh(a / 2)) / 2 never overflows; r and z sit side by side, so one pass of each
operation covers both. As in lstm.py, the backward computes the local derivatives step by step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charrnn.cells.facts import CarryingGate, Series
from charrnn.cells.lstm import sigmoid
from charrnn.plumbing.workspace import Workspace, scratch


class GRUCache(NamedTuple):
    """What backward needs, and the gates for anyone who wants to look at them (all (T, B, H),
    views of the buffers below)."""

    h: np.ndarray  # states[1:]
    r: np.ndarray  # reset gate
    z: np.ndarray  # update gate
    n: np.ndarray  # candidate state
    hn: np.ndarray  # W_hn h_{t-1} + b_hn
    gates: np.ndarray  # (T, B, 3H): r, z, n side by side
    states: np.ndarray  # (T + 1, B, H): h0 then h, so h_{t-1} for every t is states[:-1]
    W_hh: np.ndarray


class GRUCell:
    name = "gru"
    gates = 3
    gate_names = ("r", "z", "n")  # the blocks along the 3H axis, PyTorch's order
    state_names = ("h",)
    activations = ("tanh",)
    local_derivative = None  # no closed-form step Jacobian: gradflow uses differences
    carrying_gate = CarryingGate(
        "z", "update_gate", "update gate z",
        "dh_k back to h_{k-1} almost whole (dh_{k-1} = z_k * dh_k + ...)")

    def __init__(self, hidden_size: int, activation: str = "tanh", forget_bias: float = 1.0):
        self.hidden_size = hidden_size

    def extra_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"b_hn": (self.hidden_size,)}

    def shown_series(self) -> tuple[Series, ...]:
        return (Series("h", "h", (-1.0, 1.0)), Series("r", "gate r", (0.0, 1.0)),
                Series("z", "gate z", (0.0, 1.0)), Series("n", "candidate n", (-1.0, 1.0)))

    def init(self, input_size: int, init_scale: float, rng: np.random.Generator,
             dtype="float64") -> dict[str, np.ndarray]:
        H = self.hidden_size
        W_xh = (rng.standard_normal((3 * H, input_size)) * init_scale).astype(dtype)
        W_hh = (rng.standard_normal((3 * H, H)) * init_scale).astype(dtype)
        return {"W_xh": W_xh, "W_hh": W_hh, "b_h": np.zeros(3 * H, dtype=dtype),
                "b_hn": np.zeros(H, dtype=dtype)}

    def input_buffer(self, T: int, B: int, dtype, workspace: Workspace | None) -> np.ndarray:
        # xw is written straight into the gates buffer, where a_t and then the gates will live
        return scratch(workspace, "gates", (T, B, 3 * self.hidden_size), dtype)

    def forward(self, xw: np.ndarray, state0: tuple, params: dict,
                workspace: Workspace | None = None):
        (h0,) = state0
        T, B, _ = xw.shape
        H = self.hidden_size
        W_hh, b_hn = params["W_hh"], params["b_hn"]
        dtype = W_hh.dtype
        gates = scratch(workspace, "gates", (T, B, 3 * H), dtype)  # holds xw until activated
        if not np.shares_memory(xw, gates):
            gates[...] = xw
        states = scratch(workspace, "states", (T + 1, B, H), dtype)
        hn = scratch(workspace, "hn", (T, B, H), dtype)
        states[0] = h0
        W_hh_T = W_hh.T.copy()  # np.dot on contiguous operands: measured 15% faster per step
        u = np.empty((B, 3 * H), dtype=dtype)
        u_rz, u_n = u[:, :2 * H], u[:, 2 * H:]
        rn = np.empty((B, H), dtype=dtype)
        rz, r, z, n = gates[..., :2 * H], gates[..., :H], gates[..., H:2 * H], gates[..., 2 * H:]
        # the (B, ...) views of every step, made once rather than at every step
        steps = list(zip(rz, r, z, n, hn, states[:-1], states[1:]))
        dot, add, subtract, multiply, tanh = np.dot, np.add, np.subtract, np.multiply, np.tanh
        for rz_t, r_t, z_t, n_t, hn_t, h_prev, h_t in steps:
            dot(h_prev, W_hh_T, out=u)  # u_t = W_hh h_{t-1}
            add(rz_t, u_rz, out=rz_t)  # a_r, a_z
            multiply(rz_t, 0.5, out=rz_t)
            tanh(rz_t, out=rz_t)
            multiply(rz_t, 0.5, out=rz_t)
            add(rz_t, 0.5, out=rz_t)  # r, z = sigmoid(a) = tanh(a / 2) / 2 + 1 / 2
            add(u_n, b_hn, out=hn_t)  # hn = W_hn h_{t-1} + b_hn
            multiply(r_t, hn_t, out=rn)
            add(n_t, rn, out=n_t)
            tanh(n_t, out=n_t)  # n = tanh(xw_n + r * hn)
            subtract(h_prev, n_t, out=h_t)
            multiply(h_t, z_t, out=h_t)
            add(h_t, n_t, out=h_t)  # h_t = n + z * (h_{t-1} - n)
        h = states[1:]
        return h, (h[-1].copy(),), GRUCache(h, r, z, n, hn, gates, states, W_hh)

    def backward(self, dh: np.ndarray, cache: GRUCache, grads: dict | None = None,
                 workspace: Workspace | None = None, keep_state_grads: bool = False):
        """dh is overwritten: it ends up holding dh_t + dh_next, the total gradient of h_t."""
        _, r, z, n, hn, gates, states, W_hh = cache
        T, B, H = dh.shape
        dtype = dh.dtype
        # du_t = [da_r, da_z, r * da_n] is the operand of both products (dh_next and dW_hh); dxw
        # differs from it in the n block, so da_n goes to its own buffer and into du at the end
        du = scratch(workspace, "du", (T, B, 3 * H), dtype)
        da_n = scratch(workspace, "da_n", (T, B, H), dtype)
        dh_total = np.empty_like(dh) if keep_state_grads else None
        dh_next = np.zeros((B, H), dtype=dtype)
        dhz = np.empty((B, H), dtype=dtype)
        tmp = np.empty((B, H), dtype=dtype)
        rz, du_rz = gates[..., :2 * H], du[..., :2 * H]
        du_r, du_z, du_n = du[..., :H], du[..., H:2 * H], du[..., 2 * H:]
        steps = reversed(list(zip(range(T), dh, gates, du, rz, du_rz, du_r, du_z, du_n, da_n,
                                  r, z, n, hn, states[:-1])))
        dot, add, subtract, multiply = np.dot, np.add, np.subtract, np.multiply
        for (t, dh_t, gates_t, du_t, rz_t, durz_t, dr_t, dz_t, dn_t, dan_t, r_t, z_t, n_t, hn_t,
             h_prev) in steps:
            # du_t first holds the local derivatives: sigmoid' = s - s^2, tanh'(a_n) = 1 - n^2
            multiply(gates_t, gates_t, out=du_t)
            subtract(rz_t, durz_t, out=durz_t)
            subtract(1.0, dn_t, out=dn_t)
            add(dh_t, dh_next, out=dh_t)  # dh_t += dh_next
            if dh_total is not None:
                dh_total[t] = dh_t
            multiply(dh_t, z_t, out=dhz)  # z * dh_t: h_{t-1}'s direct path, added after the GEMM
            subtract(dh_t, dhz, out=tmp)
            multiply(tmp, dn_t, out=dan_t)  # da_n = dh_t * (1 - z) * (1 - n^2)
            subtract(h_prev, n_t, out=tmp)
            multiply(tmp, dh_t, out=tmp)
            multiply(dz_t, tmp, out=dz_t)  # da_z = dh_t * (h_{t-1} - n) * z(1 - z)
            multiply(dan_t, hn_t, out=tmp)
            multiply(dr_t, tmp, out=dr_t)  # da_r = da_n * hn * r(1 - r)
            multiply(dan_t, r_t, out=dn_t)  # du_n = r * da_n
            dot(du_t, W_hh, out=dh_next)
            add(dh_next, dhz, out=dh_next)  # dh_next = W_hh^T du_t + z * dh_t
        grads = {} if grads is None else grads
        # dW_hh = sum_t du_t h_{t-1}^T: one product over all steps (h_{-1} = h0 is states[0])
        grads["W_hh"] = np.matmul(du.reshape(T * B, 3 * H).T, states[:-1].reshape(T * B, H),
                                  out=grads.get("W_hh"))
        grads["b_hn"] = np.sum(du_n, axis=(0, 1), out=grads.get("b_hn"))  # sum_t r * da_n
        du_n[...] = da_n  # du becomes dxw
        state_grads = None if dh_total is None else (dh_total,)
        return du, (dh_next,), state_grads

    def step(self, xw_t: np.ndarray, state: tuple, params: dict) -> tuple:
        (h_prev,) = state
        H = self.hidden_size
        u = h_prev @ params["W_hh"].T
        r = sigmoid(xw_t[:, :H] + u[:, :H])
        z = sigmoid(xw_t[:, H:2 * H] + u[:, H:2 * H])
        n = np.tanh(xw_t[:, 2 * H:] + r * (u[:, 2 * H:] + params["b_hn"]))
        return (n + z * (h_prev - n),)

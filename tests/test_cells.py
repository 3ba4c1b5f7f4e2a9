"""The gated cells (LSTM, GRU) against finite differences, against themselves and against PyTorch.

README promise: every cell has "a hand-written backpropagation through time that `charrnn
gradcheck` proves against finite differences"; docs/models.md: LSTM and GRU "compare one to one
with `torch.nn.LSTM` / `torch.nn.GRU`" (these comparisons need torch, in the test extra).

Every check is in float64 on small random problems with fixed seeds. The objective is
L = sum_t h_t . upstream_t, so that backward(upstream) is dL/d(everything).
"""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.cells.gru import GRUCell
from charrnn.cells.lstm import LSTMCell
from charrnn.plumbing.workspace import Workspace

TOLERANCE = 1e-6
STENCIL_STEP = 1e-3
CELLS = [LSTMCell, GRUCell]


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """CS231n's relative error, the largest over the entries."""
    return float(np.max(np.abs(analytic - numeric)
                        / np.maximum(1e-8, np.abs(analytic) + np.abs(numeric))))


def numerical_gradient(loss, x: np.ndarray) -> np.ndarray:
    """dloss/dx by the fourth-order centred stencil [8 (f(+e) - f(-e)) - (f(+2e) - f(-2e))] / 12e:
    truncation error O(e^4), far below the tolerance. x is perturbed in place and restored."""
    grad = np.empty_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        values = []
        for k in (1, -1, 2, -2):
            x[index] = original + k * STENCIL_STEP
            values.append(loss())
        x[index] = original
        grad[index] = (8 * (values[0] - values[1]) - (values[2] - values[3])) / (12 * STENCIL_STEP)
    return grad


def make_problem(cell_class, T: int = 5, B: int = 3, I: int = 4, H: int = 4, seed: int = 0,
                 dtype="float64"):
    """A cell, its parameters (nonzero biases), xw, a nonzero initial state and an upstream dh."""
    rng = np.random.default_rng(seed)
    cell = cell_class(H)
    params = cell.init(I, 0.6, rng, dtype)
    for name in ("b_h", *cell.extra_shapes()):
        params[name] += (rng.standard_normal(params[name].shape) * 0.5).astype(dtype)
    xw = rng.standard_normal((T, B, cell.gates * H)).astype(dtype)
    state0 = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in cell.state_names)
    upstream = rng.standard_normal((T, B, H)).astype(dtype)
    return cell, params, xw, state0, upstream


def sequence_loss(cell, xw, state0, params, upstream) -> float:
    h, _, _ = cell.forward(xw.copy(), state0, params)  # forward may use its xw as scratch
    return float(np.sum(h * upstream))


def gradient_errors(cell, params, xw, state0, upstream) -> dict[str, float]:
    """The relative error of every output of cell.backward against finite differences."""
    _, _, cache = cell.forward(xw.copy(), state0, params)
    grads = {}
    dxw, dstate0, _ = cell.backward(upstream.copy(), cache, grads=grads)

    def loss():
        return sequence_loss(cell, xw, state0, params, upstream)

    errors = {"dxw": rel_error(dxw, numerical_gradient(loss, xw))}
    for name, state, dstate in zip(cell.state_names, state0, dstate0):
        errors[f"d{name}0"] = rel_error(dstate, numerical_gradient(loss, state))
    for name in ("W_hh", *cell.extra_shapes()):
        errors[f"d{name}"] = rel_error(grads[name], numerical_gradient(loss, params[name]))
    return errors


def assert_gradients_match(cell, params, xw, state0, upstream):
    errors = gradient_errors(cell, params, xw, state0, upstream)
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("T", [1, 5], ids=["step", "sequence"])
@pytest.mark.parametrize("cell_class", CELLS, ids=lambda c: c.name)
def test_backward_matches_finite_differences(cell_class, T):
    assert_gradients_match(*make_problem(cell_class, T=T))


@pytest.mark.parametrize("cell_class", CELLS, ids=lambda c: c.name)
def test_gradient_check_catches_a_missing_term(cell_class, monkeypatch):
    cell, params, xw, state0, upstream = make_problem(cell_class)
    true_backward = cell.backward

    def broken_backward(dh, cache, **kwargs):
        # LSTM: f = 0 drops dc_next = dc_t * f, the cell state's path back through time.
        # GRU: hn = 0 drops da_r = da_n * hn * r(1 - r), the reset gate's gradient.
        gate = "f" if cell.name == "lstm" else "hn"
        return true_backward(dh, cache._replace(**{gate: np.zeros_like(getattr(cache, gate))}),
                             **kwargs)

    monkeypatch.setattr(cell, "backward", broken_backward)
    with pytest.raises(AssertionError):
        assert_gradients_match(cell, params, xw, state0, upstream)


def loss_from_step(cell, params, xw, upstream, t: int, state_t: tuple) -> float:
    """L as a function of the state at step t: h_t's own term, then the steps after t."""
    loss = float(np.sum(state_t[0] * upstream[t]))
    if t + 1 < len(xw):
        loss += sequence_loss(cell, xw[t + 1:], state_t, params, upstream[t + 1:])
    return loss


def numerical_state_gradients(cell, params, xw, upstream, cache, t: int) -> list[np.ndarray]:
    """dL/dh_t with c_t held (h_t feeds the output at t and step t + 1), and for the LSTM dL/dc_t
    (c_t feeds h_t = o * tanh(c_t) and step t + 1), by finite differences."""
    h_t = cache.h[t].copy()
    if cell.name != "lstm":
        return [numerical_gradient(
            lambda: loss_from_step(cell, params, xw, upstream, t, (h_t,)), h_t)]
    c_t = cache.c[t].copy()
    dh_t = numerical_gradient(
        lambda: loss_from_step(cell, params, xw, upstream, t, (h_t, cache.c[t])), h_t)
    dc_t = numerical_gradient(
        lambda: loss_from_step(cell, params, xw, upstream, t, (cache.o[t] * np.tanh(c_t), c_t)),
        c_t)
    return [dh_t, dc_t]


@pytest.mark.parametrize("cell_class", CELLS, ids=lambda c: c.name)
def test_state_grads_are_total_gradients_at_every_step(cell_class):
    cell, params, xw, state0, upstream = make_problem(cell_class)
    _, _, cache = cell.forward(xw.copy(), state0, params)
    _, _, state_grads = cell.backward(upstream.copy(), cache, keep_state_grads=True)
    assert len(state_grads) == len(cell.state_names)
    for t in range(len(xw)):
        numeric = numerical_state_gradients(cell, params, xw, upstream, cache, t)
        for name, analytic, numeric_t in zip(cell.state_names, state_grads, numeric):
            assert rel_error(analytic[t], numeric_t) < TOLERANCE, (name, t)


@pytest.mark.parametrize("cell_class", CELLS, ids=lambda c: c.name)
def test_step_agrees_with_forward(cell_class):
    cell, params, xw, state0, _ = make_problem(cell_class, T=7)
    h, state_last, _ = cell.forward(xw.copy(), state0, params)
    state = state0
    for t in range(len(xw)):
        state = cell.step(xw[t], state, params)
        np.testing.assert_allclose(state[0], h[t], rtol=0, atol=1e-13)
    for stepped, forwarded in zip(state, state_last):
        np.testing.assert_allclose(stepped, forwarded, rtol=0, atol=1e-13)


@pytest.mark.parametrize("cell_class", CELLS, ids=lambda c: c.name)
def test_forward_in_input_buffer_matches_fresh_arrays(cell_class):
    """The model writes xw into input_buffer's array, which forward then uses in place."""
    cell, params, xw, state0, upstream = make_problem(cell_class)
    h, _, cache = cell.forward(xw.copy(), state0, params)
    dxw, _, _ = cell.backward(upstream.copy(), cache)
    workspace = Workspace()
    buffer = cell.input_buffer(*xw.shape[:2], xw.dtype, workspace)
    buffer[...] = xw
    h_ws, _, cache_ws = cell.forward(buffer, state0, params, workspace)
    dxw_ws, _, _ = cell.backward(upstream.copy(), cache_ws, workspace=workspace)
    np.testing.assert_array_equal(h_ws, h)
    np.testing.assert_array_equal(dxw_ws, dxw)


@pytest.mark.parametrize("cell_class", CELLS, ids=lambda c: c.name)
def test_float32_stays_float32(cell_class):
    cell, params, xw, state0, upstream = make_problem(cell_class, dtype="float32")
    h, state_last, cache = cell.forward(xw, state0, params)
    grads = {}
    dxw, dstate0, state_grads = cell.backward(upstream, cache, grads=grads, keep_state_grads=True)
    outputs = [h, *state_last, dxw, *dstate0, *state_grads, *grads.values(),
               *cell.step(xw[0], state0, params)]
    assert {a.dtype for a in outputs} == {np.dtype("float32")}


@pytest.mark.parametrize("cell_class", CELLS, ids=lambda c: c.name)
def test_saturated_gates_do_not_overflow(cell_class):
    cell, params, xw, state0, upstream = make_problem(cell_class)
    xw *= 1000.0  # pre-activations around +-1000: exp(1000) would overflow
    with np.errstate(all="raise"):
        h, _, cache = cell.forward(xw.copy(), state0, params)
        cell.backward(upstream.copy(), cache, keep_state_grads=True)
        cell.step(xw[0], state0, params)
    assert np.all(np.isfinite(h))


def test_lstm_init_opens_the_forget_gate_and_cache_shows_gates():
    H = 4
    cell = LSTMCell(H, forget_bias=2.5)
    params = cell.init(3, 0.1, np.random.default_rng(0), "float64")
    assert {k: v.shape for k, v in params.items()} == {"W_xh": (4 * H, 3),
                                                        "W_hh": (4 * H, H), "b_h": (4 * H,)}
    np.testing.assert_array_equal(params["b_h"], np.r_[np.zeros(H), np.full(H, 2.5),
                                                       np.zeros(2 * H)])
    assert cell.extra_shapes() == {}
    xw = np.broadcast_to(params["b_h"], (2, 1, 4 * H)).copy()  # x = 0
    _, (_, c_last), cache = cell.forward(xw, (np.zeros((1, H)),) * 2, params)
    np.testing.assert_allclose(cache.f[0], 1 / (1 + np.exp(-2.5)))  # a = b_h alone at h0 = 0
    np.testing.assert_array_equal(cache.c[-1], c_last)


def test_gru_init_has_zero_b_hn():
    cell = GRUCell(4)
    params = cell.init(3, 0.1, np.random.default_rng(0), "float64")
    assert cell.extra_shapes() == {"b_hn": (4,)}
    assert {k: v.shape for k, v in params.items()} == {"W_xh": (12, 3), "W_hh": (12, 4),
                                                        "b_h": (12,), "b_hn": (4,)}
    assert not params["b_h"].any() and not params["b_hn"].any()


# ---------------------------------------------------------------- against torch.nn.LSTM / GRU


def torch_problem(torch, module_class, T=6, B=3, I=5, H=4, n_states=1):
    torch.manual_seed(0)
    module = module_class(I, H, dtype=torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    state0 = [torch.randn(1, B, H, dtype=torch.float64, requires_grad=True)
              for _ in range(n_states)]
    upstream = torch.randn(T, B, H, dtype=torch.float64)
    out, state_last = module(x, state0[0] if n_states == 1 else tuple(state0))
    (out * upstream).sum().backward()
    weights = {name: p.detach().numpy() for name, p in module.named_parameters()}
    torch_grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    state_last = [s.detach().numpy()[0] for s in ([state_last] if n_states == 1 else state_last)]
    return weights, torch_grads, x, state0, upstream.numpy(), out.detach().numpy(), state_last


def compare_with_torch(cell, params, weights, torch_grads, x, state0, upstream, out, state_last):
    """Run the cell on xw = x W_xh^T + b_h and return the largest absolute difference from
    torch in h, the last state, dW_xh, dW_hh, the biases, dx and the initial state's gradients."""
    x_np = x.detach().numpy()
    T, B, I = x_np.shape
    W_xh = weights["weight_ih_l0"]
    xw = x_np @ W_xh.T + params["b_h"]
    h, our_state_last, cache = cell.forward(xw, tuple(s.detach().numpy()[0] for s in state0),
                                            params)
    grads = {}
    dxw, dstate0, _ = cell.backward(upstream.copy(), cache, grads=grads)
    dxw_rows = dxw.reshape(T * B, -1)
    db_h = dxw_rows.sum(axis=0)
    ours_and_torch = [
        (h, out),
        *zip(our_state_last, state_last),
        (dxw_rows.T @ x_np.reshape(T * B, I), torch_grads["weight_ih_l0"]),  # dW_xh = dxw^T x
        (grads["W_hh"], torch_grads["weight_hh_l0"]),
        (db_h, torch_grads["bias_ih_l0"]),
        (dxw @ W_xh, x.grad.numpy()),
        *((d, s.grad.numpy()[0]) for d, s in zip(dstate0, state0)),
    ]
    if "b_hn" in grads:  # bias_hh's r, z blocks share b_h's gradient; its n block is b_hn's
        ours_and_torch.append((np.r_[db_h[:2 * cell.hidden_size], grads["b_hn"]],
                               torch_grads["bias_hh_l0"]))
    else:
        ours_and_torch.append((db_h, torch_grads["bias_hh_l0"]))
    return max(float(np.max(np.abs(a - b))) for a, b in ours_and_torch)


def test_lstm_matches_torch():
    torch = pytest.importorskip("torch")
    weights, torch_grads, *rest = torch_problem(torch, torch.nn.LSTM, n_states=2)
    cell = LSTMCell(4)
    params = {"W_hh": weights["weight_hh_l0"].copy(),
              "b_h": weights["bias_ih_l0"] + weights["bias_hh_l0"]}
    error = compare_with_torch(cell, params, weights, torch_grads, *rest)
    print(f"lstm vs torch.nn.LSTM: max abs error {error:.2e}")
    assert error < 1e-10


def test_gru_matches_torch():
    torch = pytest.importorskip("torch")
    weights, torch_grads, *rest = torch_problem(torch, torch.nn.GRU)
    H = 4
    cell = GRUCell(H)
    b_ih, b_hh = weights["bias_ih_l0"], weights["bias_hh_l0"]
    params = {"W_hh": weights["weight_hh_l0"].copy(),
              "b_h": np.r_[b_ih[:2 * H] + b_hh[:2 * H], b_ih[2 * H:]],
              "b_hn": b_hh[2 * H:].copy()}
    error = compare_with_torch(cell, params, weights, torch_grads, *rest)
    print(f"gru vs torch.nn.GRU: max abs error {error:.2e}")
    assert error < 1e-10

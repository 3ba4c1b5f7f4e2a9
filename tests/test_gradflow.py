"""Gradient flow: per-loss backward against one backward per loss, finite differences and the
trainer, for every cell and a stack; decay rates on orthogonal recurrences; the LSTM's cell-state
path; impulse responses (exact against central differences); and `charrnn gradflow`, including
--compare.

README promise: `charrnn gradflow` shows "how the gradient shrinks or grows as it travels back in
time" (docs/gradflow.md: its dW_xh components sum to the trainer's).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.checkpoint import Checkpoint, save_checkpoint
from charrnn.cli import main
from charrnn.config import Config
from charrnn.gradcheck import rel_error
from charrnn.gradflow import (
    analyse_chunk,
    analysis_model,
    fit_decay,
    impulse_response,
    initial_state,
    jacobian_gains,
    layer0_projections,
    linear_recurrence,
    per_loss_backward,
    state_gains_by_differences,
    xh_components,
)
from charrnn.model import (
    Model,
    ModelSpec,
    scatter_rows,
    softmax_loss_backward,
    softmax_loss_forward,
)
from charrnn.vocab import Vocabulary

NAMES = "anna\nbob\nchristopher\ndora\neve\n"
CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
CELL_IDS = ["rnn-tanh", "rnn-relu", "lstm", "gru"]
STACKS = [(cell, activation, layers) for cell, activation in CELLS for layers in (1, 2)]
STACK_IDS = [f"{name}-{layers}l" for name in CELL_IDS for layers in (1, 2)]


def orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def near_linear_model(gain: float, hidden: int = 16, vocab: int = 5, seed: int = 0) -> Model:
    """W_hh = gain * orthogonal; inputs and biases so small that tanh'(a) stays within 1e-6 of 1."""
    rng = np.random.default_rng(seed)
    model = Model.init(ModelSpec(vocab_size=vocab, hidden_size=hidden, init_scale=1e-7), rng)
    params = dict(model.params)
    params["l0.W_hh"] = gain * orthogonal(hidden, rng)
    params["W_hy"] = rng.standard_normal((vocab, hidden))  # outside the recurrence: any size
    return model.with_params(params)


def random_problem(cell: str = "rnn", activation: str = "tanh", layers: int = 1, T: int = 7,
                   hidden: int = 5, vocab: int = 4, seed: int = 1):
    """A nonlinear model (pre-activations of order 1), a nonzero initial state, a random chunk."""
    rng = np.random.default_rng(seed)
    spec = ModelSpec(vocab_size=vocab, hidden_size=hidden, cell=cell, num_layers=layers,
                     activation=activation, init_scale=0.6)
    model = Model.init(spec, rng)
    params = {name: value + (rng.standard_normal(value.shape) * 0.3 if name.endswith(
        ("b_h", "b_hn")) else 0.0) for name, value in model.params.items()}
    model = model.with_params(params)
    x = rng.integers(vocab, size=T)
    y = rng.integers(vocab, size=T)
    state0 = tuple(tuple(rng.standard_normal(hidden) * 0.5 for _ in model.cell.state_names)
                   for _ in range(layers))
    return model, x, y, state0


def chunk(T: int, vocab: int = 5, seed: int = 2):
    rng = np.random.default_rng(seed)
    return rng.integers(vocab, size=T), rng.integers(vocab, size=T)


def step_losses(model: Model, x, y, state0) -> np.ndarray:
    """L_t for every t, straight from the logits (no softmax_loss_forward)."""
    fwd = model.forward(np.asarray(x)[:, None], initial_state(model, state0))
    logits = model.logits(fwd.h_top[:, 0])
    logits = logits - logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(x)), y]


def one_loss_backward(model: Model, x, y, state0, t: int):
    """The brute force: loss t alone (a mask keeping step t), one ordinary backward."""
    T = len(x)
    fwd = model.forward(np.asarray(x)[:, None], initial_state(model, state0))
    mask = np.zeros((T, 1), dtype=bool)
    mask[t] = True
    _, _, cache = softmax_loss_forward(fwd.h_top, np.asarray(y)[:, None], mask,
                                       model.params["W_hy"], model.params["b_y"])
    dh, _, _ = softmax_loss_backward(1.0, cache)
    _, dstate0, state_grads, dxw0 = model.backward(dh, fwd, keep_state_grads=True)
    return state_grads, dstate0, dxw0


# --- the numbers -------------------------------------------------------------------------------

def test_gradient_decays_at_least_as_fast_as_half_per_step_with_half_orthogonal_W_hh():
    T = 20
    x, y = chunk(T)
    flow = analyse_chunk(near_linear_model(0.5), x, y)
    norms_by_lag = flow.last_loss_grad_norms[::-1]
    bound = norms_by_lag[0] * 0.5 ** np.arange(T)
    assert np.all(norms_by_lag <= bound * (1 + 1e-9))
    # near-linear: the bound is met with equality, so the fitted rate is 0.5 itself
    assert np.allclose(norms_by_lag, bound, rtol=1e-5)
    assert flow.decay.rate_per_step == pytest.approx(0.5, rel=1e-5)
    assert flow.decay.vanished_at_lag == 10  # 0.5^10 < 1e-3 < 0.5^9


def test_gradient_grows_with_one_and_a_half_orthogonal_W_hh_in_the_near_linear_regime():
    T = 20
    x, y = chunk(T)
    flow = analyse_chunk(near_linear_model(1.5), x, y)
    norms_by_lag = flow.last_loss_grad_norms[::-1]
    assert np.all(np.diff(norms_by_lag) > 0)
    assert np.allclose(norms_by_lag, norms_by_lag[0] * 1.5 ** np.arange(T), rtol=1e-4)
    assert flow.decay.rate_per_step == pytest.approx(1.5, rel=1e-4)
    assert flow.singular_values[0] == pytest.approx(1.5)
    assert (flow.singular_values > 1).sum() == 16


@pytest.mark.parametrize("cell, activation, layers", STACKS, ids=STACK_IDS)
def test_per_lag_norms_equal_one_backward_per_loss_step(cell, activation, layers):
    model, x, y, state0 = random_problem(cell, activation, layers, T=6)
    T = len(x)
    batched = per_loss_backward(model, x, y, state0)
    assert batched.losses == pytest.approx(step_losses(model, x, y, state0), rel=1e-12)
    names = model.cell.state_names
    for t in range(T):
        state_grads, dstate0, dxw0 = one_loss_backward(model, x, y, state0, t)
        for layer in range(layers):
            for i in range(len(names)):
                together = batched.state_grads[layer][i][:, t]  # (k, H)
                alone = state_grads[layer][i][:, 0]
                assert np.allclose(together, alone, rtol=1e-12, atol=1e-15)
                assert np.all(together[t + 1:] == 0)  # a loss never reaches a later state
                assert np.all(np.abs(together[: t + 1]).sum(axis=1) > 0)
                assert np.allclose(batched.dstate0[layer][i][t], dstate0[layer][i][0],
                                   rtol=1e-12, atol=1e-15)
        assert np.allclose(batched.dxw0[:, t], dxw0[:, 0], rtol=1e-12, atol=1e-15)
    # what the report prints: ||dL_{T-1}/state_k|| of every layer and state
    flow = analyse_chunk(model, x, y, state0)
    state_grads, _, _ = one_loss_backward(model, x, y, state0, T - 1)
    assert flow.num_layers == layers and flow.cell == cell
    for layer in range(layers):
        assert list(flow.layers[layer].norms) == list(names)
        for i, name in enumerate(names):
            expected = np.linalg.norm(state_grads[layer][i][:, 0], axis=1)
            assert np.allclose(flow.layers[layer].norms[name], expected, rtol=1e-12)


@pytest.mark.parametrize("cell, activation, layers", STACKS, ids=STACK_IDS)
def test_components_sum_to_the_trainers_gradient_in_float64(cell, activation, layers):
    model, x, y, state0 = random_problem(cell, activation, layers, T=9)
    flow = analyse_chunk(model, x, y, state0)
    assert flow.sum_difference < 1e-10
    assert flow.sum_ok
    # the same sum rebuilt from the pieces, against Model.loss_and_grads directly
    per_loss = per_loss_backward(model, x, y, state0)
    norms, total = xh_components(per_loss.dxw0, x, 4)
    trainer = model.loss_and_grads(x[:, None], y[:, None], initial_state(model, state0))
    assert np.max(np.abs(total - trainer.grads["l0.W_xh"])) < 1e-10
    assert np.max(np.abs(trainer.grads["l0.W_xh"])) > 1e-3  # a real gradient, not two zeros
    assert np.all(norms[np.triu_indices(9, 1)] == 0)  # no loss reaches a later input
    assert np.all(np.diagonal(norms) > 0)
    assert np.array_equal(norms, flow.component_norms)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_float32_model_is_analysed_in_float64_without_dropout(cell):
    model, x, y, state0 = random_problem(cell, layers=2, T=8)
    float32 = Model(replace(model.spec, dtype="float32", dropout=0.5),
                    {name: value.astype(np.float32) for name, value in model.params.items()})
    assert analysis_model(float32).spec.dropout == 0.0
    assert analysis_model(float32).dtype == np.float64
    flow = analyse_chunk(float32, x, y, state0)
    assert flow.sum_difference < 1e-10
    # the same weights without dropout give the very same numbers: no mask was ever drawn
    plain = analyse_chunk(analysis_model(float32), x, y, state0)
    assert np.array_equal(flow.component_norms, plain.component_norms)
    assert np.array_equal(flow.layers[1].norms["h"], plain.layers[1].norms["h"])


@pytest.mark.parametrize("cell, activation, layers",
                         [("rnn", "tanh", 1), ("lstm", "tanh", 2), ("gru", "tanh", 2)],
                         ids=["rnn", "lstm-2l", "gru-2l"])
def test_per_loss_backward_matches_finite_differences_through_the_initial_state(
        cell, activation, layers):
    model, x, y, state0 = random_problem(cell, activation, layers, T=6)
    per_loss = per_loss_backward(model, x, y, state0)
    eps = 1e-5
    for layer in range(layers):
        for i in range(len(model.cell.state_names)):
            analytic = per_loss.dstate0[layer][i]  # (T, H): dL_t/dstate_{-1}
            numeric = np.empty_like(analytic)
            for unit in range(model.spec.hidden_size):
                losses = []
                for sign in (1, -1):
                    nudged = [list(s) for s in state0]
                    nudged[layer][i] = nudged[layer][i].copy()
                    nudged[layer][i][unit] += sign * eps
                    losses.append(step_losses(model, x, y, nudged))
                numeric[:, unit] = (losses[0] - losses[1]) / (2 * eps)
            assert np.max(rel_error(analytic, numeric)) < 1e-6
            assert np.all(np.abs(analytic[-1]) > 0)  # the last loss reaches the initial state


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_each_loss_steps_W_xh_gradient_matches_finite_differences(cell):
    model, x, y, state0 = random_problem(cell, T=5, hidden=3, vocab=3)
    per_loss = per_loss_backward(model, x, y, state0)
    eps = 1e-5
    W_xh = model.params["l0.W_xh"]
    numeric = np.empty((len(x),) + W_xh.shape)  # [t] = dL_t/dW_xh
    for index in np.ndindex(W_xh.shape):
        losses = []
        for sign in (1, -1):
            nudged = W_xh.copy()
            nudged[index] += sign * eps
            losses.append(step_losses(model.with_params({**model.params, "l0.W_xh": nudged}),
                                      x, y, state0))
        numeric[(slice(None),) + index] = (losses[0] - losses[1]) / (2 * eps)
    for t in range(len(x)):
        analytic = scatter_rows(x, per_loss.dxw0[:, t], 3).T  # sum over k of component (t, k)
        used = np.isin(np.arange(3), x[: t + 1])
        assert np.max(rel_error(analytic[:, used], numeric[t][:, used])) < 1e-6
        assert np.all(analytic[:, ~used] == 0) and np.all(np.abs(numeric[t][:, ~used]) < 1e-9)


# --- the LSTM's cell state, and the GRU's update gate ----------------------------------------

def lstm_state_after(model: Model, x, state0, k: int):
    """(h_k, c_k) of a one-layer LSTM and its output gate o_k, from the forward's cache."""
    cache = model.forward(np.asarray(x)[:, None], initial_state(model, state0)).layers[0][2]
    return cache.h[k, 0].copy(), cache.c[k, 0].copy(), cache.o[k, 0].copy()


def last_loss_from(model: Model, x, y, state_k, k: int) -> float:
    """L_{T-1} when the state after step k is replaced by state_k (steps k+1..T-1 rerun)."""
    return float(step_losses(model, x[k + 1:], y[k + 1:], (state_k,))[-1])


@pytest.mark.parametrize("k", [0, 2, 4])
def test_lstm_h_and_c_path_norms_match_finite_differences_mid_chunk(k):
    """state_grads hold total derivatives: dL/dh_k with c_k fixed (h_k feeds step k+1), and
    dL/dc_k with h_k = o_k tanh(c_k) following c_k (c_k feeds h_k and step k+1)."""
    model, x, y, state0 = random_problem("lstm", T=6, hidden=4)
    T = len(x)
    per_loss = per_loss_backward(model, x, y, state0)
    flow = analyse_chunk(model, x, y, state0)
    h, c, o = lstm_state_after(model, x, state0, k)
    eps = 1e-6
    numeric_h, numeric_c = np.empty(4), np.empty(4)
    for unit in range(4):
        step = np.zeros(4)
        step[unit] = eps
        numeric_h[unit] = (last_loss_from(model, x, y, (h + step, c), k)
                           - last_loss_from(model, x, y, (h - step, c), k)) / (2 * eps)
        numeric_c[unit] = (last_loss_from(model, x, y, (o * np.tanh(c + step), c + step), k)
                           - last_loss_from(model, x, y, (o * np.tanh(c - step), c - step), k)
                           ) / (2 * eps)
    dh, dc = per_loss.state_grads[0][0][k, T - 1], per_loss.state_grads[0][1][k, T - 1]
    assert np.max(rel_error(dh, numeric_h)) < 1e-6
    assert np.max(rel_error(dc, numeric_c)) < 1e-6
    assert flow.layers[0].norms["h"][k] == pytest.approx(np.linalg.norm(numeric_h), rel=1e-6)
    assert flow.layers[0].norms["c"][k] == pytest.approx(np.linalg.norm(numeric_c), rel=1e-6)


def test_lstm_without_recurrent_weights_carries_the_gradient_through_c_by_f_alone():
    """W_hh = 0: h_k reaches no later step, so ||dL_{T-1}/dh_k|| = 0 for k < T-1, while c's
    gradient steps back by the forget gate exactly: dL/dc_{k-1} = f_k * dL/dc_k."""
    model, x, y, state0 = random_problem("lstm", T=12, hidden=6)
    params = {**model.params, "l0.W_hh": np.zeros_like(model.params["l0.W_hh"])}
    params["l0.b_h"] = params["l0.b_h"].copy()
    params["l0.b_h"][6:12] = 3.0  # forget gates near sigmoid(3) = 0.95: a long memory
    model = model.with_params(params)
    per_loss = per_loss_backward(model, x, y, state0)
    flow = analyse_chunk(model, x, y, state0)
    f = per_loss.forward.layers[0][2].f[:, 0]  # (T, H)
    dc = per_loss.state_grads[0][1][:, -1]  # (k, H) dL_{T-1}/dc_k
    assert np.allclose(dc[:-1], f[1:] * dc[1:], rtol=1e-13, atol=0)
    h_norms, c_norms = flow.layers[0].norms["h"], flow.layers[0].norms["c"]
    assert np.all(h_norms[:-1] == 0) and h_norms[-1] > 0
    assert np.all(c_norms > 0)
    expected_rate = fit_decay(c_norms[::-1]).rate_per_step
    assert flow.layers[0].decays["c"].rate_per_step == pytest.approx(expected_rate)
    assert 0.9 < expected_rate < 1.0  # the carousel: about f per step
    gate = flow.layers[0].gates["forget_gate"]
    assert gate["mean"] == pytest.approx(f.mean()) and gate["near_1"] == np.mean(f > 0.9)
    assert gate["geometric_mean"] == pytest.approx(np.exp(np.log(f).mean()))
    assert len(gate["mean_by_step"]) == 12 and gate["near_1"] > 0.5
    # the impulse: the cell state's gain is the product of the forget gates; h's is zero
    impulse = impulse_response(model, x, state0)
    products = np.cumprod(np.vstack([np.ones(6), f[1:]]), axis=0)
    assert np.allclose(impulse.state_gains["c<-c"], np.linalg.norm(products, axis=1)
                       / np.sqrt(6), rtol=1e-8)
    assert np.all(impulse.model_gain[1:] == 0)


def test_gru_reports_its_update_gate_and_gate_blocks_of_W_hh():
    model, x, y, state0 = random_problem("gru", layers=2, T=8)
    flow = analyse_chunk(model, x, y, state0)
    z = per_loss_backward(model, x, y, state0).forward.layers[1][2].z[:, 0]
    gate = flow.layers[1].gates["update_gate"]
    assert gate["mean"] == pytest.approx(z.mean()) and gate["mean_by_step"] == pytest.approx(
        z.mean(axis=1).tolist())
    W_hh = model.params["l1.W_hh"]
    blocks = flow.layers[1].W_hh["gate_sigma_max"]
    assert list(blocks) == ["r", "z", "n"]
    assert blocks["n"] == pytest.approx(np.linalg.norm(W_hh[10:], 2))
    assert flow.layers[1].W_hh["sigma_max"] == pytest.approx(np.linalg.norm(W_hh, 2))
    assert flow.saturated is None and flow.mean_derivative is None and flow.activation is None
    report = flow.to_dict()
    assert report["cell"] == "gru" and report["num_layers"] == 2 and len(report["layers"]) == 2
    assert report["layers"][1]["update_gate"]["mean"] == gate["mean"]


# --- impulse responses --------------------------------------------------------------------------

def test_jacobian_gains_match_finite_differences_of_the_state():
    model, x, _, state0 = random_problem("rnn", T=6, hidden=4)
    fwd = model.forward(x[:, None], initial_state(model, state0))
    h = fwd.layers[0][2].h[:, 0]
    gains, linear = jacobian_gains(1 - h**2, model.params["l0.W_hh"])
    eps = 1e-6
    jacobians = np.empty((len(x), 4, 4))  # dh_t/dh_0 by perturbing h_0 and running steps 1..t
    for i in range(4):
        step = np.zeros(4)
        step[i] = eps
        runs = [model.forward(x[1:, None], ((h[0] + s)[None],),).h_top[:, 0]
                for s in (step, -step)]
        jacobians[1:, :, i] = (runs[0] - runs[1]) / (2 * eps)
    jacobians[0] = np.eye(4)
    expected = np.linalg.norm(jacobians, axis=(1, 2)) / 2.0  # Frobenius / sqrt(H)
    assert np.allclose(gains, expected, rtol=1e-7)
    powers = [np.linalg.matrix_power(model.params["l0.W_hh"], t) for t in range(len(x))]
    assert np.allclose(linear, np.linalg.norm(powers, axis=(1, 2)) / 2.0, rtol=1e-12)
    assert np.array_equal(impulse_response(model, x, state0).model_gain, gains)


def backward_jacobians(model: Model, x, state0) -> dict[str, np.ndarray]:
    """The exact gains of layer 0 by the backward with unit upstream vectors: for each t, a
    batch of H columns, column i with dh_t = e_i; the cell's dstate0 is then row i of
    d h_t / d state_0."""
    cell, p, H = model.cell, model.layer_params(0), model.spec.hidden_size
    xw = layer0_projections(model, x)
    start = cell.step(xw[:1], initial_state(model, state0)[0], p)
    gains = {f"h<-{name}": np.zeros(len(x)) for name in cell.state_names}
    gains["h<-h"][0] = 1.0
    for t in range(1, len(x)):
        inputs = np.repeat(xw[1:t + 1, None], H, axis=1)  # (t, H columns, G*H)
        h, _, cache = cell.forward(inputs, tuple(np.repeat(s, H, axis=0) for s in start), p)
        upstream = np.zeros_like(h)
        upstream[-1] = np.eye(H)
        _, dstate0, _ = cell.backward(upstream, cache)
        for name, rows in zip(cell.state_names, dstate0):
            gains[f"h<-{name}"][t] = np.linalg.norm(rows) / np.sqrt(H)
    return gains


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_central_difference_gains_match_the_exact_backward_jacobians(cell):
    model, x, _, state0 = random_problem(cell, layers=2, T=10, hidden=5)
    exact = backward_jacobians(model, x, state0)
    differences = state_gains_by_differences(model, x, state0)
    for key, values in exact.items():
        assert np.allclose(differences[key], values, rtol=1e-7, atol=1e-12), key
    assert np.all(exact["h<-h"][1:] > 1e-4)  # not two vanished gains agreeing
    impulse = impulse_response(model, x, state0)
    assert np.array_equal(impulse.model_gain, differences["h<-h"]) if cell != "rnn" else (
        np.allclose(impulse.model_gain, exact["h<-h"], rtol=1e-12))
    assert impulse.method == ("exact Jacobian product" if cell == "rnn"
                              else "central differences")


def test_linear_recurrence_impulse_response_is_w_to_the_t():
    impulse = np.zeros((30, 2))
    impulse[0] = 1.0
    h = linear_recurrence(np.array([-0.9, 1.1]), impulse)
    t = np.arange(30)
    assert np.allclose(h[:, 0], (-0.9) ** t) and np.allclose(h[:, 1], 1.1 ** t)
    assert fit_decay(np.abs(h[:, 0])).rate_per_step == pytest.approx(0.9)
    assert fit_decay(h[:, 1]).rate_per_step == pytest.approx(1.1)


def test_impulse_response_of_half_orthogonal_model_decays_like_w_one_half():
    x, _ = chunk(15)
    impulse = impulse_response(near_linear_model(0.5), x)
    assert np.allclose(impulse.model_gain, 0.5 ** np.arange(15), rtol=1e-5)
    assert impulse.linear_decay.rate_per_step == pytest.approx(0.5)
    assert impulse.scalar[3].tolist() == pytest.approx([-0.729, 1.331])


def test_fit_decay_reads_rate_tenfold_and_where_it_dies():
    decay = fit_decay(3.0 * 0.1 ** np.arange(6))
    assert decay.rate_per_step == pytest.approx(0.1)
    assert decay.steps_per_tenfold == pytest.approx(1.0)
    assert decay.vanished_at_lag == 4  # 1e-4 < 1e-3 <= 1e-3 at lag 3
    assert fit_decay(np.array([0.0, 0.0])).rate_per_step is None


# --- the command ----------------------------------------------------------------------------------

def write_checkpoint(tmp_path, mode="lines", dtype="float64", corpus_text=NAMES, hidden=6,
                     cell="rnn", layers=1, dropout=0.0, name="model.npz", seed=0):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text, encoding="utf-8")
    config = Config().replace(data={"corpus": str(corpus), "mode": mode},
                              model={"hidden_size": hidden, "dtype": dtype, "cell": cell,
                                     "num_layers": layers, "dropout": dropout})
    vocab = Vocabulary.from_text(corpus_text, extra="\n")
    spec = replace(ModelSpec.from_config(config.model, len(vocab)), init_scale=0.5)
    params = Model.init(spec, np.random.default_rng(seed)).params
    path = tmp_path / name
    save_checkpoint(path, Checkpoint(config, vocab, params))
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_gradflow_text_report_has_the_three_parts_and_the_check(tmp_path):
    result = run("gradflow", "--checkpoint", write_checkpoint(tmp_path))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "longest line of corpus" in out and "'\\nchristopher\\n'" in out
    assert "12 inputs" in out and "rnn (tanh), 1 layer of 6" in out
    assert "||dL_{T-1}/dh_k||" in out and "per step back" in out
    assert "sum to the trainer's dW_xh" in out and ": ok" in out
    assert "singular values of W_hh: largest" in out and "|h| > 0.95" in out


@pytest.mark.parametrize("cell, words", [("lstm", "forget gate f along the chunk"),
                                         ("gru", "update gate z along the chunk")])
def test_gradflow_reports_each_layer_of_a_gated_stack(tmp_path, cell, words):
    path = write_checkpoint(tmp_path, cell=cell, layers=2, dropout=0.5)
    result = run("gradflow", "--checkpoint", path)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"{cell}, 2 layers of 6 (dropout 0.5 in training, off here)" in out
    assert "layer 0, h:" in out and "layer 1, h:" in out
    assert ("layer 1, c:" in out) == (cell == "lstm")
    assert ": ok" in out and out.count(words) == 2
    assert "largest singular value of each gate's block: " in out
    report = json.loads(run("gradflow", "--checkpoint", path, "--json").stdout)
    assert report["cell"] == cell and report["num_layers"] == 2 and report["activation"] is None
    assert report["W_xh_sum_check"]["ok"] and len(report["layers"]) == 2
    gate = "forget_gate" if cell == "lstm" else "update_gate"
    assert 0 < report["layers"][1][gate]["mean"] < 1
    assert report["last_loss_grad_norms"] == report["layers"][0]["last_loss_grad_norms"]["h"]
    assert report["W_hh"] == report["layers"][0]["W_hh"]
    assert len(report["W_hh"]["gate_sigma_max"]) == (4 if cell == "lstm" else 3)


def test_gradflow_json_of_a_float32_checkpoint_is_checked_in_float64(tmp_path):
    path = write_checkpoint(tmp_path, mode="stream", dtype="float32",
                            corpus_text="the cat sat on the mat and the dog sat too. " * 3)
    result = run("gradflow", "--checkpoint", path, "--length", 30, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["text_source"].startswith("the start of corpus")
    assert report["text"] == "the cat sat on the mat and the d"[:31]
    assert report["length"] == 30 and len(report["last_loss_grad_norms"]) == 30
    assert np.array(report["W_xh_component_norms"]).shape == (30, 30)
    assert report["W_xh_sum_check"]["ok"] and report["W_xh_sum_check"]["max_abs_difference"] < 1e-10
    assert report["W_hh"]["sigma_max"] == pytest.approx(report["W_hh"]["singular_values"][0])
    assert 0 <= report["saturated_fraction"] <= 1 and 0 < report["mean_activation_derivative"] <= 1
    assert report["cell"] == "rnn" and report["num_layers"] == 1 and report["activation"] == "tanh"
    assert report["layers"][0]["decay"]["h"] == report["decay"]


def test_gradflow_prime_with_unknown_characters_is_a_one_line_error(tmp_path):
    result = run("gradflow", "--checkpoint", write_checkpoint(tmp_path), "--prime", "anna?Z")
    assert result.exit_code == 1
    assert "--prime has 2 character(s) outside the model's vocabulary: '?', 'Z'" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_gradflow_text_and_prime_exclude_each_other(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("anna\n", encoding="utf-8")
    result = run("gradflow", "--checkpoint", write_checkpoint(tmp_path), "--text", text,
                 "--prime", "bob")
    assert result.exit_code == 2 and "exclude each other" in result.output


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_gradflow_falls_back_to_the_models_sample_without_its_corpus(tmp_path, cell):
    path = write_checkpoint(tmp_path, cell=cell)
    (tmp_path / "corpus.txt").unlink()
    result = run("gradflow", "--checkpoint", path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "sample (seed 0" in report["text_source"]
    assert report["text"].startswith("\n") and set(report["text"]) <= set(NAMES)
    assert report["length"] == len(report["text"]) - 1 <= 50
    assert report["lines_crossed"] == 0


def test_gradflow_warns_when_a_lines_model_carries_state_across_lines(tmp_path):
    result = CliRunner().invoke(main, ["gradflow", "--checkpoint",
                                       str(write_checkpoint(tmp_path)), "--prime", "anna\nbob",
                                       "--json"])
    assert result.exit_code == 0, result.output
    assert "across 1 newline(s)" in result.stderr
    assert json.loads(result.stdout)["text"] == "\nanna\nbob\n"


def test_gradflow_impulse_prints_both_scalar_responses_and_the_model(tmp_path):
    result = run("gradflow", "--checkpoint", write_checkpoint(tmp_path), "--impulse",
                 "--prime", "christopher")
    assert result.exit_code == 0, result.output
    assert "w=-0.9" in result.output and "w=1.1" in result.output
    row = next(line for line in result.output.splitlines() if line.strip().startswith("2 "))
    assert row.split()[1:3] == ["8.100e-01", "1.210e+00"]
    assert "model, fitted" in result.output and "W_hh alone, fitted" in result.output


def test_gradflow_impulse_of_an_lstm_shows_the_cell_states_gain(tmp_path):
    path = write_checkpoint(tmp_path, cell="lstm", layers=2)
    result = run("gradflow", "--checkpoint", path, "--impulse", "--prime", "christopher")
    assert result.exit_code == 0, result.output
    assert "central differences" in result.output and "c<-c, fitted" in result.output
    assert "W_hh alone" not in result.output
    report = json.loads(run("gradflow", "--checkpoint", path, "--impulse", "--prime",
                            "christopher", "--json").stdout)
    assert report["cell"] == "lstm" and report["linear_gain"] is None
    assert report["model_gain"] == report["state_gains"]["h<-h"]
    assert report["state_gains"]["c<-c"][0] == 1.0 and len(report["model_gain"]) == 12


# --- gradflow --compare ---------------------------------------------------------------------------

def three_cells(tmp_path) -> list:
    return [write_checkpoint(tmp_path, cell=cell, name=f"{cell}.npz", seed=seed)
            for seed, cell in enumerate(("rnn", "lstm", "gru"))]


def test_gradflow_compare_prints_the_table_of_every_cell(tmp_path):
    paths = three_cells(tmp_path)
    args = [a for path in paths for a in ("--compare", path)]
    result = run("gradflow", *args)
    assert result.exit_code == 0, result.output
    out = result.output.splitlines()
    assert out[0].startswith("comparing 3 models on 12 inputs (+1 target) from the longest line")
    header = next(line for line in out if line.strip().startswith("lag"))
    assert header.split()[1:] == ["rnn.npz", "h", "lstm.npz", "h", "lstm.npz", "c", "gru.npz",
                                  "h"]
    rows = out[out.index(header) + 1:out.index(header) + 13]
    assert [int(r.split()[0]) for r in rows] == list(range(12))  # every lag of a short chunk
    for label in ("rate per step", "10x every (steps)", "< 1/1000 from lag", "last loss (nats)"):
        assert any(line.strip().startswith(label) for line in out), label
    # the JSON's numbers are analyse_chunk's on the same text
    report = json.loads(run("gradflow", *args, "--json").stdout)
    assert [m["cell"] for m in report["models"]] == ["rnn", "lstm", "gru"]
    assert [(c["model"], c["state"]) for c in report["curves"]] == [
        ("rnn.npz", "h"), ("lstm.npz", "h"), ("lstm.npz", "c"), ("gru.npz", "h")]
    from charrnn.checkpoint import load_checkpoint
    saved = load_checkpoint(paths[1])
    ids = saved.vocab.encode(report["text"])
    flow = analyse_chunk(saved.model, ids[:-1], ids[1:])
    assert report["curves"][2]["norms_by_lag"] == pytest.approx(
        flow.layers[0].norms["c"][::-1].tolist(), rel=1e-12)
    assert report["curves"][2]["decay"] == flow.layers[0].decays["c"].to_dict()
    first_row = rows[0].split()[1:]
    assert float(first_row[2]) == pytest.approx(report["curves"][2]["norms_by_lag"][0], rel=1e-2)
    if importlib.util.find_spec("matplotlib") is not None:
        out_png = tmp_path / "cells.png"
        drawn = run("gradflow", *args, "--prime", "christopher", "--plot", out_png)
        assert drawn.exit_code == 0, drawn.output
        assert f"wrote {out_png}" in drawn.stderr
        assert out_png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_gradflow_compare_refuses_checkpoint_and_impulse(tmp_path):
    paths = three_cells(tmp_path)
    result = run("gradflow", "--checkpoint", paths[0], "--compare", paths[1])
    assert result.exit_code == 2 and "--compare takes every model" in result.output
    result = run("gradflow", "--compare", paths[0], "--impulse")
    assert result.exit_code == 2 and "exclude each other" in result.output


# --- the report as a library -------------------------------------------------------------------

def test_gradflow_report_from_python_is_the_text_the_command_prints(tmp_path):
    from charrnn.checkpoint import load_checkpoint
    from charrnn.gradflow import chunk_text, gradflow_report

    path = write_checkpoint(tmp_path, cell="lstm")
    saved = load_checkpoint(path)
    text, source = chunk_text(saved, 50)
    assert source.startswith("the longest line of corpus") and text == "\nchristopher\n"
    ids = saved.vocab.encode(text)
    report = gradflow_report(analyse_chunk(saved.model, ids[:-1], ids[1:]), text)
    assert "forget gate f along the chunk" in report  # the LSTM's own carrying_gate label
    assert report in run("gradflow", "--checkpoint", path).output


def test_gradflow_report_of_a_cell_without_carrying_gate_or_local_derivative(monkeypatch):
    from charrnn.cells import CELLS
    from charrnn.cells.gru import GRUCell
    from charrnn.gradflow import gradflow_report, impulse_report

    class GatelessGRU(GRUCell):
        name = "gateless"
        carrying_gate = None
        local_derivative = None

    monkeypatch.setitem(CELLS, "gateless", GatelessGRU)
    spec = ModelSpec(vocab_size=5, hidden_size=6, cell="gateless", num_layers=2)
    model = Model.init(spec, np.random.default_rng(0))
    x, y = chunk(6)
    report = gradflow_report(analyse_chunk(model, x, y), "abcdefg")
    assert "3. what sets the rate" in report and "largest singular value of each gate" in report
    assert "along the chunk: mean" not in report and "tanh'(a)" not in report
    assert "relu units" not in report
    impulse = impulse_report(impulse_response(model, x))
    assert "(gateless; central differences" in impulse

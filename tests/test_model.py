"""Every backward against float64 centred finite differences, layer by layer and whole.

README promise: each cell has "a hand-written backpropagation through time that `charrnn gradcheck`
proves against finite differences".
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from charrnn.cells import CELLS
from charrnn.errors import CharRNNError
from charrnn.gradcheck import (
    check_gradients,
    default_specs,
    make_problem,
    rel_error,
    trainer_gradients,
)
from charrnn.model import (
    Model,
    ModelSpec,
    param_shapes,
    scatter_rows,
    softmax_loss_backward,
    softmax_loss_forward,
)


def numerical_gradient(f, array, eps=1e-6):
    """Centred differences of the scalar f() with respect to every entry of array."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + eps
        plus = f()
        array[index] = original - eps
        minus = f()
        array[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_rnn_cell_backward_matches_finite_differences(activation):
    rng = np.random.default_rng(1)
    T, B, H = 4, 3, 5
    cell = CELLS["rnn"](H, activation=activation)
    xw = rng.standard_normal((T, B, H)) * 0.5
    h0 = rng.standard_normal((B, H)) * 0.5
    params = {"W_hh": rng.standard_normal((H, H)) * 0.5}
    upstream = rng.standard_normal((T, B, H))  # a random linear function of h

    def f():
        h, _, _ = cell.forward(xw.copy(), (h0,), params)
        return float(np.sum(h * upstream))

    _, _, cache = cell.forward(xw.copy(), (h0,), params)
    grads = {}
    dxw, (dh0,), _ = cell.backward(upstream.copy(), cache, grads)
    for analytic, value in ((dxw, xw), (dh0, h0), (grads["W_hh"], params["W_hh"])):
        assert rel_error(analytic, numerical_gradient(f, value)).max() < 1e-6


def test_softmax_loss_backward_matches_finite_differences_with_mask():
    rng = np.random.default_rng(2)
    T, B, H, V = 3, 4, 5, 7
    h = rng.standard_normal((T, B, H))
    y = rng.integers(V, size=(T, B))
    mask = rng.random((T, B)) > 0.3
    W_hy, b_y = rng.standard_normal((V, H)), rng.standard_normal(V)
    scale = 0.25

    def f():
        return softmax_loss_forward(h, y, mask, W_hy, b_y)[0] * scale

    _, count, cache = softmax_loss_forward(h, y, mask, W_hy, b_y)
    dh, dW_hy, db_y = softmax_loss_backward(scale, cache)
    assert count == mask.sum()
    for analytic, value in ((dh, h), (dW_hy, W_hy), (db_y, b_y)):
        assert rel_error(analytic, numerical_gradient(f, value)).max() < 1e-6
    assert np.all(dh[~mask] == 0), "padding must not send gradient into h"


def test_softmax_is_max_shifted_so_huge_logits_stay_finite():
    h = np.full((1, 1, 2), 1e3)
    W_hy = np.array([[1e3, 1e3], [-1e3, 0.0]])
    nll, _, _ = softmax_loss_forward(h, np.array([[1]]), None, W_hy, np.zeros(2))
    assert np.isfinite(nll) and nll == pytest.approx(3e6)


@pytest.mark.parametrize("spec", default_specs(), ids=lambda spec: spec.describe())
def test_whole_model_gradcheck_passes_for_every_cell_and_stack(spec):
    problem = make_problem(spec, seed=3)
    rows = check_gradients(problem)
    names = list(param_shapes(spec)) + [f"{state}0.l{layer}" for layer in range(spec.num_layers)
                                        for state in problem.model.cell.state_names]
    assert [row.name for row in rows] == names
    for row in rows:
        assert row.ok, row


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_gradcheck_catches_a_wrong_cell_backward(cell, monkeypatch):
    """A deliberately broken backward of each cell (0.1% off in dW_hh) fails the check."""
    cell_class = CELLS[cell]
    right = cell_class.backward

    def wrong(self, dh, cache, grads=None, workspace=None, keep_state_grads=False):
        dxw, dstate0, state_grads = right(self, dh, cache, grads, workspace, keep_state_grads)
        grads["W_hh"] *= 1.001
        return dxw, dstate0, state_grads

    monkeypatch.setattr(cell_class, "backward", wrong)
    spec = ModelSpec(vocab_size=7, hidden_size=5, cell=cell, init_scale=0.5)
    rows = {row.name: row for row in check_gradients(make_problem(spec, seed=4))}
    assert not rows["l0.W_hh"].ok
    assert rows["l0.W_xh"].ok and rows["W_hy"].ok


def test_gradcheck_catches_a_wrong_dropout_backward():
    """Dropout that the backward forgets (the forward's masks not applied) fails the check."""
    spec = ModelSpec(vocab_size=7, hidden_size=5, num_layers=2, dropout=0.5, init_scale=0.5)
    problem = make_problem(spec, seed=5)

    def forgetting_the_mask(problem):
        grads, dstate0 = trainer_gradients(dataclasses.replace(problem, dropout_seed=None))
        return grads, dstate0

    rows = {row.name: row for row in check_gradients(problem, gradients=forgetting_the_mask)}
    assert not rows["W_hy"].ok


@pytest.mark.parametrize("rows, width, count", [
    (50, 3, 9),  # tiny: one bincount
    (3000, 40, 30),  # blocks of sorted rows, one sum per distinct index
    (3000, 8, 700),  # many distinct indices: reduceat
])
def test_scatter_rows_sums_repeated_indices_like_add_at(rows, width, count):
    rng = np.random.default_rng(5)
    indices = rng.integers(count - 2, size=rows).astype(np.uint16)  # the last two never occur
    values = rng.standard_normal((rows, width))
    expected = np.zeros((count, width))
    np.add.at(expected, indices, values)
    np.testing.assert_allclose(scatter_rows(indices, values, count), expected, rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("spec", default_specs()[::2], ids=lambda spec: spec.describe())
def test_forward_loss_and_step_agree_with_the_training_forward(spec):
    problem = make_problem(dataclasses.replace(spec, dropout=0.0), seed=6, masked=False)
    model = problem.model
    result = model.loss_and_grads(problem.x, problem.y, problem.state0)
    nll2, count2, state2 = model.forward_loss(problem.x, problem.y, problem.state0)
    assert result.nll_sum == pytest.approx(nll2, rel=1e-12) and result.count == count2
    assert result.objective == pytest.approx(result.nll_sum / problem.x.shape[1], rel=1e-15)
    step = model.stepper()
    state = problem.state0
    for t in range(problem.x.shape[0]):
        state, logits = step(problem.x[t], state)
    for stepped, forward, trained in zip(state, state2, result.state_last):
        for a, b, c in zip(stepped, forward, trained):
            np.testing.assert_allclose(a, b, rtol=1e-12)
            np.testing.assert_allclose(c, b, rtol=1e-12)


def test_first_layer_stack_reduces_to_min_char_rnn_init_order():
    """A one-layer vanilla model draws W_xh, W_hh, W_hy in min-char-rnn's order."""
    spec = ModelSpec(vocab_size=5, hidden_size=3)
    model = Model.init(spec, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    for name, shape in (("l0.W_xh", (3, 5)), ("l0.W_hh", (3, 3)), ("W_hy", (5, 3))):
        np.testing.assert_array_equal(model.params[name], rng.standard_normal(shape) * 0.01)


def test_public_entry_points_refuse_misshapen_inputs():
    model = Model.init(ModelSpec(vocab_size=5, hidden_size=3), np.random.default_rng(0))
    x = np.zeros((4, 1), dtype=np.int64)
    with pytest.raises(CharRNNError, match="outside the vocabulary"):
        model.loss_and_grads(x + 5, x, model.zero_state(1))
    with pytest.raises(CharRNNError, match=r"\(T, B\)"):
        model.loss_and_grads(x.T, x.T, model.zero_state(1))  # (B, T) at batch 1
    with pytest.raises(CharRNNError, match="zero_state"):
        model.forward_loss(x, x, model.zero_state(2))


def test_lstm_forget_bias_starts_the_forget_gate_open():
    spec = ModelSpec(vocab_size=5, hidden_size=3, cell="lstm", forget_bias=2.0)
    b_h = Model.init(spec, np.random.default_rng(0)).params["l0.b_h"]
    np.testing.assert_array_equal(b_h[3:6], 2.0)  # gates i, f, g, o: f is the second block
    assert not b_h[:3].any() and not b_h[6:].any()


def test_rounding_floor_passes_tiny_gradients_yet_catches_small_errors(monkeypatch):
    """At init_scale 0.01 many gradients sit near 1e-10, below what differences resolve: the
    check passes the right backward and still fails one whose dW_hh is 0.1% off."""
    spec = ModelSpec(vocab_size=7, hidden_size=6, cell="lstm", num_layers=2, init_scale=0.01)
    problem = make_problem(spec, seed=8)
    for value in problem.model.params.values():  # a freshly initialised model: zero biases
        if value.ndim == 1:
            value[...] = 0.0
    assert all(row.ok for row in check_gradients(problem))
    right = CELLS["lstm"].backward

    def wrong(self, dh, cache, grads=None, workspace=None, keep_state_grads=False):
        result = right(self, dh, cache, grads, workspace, keep_state_grads)
        grads["W_hh"] *= 1.001
        return result

    monkeypatch.setattr(CELLS["lstm"], "backward", wrong)
    rows = {row.name: row for row in check_gradients(problem)}
    assert not rows["l0.W_hh"].ok and not rows["l1.W_hh"].ok

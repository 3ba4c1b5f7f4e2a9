"""Every backward against float64 centred finite differences, layer by layer and whole."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.gradcheck import check_gradients, make_problem, rel_error
from charrnn.model import (
    forward_loss,
    loss_and_grads,
    rnn_backward,
    rnn_forward,
    scatter_rows,
    softmax_loss_backward,
    softmax_loss_forward,
    step,
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
def test_rnn_backward_matches_finite_differences(activation):
    rng = np.random.default_rng(1)
    T, B, H, V = 4, 3, 5, 6
    x = rng.integers(V, size=(T, B))
    h0 = rng.standard_normal((B, H)) * 0.5
    W_xh, W_hh = rng.standard_normal((H, V)) * 0.5, rng.standard_normal((H, H)) * 0.5
    b_h = rng.standard_normal(H) * 0.5
    upstream = rng.standard_normal((T, B, H))  # a random linear function of h

    def f():
        h, _ = rnn_forward(x, h0, W_xh, W_hh, b_h, activation)
        return float(np.sum(h * upstream))

    h, cache = rnn_forward(x, h0, W_xh, W_hh, b_h, activation)
    dh0, dW_xh, dW_hh, db_h = rnn_backward(upstream.copy(), cache)
    for analytic, value in ((dh0, h0), (dW_xh, W_xh), (dW_hh, W_hh), (db_h, b_h)):
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


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_whole_model_gradcheck_passes(activation):
    rows = check_gradients(make_problem(activation=activation, seed=3))
    assert [row.name for row in rows] == ["W_xh", "W_hh", "b_h", "W_hy", "b_y", "h0"]
    for row in rows:
        assert row.ok, row


def test_gradcheck_catches_a_wrong_backward():
    def wrong(params, x, y, h0, mask, activation, scale):
        nll, count, grads, dh0, h_last = loss_and_grads(params, x, y, h0, mask, activation,
                                                        scale)
        grads["W_hh"] = grads["W_hh"] * 1.001  # a 0.1% error in one gradient
        return nll, count, grads, dh0, h_last

    rows = {row.name: row for row in check_gradients(make_problem(seed=4), gradients=wrong)}
    assert not rows["W_hh"].ok
    assert rows["W_xh"].ok and rows["W_hy"].ok


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


def test_forward_loss_and_step_agree_with_the_training_forward():
    problem = make_problem(seed=6, masked=False)
    p = problem.params
    nll, count, _, _, h_last = loss_and_grads(p, problem.x, problem.y, problem.h0)
    nll2, count2, h_last2 = forward_loss(p, problem.x, problem.y, problem.h0)
    assert nll == pytest.approx(nll2, rel=1e-12) and count == count2
    np.testing.assert_allclose(h_last, h_last2, rtol=1e-12)
    h = problem.h0
    for t in range(problem.x.shape[0]):
        h, _ = step(p, problem.x[t], h)
    np.testing.assert_allclose(h, h_last, rtol=1e-12)

"""Prove the hand-written gradients against centred finite differences, in float64.

The numerical derivative uses the fourth-order centred stencil
    f'(w) ~ [8 (f(w+e) - f(w-e)) - (f(w+2e) - f(w-2e))] / (12 e),
whose truncation error (O(e^4)) and rounding error are both far below the 1e-6 bar, and errors
are CS231n's relative error |a - n| / max(1e-8, |a| + |n|), the one definition used everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from charrnn.model import PARAM_NAMES, init_params, loss_and_grads, rnn_forward

TOLERANCE = 1e-6
STENCIL_STEP = 1e-3
# A relu unit whose pre-activation crosses 0 inside the stencil makes the difference quotient
# meaningless there (a kink, not a wrong gradient): such entries are counted and skipped.


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    return np.abs(analytic - numeric) / np.maximum(1e-8, np.abs(analytic) + np.abs(numeric))


@dataclass
class GradcheckRow:
    name: str
    shape: tuple[int, ...]
    max_rel_error: float
    checked: int
    skipped_at_kinks: int = 0

    @property
    def ok(self) -> bool:
        return self.max_rel_error < TOLERANCE and self.checked > 0


@dataclass
class Problem:
    """A small fixed objective: weights, a chunk (x, y, mask) and an initial state h0."""

    params: dict[str, np.ndarray]
    x: np.ndarray
    y: np.ndarray
    h0: np.ndarray
    mask: np.ndarray | None
    activation: str


def make_problem(vocab_size: int = 7, hidden_size: int = 6, steps: int = 5, batch: int = 3,
                 activation: str = "tanh", seed: int = 0, params: dict | None = None,
                 init_scale: float = 0.5, masked: bool = True) -> Problem:
    """Random indices, a nonzero h0 and (optionally) a padding mask, all in float64."""
    rng = np.random.default_rng(seed)
    if params is None:
        params = init_params(vocab_size, hidden_size, init_scale, rng, "float64")
        params["b_h"] += rng.standard_normal(hidden_size) * init_scale
        params["b_y"] += rng.standard_normal(vocab_size) * init_scale
    else:
        params = {name: np.array(value, dtype=np.float64) for name, value in params.items()}
        vocab_size, hidden_size = params["W_xh"].shape[1], params["W_hh"].shape[0]
    x = rng.integers(vocab_size, size=(steps, batch))
    y = rng.integers(vocab_size, size=(steps, batch))
    h0 = np.tanh(rng.standard_normal((batch, hidden_size)))
    mask = None
    if masked and batch > 1:
        lengths = rng.integers(1, steps + 1, size=batch)
        lengths[0] = steps
        mask = np.arange(steps)[:, None] < lengths[None, :]
    return Problem(params, x, y, h0, mask, activation)


GradientFunction = Callable[..., tuple]


def check_gradients(problem: Problem, max_entries: int = 60, seed: int = 0,
                    gradients: GradientFunction = loss_and_grads) -> list[GradcheckRow]:
    """Compare analytic and numerical gradients of every parameter and of h0.

    `gradients` is the function under test (the model's loss_and_grads by default), so a test can
    hand in a deliberately wrong one and see the check fail.
    """
    rng = np.random.default_rng(seed)
    p = problem
    scale = 1.0 / p.x.shape[1]

    def objective(params, h0):
        nll_sum, _, _, _, _ = loss_and_grads(params, p.x, p.y, h0, p.mask, p.activation, scale)
        return nll_sum * scale

    def activation_pattern(params, h0):
        h, _ = rnn_forward(p.x, h0, params["W_xh"], params["W_hh"], params["b_h"], p.activation)
        return h > 0

    _, _, grads, dh0, _ = gradients(p.params, p.x, p.y, p.h0, p.mask, p.activation, scale)
    targets = {**{name: (p.params[name], grads[name]) for name in PARAM_NAMES},
               "h0": (p.h0, dh0)}
    rows = []
    for name, (value, analytic) in targets.items():
        flat_count = value.size
        picks = (np.arange(flat_count) if flat_count <= max_entries
                 else rng.choice(flat_count, size=max_entries, replace=False))
        worst, checked, skipped = 0.0, 0, 0
        base_pattern = activation_pattern(p.params, p.h0) if p.activation == "relu" else None
        for flat in picks:
            index = np.unravel_index(flat, value.shape)
            original = value[index]
            values = {}
            same_kinks = True
            for k in (-2, -1, 1, 2):
                value[index] = original + k * STENCIL_STEP
                values[k] = objective(p.params, p.h0)
                if base_pattern is not None and not np.array_equal(
                        activation_pattern(p.params, p.h0), base_pattern):
                    same_kinks = False
            value[index] = original
            if not same_kinks:
                skipped += 1
                continue
            numeric = (8 * (values[1] - values[-1]) - (values[2] - values[-2])) / (
                12 * STENCIL_STEP)
            worst = max(worst, float(rel_error(np.float64(analytic[index]), numeric)))
            checked += 1
        rows.append(GradcheckRow(name, value.shape, worst, checked, skipped))
    return rows


def run_gradcheck(params: dict | None = None, activations=("tanh", "relu"), seed: int = 0,
                  vocab_size: int = 7, hidden_size: int = 6) -> dict[str, list[GradcheckRow]]:
    """The table `charrnn gradcheck` prints: one list of rows per activation."""
    return {activation: check_gradients(make_problem(vocab_size, hidden_size,
                                                     activation=activation, seed=seed,
                                                     params=params), seed=seed)
            for activation in activations}

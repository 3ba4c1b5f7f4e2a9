"""Prove the hand-written gradients against centred finite differences, in float64.

The numerical derivative uses the fourth-order centred stencil
    f'(w) ~ [8 (f(w+e) - f(w-e)) - (f(w+2e) - f(w-2e))] / (12 e),
whose truncation error (O(e^4)) and rounding error are both far below the 1e-6 bar, and errors
are CS231n's relative error |a - n| / max(floor, |a| + |n|), the one definition used everywhere
(floor 1e-8, raised to what rounding lets differences resolve: see rounding_floor).

The analytic gradient is computed exactly as the trainer computes it: one flat gradient vector
whose views receive every parameter's gradient, and reused scratch memory. Dropout masks are held
fixed by drawing them from a generator re-created from the same seed for every evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from charrnn.cells import CELLS
from charrnn.model import Model, ModelSpec
from charrnn.optim import Layout
from charrnn.plumbing.workspace import Workspace

TOLERANCE = 1e-6
STENCIL_STEP = 1e-3
# A relu unit whose pre-activation crosses 0 inside the stencil makes the difference quotient
# meaningless there (a kink, not a wrong gradient): such entries are counted and skipped.

# What `charrnn gradcheck` checks by default: every cell, one layer plain and two layers with
# dropout between them and before the output layer, all with a padding mask.
STACKS = ((1, 0.0), (2, 0.3))


def variants() -> list[tuple[str, str]]:
    """(cell, activation) for every activation every registered cell declares."""
    return [(name, activation) for name, cell in CELLS.items() for activation in cell.activations]


def rel_error(analytic: np.ndarray, numeric: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    return np.abs(analytic - numeric) / np.maximum(floor, np.abs(analytic) + np.abs(numeric))


def rounding_floor(objective_values) -> float:
    """The smallest |a| + |n| that the relative error divides by, for one stencil.

    The stencil's rounding error is about 18 eps |f| / (12 e) (its 18 unit coefficients, each
    value of f carrying eps |f|). A gradient entry far below that (common at a trained model's
    weights, where many gradients are ~1e-10) cannot be resolved by differences at all, so it is
    compared against 10 / TOLERANCE times that error instead: rounding alone then stays at a
    tenth of the bar, and a 0.1% error in any entry above ~1e-8 still fails.
    """
    noise = np.finfo(np.float64).eps * max(abs(v) for v in objective_values) * 18 / (
        12 * STENCIL_STEP)
    return max(1e-8, 10 * noise / TOLERANCE)


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
    """A small fixed objective: a float64 model, a chunk (x, y, mask) and an initial state."""

    model: Model
    x: np.ndarray
    y: np.ndarray
    state0: tuple
    mask: np.ndarray | None
    dropout_seed: int | None = None  # masks drawn from default_rng(dropout_seed) every time

    @property
    def label(self) -> str:
        spec = self.model.spec
        dropout = f", dropout {spec.dropout:g}" if self.dropout_seed is not None else ""
        return f"{spec.describe()}{dropout}"

    def dropout_rng(self) -> np.random.Generator | None:
        return None if self.dropout_seed is None else np.random.default_rng(self.dropout_seed)


def make_problem(spec: ModelSpec | None = None, steps: int = 5, batch: int = 3, seed: int = 0,
                 params: dict | None = None, masked: bool = True) -> Problem:
    """Random weights (or params, e.g. a checkpoint's), indices, a nonzero initial state and a
    padding mask, all in float64."""
    spec = replace(spec or ModelSpec(vocab_size=7, hidden_size=6, init_scale=0.5),
                   dtype="float64")
    rng = np.random.default_rng(seed)
    if params is None:
        model = Model.init(spec, rng)
        for value in model.params.values():
            if value.ndim == 1:  # nonzero biases, so every bias gradient path is exercised
                value += rng.standard_normal(value.shape) * spec.init_scale
    else:
        model = Model(spec, {name: np.array(value, dtype=np.float64)
                             for name, value in params.items()})
    V, H = spec.vocab_size, spec.hidden_size
    x = rng.integers(V, size=(steps, batch))
    y = rng.integers(V, size=(steps, batch))
    state0 = tuple(tuple(np.tanh(rng.standard_normal((batch, H))) for _ in layer)
                   for layer in model.zero_state(batch))
    mask = None
    if masked and batch > 1:
        lengths = rng.integers(1, steps + 1, size=batch)
        lengths[0] = steps
        mask = np.arange(steps)[:, None] < lengths[None, :]
    dropout_seed = seed + 1 if spec.dropout > 0 else None
    return Problem(model, x, y, state0, mask, dropout_seed)


def trainer_gradients(problem: Problem):
    """The analytic gradients as the trainer gets them: (grads by name, dstate0)."""
    model = problem.model
    layout = Layout({name: value.shape for name, value in model.params.items()})
    flat_params = layout.flatten(model.params, dtype=np.float64)
    flat_grad = np.full_like(flat_params, np.nan)  # every entry must be written by the backward
    on_flat = model.with_params(layout.views(flat_params))
    workspace = Workspace()
    for _ in range(2):  # twice: the second call reuses the scratch memory of the first
        result = on_flat.loss_and_grads(problem.x, problem.y, problem.state0, problem.mask,
                                        dropout_rng=problem.dropout_rng(),
                                        grads_out=layout.views(flat_grad), workspace=workspace)
    return layout.views(flat_grad.copy()), result.dstate0


GradientFunction = Callable[[Problem], tuple]


def check_gradients(problem: Problem, max_entries: int = 60, seed: int = 0,
                    gradients: GradientFunction = trainer_gradients) -> list[GradcheckRow]:
    """Compare analytic and numerical gradients of every parameter and initial state entry.

    `gradients` is the function under test (the trainer's path by default), so a test can hand
    in a deliberately wrong one and see the check fail.
    """
    rng = np.random.default_rng(seed)
    p = problem
    model = p.model
    relu = model.spec.activation == "relu"  # a kink at 0, in any cell that declares relu

    def objective() -> float:
        return model.loss_and_grads(p.x, p.y, p.state0, p.mask,
                                    dropout_rng=p.dropout_rng()).objective

    def activation_pattern():
        fwd = model.forward(p.x, p.state0, p.dropout_rng())
        return [cache.h > 0 for _, _, cache in fwd.layers]

    grads, dstate0 = gradients(p)
    targets = {name: (value, grads[name]) for name, value in model.params.items()}
    for layer, (values, dvalues) in enumerate(zip(p.state0, dstate0)):
        for state_name, value, dvalue in zip(model.cell.state_names, values, dvalues):
            targets[f"{state_name}0.l{layer}"] = (value, dvalue)
    base_pattern = activation_pattern() if relu else None
    rows = []
    for name, (value, analytic) in targets.items():
        picks = (np.arange(value.size) if value.size <= max_entries
                 else rng.choice(value.size, size=max_entries, replace=False))
        worst, checked, skipped = 0.0, 0, 0
        for flat in picks:
            index = np.unravel_index(flat, value.shape)
            original = value[index]
            values = {}
            same_kinks = True
            for k in (-2, -1, 1, 2):
                value[index] = original + k * STENCIL_STEP
                values[k] = objective()
                if relu and not all(np.array_equal(a, b) for a, b in
                                    zip(activation_pattern(), base_pattern)):
                    same_kinks = False
            value[index] = original
            if not same_kinks:
                skipped += 1
                continue
            numeric = (8 * (values[1] - values[-1]) - (values[2] - values[-2])) / (
                12 * STENCIL_STEP)
            worst = max(worst, float(rel_error(np.float64(analytic[index]), numeric,
                                               rounding_floor(values.values()))))
            checked += 1
        rows.append(GradcheckRow(name, value.shape, worst, checked, skipped))
    return rows


def default_specs(vocab_size: int = 7, hidden_size: int = 6) -> list[ModelSpec]:
    """Every cell, with 1 layer and with 2 layers and dropout."""
    return [ModelSpec(vocab_size=vocab_size, hidden_size=hidden_size, cell=cell,
                      activation=activation, num_layers=layers, dropout=dropout, init_scale=0.5)
            for cell, activation in variants() for layers, dropout in STACKS]


def run_gradcheck(specs: list[ModelSpec] | None = None, params: dict | None = None,
                  seed: int = 0) -> list[tuple[str, list[GradcheckRow]]]:
    """The tables `charrnn gradcheck` prints: (label, rows) for each model checked."""
    tables = []
    for spec in specs or default_specs():
        problem = make_problem(spec, seed=seed, params=params)
        tables.append((problem.label, check_gradients(problem, seed=seed)))
    return tables

"""The optimizers and the clipping modes against PyTorch's, over many steps in float64.

README promise (docs/models.md): "Optimizers: Adagrad (min-char-rnn's), SGD with momentum, Adam"
and "Clipping: `value` (min-char-rnn's: every entry to ±`clip`), `norm` (the global norm to
`clip`) or `none`": each is the textbook rule, as `torch.optim.Adagrad`,
`torch.optim.SGD(momentum=...)`, `torch.optim.Adam` and `torch.nn.utils.clip_grad_norm_` /
`clip_grad_value_` implement it.

Both sides get the same gradient sequence (seeded, of scales from 0.05 to 20 so that clipping
bites on some steps and not on others) and the same learning rate, changed every step as a
schedule would; the parameters must agree to 1e-12 after every step.

Where charrnn's definition differs from PyTorch's defaults, torch is configured to the same
rule (and a test shows the difference is real):
- Adagrad: charrnn (min-char-rnn) divides by sqrt(G + 1e-8) with G starting at 0; torch by
  sqrt(G) + eps. torch with eps=0 and initial_accumulator_value=1e-8 is the same rule.
- clip norm: torch scales by clip / (norm + 1e-6), charrnn by clip / norm (both only when the
  norm exceeds clip). torch's max_norm is given as clip * (norm + 1e-6) / norm, which makes
  its factor charrnn's.
"""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.config import TrainingConfig
from charrnn.optim import Layout, clip_gradients, grad_norm, make_optimizer

torch = pytest.importorskip("torch")

SHAPES = {"l0.W_xh": (7, 5), "l0.b_h": (5,), "W_hy": (5, 3)}
STEPS = 400
TORCH_NORM_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_: clip_coef = max_norm / (norm + 1e-6)
CLIP = {"value": 1.0, "norm": 6.0, "none": 0.0}
HYPER = {  # not the defaults, so a hyper-parameter that is not passed through shows
    "adagrad": dict(lr=0.1),
    "sgd": dict(lr=0.01, momentum=0.85),
    "adam": dict(lr=0.003, beta1=0.8, beta2=0.99),
}


def gradient_sequence(seed: int, size: int, steps: int = STEPS) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.uniform(np.log(0.05), np.log(20.0), steps))
    return [rng.standard_normal(size) * scale for scale in scales]


def torch_optimizer(name: str, params, hyper: dict):
    """The torch optimizer with charrnn's rule (see the module docstring for Adagrad)."""
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=hyper["lr"], eps=0.0,
                                   initial_accumulator_value=1e-8)
    if name == "sgd":
        return torch.optim.SGD(params, lr=hyper["lr"], momentum=hyper["momentum"],
                               dampening=0.0, nesterov=False)
    return torch.optim.Adam(params, lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]),
                            eps=1e-8)


def torch_clip(params, mode: str, clip: float) -> None:
    grads = [p.grad for p in params]
    if mode == "value":
        torch.nn.utils.clip_grad_value_(params, clip)
    elif mode == "norm":
        norm = float(torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads])))
        # torch's factor is max_norm / (norm + 1e-6): this max_norm makes it clip / norm
        torch.nn.utils.clip_grad_norm_(params, clip * (norm + TORCH_NORM_EPS) / norm)


@pytest.mark.parametrize("clip_mode", ["none", "value", "norm"])
@pytest.mark.parametrize("name", ["adagrad", "sgd", "adam"])
def test_optimizer_with_clipping_follows_torch_step_by_step(name, clip_mode):
    layout = Layout(SHAPES)
    training = TrainingConfig(optimizer=name, clip_mode=clip_mode, clip=CLIP[clip_mode],
                              **HYPER[name])
    optimizer = make_optimizer(layout, training, "float64")
    rng = np.random.default_rng(1)
    start = {key: rng.standard_normal(shape) for key, shape in SHAPES.items()}
    flat = layout.flatten(start, dtype="float64")
    views = layout.views(flat)
    theirs = [torch.tensor(start[key], dtype=torch.float64, requires_grad=True) for key in SHAPES]
    reference = torch_optimizer(name, theirs, HYPER[name])
    clipped_steps = 0
    for step, grad in enumerate(gradient_sequence(2, layout.size)):
        scale = 1.0 / (1 + 0.01 * step)  # a schedule: the rate changes every step
        for param, view in zip(theirs, layout.views(grad).values()):
            param.grad = torch.tensor(view.copy())
        torch_clip(theirs, clip_mode, training.clip)
        for group in reference.param_groups:
            group["lr"] = training.lr * scale
        reference.step()

        ours = grad.copy()
        clipped_steps += clip_gradients(ours, training.clip_mode, training.clip) > 0
        optimizer.scale = scale
        optimizer.update(flat, ours)
        for key, param in zip(SHAPES, theirs):
            np.testing.assert_allclose(views[key], param.detach().numpy(), rtol=1e-12,
                                       atol=1e-13, err_msg=f"{key} after step {step + 1}")
    assert optimizer.t == STEPS
    if clip_mode == "none":
        assert clipped_steps == 0
    else:  # clipping both bit and left some steps alone
        assert 0.1 * STEPS < clipped_steps < 0.9 * STEPS, clipped_steps


def test_clip_value_is_torch_clip_grad_value():
    for grad in gradient_sequence(3, 40, steps=50):
        ours = grad.copy()
        fraction = clip_gradients(ours, "value", 1.5)
        theirs = torch.tensor(grad, requires_grad=False)
        param = torch.zeros(40, dtype=torch.float64, requires_grad=True)
        param.grad = theirs
        torch.nn.utils.clip_grad_value_([param], 1.5)
        assert np.array_equal(ours, param.grad.numpy())  # the same rule: exactly equal
        assert fraction == np.count_nonzero(np.abs(grad) > 1.5) / grad.size


def test_clip_norm_is_torch_clip_grad_norm_up_to_its_epsilon():
    """Unconfigured torch: the same global norm, and a factor that differs only by torch's
    1e-6 added to the norm."""
    layout = Layout(SHAPES)
    clipped = 0
    for grad in gradient_sequence(4, layout.size, steps=100):
        params = [torch.zeros(shape, dtype=torch.float64, requires_grad=True)
                  for shape in SHAPES.values()]
        for param, view in zip(params, layout.views(grad).values()):
            param.grad = torch.tensor(view.copy())
        total = float(torch.nn.utils.clip_grad_norm_(params, 6.0))
        assert grad_norm(grad) == pytest.approx(total, rel=1e-14)
        ours = grad.copy()
        fraction = clip_gradients(ours, "norm", 6.0)
        theirs = np.concatenate([p.grad.numpy().reshape(-1) for p in params])
        if total > 6.0:
            clipped += 1
            assert fraction == 1.0
            np.testing.assert_allclose(ours, theirs * (total + TORCH_NORM_EPS) / total,
                                       rtol=1e-14, atol=0)
            assert grad_norm(ours) == pytest.approx(6.0, rel=1e-14)
        else:
            assert fraction == 0.0 and np.array_equal(ours, grad)
    assert 10 < clipped < 90


def test_adagrad_differs_from_torch_defaults_so_the_comparison_is_sharp():
    """With torch's default eps placement (sqrt(G) + 1e-10, G from 0) the two Adagrads part
    by far more than the tolerance: the configured comparison above is not vacuous."""
    layout = Layout(SHAPES)
    optimizer = make_optimizer(layout, TrainingConfig(optimizer="adagrad", lr=0.1), "float64")
    flat = np.zeros(layout.size)
    param = torch.zeros(layout.size, dtype=torch.float64, requires_grad=True)
    reference = torch.optim.Adagrad([param], lr=0.1)
    for grad in gradient_sequence(5, layout.size, steps=20):
        grad = grad * 1e-5  # small gradients, where the eps placement matters
        param.grad = torch.tensor(grad)
        reference.step()
        optimizer.update(flat, grad.copy())
    assert np.max(np.abs(flat - param.detach().numpy())) > 1e-6

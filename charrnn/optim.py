"""Gradient clipping and the update rules (Adagrad as min-char-rnn, SGD with momentum, Adam).

An optimizer's state is a flat dict of named arrays, so a checkpoint stores it as it is.
"""

from __future__ import annotations

import numpy as np

ADAGRAD_EPS = 1e-8  # min-char-rnn: param += -lr * dparam / np.sqrt(mem + 1e-8)
ADAM_EPS = 1e-8


def grad_norm(grads: dict[str, np.ndarray]) -> float:
    """Global L2 norm over every gradient entry."""
    return float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))


def clip_gradients(grads: dict[str, np.ndarray], mode: str, clip: float,
                   norm: float | None = None) -> float:
    """Clip grads in place; return the fraction of entries (value) or of steps (norm) clipped.

    value: each entry to [-clip, clip] (min-char-rnn's np.clip(dparam, -5, 5)).
    norm: all gradients scaled by clip / ||g|| when the global norm ||g|| exceeds clip.
    """
    if mode == "none" or clip <= 0:
        return 0.0
    if mode == "value":
        clipped = sum(int(np.count_nonzero(np.abs(g) > clip)) for g in grads.values())
        for g in grads.values():
            np.clip(g, -clip, clip, out=g)
        return clipped / sum(g.size for g in grads.values())
    if norm is None:
        norm = grad_norm(grads)
    if norm <= clip:
        return 0.0
    for g in grads.values():
        g *= clip / norm
    return 1.0


class Optimizer:
    """Base: holds named state arrays and the step count; subclasses define update()."""

    slots: tuple[str, ...] = ()

    def __init__(self, params: dict[str, np.ndarray], lr: float):
        self.lr = lr
        self.t = 0
        self.state = {f"{slot}.{name}": np.zeros_like(p)
                      for slot in self.slots for name, p in params.items()}

    def update(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        for name in params:
            self._update_one(name, params[name], grads[name])

    def _update_one(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        raise NotImplementedError

    def state_arrays(self) -> dict[str, np.ndarray]:
        return dict(self.state)

    def load_state(self, arrays: dict[str, np.ndarray], t: int) -> None:
        for key, value in arrays.items():
            self.state[key][...] = value
        self.t = t


class Adagrad(Optimizer):
    slots = ("mem",)

    def _update_one(self, name, param, grad):
        mem = self.state[f"mem.{name}"]
        mem += grad * grad
        param += -self.lr * grad / np.sqrt(mem + ADAGRAD_EPS)


class SGD(Optimizer):
    slots = ("velocity",)

    def __init__(self, params, lr, momentum: float = 0.0):
        super().__init__(params, lr)
        self.momentum = momentum

    def _update_one(self, name, param, grad):
        velocity = self.state[f"velocity.{name}"]
        velocity *= self.momentum
        velocity += grad
        param -= self.lr * velocity


class Adam(Optimizer):
    slots = ("m", "v")

    def __init__(self, params, lr, beta1: float = 0.9, beta2: float = 0.999):
        super().__init__(params, lr)
        self.beta1, self.beta2 = beta1, beta2

    def _update_one(self, name, param, grad):
        m, v = self.state[f"m.{name}"], self.state[f"v.{name}"]
        m *= self.beta1
        m += (1 - self.beta1) * grad
        v *= self.beta2
        v += (1 - self.beta2) * grad * grad
        m_hat_scale = 1.0 / (1 - self.beta1 ** self.t)
        v_hat_scale = 1.0 / (1 - self.beta2 ** self.t)
        param -= self.lr * (m * m_hat_scale) / (np.sqrt(v * v_hat_scale) + ADAM_EPS)


def make_optimizer(name: str, params: dict[str, np.ndarray], training) -> Optimizer:
    """The optimizer a TrainingConfig names, with its hyper-parameters."""
    if name == "adagrad":
        return Adagrad(params, training.lr)
    if name == "sgd":
        return SGD(params, training.lr, training.momentum)
    if name == "adam":
        return Adam(params, training.lr, training.beta1, training.beta2)
    raise ValueError(f"unknown optimizer {name!r}")

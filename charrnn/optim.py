"""Gradient clipping and the update rules (Adagrad as min-char-rnn, SGD with momentum, Adam).

An optimizer's state is a flat dict of named arrays, so a checkpoint stores it as it is.
"""

from __future__ import annotations

import numpy as np

ADAGRAD_EPS = 1e-8  # min-char-rnn: param += -lr * dparam / np.sqrt(mem + 1e-8)
ADAM_EPS = 1e-8


class Layout:
    """Named arrays packed into one flat vector, so clipping and the update are a handful of
    whole-vector operations instead of a handful per parameter (what dominates at batch 1)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        self.shapes = dict(shapes)
        self.slices = {}
        offset = 0
        for name, shape in self.shapes.items():
            size = int(np.prod(shape, dtype=np.int64))
            self.slices[name] = slice(offset, offset + size)
            offset += size
        self.size = offset

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        return {name: flat[self.slices[name]].reshape(shape)
                for name, shape in self.shapes.items()}

    def flatten(self, arrays: dict[str, np.ndarray], out: np.ndarray | None = None,
                dtype=None) -> np.ndarray:
        if out is None:
            out = np.empty(self.size, dtype=dtype or next(iter(arrays.values())).dtype)
        for name, where in self.slices.items():
            out[where] = arrays[name].reshape(-1)
        return out


def grad_norm(grad: np.ndarray) -> float:
    """Global L2 norm over every gradient entry (grad: the flat gradient vector)."""
    return float(np.sqrt(np.dot(grad, grad)))


def clip_gradients(grad: np.ndarray, mode: str, clip: float, norm: float | None = None) -> float:
    """Clip the flat gradient in place; return the fraction of entries (value) or of steps (norm)
    clipped.

    value: each entry to [-clip, clip] (min-char-rnn's np.clip(dparam, -5, 5)).
    norm: the whole gradient scaled by clip / ||g|| when its global norm ||g|| exceeds clip.
    """
    if mode == "none" or clip <= 0:
        return 0.0
    if mode == "value":
        if -clip <= np.minimum.reduce(grad) and np.maximum.reduce(grad) <= clip:
            return 0.0  # the common case, found with two reductions and no temporary array
        clipped = int(np.count_nonzero(np.abs(grad) > clip))
        np.clip(grad, -clip, clip, out=grad)
        return clipped / grad.size
    if norm is None:
        norm = grad_norm(grad)
    if norm <= clip:
        return 0.0
    grad *= clip / norm
    return 1.0


class Optimizer:
    """Base: flat state vectors (one a slot) and the step count; subclasses define update().

    params and grads are flat vectors laid out by `layout`; state_arrays() names each slot's
    per-parameter views (e.g. 'mem.W_xh') for the checkpoint.
    """

    slots: tuple[str, ...] = ()

    def __init__(self, layout: Layout, lr: float, dtype="float64"):
        self.layout = layout
        self.lr = lr  # the base rate: a user may change it between steps
        self.scale = 1.0  # the schedule's factor (lr decay), set by the trainer every step
        self.t = 0
        self.state = {slot: np.zeros(layout.size, dtype=dtype) for slot in self.slots}
        self._scratch: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def rate(self) -> float:
        """The learning rate of the next update: lr times the schedule's factor."""
        return self.lr * self.scale

    def update(self, params: np.ndarray, grad: np.ndarray) -> None:
        raise NotImplementedError

    def _buffers(self, like: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Two scratch vectors reused every step: no allocation in the update."""
        if self._scratch is None or self._scratch[0].shape != like.shape:
            self._scratch = (np.empty_like(like), np.empty_like(like))
        return self._scratch

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {f"{slot}.{name}": view for slot, flat in self.state.items()
                for name, view in self.layout.views(flat).items()}

    def load_state(self, arrays: dict[str, np.ndarray], t: int) -> None:
        for key, value in arrays.items():
            slot, name = key.split(".", 1)
            if slot in self.state and name in self.layout.slices:
                self.state[slot][self.layout.slices[name]] = value.reshape(-1)
        self.t = t


class Adagrad(Optimizer):
    slots = ("mem",)

    def update(self, params, grad):
        self.t += 1
        mem = self.state["mem"]
        step, root = self._buffers(grad)
        np.multiply(grad, grad, out=step)
        mem += step
        # param += -lr * dparam / np.sqrt(mem + 1e-8), in min-char-rnn's order of operations
        np.add(mem, ADAGRAD_EPS, out=root)
        np.sqrt(root, out=root)
        np.multiply(grad, -self.rate, out=step)
        step /= root
        params += step


class SGD(Optimizer):
    slots = ("velocity",)

    def __init__(self, layout, lr, dtype="float64", momentum: float = 0.0):
        super().__init__(layout, lr, dtype)
        self.momentum = momentum

    def update(self, params, grad):
        self.t += 1
        velocity = self.state["velocity"]
        velocity *= self.momentum
        velocity += grad
        step, _ = self._buffers(grad)
        params -= np.multiply(velocity, self.rate, out=step)


class Adam(Optimizer):
    slots = ("m", "v")

    def __init__(self, layout, lr, dtype="float64", beta1: float = 0.9, beta2: float = 0.999):
        super().__init__(layout, lr, dtype)
        self.beta1, self.beta2 = beta1, beta2

    def update(self, params, grad):
        self.t += 1
        m, v = self.state["m"], self.state["v"]
        step, root = self._buffers(grad)  # no temporaries: each would be a fresh, faulted page run
        m *= self.beta1
        m += np.multiply(grad, 1 - self.beta1, out=step)  # m = b1 m + (1 - b1) g
        v *= self.beta2
        np.multiply(grad, 1 - self.beta2, out=step)
        step *= grad
        v += step  # v = b2 v + (1 - b2) g^2
        m_hat_scale = 1.0 / (1 - self.beta1 ** self.t)
        v_hat_scale = 1.0 / (1 - self.beta2 ** self.t)
        np.multiply(v, v_hat_scale, out=root)
        np.sqrt(root, out=root)
        root += ADAM_EPS  # sqrt(v_hat) + eps
        np.multiply(m, self.rate * m_hat_scale, out=step)
        step /= root
        params -= step  # params -= lr m_hat / (sqrt(v_hat) + eps)


def make_optimizer(layout: Layout, training, dtype="float64") -> Optimizer:
    """The optimizer a TrainingConfig names, with its hyper-parameters."""
    if training.optimizer == "adagrad":
        return Adagrad(layout, training.lr, dtype)
    if training.optimizer == "sgd":
        return SGD(layout, training.lr, dtype, training.momentum)
    if training.optimizer == "adam":
        return Adam(layout, training.lr, dtype, training.beta1, training.beta2)
    raise ValueError(f"unknown optimizer {training.optimizer!r}")

"""The model: a stack of recurrent layers of one cell type, an output layer and the softmax loss.

This module is the one place that knows what a model is: its parameter names and shapes, its
initialisation, its recurrent state, and the forward and backward of the whole stack. Everything
else (training, sampling, evaluation, checkpoints, gradcheck, gradflow) asks a `Model`.

For layers l = 0..L-1 of a cell (charrnn.cells) and time steps t = 0..T-1 (row form):
    xw^0_t = W_xh^0[:, x_t] + b_h^0                          a row lookup: x_t is one-hot
    xw^l_t = W_xh^l d^l_t + b_h^l,  d^l_t = m^l_t * h^{l-1}_t  one GEMM over all t (l >= 1)
    h^l_t  = cell(xw^l_t, state^l_{t-1})                      the only loop over time
    o_t    = W_hy (m^L_t * h^{L-1}_t) + b_y    p_t = softmax(o_t)    L = sum_t -log p_t[y_t]
where m are inverted-dropout masks (entries 0 or 1/(1-p); all ones when dropout is off).
Backward, from the top:
    do_t = p_t - onehot(y_t)          dW_hy = sum_t do_t h_t^T       dh^{L-1}_t = m * W_hy^T do_t
    the cell's backward gives dxw^l (and dW_hh^l); then db_h^l = sum_t dxw^l_t,
    dW_xh^l = sum_t dxw^l_t d^l_t^T (a scatter into columns x_t for l = 0), and
    dh^{l-1}_t = m^l_t * W_xh^l^T dxw^l_t for the layer below.

Parameter names: `l0.W_xh`, `l0.W_hh`, `l0.b_h` (and cell extras such as `l0.b_hn`) for each
layer, then `W_hy` and `b_y`. A one-layer vanilla RNN is min-char-rnn's model exactly, with its
weights drawn in min-char-rnn's order (Wxh, Whh, Why). Arrays are time-major: (T, B, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from charrnn.cells import CELLS, make_cell
from charrnn.errors import CharRNNError
from charrnn.plumbing.workspace import Workspace, scratch

State = tuple  # one tuple of (B, H) arrays per layer, in the cell's state_names order


@dataclass(frozen=True)
class ModelSpec:
    """What a model is, apart from its weights."""

    vocab_size: int
    hidden_size: int
    cell: str = "rnn"
    num_layers: int = 1
    activation: str = "tanh"
    dropout: float = 0.0
    forget_bias: float = 1.0
    init_scale: float = 0.01
    dtype: str = "float64"

    @classmethod
    def from_config(cls, model_config, vocab_size: int) -> ModelSpec:
        m = model_config
        return cls(vocab_size=vocab_size, hidden_size=m.hidden_size, cell=m.cell,
                   num_layers=m.num_layers, activation=m.activation, dropout=m.dropout,
                   forget_bias=m.forget_bias, init_scale=m.init_scale, dtype=m.dtype)

    @property
    def chosen_activation(self) -> str | None:
        """The activation, where the cell lets one be chosen (rnn); None for a cell with gates."""
        return self.activation if len(CELLS[self.cell].activations) > 1 else None

    @property
    def cell_label(self) -> str:
        """'rnn (tanh)', 'lstm': the cell and, where it has a choice, its activation."""
        activation = self.chosen_activation
        return f"{self.cell} ({activation})" if activation else self.cell

    def describe(self) -> str:
        layers = f"{self.num_layers} layer{'s' if self.num_layers > 1 else ''}"
        return f"{self.cell_label}, {layers} of {self.hidden_size}"


def layer_prefix(layer: int) -> str:
    return f"l{layer}."


def param_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in the order of the flat layout and of initialisation."""
    cell = make_cell(spec.cell, spec.hidden_size, spec.activation, spec.forget_bias)
    H, V, G = spec.hidden_size, spec.vocab_size, cell.gates
    shapes = {}
    for layer in range(spec.num_layers):
        prefix = layer_prefix(layer)
        shapes[prefix + "W_xh"] = (G * H, V if layer == 0 else H)
        shapes[prefix + "W_hh"] = (G * H, H)
        shapes[prefix + "b_h"] = (G * H,)
        for name, shape in cell.extra_shapes().items():
            shapes[prefix + name] = shape
    shapes["W_hy"] = (V, H)
    shapes["b_y"] = (V,)
    return shapes


def state_keys(spec: ModelSpec) -> list[str]:
    """Checkpoint names of the carried state: state.l0.h (and state.l0.c for the LSTM), ..."""
    cell = make_cell(spec.cell, spec.hidden_size, spec.activation, spec.forget_bias)
    return [f"state.{layer_prefix(layer)}{name}" for layer in range(spec.num_layers)
            for name in cell.state_names]


class LossAndGrads(NamedTuple):
    objective: float  # scale * nll_sum: the number whose gradient `grads` is
    nll_sum: float  # sum of -log p_t[y_t] over the unmasked positions
    count: int  # those positions: nll_sum / count is nats per character
    grads: dict  # gradient of the objective, one array per parameter
    dstate0: State  # gradient of the objective with respect to the initial state
    state_last: State  # the state after the chunk, to carry to the next one


class Forward(NamedTuple):
    h_top: np.ndarray  # (T, B, H) what the output layer reads (after dropout)
    state_last: State
    layers: list  # per layer: (input d^l or x, dropout mask or None, the cell's cache)
    top_mask: np.ndarray | None


class Model:
    """A cell type, a stack of layers and the output layer, with their parameters."""

    def __init__(self, spec: ModelSpec, params: dict[str, np.ndarray]):
        self.spec = spec
        self.cell = make_cell(spec.cell, spec.hidden_size, spec.activation, spec.forget_bias)
        shapes = param_shapes(spec)
        if set(params) != set(shapes):
            missing = sorted(set(shapes) - set(params))
            extra = sorted(set(params) - set(shapes))
            raise CharRNNError(f"parameters do not fit a {spec.describe()} model: missing "
                               f"{missing or 'none'}, unexpected {extra or 'none'}")
        for name, shape in shapes.items():
            if tuple(params[name].shape) != shape:
                raise CharRNNError(f"parameter {name} has shape {tuple(params[name].shape)}; "
                                   f"a {spec.describe()} model needs {shape}")
        self.params = {name: params[name] for name in shapes}
        # per layer, (the cell's name, the model's name) of its arrays: found once, not per step
        self._layer_names = [[(name[len(layer_prefix(layer)):], name) for name in shapes
                              if name.startswith(layer_prefix(layer))]
                             for layer in range(spec.num_layers)]

    @classmethod
    def init(cls, spec: ModelSpec, rng: np.random.Generator) -> Model:
        """Weights N(0, 1) * init_scale, drawn layer by layer (W_xh, W_hh), then W_hy."""
        cell = make_cell(spec.cell, spec.hidden_size, spec.activation, spec.forget_bias)
        params = {}
        for layer in range(spec.num_layers):
            input_size = spec.vocab_size if layer == 0 else spec.hidden_size
            for name, value in cell.init(input_size, spec.init_scale, rng, spec.dtype).items():
                params[layer_prefix(layer) + name] = value
        params["W_hy"] = (rng.standard_normal((spec.vocab_size, spec.hidden_size))
                          * spec.init_scale).astype(spec.dtype)
        params["b_y"] = np.zeros(spec.vocab_size, dtype=spec.dtype)
        return cls(spec, params)

    # --- parameters and state ----------------------------------------------------------------

    @property
    def dtype(self) -> np.dtype:
        return self.params["W_hy"].dtype

    def with_params(self, params: dict[str, np.ndarray]) -> Model:
        return Model(self.spec, params)

    def layer_params(self, layer: int, params: dict | None = None) -> dict[str, np.ndarray]:
        """One layer's arrays under the cell's own names (W_xh, W_hh, b_h, ...)."""
        source = self.params if params is None else params
        return {local: source[name] for local, name in self._layer_names[layer]}

    def zero_state(self, batch_size: int) -> State:
        shape = (batch_size, self.spec.hidden_size)
        return tuple(tuple(np.zeros(shape, dtype=self.dtype) for _ in self.cell.state_names)
                     for _ in range(self.spec.num_layers))

    def state_to_arrays(self, state: State) -> dict[str, np.ndarray]:
        return dict(zip(state_keys(self.spec), (a for layer in state for a in layer)))

    def state_from_arrays(self, arrays: dict[str, np.ndarray]) -> State:
        names = self.cell.state_names
        return tuple(tuple(arrays[f"state.{layer_prefix(layer)}{name}"].astype(self.dtype)
                           for name in names) for layer in range(self.spec.num_layers))

    def select_state(self, state: State, rows) -> State:
        """The state of some batch rows (e.g. one stream's, to sample from)."""
        return tuple(tuple(a[rows] for a in layer) for layer in state)

    # --- forward and backward ----------------------------------------------------------------

    def check_inputs(self, x: np.ndarray, y: np.ndarray | None, state0: State) -> None:
        """Public entry points refuse what the hot loop would silently misread."""
        x = np.asarray(x)
        V = self.spec.vocab_size
        if x.ndim != 2 or x.dtype.kind not in "iu":
            raise CharRNNError(f"inputs must be a (T, B) array of character indices, got shape "
                               f"{x.shape} of {x.dtype}")
        for name, a in (("inputs", x), ("targets", y)):
            if a is None:
                continue
            a = np.asarray(a)
            if a.shape != x.shape:
                raise CharRNNError(f"{name} have shape {a.shape}; expected {x.shape} (T, B)")
            if a.size and (a.min() < 0 or a.max() >= V):
                raise CharRNNError(f"{name} hold an index outside the vocabulary (0..{V - 1})")
        B = x.shape[1]
        if len(state0) != self.spec.num_layers or any(
                len(layer) != len(self.cell.state_names)
                or any(np.shape(a) != (B, self.spec.hidden_size) for a in layer)
                for layer in state0):
            raise CharRNNError(f"the initial state must hold, for each of the "
                               f"{self.spec.num_layers} layer(s), {self.cell.state_names} of "
                               f"shape (B={B}, H={self.spec.hidden_size}); use "
                               f"model.zero_state({B}) (inputs are time-major: (T, B))")

    def dropout_masks(self, rng: np.random.Generator | None, T: int, B: int) -> list:
        """Masks m^1..m^{L-1} and the top one, or Nones when dropout is off (rng None or p=0)."""
        p = self.spec.dropout
        if rng is None or p == 0:
            return [None] * self.spec.num_layers
        keep = 1.0 - p
        shape = (T, B, self.spec.hidden_size)
        return [(rng.random(shape) < keep).astype(self.dtype) / self.dtype.type(keep)
                for _ in range(self.spec.num_layers)]

    def forward(self, x: np.ndarray, state0: State, dropout_rng: np.random.Generator | None = None,
                workspace: Workspace | None = None) -> Forward:
        """Run the stack over x (T, B) from state0; masks[l] drops the input of layer l + 1."""
        T, B = x.shape
        cell, dtype = self.cell, self.dtype
        masks = self.dropout_masks(dropout_rng, T, B)
        layers, states = [], []
        below = None
        for layer in range(self.spec.num_layers):
            p = self.layer_params(layer)
            space = None if workspace is None else workspace.child(f"l{layer}")
            xw = cell.input_buffer(T, B, dtype, space)
            mask = masks[layer - 1] if layer > 0 else None
            if layer == 0:
                # W_xh x_t for a one-hot x_t is a column of W_xh: a lookup into the (V, G*H)
                # table with the bias folded in once, never a one-hot product
                table = p["W_xh"].T + p["b_h"]
                # mode="clip" lets take() write straight into out=; check_inputs vouches for x
                np.take(table, x, axis=0, out=xw, mode="clip")
                inputs = x
            else:
                inputs = below if mask is None else np.multiply(
                    below, mask, out=scratch(space, "d", below.shape, dtype))
                np.matmul(inputs.reshape(T * B, -1), p["W_xh"].T, out=xw.reshape(T * B, -1))
                xw += p["b_h"]
            below, state_last, cache = cell.forward(xw, state0[layer], p, space)
            layers.append((inputs, mask, cache))
            states.append(state_last)
        top_mask = masks[-1]
        h_top = below if top_mask is None else below * top_mask
        return Forward(h_top, tuple(states), layers, top_mask)

    def backward(self, dh_top: np.ndarray, fwd: Forward, grads: dict | None = None,
                 workspace: Workspace | None = None, keep_state_grads: bool = False):
        """Gradients of every layer's parameters and of the initial state, given dh_top.

        dh_top (T, B, H) reaches the top layer's output from the output layer and is
        overwritten. grads: arrays to write into (views of a flat gradient), or None.
        Returns (grads, dstate0, state_grads, dxw0): state_grads per layer (None unless
        keep_state_grads) and dxw0 the gradient of layer 0's input projections (for gradflow).
        """
        grads = {} if grads is None else grads
        V = self.spec.vocab_size
        dh = dh_top
        if fwd.top_mask is not None:
            dh *= fwd.top_mask
        dstate0, state_grads = [None] * len(fwd.layers), [None] * len(fwd.layers)
        dxw = None
        for layer in range(len(fwd.layers) - 1, -1, -1):
            inputs, mask, cache = fwd.layers[layer]
            names = self._layer_names[layer]
            p = self.layer_params(layer)
            g = {local: grads[name] for local, name in names if name in grads}
            space = None if workspace is None else workspace.child(f"l{layer}")
            dxw, dstate0[layer], state_grads[layer] = self.cell.backward(
                dh, cache, g, space, keep_state_grads)
            T, B, GH = dxw.shape
            dxw_rows = dxw.reshape(T * B, GH)
            g["b_h"] = np.add.reduce(dxw_rows, axis=0, out=g.get("b_h"))  # db_h = sum_t dxw_t
            if layer == 0:
                dW_xh_T = scatter_rows(inputs.reshape(-1), dxw_rows, V)  # dW_xh[:, x_t] += dxw_t
                if g.get("W_xh") is None:
                    g["W_xh"] = dW_xh_T.T
                else:
                    g["W_xh"][...] = dW_xh_T.T
            else:
                # dW_xh = sum_t dxw_t d_t^T; the layer below gets m * W_xh^T dxw_t
                g["W_xh"] = np.matmul(dxw_rows.T, inputs.reshape(T * B, -1), out=g.get("W_xh"))
                dh = np.matmul(dxw_rows, p["W_xh"]).reshape(T, B, -1)
                if mask is not None:
                    dh *= mask
            for local, name in names:
                grads[name] = g[local]
        return grads, tuple(dstate0), state_grads, dxw

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, state0: State,
                       mask: np.ndarray | None = None, *, scale: float | None = None,
                       dropout_rng: np.random.Generator | None = None,
                       grads_out: dict | None = None, workspace: Workspace | None = None,
                       check: bool = True) -> LossAndGrads:
        """The objective scale * sum_t -log p_t[y_t] over a chunk, and its gradients.

        x, y: (T, B) indices; mask: (T, B) booleans (False: padding) or None; state0 from
        zero_state(B) or a previous chunk. scale defaults to 1/B: the loss summed over time and
        averaged over the streams (min-char-rnn's exactly when B = 1). dropout_rng: the source
        of this step's dropout masks (None: no dropout). grads_out: arrays (e.g. views of one
        flat vector) to receive the gradients; workspace: scratch memory reused between calls.
        """
        if check:
            self.check_inputs(x, y, state0)
        if scale is None:
            scale = 1.0 / x.shape[1]
        fwd = self.forward(x, state0, dropout_rng, workspace)
        nll_sum, count, out_cache = softmax_loss_forward(
            fwd.h_top, y, mask, self.params["W_hy"], self.params["b_y"], workspace)
        grads = {} if grads_out is None else grads_out
        dh_top, grads["W_hy"], grads["b_y"] = softmax_loss_backward(scale, out_cache, grads,
                                                                    workspace)
        grads, dstate0, _, _ = self.backward(dh_top, fwd, grads, workspace)
        return LossAndGrads(scale * nll_sum, nll_sum, count, grads, dstate0, fwd.state_last)

    def forward_loss(self, x: np.ndarray, y: np.ndarray, state0: State,
                     mask: np.ndarray | None = None, workspace: Workspace | None = None,
                     check: bool = True):
        """(nll_sum, count, state_last) without the backward pass and without dropout."""
        if check:
            self.check_inputs(x, y, state0)
        fwd = self.forward(x, state0, None, workspace)
        nll_sum, count, _ = softmax_loss_forward(fwd.h_top, y, mask, self.params["W_hy"],
                                                 self.params["b_y"], workspace)
        return nll_sum, count, fwd.state_last

    def logits(self, h: np.ndarray) -> np.ndarray:
        """o = W_hy h + b_y for h (..., H)."""
        return h @ self.params["W_hy"].T + self.params["b_y"]

    def stepper(self):
        """step(x_t, state) -> (state, logits) for sampling, with its tables prepared once."""
        cell, L = self.cell, self.spec.num_layers
        layer_params = [self.layer_params(layer) for layer in range(L)]
        table = layer_params[0]["W_xh"].T + layer_params[0]["b_h"]  # row x: W_xh x + b_h
        W_xh_T = [None] + [np.ascontiguousarray(p["W_xh"].T) for p in layer_params[1:]]
        W_hy_T = np.ascontiguousarray(self.params["W_hy"].T)
        b_y = self.params["b_y"]

        def step(x_t: np.ndarray, state: State):
            new_state = []
            below = None
            for layer, p in enumerate(layer_params):
                xw = table[x_t] if layer == 0 else below @ W_xh_T[layer] + p["b_h"]
                layer_state = cell.step(xw, state[layer], p)
                new_state.append(layer_state)
                below = layer_state[0]
            return tuple(new_state), below @ W_hy_T + b_y

        return step


# --- the dW_xh scatter -----------------------------------------------------------------------

SMALL_SCATTER = 4096  # entries; below this one bincount beats sorting
MANY_GROUPS = 256  # distinct indices; above this one reduceat beats a Python loop over groups


def scatter_rows(indices: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    """out[i] = sum of rows[j] where indices[j] == i, for i < count, without np.add.at.

    Rows are sorted by index (a stable argsort) so that each index's rows form one contiguous
    block, summed in a single call. No one-hot matrix is built. Measured in
    benchmarks/bench_scatter.py: at (6400 rows, H 512) this is 10x faster than np.add.at and 5x
    faster than np.add.reduceat along axis 0; tiny inputs (batch 1) use one bincount instead.
    """
    width = rows.shape[1]
    if indices.size * width <= SMALL_SCATTER:
        bins = (indices.astype(np.intp)[:, None] * width + np.arange(width)).reshape(-1)
        sums = np.bincount(bins, weights=rows.reshape(-1), minlength=count * width)
        return sums.reshape(count, width).astype(rows.dtype, copy=False)
    order = np.argsort(indices, kind="stable")
    sorted_rows = np.take(rows, order, axis=0)
    counts = np.bincount(indices, minlength=count)
    present = np.flatnonzero(counts)
    ends = np.cumsum(counts)
    out = np.zeros((count, width), dtype=rows.dtype)
    if len(present) > MANY_GROUPS:
        out[present] = np.add.reduceat(sorted_rows, ends[present] - counts[present], axis=0)
        return out
    for index in present.tolist():
        sorted_rows[ends[index] - counts[index]: ends[index]].sum(axis=0, out=out[index])
    return out


# --- the output layer and the softmax cross-entropy -------------------------------------------

def softmax_loss_forward(h: np.ndarray, y: np.ndarray, mask: np.ndarray | None,
                         W_hy: np.ndarray, b_y: np.ndarray, workspace: Workspace | None = None):
    """o_t = W_hy h_t + b_y; p_t = softmax(o_t); nll_t = -log p_t[y_t], over all (t, b) at once.

    Returns (sum of nll over unmasked positions, their count, cache). The softmax is max-shifted,
    so logits never overflow: -log p[y] = log sum exp(o - max o) - (o[y] - max o).
    """
    T, B, H = h.shape
    h_rows = h.reshape(T * B, H)
    targets = y.reshape(-1)
    rows = np.arange(T * B)
    logits = np.matmul(h_rows, W_hy.T, out=scratch(workspace, "p", (T * B, W_hy.shape[0]),
                                                    h.dtype))
    logits += b_y
    # ufunc.reduce rather than p.max / p.sum: the same sums, without their per-call wrapping
    logits -= np.maximum.reduce(logits, axis=1, keepdims=True)
    target_logit = logits[rows, targets]
    p = np.exp(logits, out=logits)  # the shifted logits' memory becomes the probabilities
    total = np.add.reduce(p, axis=1)
    nll = np.log(total) - target_logit
    p /= total[:, None]
    weights = None if mask is None else mask.reshape(-1).astype(h.dtype)
    if weights is not None:
        nll *= weights
    count = T * B if mask is None else int(mask.sum())
    return float(np.add.reduce(nll)), count, (h_rows, targets, weights, p, W_hy, h.shape)


def softmax_loss_backward(scale: float, cache, grads_out: dict | None = None,
                          workspace: Workspace | None = None):
    """Gradients (dh, dW_hy, db_y) of scale * (sum of nll) with respect to h, W_hy, b_y.

    The cache's probabilities p are overwritten: they become do."""
    h_rows, targets, weights, p, W_hy, h_shape = cache
    grads_out = grads_out or {}
    do = p  # do_t = p_t - onehot(y_t)
    do[np.arange(len(targets)), targets] -= 1.0
    if weights is not None:
        do *= weights[:, None]  # padding contributes neither loss nor gradient
    if scale != 1.0:  # batch 1: min-char-rnn's plain sum, nothing to scale
        do *= scale
    dW_hy = np.matmul(do.T, h_rows, out=grads_out.get("W_hy"))  # sum_t do_t h_t^T
    db_y = np.add.reduce(do, axis=0, out=grads_out.get("b_y"))
    dh = np.matmul(do, W_hy, out=scratch(workspace, "dh", h_rows.shape, h_rows.dtype))
    return dh.reshape(h_shape), dW_hy, db_y  # dh_t = W_hy^T do_t

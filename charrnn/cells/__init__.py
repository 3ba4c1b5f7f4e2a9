"""The recurrent cells: one file each, one registry line each.

A layer of any cell owns three arrays, named after the equations (G = cell.gates blocks of H rows):
    W_xh (G*H, I)   input-to-hidden weights (I = V for layer 0, H above it)
    W_hh (G*H, H)   hidden-to-hidden weights
    b_h  (G*H,)     bias of the input projection
plus whatever cell.extra_shapes(H) adds (the GRU's b_hn). The model (charrnn.model) computes every
layer's input projection xw_t = W_xh x_t + b_h for all time steps at once (a row lookup for layer
0, one GEMM above it) and hands it to the cell, which runs the recurrence. So a cell's backward
returns dxw, and the model turns that into dW_xh, db_h and the gradient for the layer below.

The contract of a cell class (see rnn.py, lstm.py, gru.py):
    name, gates, state_names          e.g. "lstm", 4, ("h", "c"); h is always first
    gate_names                        the G blocks along the G*H axis, e.g. ("i", "f", "g", "o")
    activations                       the model.activation values it takes; the first is default
    carrying_gate                     a facts.CarryingGate, or None (what gradflow reports)
    local_derivative(h) or None       f'(a_t) where dh_t/dh_{t-1} = diag(f'(a_t)) W_hh exactly
    shown_series() -> (facts.Series, ...)   what the viewer can colour text by; h first
    __init__(hidden_size, activation="tanh", forget_bias=1.0)   (options a cell does not use are
                                      ignored; config validation refuses meaningless ones)
    extra_shapes() -> {name: shape}   parameters beyond W_xh, W_hh, b_h
    init(input_size, init_scale, rng, dtype) -> params
        N(0, 1) * init_scale weights drawn in the order W_xh, W_hh (min-char-rnn's order);
        biases zero except where the cell says (the LSTM's forget gate starts at forget_bias)
    input_buffer(T, B, dtype, workspace) -> (T, B, G*H) array the model writes xw into
    forward(xw, state0, params, workspace=None) -> (h, state_last, cache)
        xw (T, B, G*H), state0 a tuple of (B, H) arrays in state_names order; h (T, B, H)
        (valid until the next forward with the same workspace); state_last a tuple of fresh
        (B, H) arrays. xw may be used as scratch.
    backward(dh, cache, grads=None, workspace=None, keep_state_grads=False)
        -> (dxw, dstate0, state_grads)
        dh (T, B, H): the gradient reaching each h_t from above; it may be overwritten. grads: a
        dict of arrays to write dW_hh (and extras) into (None: allocate and return them in it).
        state_grads: None, or with keep_state_grads a tuple (one per state) of (T, B, H) arrays
        holding the total gradient dL/dstate_t at every step (for gradflow).
    step(xw_t, state, params) -> state   one step for sampling, (B, G*H) -> tuple of (B, H)

A new cell is one file with such a class, and one line: `register_cell(MyCell)`. Nothing else in
charrnn names a cell; everything asks the registry and the cell's facts.
"""

from __future__ import annotations

from charrnn.cells.gru import GRUCell
from charrnn.cells.lstm import LSTMCell
from charrnn.cells.rnn import RNNCell

CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def register_cell(cell_class) -> None:
    """Make a cell class known to config, training, checkpoints and every command, by its name."""
    CELLS[cell_class.name] = cell_class


def make_cell(name: str, hidden_size: int, activation: str = "tanh", forget_bias: float = 1.0):
    return CELLS[name](hidden_size, activation=activation, forget_bias=forget_bias)

"""charrnn's weights in PyTorch's layout, which the torch and ONNX exports both start from.

charrnn already orders gates as PyTorch does (LSTM i, f, g, o; GRU r, z, n), so per layer l:
    weight_ih_l{l} = W_xh    weight_hh_l{l} = W_hh    bias_ih_l{l} = b_h
    bias_hh_l{l}   = 0, except the GRU's n block, which is b_hn (it sits inside r * (W_hn h +
                     b_hn), so it cannot be folded into b_h)
and the output layer is nn.Linear(H, V) with weight W_hy and bias b_y. Layer 0 reads one-hot
characters, so weight_ih_l0 is (G*H, V): charrnn's W_xh x_t for a one-hot x_t.
"""

from __future__ import annotations

import numpy as np

from charrnn.model import Model, ModelSpec

DTYPE = np.float32
CELLS = ("rnn", "lstm", "gru")  # the cells PyTorch, ONNX and the page all have
ACTIVATIONS = ("tanh", "relu")


def unsupported(spec: ModelSpec) -> str | None:
    """Why no export format has this model's cell, or None."""
    if spec.cell not in CELLS:
        return f"no export format has the {spec.cell!r} cell (only {', '.join(CELLS)})"
    if spec.cell == "rnn" and spec.activation not in ACTIVATIONS:
        return f"no export format has the {spec.activation!r} activation"
    return None


def torch_layout(model: Model) -> dict[str, np.ndarray]:
    """{"rnn.weight_ih_l0": ..., ..., "out.weight": W_hy, "out.bias": b_y}, float32."""
    spec = model.spec
    H = spec.hidden_size
    arrays = {}
    for layer in range(spec.num_layers):
        p = model.layer_params(layer)
        bias_hh = np.zeros_like(p["b_h"])
        if spec.cell == "gru":
            bias_hh[2 * H:] = p["b_hn"]
        arrays[f"rnn.weight_ih_l{layer}"] = p["W_xh"]
        arrays[f"rnn.weight_hh_l{layer}"] = p["W_hh"]
        arrays[f"rnn.bias_ih_l{layer}"] = p["b_h"]
        arrays[f"rnn.bias_hh_l{layer}"] = bias_hh
    arrays["out.weight"] = model.params["W_hy"]
    arrays["out.bias"] = model.params["b_y"]
    return {name: np.ascontiguousarray(value, dtype=DTYPE) for name, value in arrays.items()}


def parameter_count(model: Model) -> int:
    return int(sum(value.size for value in model.params.values()))

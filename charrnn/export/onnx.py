"""`--to onnx`: the model as one ONNX graph of standard operators, built with onnx's helpers.

Inputs and outputs (T time steps, B sequences; time-major, as ONNX's recurrent operators are):
    x       int64 (T, B)           character indices (the vocabulary is in the metadata)
    h0      float32 (L, B, H)      the state to start from (zeros for a fresh start)
    c0      float32 (L, B, H)      LSTM only: the cell state
 -> logits  float32 (T, B, V)      before the softmax, at every step
    probs   float32 (T, B, V)      softmax(logits): the next character's distribution
    h       float32 (L, B, H)      the state after the last step, to feed back as h0
    c       float32 (L, B, H)      LSTM only
The graph: OneHot(x) -> one RNN/LSTM/GRU node a layer (Slice picks its state; Squeeze drops the
direction axis) -> MatMul + Add (the output layer) -> Softmax. Dropout is inference's identity.

ONNX orders gates differently from PyTorch (and charrnn): LSTM i, o, f, c against i, f, g, o;
GRU z, r, h against r, z, n. The GRU uses linear_before_reset=1, which is PyTorch's (and
charrnn's) reset gate: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from charrnn.checkpoint import Checkpoint
from charrnn.export import OUT_HINT, require
from charrnn.export.layout import torch_layout, unsupported
from charrnn.plumbing.writing import atomic_write

OPSET = 17
OPERATOR = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
# ONNX's block k is PyTorch's block ORDER[cell][k]
ORDER = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}
ACTIVATION = {"tanh": "Tanh", "relu": "Relu"}
MAX_BYTES = 2**31 - 2**24  # a protobuf message holds at most 2 GB; keep room for the graph


def refusal(saved: Checkpoint) -> str | None:
    if unsupported(saved.spec):
        return unsupported(saved.spec)
    size = 4 * sum(value.size for value in saved.params.values())
    if size > MAX_BYTES:
        return (f"its float32 weights take {size / 2**30:.1f} GB, past the 2 GB a single ONNX "
                f"file holds; export --to torch instead")
    return None


def gate_blocks(array: np.ndarray, cell: str, H: int) -> np.ndarray:
    """Reorder the gate blocks along axis 0 from PyTorch's order to ONNX's."""
    return np.concatenate([array[k * H:(k + 1) * H] for k in ORDER[cell]], axis=0)


def build_model(saved: Checkpoint):
    """The onnx.ModelProto of the checkpoint's model, checked by onnx.checker."""
    onnx = require("onnx", "onnx")
    helper, numpy_helper, TP = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    spec = saved.spec
    cell, H, L, V = spec.cell, spec.hidden_size, spec.num_layers, spec.vocab_size
    weights = torch_layout(saved.model)
    lstm = cell == "lstm"
    initializers = {
        "depth": np.array([V], dtype=np.int64),
        "one_hot_values": np.array([0.0, 1.0], dtype=np.float32),
        "direction_axis": np.array([1], dtype=np.int64),
        "layer_axis": np.array([0], dtype=np.int64),
        "W_hy_T": np.ascontiguousarray(weights["out.weight"].T),
        "b_y": weights["out.bias"],
    }
    nodes = [helper.make_node("OneHot", ["x", "depth", "one_hot_values"], ["x_one_hot"],
                              axis=-1)]
    below = "x_one_hot"
    states_out = {"h": [], "c": []}
    for layer in range(L):
        name = f"l{layer}"

        def blocks(key: str, layer=layer) -> np.ndarray:
            return gate_blocks(weights[f"rnn.{key}_l{layer}"], cell, H)

        initializers[f"{name}.W"] = blocks("weight_ih")[None]  # (1, G*H, input)
        initializers[f"{name}.R"] = blocks("weight_hh")[None]  # (1, G*H, H)
        initializers[f"{name}.B"] = np.concatenate([blocks("bias_ih"),
                                                    blocks("bias_hh")])[None]  # (1, 2*G*H)
        initializers[f"{name}.start"] = np.array([layer], dtype=np.int64)
        initializers[f"{name}.end"] = np.array([layer + 1], dtype=np.int64)
        state_in = []
        for state in ("h", "c") if lstm else ("h",):
            nodes.append(helper.make_node("Slice", [f"{state}0", f"{name}.start", f"{name}.end",
                                                    "layer_axis"], [f"{name}.{state}0"]))
            state_in.append(f"{name}.{state}0")
        outputs = [f"{name}.y", f"{name}.h"] + ([f"{name}.c"] if lstm else [])
        attributes = {"hidden_size": H}
        if cell == "rnn":
            attributes["activations"] = [ACTIVATION[spec.activation]]
        if cell == "gru":
            attributes["linear_before_reset"] = 1
        nodes.append(helper.make_node(OPERATOR[cell], [below, f"{name}.W", f"{name}.R",
                                                       f"{name}.B", "", *state_in],
                                      outputs, name=f"{name}.{cell}", **attributes))
        # Y is (T, directions = 1, B, H)
        nodes.append(helper.make_node("Squeeze", [f"{name}.y", "direction_axis"],
                                      [f"{name}.out"]))
        below = f"{name}.out"
        states_out["h"].append(f"{name}.h")
        if lstm:
            states_out["c"].append(f"{name}.c")
    nodes += [helper.make_node("MatMul", [below, "W_hy_T"], ["o"]),
              helper.make_node("Add", ["o", "b_y"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    for state, names in states_out.items():
        if names:
            nodes.append(helper.make_node("Concat", names, [state], axis=0))

    def tensor(name: str, elem, shape) -> object:
        return helper.make_tensor_value_info(name, elem, shape)

    state_shape = [L, "batch", H]
    inputs = [tensor("x", TP.INT64, ["time", "batch"]), tensor("h0", TP.FLOAT, state_shape)]
    outputs = [tensor("logits", TP.FLOAT, ["time", "batch", V]),
               tensor("probs", TP.FLOAT, ["time", "batch", V]),
               tensor("h", TP.FLOAT, state_shape)]
    if lstm:
        inputs.append(tensor("c0", TP.FLOAT, state_shape))
        outputs.append(tensor("c", TP.FLOAT, state_shape))
    graph = helper.make_graph(
        nodes, f"charrnn {spec.describe()}", inputs, outputs,
        [numpy_helper.from_array(np.ascontiguousarray(value), name)
         for name, value in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="charrnn",
                              doc_string=f"charrnn {spec.describe()}; vocabulary in "
                                         f"metadata 'charrnn.chars' (JSON)")
    model.ir_version = min(model.ir_version, 10)  # readable by older runtimes too
    helper.set_model_props(model, {
        "charrnn.chars": json.dumps(saved.vocab.chars),
        "charrnn.mode": saved.config.data.mode,
        "charrnn.cell": cell,
        "charrnn.num_layers": str(L),
        "charrnn.hidden_size": str(H),
    })
    onnx.checker.check_model(model)
    return model


def export(saved: Checkpoint, out: Path) -> list[Path]:
    data = build_model(saved).SerializeToString()
    atomic_write(out, data, "the ONNX export", OUT_HINT)
    return [out]

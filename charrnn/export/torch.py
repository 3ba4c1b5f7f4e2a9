"""`--to torch`: a dict of tensors and plain values that torch.load(weights_only=True) reads.

    {"format": "charrnn-torch", "version": 1,
     "hparams": {"cell", "vocab_size", "hidden_size", "num_layers", "nonlinearity", "dropout"},
     "chars": the vocabulary (index i is chars[i]), "mode": "lines" or "stream",
     "state_dict": the weights of torch_module.CharRNN (charrnn.export.layout), float32}
"""

from __future__ import annotations

from pathlib import Path

from charrnn.checkpoint import Checkpoint
from charrnn.export import OUT_HINT, require
from charrnn.export.layout import torch_layout, unsupported
from charrnn.export.torch_module import FILE_FORMAT, FILE_VERSION
from charrnn.plumbing.writing import atomic_write


def refusal(saved: Checkpoint) -> str | None:
    return unsupported(saved.spec)


def hparams(saved: Checkpoint) -> dict:
    spec = saved.spec
    return {"cell": spec.cell, "vocab_size": spec.vocab_size, "hidden_size": spec.hidden_size,
            "num_layers": spec.num_layers, "nonlinearity": spec.activation,
            "dropout": float(spec.dropout)}


def export(saved: Checkpoint, out: Path) -> list[Path]:
    torch = require("torch", "torch")
    blob = {"format": FILE_FORMAT, "version": FILE_VERSION, "hparams": hparams(saved),
            "chars": saved.vocab.chars, "mode": saved.config.data.mode,
            "state_dict": {name: torch.from_numpy(value)
                           for name, value in torch_layout(saved.model).items()}}
    atomic_write(out, lambda handle: torch.save(blob, handle), "the torch export", OUT_HINT)
    return [out]

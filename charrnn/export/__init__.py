"""`charrnn export`: a checkpoint's model in a form other programs run.

One module a format, each with `export(saved, out) -> list[Path]` and `refusal(saved) -> str |
None` (why this model cannot go to that format, or None):
    torch   a PyTorch state_dict and vocabulary (torch.py; the module that loads it: torch_module)
    onnx    an ONNX graph of standard RNN/LSTM/GRU operators, state in and out (onnx.py)
    html    one self-contained page that samples in the browser (html.py, page.html, page.js)
Every format holds float32 weights (a float64 checkpoint is rounded once, which moves its
probabilities by about 1e-7). torch and onnx are optional extras, imported only by the function
that writes the file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from charrnn.checkpoint import Checkpoint, load_checkpoint
from charrnn.errors import CharRNNError, install_command
from charrnn.plumbing.paths import Output, check_outputs

OUT_HINT = "choose another --out"


@dataclass(frozen=True)
class Format:
    name: str
    module: str  # charrnn.export.<module>: export(saved, out) and refusal(saved)
    what: str  # one line for --help and the docs
    suffix: str  # the usual file name ending
    needs: str | None = None  # the optional package it imports


FORMATS = {
    "torch": Format("torch", "charrnn.export.torch",
                    "PyTorch state_dict + vocabulary for nn.RNN/nn.LSTM/nn.GRU (needs torch)",
                    ".pt", needs="torch"),
    "onnx": Format("onnx", "charrnn.export.onnx",
                   "ONNX graph of standard RNN/LSTM/GRU operators, state in and out (needs onnx)",
                   ".onnx", needs="onnx"),
    "html": Format("html", "charrnn.export.html",
                   "one self-contained page that samples in the browser", ".html"),
}


def require(package: str, to: str):
    """Import an optional extra, or say in one line how to install it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise CharRNNError(f"--to {to} needs the {package} package, which is not installed; "
                           f"install the export extra: {install_command('export')}") from None


def check_format(to: str) -> Format:
    if to not in FORMATS:
        raise CharRNNError(f"unknown export format {to!r}; choose one of "
                           f"{', '.join(FORMATS)}")
    return FORMATS[to]


def _module(fmt: Format):
    return importlib.import_module(fmt.module)


def export_formats(saved: Checkpoint) -> list[str]:
    """The formats this checkpoint's model can be exported to (extras aside)."""
    return [name for name, fmt in FORMATS.items() if _module(fmt).refusal(saved) is None]


def export_checkpoint(checkpoint_path: str | Path, to: str, out: str | Path) -> list[Path]:
    """Write the model of the checkpoint at checkpoint_path to out in format `to`; returns the
    files written. The output and the optional package are checked before any work: never the
    checkpoint itself, never a directory or a device."""
    fmt = check_format(to)
    checkpoint_path, out = Path(checkpoint_path), Path(out)
    check_outputs({"CHECKPOINT": checkpoint_path}, [Output(out, "--out", OUT_HINT)])
    if fmt.needs:
        require(fmt.needs, to)
    module = _module(fmt)
    saved = load_checkpoint(checkpoint_path)
    reason = module.refusal(saved)
    if reason is not None:
        raise CharRNNError(f"cannot export {checkpoint_path} to {to}: {reason}")
    return module.export(saved, out)

"""`--to html`: one self-contained page that samples from the model in the browser.

The page is package data (page.html, page.js), filled with one JSON record: the model's shape,
its vocabulary and mode, and every weight as float32 in one base64 string. It loads nothing from
anywhere (a Content-Security-Policy forbids it), so it works from file:// and offline.
The script runs charrnn's forward in float64 arithmetic over the float32 weights; see page.js.

A page's size is about 5.33 bytes a parameter (4 bytes of float32, 4/3 for base64) plus 30 KB;
MAX_PARAMETERS bounds it (see docs/export.md for the measurements behind it).
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

import numpy as np

from charrnn.checkpoint import Checkpoint
from charrnn.export import OUT_HINT
from charrnn.export.layout import unsupported
from charrnn.model import Model
from charrnn.plumbing.writing import atomic_write

# Measured in headless Chromium on one core (docs/export.md): at 4M parameters the page is
# 21 MB, opens in about a second and writes a character every 8 ms or so; past it, a step of
# the model nears a frame (16 ms) and opening the page takes seconds.
MAX_PARAMETERS = 4_000_000
BYTES_PER_PARAMETER = 4 * 4 / 3  # float32, base64


def page_size(parameters: int) -> int:
    """Bytes of the page for a model of this many parameters (within a few KB)."""
    return int(parameters * BYTES_PER_PARAMETER) + len(template()) + len(script()) + 2000


def refusal(saved: Checkpoint) -> str | None:
    if unsupported(saved.spec):
        return unsupported(saved.spec)
    count = int(sum(value.size for value in saved.params.values()))
    if count <= MAX_PARAMETERS:
        return None
    return (f"the model has {count:,} parameters (a page of {page_size(count) / 1e6:.0f} MB); a "
            f"page samples smoothly up to {MAX_PARAMETERS:,} parameters (about "
            f"{page_size(MAX_PARAMETERS) / 1e6:.0f} MB): use --to onnx or --to torch, or train "
            f"a smaller model (model.hidden_size)")


def template() -> str:
    return resources.files("charrnn.export").joinpath("page.html").read_text(encoding="utf-8")


def script() -> str:
    return resources.files("charrnn.export").joinpath("page.js").read_text(encoding="utf-8")


def script_json(data) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' can end the element, and every
    non-ASCII character is escaped."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_data(saved: Checkpoint) -> dict:
    model: Model = saved.model
    spec = model.spec
    tensors, offset, blobs = [], 0, []
    for name, value in model.params.items():
        flat = np.ascontiguousarray(value, dtype="<f4").reshape(-1)
        tensors.append([name, offset, flat.size])
        blobs.append(flat.tobytes())
        offset += flat.size
    boundary = saved.vocab.boundary
    mode = saved.config.data.mode
    best = saved.best_val_loss
    facts = [["model", spec.describe()],
             ["parameters", f"{offset:,}"],
             ["vocabulary", f"{len(saved.vocab)} characters"],
             ["mode", "lines (one name a line)" if mode == "lines" else "stream (running text)"],
             ["trained", f"step {saved.step:,}"]]
    if best is not None:
        facts.append(["best validation", f"{best:.4f} nats/char"])
    return {"title": spec.describe(), "facts": facts, "cell": spec.cell,
            "layers": spec.num_layers, "hidden": spec.hidden_size,
            "activation": spec.activation, "vocab": saved.vocab.chars, "mode": mode,
            "boundary": -1 if boundary is None else boundary, "tensors": tensors,
            "weights": base64.b64encode(b"".join(blobs)).decode("ascii")}


def build_page(saved: Checkpoint) -> str:
    code = script()
    if "</script" in code.lower():  # the script is inlined: it must not close its element
        raise AssertionError("page.js holds '</script'")
    page = template().replace("/*SCRIPT*/", code, 1)
    return page.replace("/*MODEL*/", script_json(page_data(saved)), 1)


def export(saved: Checkpoint, out: Path) -> list[Path]:
    atomic_write(out, build_page(saved), "the page", OUT_HINT)
    return [out]

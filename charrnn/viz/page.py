"""The page: what it embeds from a Trace, the HTML it is, and writing it.

page_data turns a Trace and its findings into the JSON the page's script reads (units quantised
to one byte each, within a budget); build_page fills the package's page.html with page.css,
page.js and that JSON; write_page writes it through the one atomic writer.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import numpy as np

from charrnn.plumbing.paths import Output, check_outputs
from charrnn.plumbing.writing import atomic_write
from charrnn.viz.trace import Trace
from charrnn.viz.units import Finding

# Unit activations are embedded as one byte each (base64: 4 characters per 3 bytes). A page
# embeds whole series (every unit of "layer 0 h", ...) while characters x units stay within this
# budget, in the order h, c, gates; the units the finder picked are always embedded.
VALUE_BUDGET = 4_000_000
LEVELS = 254  # quantisation steps: byte 0..254 is a value, 255 marks "no value here"
MISSING = 255


def checkpoint_facts(saved, path, source: str) -> dict:
    """The page header's facts about the checkpoint and the text."""
    spec = saved.spec
    best = saved.best_val_loss  # the file's figure, as `charrnn info` shows it
    return {
        "cell": spec.cell_label,
        "layers": spec.num_layers,
        "hidden size": spec.hidden_size,
        "step": f"{saved.step:,}",
        "best val loss": "none" if best is None else f"{best:.4f} nats/char",
        "vocabulary": f"{len(saved.vocab)} characters",
        "mode": saved.config.data.mode,
        "checkpoint": str(path),
        "text": source,
    }


def series_kind(name: str) -> str:
    """'h', 'c', 'gate' or 'candidate' from a series name like 'layer 0 gate f'."""
    for kind in ("gate", "candidate"):
        if f" {kind} " in f" {name} ":
            return kind
    return name.split()[-1] if name.split() else name


def choose_series(trace: Trace, findings: list[Finding],
                  budget: int = VALUE_BUDGET) -> dict[str, list[int] | None]:
    """Series to embed whole (None), within budget characters x units in the order h, c, gates,
    and the single units the findings need from series left out."""
    n = max(len(trace.text), 1)
    rank = {"h": 0, "c": 1, "gate": 2}
    order = sorted(trace.series, key=lambda name: rank.get(series_kind(name), 3))
    chosen: dict[str, list[int] | None] = {}
    used = 0
    for name in order:
        size = n * trace.series[name].shape[1]
        if used + size <= budget:
            chosen[name] = None
            used += size
    for finding in findings:
        if finding.series in trace.series and chosen.get(finding.series, []) is not None:
            units = chosen.setdefault(finding.series, [])
            if finding.unit not in units:
                units.append(finding.unit)
    # whole series first, in the trace's order; then the partial ones
    whole = [name for name in trace.series if name in chosen and chosen[name] is None]
    partial = [name for name in trace.series if name in chosen and chosen[name] is not None]
    return {name: chosen[name] for name in whole + partial}


def _quantise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes (N, H) uint8, lo (H,), hi (H,)): each unit on its own range in LEVELS steps."""
    finite = np.isfinite(values)
    any_finite = finite.any(axis=0)
    lo = np.where(any_finite, np.nanmin(np.where(finite, values, np.inf), axis=0), 0.0)
    hi = np.where(any_finite, np.nanmax(np.where(finite, values, -np.inf), axis=0), 0.0)
    lo, hi = _round_sig(lo, 5), _round_sig(hi, 5)
    width = np.where(hi > lo, hi - lo, 1.0)
    scaled = np.rint((np.where(finite, values, lo) - lo) / width * LEVELS)
    codes = np.clip(scaled, 0, LEVELS).astype(np.uint8)
    codes[~finite] = MISSING
    return codes, lo, hi


def _round_sig(values: np.ndarray, digits: int) -> np.ndarray:
    """Round to `digits` significant digits, whole-array."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.where(values != 0, np.floor(np.log10(np.abs(values))), 0)
    decimals = (digits - 1 - magnitude).astype(np.int64)
    return np.array([round(float(v), int(d)) for v, d in zip(values.ravel(), decimals.ravel())]
                    ).reshape(values.shape) if values.size else values


def _rounded_list(values: np.ndarray, decimals: int) -> list:
    """JSON-ready floats rounded to `decimals` places, None for NaN."""
    values = np.round(np.asarray(values, dtype=np.float64), decimals)
    return [None if not math.isfinite(v) else v for v in values.tolist()]


def _fact_text(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def page_data(trace: Trace, findings: list[Finding], budget: int = VALUE_BUDGET) -> dict:
    """Everything the page's script needs, JSON-ready, numbers rounded."""
    chosen = choose_series(trace, findings, budget)
    series = []
    for name, units in chosen.items():
        values = trace.series[name]
        total = values.shape[1]
        columns = list(range(total)) if units is None else sorted(units)
        codes, lo, hi = _quantise(np.asarray(values, dtype=np.float64)[:, columns])
        fixed = trace.ranges.get(name)
        series.append({
            "name": name, "kind": series_kind(name), "total": total,
            "units": None if units is None else columns,
            "lo": lo.tolist(), "hi": hi.tolist(),
            "fixed": None if fixed is None else [float(fixed[0]), float(fixed[1])],
            "q": base64.b64encode(np.ascontiguousarray(codes).tobytes()).decode("ascii"),
        })
    index = {entry["name"]: i for i, entry in enumerate(series)}
    mean = trace.mean_loss()
    top_probs = np.where(trace.top_ids >= 0, trace.top_probs, 0.0)
    return {
        "version": 1,
        "mode": trace.mode,
        "facts": [[str(key), _fact_text(value)] for key, value in trace.facts.items()],
        "vocab": list(trace.vocab),
        "text": trace.text,
        "known": "".join("1" if k else "0" for k in trace.known.tolist()),
        "loss": _rounded_list(trace.losses, 3),
        "k": int(trace.top_ids.shape[1]),
        "topIds": trace.top_ids.reshape(-1).tolist(),
        "topProbs": _rounded_list(top_probs.reshape(-1), 4),
        "meanLoss": None if mean is None else round(mean, 4),
        "scored": int(trace.scored.sum()),
        "uniform": round(math.log(max(len(trace.vocab), 2)), 4),
        "series": series,
        "left": [name for name in trace.series if name not in chosen or chosen[name] is not None],
        "findings": [{"series": index[item.series], "unit": item.unit, "feature": item.feature,
                      "r": round(item.r, 3)} for item in findings if item.series in index],
    }


def script_json(data) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' can end the element or open a
    comment, every non-ASCII character (U+2028 included) is escaped; NaN is refused."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# The page's files, each filling one slot of page.html. A stylesheet or script that could end its
# element early (or, for a script, open an HTML comment that swallows its end) is refused rather
# than inlined; the data is made safe by script_json.
SLOTS = {"STYLE": ("page.css", ("</style",)), "SCRIPT": ("page.js", ("</script", "<!--"))}
SLOT = re.compile(r"/\*(STYLE|SCRIPT|DATA)\*/")


@functools.cache
def page_files() -> tuple[str, dict[str, str]]:
    """page.html, and the text of each of its STYLE and SCRIPT slots, checked once per process."""
    folder = resources.files("charrnn.viz")
    template = folder.joinpath("page.html").read_text(encoding="utf-8")
    found = SLOT.findall(template)
    if sorted(found) != sorted([*SLOTS, "DATA"]):
        raise RuntimeError(f"page.html must hold each of /*STYLE*/, /*SCRIPT*/ and /*DATA*/ "
                           f"once; it holds {found}")
    fills = {}
    for slot, (name, forbidden) in SLOTS.items():
        text = folder.joinpath(name).read_text(encoding="utf-8")
        for bad in forbidden:
            if bad in text.lower():
                raise RuntimeError(f"{name} holds {bad!r}, which would end its element early")
        fills[slot] = text.removesuffix("\n")  # the slot's own line ends it
    return template, fills


def build_page(trace: Trace, findings: list[Finding], budget: int = VALUE_BUDGET) -> str:
    """One self-contained HTML page: inline CSS and JavaScript, the data as embedded JSON, no
    URL of any kind. The script builds the DOM with textContent, so no character of the text
    can become markup. The slots are filled in one pass over page.html, so nothing filled in is
    read again as a slot."""
    template, fills = page_files()
    fills = {**fills, "DATA": script_json(page_data(trace, findings, budget))}
    return SLOT.sub(lambda match: fills[match.group(1)], template)


# --- writing the page ---------------------------------------------------------------------------

PAGE_HINT = "choose another --out"


def check_output_path(out: str | Path, inputs: Mapping[str, str | Path | None] | None = None
                      ) -> Path:
    """Refuse, before any work, a page path that is one of the inputs ({label: path}, e.g.
    {"--checkpoint": ..., "--text": ...}; links resolved) or exists as anything but a regular
    file: charrnn.plumbing.paths.check_outputs."""
    check_outputs(dict(inputs or {}), [Output(Path(out), "--out", PAGE_HINT)])
    return Path(out)


def write_page(out: str | Path, page: str,
               inputs: Mapping[str, str | Path | None] | None = None) -> Path:
    """Write the page through the one atomic writer (charrnn.plumbing.writing), so a reader never
    sees half a page and a failed write leaves the old one; its mode is kept, and a link at out is
    followed to the page it names. Returns out."""
    check_output_path(out, inputs)
    return atomic_write(out, page, "the page", PAGE_HINT)

"""The metrics log beside a checkpoint: one record per evaluation, as JSON lines or CSV.

The log is written whole at every record through the one atomic writer (charrnn.safe_io), so a
kill or a full disk leaves the previous log byte-identical. A file at the log's name is only
replaced when charrnn wrote it: its first line must be one of our records (JSONL: an object with
an integer "step"; CSV: a header that starts with `step,`). A symbolic link there is never
followed. A resumed run keeps the records up to its checkpoint's step and drops any line that a
kill cut (logs of earlier versions were appended to in place).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.evaluate import LN2
from charrnn.plumbing.paths import Output, check_target
from charrnn.plumbing.reading import read_bytes
from charrnn.plumbing.writing import atomic_write

MAX_LOG_BYTES = 1 << 28  # 256 MiB: a million records; a larger file is not one of our logs
_CSV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HINT = "pass another --out"


def log_output(path: str | Path) -> Output:
    return Output(Path(path), "the metrics log", HINT, derived=True,
                  instead="pass another --out (the log is named after it), or set "
                          "training.log_format: csv")


def _step_of(line: str, log_format: str):
    """The record's step, or None when the line is no record of ours."""
    try:
        if log_format == "jsonl":
            record = json.loads(line)
            step = record.get("step") if isinstance(record, dict) else None
        else:
            step = int(line.split(",", 1)[0])
    except (ValueError, RecursionError, TypeError):  # RecursionError: nesting thousands deep
        return None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def is_ours(text: str, log_format: str) -> bool:
    """Whether a file's text is a metrics log charrnn wrote (or nothing at all)."""
    first = text.split("\n", 1)[0]
    if not text.strip():
        return True
    if log_format == "csv":
        names = first.rstrip("\r").split(",")
        return names[0] == "step" and all(_CSV_NAME.match(name) for name in names)
    if "\n" not in text:  # the first record, cut by a kill
        return first.startswith('{"step": ')
    return _step_of(first, log_format) is not None


def read_log(path: str | Path, log_format: str) -> str | None:
    """The text of the log at path (None if there is none), refused if it is not ours."""
    path = Path(path)
    check_target(log_output(path))
    if not path.exists():
        return None
    raw = read_bytes(path, "the metrics log", MAX_LOG_BYTES,
                     too_large=f"it is no charrnn metrics log; move it away, or {HINT}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or not is_ours(text, log_format):
        raise CharRNNError(f"the metrics log {path} would replace a file that charrnn did not "
                           f"write (it holds no {log_format} records of a run); move it "
                           f"away, or {HINT}")
    return text


def trim_log(path: str | Path, step: int, log_format: str) -> None:
    """Keep the log's records up to the resumed checkpoint's step; drop any line a kill cut."""
    text = read_log(path, log_format)
    if text is None:
        return
    lines = text.splitlines(keepends=True)
    kept = []
    for number, line in enumerate(lines):
        if not line.endswith("\n"):
            continue
        if log_format == "csv" and number == 0:
            kept.append(line)
            continue
        record_step = _step_of(line, log_format)
        if record_step is not None and record_step <= step:
            kept.append(line)
    if kept != lines:
        atomic_write(path, "".join(kept), "the metrics log", HINT, follow=False)


def append_record(path: str | Path, record: dict, log_format: str, fresh: bool) -> None:
    """Add one record (fresh: as the log's first, replacing an old log of ours)."""
    existing = read_log(path, log_format)  # refuses a file that is not ours, fresh or not
    text = "" if fresh else (existing or "")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # a line a kill cut
    if log_format == "jsonl":
        text += json.dumps(record) + "\n"
    else:
        if not text:
            text = ",".join(record) + "\n"
        # a log written by an older version keeps its columns: fill them by name
        columns = text[: text.find("\n")].split(",")
        text += ",".join("" if record.get(k) is None else str(record[k]) for k in columns) + "\n"
    try:
        atomic_write(path, text, "the metrics log", HINT, follow=False)
    except CharRNNError as error:
        raise CharRNNError(f"{error}; the checkpoint at this step was saved") from None


def new_window() -> dict:
    """Sums over the steps since the last evaluation, for its log record."""
    return {"nll": 0.0, "chars": 0, "norm": 0.0, "clip": 0.0, "steps": 0,
            "t0": time.perf_counter()}


def add_step(window: dict, nll_sum: float, count: int, norm: float, clip_fraction: float) -> None:
    for key, value in (("nll", nll_sum), ("chars", count), ("norm", norm),
                       ("clip", clip_fraction), ("steps", 1)):
        window[key] += value


def metrics_record(run, window: dict, val_loss: float | None, elapsed: float) -> dict:
    """One log record of a Run; `seconds` is wall time since this invocation's first step
    (training, evaluations and saves): the x axis of a loss-against-time curve."""
    seconds = max(time.perf_counter() - window["t0"], 1e-9)
    train_loss = window["nll"] / max(window["chars"], 1)
    return {
        "step": run.step,
        "chars_seen": run.chars_seen,
        "train_loss": train_loss,
        "train_bpc": train_loss / LN2,
        "val_loss": val_loss,
        "val_bpc": None if val_loss is None else val_loss / LN2,
        "lr": run.optimizer.rate,
        "grad_norm": window["norm"] / max(window["steps"], 1),
        "clip_fraction": window["clip"] / max(window["steps"], 1),
        **sigma_max_W_hh(run.model, run.sigma_vectors),
        "chars_per_sec": window["chars"] / seconds,
        "seconds": round(elapsed, 3),
    }


def progress_line(record: dict, training, elapsed: float, steps_done: int) -> str:
    """One plain line per evaluation, for logs and pipes where a bar cannot redraw."""
    val = "-" if record["val_loss"] is None else f"{record['val_loss']:.4f}"
    left = elapsed / max(steps_done, 1) * (training.steps - record["step"])
    if training.time_limit > 0:
        left = min(left, max(training.time_limit - elapsed, 0.0))
    return (f"step {record['step']}/{training.steps}: train {record['train_loss']:.4f}, "
            f"val {val} nats/char; {record['chars_per_sec']:,.0f} chars/s; "
            f"{duration(left)} left")


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


EXACT_SVD_ENTRIES = 1 << 18  # up to a 512 x 512 W_hh the full SVD is cheap (a few ms)


def sigma_max_W_hh(model, vectors: dict | None = None) -> dict[str, float]:
    """Largest singular value of each layer's W_hh: sigma_max_W_hh (layer 0), _l1, _l2, ...

    vectors: the power iterations' last right singular vectors, kept between evaluations so a
    large W_hh (an LSTM's (2048, 512)) costs a few matrix-vector products instead of a full SVD
    (180 ms an evaluation)."""
    vectors = {} if vectors is None else vectors
    values = {}
    for layer in range(model.spec.num_layers):
        key = "sigma_max_W_hh" + (f"_l{layer}" if layer else "")
        W_hh = model.layer_params(layer)["W_hh"].astype(np.float64)
        if W_hh.size <= EXACT_SVD_ENTRIES:
            values[key] = float(np.linalg.norm(W_hh, 2))
        else:
            values[key], vectors[key] = largest_singular_value(W_hh, vectors.get(key))
    return values


def largest_singular_value(W: np.ndarray, start: np.ndarray | None = None, rtol: float = 1e-9,
                           max_iterations: int = 1000) -> tuple[float, np.ndarray]:
    """sigma_max(W) by power iteration on W^T W: v <- W^T W v / ||W^T W v||, sigma = ||W v||.

    Each estimate is a lower bound that rises to sigma_max; it stops when an iteration changes
    it by less than rtol. start: a previous right singular vector (converges in a few steps)."""
    v = np.ones(W.shape[1]) if start is None or start.shape != (W.shape[1],) else start
    v = v / np.linalg.norm(v)
    sigma = 0.0
    for _ in range(max_iterations):
        u = W @ v
        estimate = float(np.linalg.norm(u))
        if estimate == 0.0:
            return 0.0, v
        v = W.T @ (u / estimate)
        v /= np.linalg.norm(v)
        if estimate - sigma <= rtol * estimate:
            return estimate, v
        sigma = estimate
    return sigma, v

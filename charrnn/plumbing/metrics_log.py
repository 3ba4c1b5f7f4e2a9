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
from pathlib import Path

from charrnn.errors import CharRNNError
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

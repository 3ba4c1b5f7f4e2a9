"""The results as text: the results' columns, the ranked table `charrnn sweep` prints and the
listing of a plan's trials and rungs (`--dry-run`).
"""

from __future__ import annotations

from charrnn.plumbing.terminal import printable
from charrnn.sweep.plan import SweepPlan

RESULT_COLUMNS = ("steps", "val_loss", "train_loss", "seconds", "status")


def format_table(plan: SweepPlan, rows: list[dict], ranked: bool = True) -> str:
    """A plain-text table of result rows, with a rank column when `ranked`."""
    columns = ["trial", *plan.keys, *RESULT_COLUMNS]
    header = (["rank"] if ranked else []) + columns
    body = []
    for number, row in enumerate(rows, 1):
        cells = [str(number)] if ranked else []
        for column in columns:
            value = row.get(column)
            if value is None:
                cells.append("-")
            elif column in ("val_loss", "train_loss"):
                cells.append(f"{value:.4f}")
            elif column == "seconds":
                cells.append(f"{value:.1f}")
            else:
                cells.append(printable(value))  # a value from the sweep file: one cell
        body.append(cells)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    numeric = {"rank", "steps", "val_loss", "train_loss", "seconds"}
    lines = []
    for line in [header, *body]:
        lines.append("  ".join(cell.rjust(width) if name in numeric or _is_number(cell)
                               else cell.ljust(width)
                               for cell, width, name in zip(line, widths, header)).rstrip())
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def describe_plan(plan: SweepPlan) -> str:
    """What the sweep will train: its trials and the rungs."""
    rows = [{"trial": trial.name, **{key: printable(value) for key, value in trial.values.items()},
             "steps": trial.config.training.steps} for trial in plan.trials]
    columns = ["trial", *plan.keys, "steps"]
    widths = [max(len(str(row[c])) for row in [dict(zip(columns, columns)), *rows])
              for c in columns]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(columns, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)).rstrip())
    if plan.rungs:
        counts = plan.planned()
        lines.append(f"halving: rungs {', '.join(map(str, plan.rungs))} steps, keep {plan.keep:g}"
                     f": {' -> '.join(map(str, counts))} trials, {sum(counts)} trial-rungs")
    return "\n".join(lines)

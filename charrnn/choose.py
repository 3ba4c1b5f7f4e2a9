"""The choice made for a user who gives a corpus and a time budget but no config.

Two rules, each a table of data kept here with the measurements behind it:
- MODE: lines mode (one example a line, from a fresh state) for a list of short lines such as
  names, words or titles; one stream (or one per document) for anything else.
- MODELS: the cell, size, depth, dropout, sequence length, batch and peak learning rate, from
  the mode, the corpus's training characters and the budget. Steps and the learning-rate
  schedule are not chosen here: the plan (charrnn.schedule.plan) fixes them from the rate it
  measures.

`charrnn train --corpus FILE [--time T]` uses these; `--config` bypasses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_BUDGET = 300.0  # seconds: a --corpus run without --time (the start line names it)

# --- the mode rule -------------------------------------------------------------------------
# A list of short lines: almost no blank lines, short lines, nearly all of them distinct.
# On the benchmark suite (benchmarks/corpora.py --list) the three names lists have median
# 6-7, 95th percentile 9-10, no blank lines and 100% distinct lines; the running texts have
# blank lines (plays 22%, code 15%, prose-en 2.2%, verse-zh 1.1%), long lines (verse-milton
# median 43, prose-ru 95th percentile 76) or repeated lines (prose-ru 54%, code 58% distinct).
LINES_RULE = {"max_blank_share": 0.005, "max_median": 32, "max_p95": 64,
              "min_distinct_share": 0.9, "min_lines": 100}


@dataclass(frozen=True)
class TextFacts:
    characters: int
    lines: int
    median: float  # characters in a non-empty line
    p95: float
    blank_share: float
    distinct_share: float

    @classmethod
    def of(cls, text: str) -> TextFacts:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        lengths = np.array([len(line) for line in lines if line.strip()] or [0])
        blank = sum(1 for line in lines if not line.strip())
        return cls(len(text), len(lines), float(np.median(lengths)),
                   float(np.percentile(lengths, 95)), blank / max(len(lines), 1),
                   len(set(lines)) / max(len(lines), 1))


def choose_mode(facts: TextFacts) -> tuple[str, str]:
    """(mode, why) by LINES_RULE."""
    rule = LINES_RULE
    if (facts.lines >= rule["min_lines"] and facts.blank_share <= rule["max_blank_share"]
            and facts.median <= rule["max_median"] and facts.p95 <= rule["max_p95"]
            and facts.distinct_share >= rule["min_distinct_share"]):
        return "lines", (f"a list of short lines: median {facts.median:.0f}, 95th percentile "
                         f"{facts.p95:.0f} characters, {facts.distinct_share:.0%} distinct")
    return "stream", (f"running text: median line {facts.median:.0f}, 95th percentile "
                      f"{facts.p95:.0f} characters, {facts.blank_share:.1%} blank, "
                      f"{facts.distinct_share:.0%} distinct lines")


# --- the model rule ------------------------------------------------------------------------
# Each row: (mode, fewest training characters, shortest budget in seconds) -> settings; the
# last row that matches wins. Measured on 2 shared cores (see MEASURED below and
# benchmarks/budget.py); tuned on names-us-2018 and plays-tragedies only.
MODELS = [
    # mode    chars      budget  cell   layers hidden dropout seq batch lr
    ("lines", 0,         0,      "gru", 1,     256,   0.1,    25, 64,   0.004),
    ("lines", 0,         150,    "gru", 2,     192,   0.3,    25, 64,   0.004),
    ("stream", 0,        0,      "gru", 1,     256,   0.2,    50, 32,   0.006),
    ("stream", 0,        120,    "gru", 1,     256,   0.2,    50, 32,   0.004),
    ("stream", 1_000_000, 600,   "gru", 1,     384,   0.2,    50, 32,   0.003),
]
# Held-out nats/char, `charrnn train --corpus train.txt --val val.txt --time T --set ...`, the
# best checkpoint scored by `charrnn eval` on val.txt; 2 cores shared with other work (load
# 3.4-6.9, 1 BLAS thread). Tuned on names-us-2018 and plays-tragedies only.
MEASURED = """
plays-tragedies 60 s   lstm 1x256 b32 s50 lr 0.005        2.441 (180 steps, load 4.4)
plays-tragedies 60 s   lstm 1x256 b16 s32 lr 0.004        1.941
plays-tragedies 60 s   lstm 1x384 lr 0.003                2.515 (220 steps)
plays-tragedies 60 s   gru 1x256 b32 s50 lr 0.004         1.852 (640 steps); linear 1.762 (830)
plays-tragedies 60 s   gru 1x256 b16 s50 lr 0.004         1.755 (1,080 steps)
plays-tragedies 60 s   gru 1x256 b32 s50 lr 0.006         1.740 (670 steps)   <- row 3
plays-tragedies 120 s  gru 1x256 b32 s50 lr 0.004         1.553 (1,840 steps) <- row 4
plays-tragedies 120 s  gru 1x384 b32 s50 lr 0.003         1.619 (1,320 steps)
names-us-2018  60 s    gru 1x128 lr 0.005 d0.1            1.974 cosine, 1.978 linear
names-us-2018  60 s    gru 1x256 lr 0.004 d0.1            1.959 (3,070 steps) <- row 1
names-us-2018  60 s    gru 2x128 lr 0.005 d0.1            1.966 (2,510 steps)
Rows 2 and 5 (budgets of 150 s and 10 min and more) are not measured yet: the first follows the
PyTorch yardstick's 2-layer GRU for names, the last a larger model where the text allows.
"""
SMALL_CORPUS = 100_000  # characters: below this, dropout rises by SMALL_DROPOUT (overfitting)
SMALL_DROPOUT = 0.2


def choose_model(mode: str, characters: int, budget: float) -> dict:
    """The config sections MODELS gives for this mode, size and budget."""
    row = [r for r in MODELS if r[0] == mode and characters >= r[1] and budget >= r[2]][-1]
    _, _, _, cell, layers, hidden, dropout, seq, batch, lr = row
    if characters < SMALL_CORPUS:
        dropout = min(dropout + SMALL_DROPOUT, 0.5)
    return {"model": {"cell": cell, "num_layers": layers, "hidden_size": hidden,
                      "dropout": dropout, "dtype": "float32",
                      "init_scale": round(min(0.08, hidden ** -0.5), 4)},
            "training": {"seq_length": seq, "batch_size": batch, "optimizer": "adam",
                         "lr": lr, "clip": 5.0, "clip_mode": "value",
                         "sample_every": 0, "checkpoint_every": 0}}


def choose(text: str, budget: float | None, mode: str | None = None) -> tuple[list[str], str]:
    """SECTION.KEY=VALUE settings for a corpus's text and a budget (None: DEFAULT_BUDGET), and
    the line that says what was chosen and why; mode, when given, is the user's."""
    import json

    facts = TextFacts.of(text)
    why = "--mode"
    if mode is None:
        mode, why = choose_mode(facts)
    seconds = DEFAULT_BUDGET if budget is None else budget
    characters = facts.characters
    sections = choose_model(mode, characters, seconds)
    settings = [f"data.mode={mode}", f"training.time_budget={seconds}"]
    settings += [f"{section}.{key}={json.dumps(value)}"
                 for section, values in sections.items() for key, value in values.items()]
    return settings, describe_choice(mode, why, sections, seconds, budget is not None)


def describe_choice(mode: str, why: str, model: dict, budget: float, stated: bool) -> str:
    m, t = model["model"], model["training"]
    source = "--time" if stated else "the default budget; pass --time to change it"
    return (f"chose {mode} mode ({why}); {m['cell']} {m['num_layers']}x{m['hidden_size']}, "
            f"dropout {m['dropout']:g}, seq {t['seq_length']}, batch {t['batch_size']}, adam lr "
            f"{t['lr']:g} for a {budget:g} s budget ({source})")

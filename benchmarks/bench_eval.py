"""Evaluation speed against training speed on the same model (issue 23, point 6).

Usage::

    nice python benchmarks/bench_eval.py [--seconds 3] [--threads 1]

For each model it times Run.train_step (forward, backward, clip, update) and
charrnn.evaluate.evaluate_split on the validation split (forward only, EVAL_LANES pieces side
by side, every character of the split but its first), on the shipped corpora, and prints one
line: characters a second each way and their ratio (the target: evaluation >= 3x training).
Both are timed under the same BLAS thread limit; `uptime` is printed first, since other work
on the machine slows both.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = [  # (name, corpus, mode, model settings, training settings)
    ("names rnn 128", "names.txt", "lines", {"hidden_size": 128}, {"batch_size": 64}),
    ("names gru 2x192", "names.txt", "lines", {"cell": "gru", "num_layers": 2, "hidden_size": 192},
     {"batch_size": 64}),
    ("shakespeare lstm 256", "shakespeare.txt", "stream", {"cell": "lstm", "hidden_size": 256},
     {"batch_size": 32, "seq_length": 50}),
    ("shakespeare lstm 512", "shakespeare.txt", "stream", {"cell": "lstm", "hidden_size": 512},
     {"batch_size": 64, "seq_length": 25}),
]


def measure(name, corpus, mode, model, training, seconds: float, threads: int) -> str:
    from charrnn.config import load_config
    from charrnn.evaluate import evaluate_split
    from charrnn.plumbing.threads import blas_threads
    from charrnn.train import start_run

    overrides = [f"data.corpus={REPO / 'corpora' / corpus}", f"data.mode={mode}",
                 "model.dtype=float32", "training.optimizer=adam", "training.lr=0.002",
                 *(f"model.{k}={v}" for k, v in model.items()),
                 *(f"training.{k}={v}" for k, v in training.items())]
    run = start_run(load_config("names", overrides))
    val = run.corpus.val
    with blas_threads(threads):
        for _ in range(3):
            run.train_step()
        chars, begun = 0, time.perf_counter()
        while time.perf_counter() - begun < seconds:
            chars += run.train_step()[1]
        train_rate = chars / (time.perf_counter() - begun)
        limit = min(val.characters, int(train_rate * seconds * 3))  # about 3 * seconds of work
        evaluate_split(run.model, val, mode, max_chars=2000)  # imports, first allocations
        begun = time.perf_counter()
        evaluate_split(run.model, val, mode, max_chars=limit if limit < val.characters else None)
        eval_rate = limit / (time.perf_counter() - begun)
    return (f"{name:22s} train {train_rate:>9,.0f} chars/s   eval {eval_rate:>9,.0f} chars/s   "
            f"eval/train {eval_rate / train_rate:5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on {os.cpu_count()} cores; "
          f"{args.threads} BLAS thread(s)")
    for row in MODELS:
        print(measure(*row, args.seconds, args.threads), flush=True)


if __name__ == "__main__":
    main()

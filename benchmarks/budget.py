"""Corpus x budget -> held-out loss: `charrnn train --time` against a PyTorch yardstick given the
same time (issue 23, point 4).

Usage::

    nice python benchmarks/budget.py [--corpora names-world verse-milton] [--budgets 1m 2m]
                                     [--no-torch] [--set KEY=VALUE ...] [--config NAME]

For each corpus (benchmarks/corpora/<name>/train.txt and val.txt, built by
benchmarks/corpora.py) and budget it runs, one after the other, in subprocesses:

- `charrnn train --corpus train.txt --val val.txt --time T` (the chooser picks mode and model,
  the plan fixes steps and schedule; with --config, only steps and schedule are planned), then
  `charrnn eval --checkpoint OUT.best.npz val.txt`: held-out nats/char over every character
  (lines: each line's characters and its end; stream: every character of each run of known
  characters but its first);
- `benchmarks/torch_baseline.py CORPUS --seconds T` (a 2-layer nn.GRU for lines; for a stream
  an nn.LSTM of one layer below 30 minutes, two from 30 minutes on: its `recipe()`), whose
  best-validation weights score the same characters the same way.

It prints one row per corpus and budget, with the wall-clock seconds charrnn took (set-up,
measuring and the final save included) and the 1-minute load average before each run: other
work on the machine slows both sides. `--shapes` trains each corpus twice, cosine and linear
decay, instead (the measurement behind charrnn.schedule.PLAN_SHAPE).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPORA = HERE / "corpora"
DEFAULT_CORPORA = ["names-world", "names-de", "verse-milton", "prose-en"]  # not tuned on
TUNED_ON = ["names-us-2018", "plays-tragedies"]


def seconds_of(text: str) -> float:
    from charrnn.schedule import parse_duration

    return parse_duration(text)


def charrnn_run(corpus: Path, budget: str, folder: Path, extra: list[str]) -> dict:
    out = folder / f"{corpus.name}-{budget}-{len(list(folder.iterdir()))}.npz"
    command = ["charrnn", "train", "--corpus", str(corpus / "train.txt"), "--val",
               str(corpus / "val.txt"), "--time", budget, "--out", str(out), "--no-progress",
               *extra]
    begun = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - begun
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1]}
    best = out.with_name(out.stem + ".best.npz")
    scored = subprocess.run(["charrnn", "eval", "--checkpoint", str(best), "--json",
                             str(corpus / "val.txt")], capture_output=True, text=True)
    if scored.returncode != 0:
        return {"error": scored.stderr.strip().splitlines()[-1]}
    result = json.loads(scored.stdout)
    lines = done.stderr.splitlines()
    chosen = next((line for line in lines if line.startswith("chose ")), "")
    plan = next((line.split("plan for ", 1)[1] for line in lines if "plan for " in line), "")
    return {"loss": result["nats_per_char"], "wall": wall, "chose": chosen, "plan": plan,
            "chars": result["characters"]}


def torch_run(corpus: Path, budget: str) -> dict:
    mode = json.loads((corpus / "corpus.json").read_text()).get("mode", "stream") \
        if (corpus / "corpus.json").is_file() else "stream"
    cell = "gru" if mode == "lines" else "lstm"
    done = subprocess.run([sys.executable, str(HERE / "torch_baseline.py"), str(corpus),
                           "--seconds", str(seconds_of(budget)), "--cell", cell],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"loss": result["best_val_nats_per_char"], "cell": cell,
            "chars": result["val_chars_scored"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", nargs="+", default=DEFAULT_CORPORA)
    parser.add_argument("--budgets", nargs="+", default=["1m", "2m"])
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--shapes", action="store_true", help="cosine against linear decay")
    parser.add_argument("--config", help="a config for charrnn (then only steps and schedule "
                                         "are planned)")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[])
    args = parser.parse_args()
    extra = [item for override in args.overrides for item in ("--set", override)]
    if args.config:
        extra += ["--config", args.config]
    print(f"# {os.cpu_count()} cores; charrnn threads auto; torch 2 threads; tuned on "
          f"{', '.join(TUNED_ON)}", flush=True)
    print("| corpus | budget | charrnn --time (nats/char) | wall s | PyTorch (nats/char) | "
          "load before | charrnn's choice and plan |", flush=True)
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.corpora:
            corpus = CORPORA / name
            for budget in args.budgets:
                variants = ([["--set", "training.lr_schedule=cosine"],
                             ["--set", "training.lr_schedule=linear"]] if args.shapes else [[]])
                for variant in variants:
                    load = os.getloadavg()[0]
                    ours = charrnn_run(corpus, budget, Path(folder), [*extra, *variant])
                    theirs = ({"loss": None} if args.no_torch or args.shapes
                              else torch_run(corpus, budget))
                    label = " ".join(variant[1::2]) or ""
                    print(f"| {name} | {budget} {label} | {_loss(ours)} | "
                          f"{ours.get('wall', 0):.0f} | {_loss(theirs)} | {load:.1f} | "
                          f"{ours.get('chose', '')[6:90]}; {ours.get('plan', '')[:90]} |",
                          flush=True)


def _loss(result: dict) -> str:
    if "error" in result:
        return f"error: {result['error'][:60]}"
    return "-" if result["loss"] is None else f"{result['loss']:.3f}"


if __name__ == "__main__":
    main()

"""Validation loss against seconds of training: PyTorch's nn.LSTM as issue 8 measured it, and
charrnn's curve read from a training log, on the same validation characters.

    # PyTorch (hidden 512, seq 100, batch 64, Adam 2e-3, one-hot input, 2 threads): 10 minutes
    flock /tmp/charrnn-cpu.lock python benchmarks/shakespeare_curve.py torch --seconds 600
    # charrnn: train, then read the curve from its log at the same marks
    flock /tmp/charrnn-cpu.lock charrnn train --config shakespeare-lstm
    python benchmarks/shakespeare_curve.py log checkpoints/shakespeare-lstm.jsonl

Both are scored on charrnn's validation sample: the tail 10% of corpora/shakespeare.txt cut into
64 streams, the first 100,000 / 64 characters of each (charrnn.corpus.eval_batches with
eval_max_chars 100000, what `training.eval_max_chars: 100000` evaluates during training). Both
clocks include their evaluations: PyTorch evaluates at each mark; charrnn's log records carry
`seconds` (wall time since the first step, evaluations and saves included), and the curve takes
at each mark the best validation loss logged at or before it.

PyTorch's loop is the plain one a PyTorch user writes, on charrnn's own batches
(charrnn.corpus.StreamBatches: 64 contiguous streams) with the state carried and detached,
cross-entropy averaged over the batch, clip_grad_norm_(5), Adam; torch's default initialisation.
torch is needed only for the `torch` command (pip install torch==2.13.0).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKS = (150, 300, 450, 600, 900, 1200, 1500, 1800)


def validation_sample(seq_length: int):
    """charrnn's vocabulary, training tokens and validation batches for the Shakespeare corpus."""
    from charrnn.corpus import eval_batches, load_corpus

    corpus = load_corpus(REPO / "corpora" / "shakespeare.txt", "stream", 0.1, 0)
    batches = list(eval_batches(corpus.val, "stream", 64, seq_length, 100000))
    return corpus, batches


def torch_curve(args) -> None:
    import numpy as np
    import torch

    from charrnn.corpus import StreamBatches

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    corpus, batches = validation_sample(args.seq)
    V, H, B, T = len(corpus.vocab), args.hidden, args.batch, args.seq

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(V, H)
            self.out = torch.nn.Linear(H, V)

        def forward(self, x, state):
            h, state = self.lstm(torch.nn.functional.one_hot(x, V).float(), state)
            return self.out(h), state

    net = Net()
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)

    def evaluate() -> float:
        total, count, state = 0.0, 0, None
        with torch.no_grad():
            for batch in batches:
                if batch.reset:
                    state = None
                logits, state = net(torch.from_numpy(batch.x.astype(np.int64)), state)
                total += torch.nn.functional.cross_entropy(
                    logits.reshape(-1, V), torch.from_numpy(batch.y.astype(np.int64)).reshape(-1),
                    reduction="sum").item()
                count += batch.y.size
        return total / count

    train_batches = StreamBatches(corpus.train, B, T)  # charrnn's own chunking of the same text
    state, step = None, 0
    marks = [m for m in MARKS if m <= args.seconds] or [args.seconds]
    started = time.perf_counter()
    for mark in marks:
        while time.perf_counter() - started < mark:
            batch = train_batches.next()
            if batch.reset:
                state = None
            x = torch.from_numpy(batch.x.astype(np.int64))
            y = torch.from_numpy(batch.y.astype(np.int64))
            logits, state = net(x, state)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            state = tuple(s.detach() for s in state)
            step += 1
        print(json.dumps({"seconds": mark, "val_loss": round(evaluate(), 4), "step": step,
                          "chars_per_sec": round(step * B * T / (time.perf_counter() - started))}),
              flush=True)
    print(f"# PyTorch {torch.__version__}, {args.threads} threads, nn.LSTM hidden {H}, seq {T}, "
          f"batch {B}, Adam {args.lr}, one-hot input; OPENBLAS/OMP threads "
          f"{os.environ.get('OMP_NUM_THREADS', '<unset>')}")


def log_curve(args) -> None:
    records = [json.loads(line) for line in Path(args.log).read_text().splitlines() if line]
    records = [r for r in records if r.get("val_loss") is not None and "seconds" in r]
    if not records:
        sys.exit(f"{args.log}: no records with val_loss and seconds (logs before 'seconds' "
                 f"existed cannot give a time curve)")
    ended = records[-1]["seconds"]
    # every mark the run reached, and the first one after its end (its final best stands there)
    first_after_end = min([m for m in MARKS if m >= ended], default=None)
    for mark in [m for m in MARKS if m - 60 <= ended or m == first_after_end]:
        seen = [r for r in records if r["seconds"] <= mark]
        if seen:
            best = min(seen, key=lambda r: r["val_loss"])
            print(json.dumps({"seconds": mark, "val_loss": round(best["val_loss"], 4),
                              "step": best["step"], "logged_at": best["seconds"],
                              **({"run_ended_at": ended} if ended < mark else {})}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("torch", help="train PyTorch's nn.LSTM and print its curve")
    t.add_argument("--seconds", type=float, default=600)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--hidden", type=int, default=512)
    t.add_argument("--seq", type=int, default=100)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    g = commands.add_parser("log", help="charrnn's curve from a training log (.jsonl)")
    g.add_argument("log")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    torch_curve(args) if args.command == "torch" else log_curve(args)


if __name__ == "__main__":
    main()

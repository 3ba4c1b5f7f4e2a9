"""A PyTorch yardstick: nn.LSTM / nn.GRU character models given a wall-clock budget on a corpus.

Usage::

    python benchmarks/torch_baseline.py benchmarks/corpora/names-us-2018 --seconds 300 --cell gru

CORPUS_DIR holds train.txt and val.txt (as benchmarks/corpora.py writes them; its corpus.json
gives the mode, or pass --mode). The script trains for --seconds of wall-clock time on
--threads threads (2 by default), evaluates on a sample of the held-out text every tenth of the
budget (but at most once every 10 s) and keeps the best weights, then scores the whole held-out
file with them and prints one JSON line. Periodic evaluations count against the budget; the
final full scoring does not (its time is reported as eval_seconds).

How the held-out loss is counted, as charrnn counts it (charrnn/corpus.py, charrnn/evaluate.py):

- lines mode: each non-empty line is one example, fed after the boundary character (newline)
  from a zero state; its characters and the boundary that ends it are predicted, so a line of n
  characters scores n + 1. CR and CRLF become LF first. The vocabulary is train.txt's characters
  plus the boundary; a held-out line holding a character outside it is skipped and counted.
- stream mode: val.txt is one text. It is cut at characters outside the vocabulary; in each run
  every character but the first is predicted, given all the characters before it in the run.
  For speed, a long run is cut into pieces scored side by side; each piece starts from a zero
  state with the character before it as input, so no character is left unscored.

The recipe is one rule of the corpus's size, mode and budget (see recipe()): embedding in, one
layer for running text under 30 minutes and two otherwise, dropout before the output layer (and
between layers), Adam with a cosine decay over the budget to a tenth, gradient norm clipped at
5; lines mode trains on random batches of padded lines, stream mode on contiguous windows with
the state carried between them (truncated BPTT).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

# OpenMP threads that spin while they wait lose badly when other processes share the cores: on
# this 2-core machine at load ~5, a 2-thread GRU step took 3.5 s spinning and 0.09 s passive.
# Set before torch starts its thread pool; an OMP_WAIT_POLICY already in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

BOUNDARY = "\n"
EVALS_PER_RUN = 10
MIN_EVAL_EVERY = 10.0  # seconds: short budgets evaluate less often
SAMPLE_CHARS = 20_000  # held-out characters scored at each periodic evaluation (stream mode)
EVAL_LANES = 128


def recipe(mode: str, train_chars: int, seconds: float) -> dict:
    """The model and optimiser settings: one rule of the corpus's size, mode and budget.

    Small corpora want dropout more than size. Running text gets one layer under 30 minutes:
    on plays-tragedies (1.05M training characters, 2 shared cores) one LSTM layer of 256 reached
    1.939 nats/char in 60 s and 1.534 in 300 s, two layers 2.227 and 1.674, and one layer of 512
    1.647 in 300 s: at these budgets steps are worth more than depth or width. The 30-minute
    branch (two layers of 512 on 1M characters or more) was not measured in that sitting."""
    if mode == "lines":
        dropout = 0.5 if train_chars < 100_000 else 0.3
        return {"hidden": 256, "layers": 2, "embedding": 64, "dropout": dropout,
                "batch": 64, "seq_length": None, "lr": 3e-3, "lr_floor": 0.1, "clip": 5.0}
    long_run = seconds >= 1800
    large = long_run and train_chars >= 1_000_000
    dropout = 0.5 if train_chars < 300_000 else 0.3 if train_chars < 3_000_000 else 0.1
    return {"hidden": 512 if large else 256, "layers": 2 if long_run else 1, "embedding": 64,
            "dropout": dropout, "batch": 32, "seq_length": 100, "lr": 2e-3, "lr_floor": 0.1,
            "clip": 5.0}


class CharModel(nn.Module):
    def __init__(self, cell: str, vocab: int, config: dict):
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.embed = nn.Embedding(vocab, config["embedding"])
        self.rnn = rnn(config["embedding"], config["hidden"], config["layers"],
                       dropout=config["dropout"] if config["layers"] > 1 else 0.0,
                       batch_first=True)
        self.drop = nn.Dropout(config["dropout"])
        self.out = nn.Linear(config["hidden"], vocab)

    def forward(self, x, state=None):
        h, state = self.rnn(self.embed(x), state)  # (B, T, H)
        return self.out(self.drop(h)), state


def detach(state):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


# --- data ---------------------------------------------------------------------------------------

class Vocab:
    def __init__(self, text: str, mode: str):
        chars = sorted(set(text) | ({BOUNDARY} if mode == "lines" else set()))
        self.index = {ch: i for i, ch in enumerate(chars)}
        self.size = len(chars)

    def encode(self, text: str) -> np.ndarray:
        """Indices, -1 for a character outside the vocabulary."""
        return np.array([self.index.get(ch, -1) for ch in text], dtype=np.int64)


def read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n").replace("\r", "\n")
    return [line for line in text.split("\n") if line]


def padded_lines(lines: list[np.ndarray], boundary: int):
    """(x, y, mask), each (B, T): x = boundary + line, y = line + boundary; T = longest + 1."""
    steps = max(len(line) for line in lines) + 1
    x = np.full((len(lines), steps), boundary, dtype=np.int64)
    y = np.zeros((len(lines), steps), dtype=np.int64)
    mask = np.zeros((len(lines), steps), dtype=bool)
    for row, line in enumerate(lines):
        x[row, 1:len(line) + 1] = line
        y[row, :len(line)] = line
        y[row, len(line)] = boundary
        mask[row, :len(line) + 1] = True
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask)


def stream_pieces(tokens: np.ndarray, lanes: int, min_piece: int) -> list[np.ndarray]:
    """Runs of known characters, cut into about `lanes` pieces overlapping by one character (a
    piece's first character is input only), so every character but a run's first is a target."""
    known = tokens >= 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], known.astype(np.int8), [0]])))
    runs = [tokens[a:b] for a, b in zip(edges[::2], edges[1::2]) if b - a >= 2]
    targets = sum(len(r) - 1 for r in runs)
    per_piece = max(min_piece, math.ceil(targets / lanes))
    pieces = []
    for run in runs:
        for first in range(0, len(run) - 1, per_piece):
            pieces.append(run[first: first + per_piece + 1])
    return pieces


# --- scoring ------------------------------------------------------------------------------------

@torch.no_grad()
def score_lines(model, lines: list[np.ndarray], boundary: int, batch: int = 256):
    """(sum of nats, characters scored) over lines, each from a zero state."""
    model.eval()
    total, count = 0.0, 0
    for first in range(0, len(lines), batch):
        x, y, mask = padded_lines(lines[first:first + batch], boundary)
        logits, _ = model(x)
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none")
        total += float(nll[mask].sum())
        count += int(mask.sum())
    model.train()
    return total, count


@torch.no_grad()
def score_pieces(model, pieces: list[np.ndarray], chunk: int = 200, lanes: int = EVAL_LANES):
    """(sum of nats, characters scored): each piece from a zero state, lanes of them side by side,
    chunk steps at a time with the state carried."""
    model.eval()
    total, count = 0.0, 0
    order = sorted(pieces, key=len, reverse=True)
    for first in range(0, len(order), lanes):
        group = order[first:first + lanes]
        width = max(len(p) for p in group)
        grid = np.zeros((len(group), width), dtype=np.int64)
        valid = np.zeros((len(group), width), dtype=bool)
        for row, piece in enumerate(group):
            grid[row, :len(piece)] = piece
            valid[row, :len(piece)] = True
        grid, valid = torch.from_numpy(grid), torch.from_numpy(valid)
        state = None
        for start in range(0, width - 1, chunk):
            end = min(start + chunk, width - 1)
            logits, state = model(grid[:, start:end], state)
            nll = nn.functional.cross_entropy(logits.transpose(1, 2), grid[:, start + 1:end + 1],
                                              reduction="none")
            mask = valid[:, start + 1:end + 1]
            total += float(nll[mask].sum())
            count += int(mask.sum())
    model.train()
    return total, count


# --- training -----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus_dir", type=Path, help="a folder with train.txt and val.txt")
    parser.add_argument("--seconds", type=float, required=True, help="wall-clock training budget")
    parser.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    parser.add_argument("--mode", choices=("lines", "stream"),
                        help="default: corpus.json's mode, else stream")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting of the recipe, e.g. --set layers=1 "
                             "(the JSON line's config shows what ran)")
    args = parser.parse_args(argv)

    meta_path = args.corpus_dir / "corpus.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    mode = args.mode or meta.get("mode", "stream")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    train_text = (args.corpus_dir / "train.txt").read_text(encoding="utf-8")
    if mode == "lines":
        train_lines = read_lines(args.corpus_dir / "train.txt")
        vocab = Vocab("".join(train_lines), mode)
        boundary = vocab.index[BOUNDARY]
        train_data = [vocab.encode(line) for line in train_lines]
        train_chars = sum(len(line) + 1 for line in train_data)
        val_all = [vocab.encode(line) for line in read_lines(args.corpus_dir / "val.txt")]
        val_lines = [line for line in val_all if (line >= 0).all()]
        skipped = sum(len(line) + 1 for line in val_all) - sum(len(v) + 1 for v in val_lines)
        val_sample = val_lines
    else:
        vocab = Vocab(train_text, mode)
        tokens = vocab.encode(train_text)
        train_chars = len(tokens)
        val_tokens = vocab.encode((args.corpus_dir / "val.txt").read_text(encoding="utf-8"))
        skipped = int((val_tokens < 0).sum())
        val_pieces = stream_pieces(val_tokens, EVAL_LANES, min_piece=200)
        # the sample: the start of every piece, so it is spread over the whole held-out text
        length = max(2, SAMPLE_CHARS // max(len(val_pieces), 1) + 1)
        val_sample = [piece[:length] for piece in val_pieces]

    config = recipe(mode, train_chars, args.seconds)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in config or config[key] is None:
            parser.error(f"--set {item}: the recipe's settings are {', '.join(config)}")
        config[key] = type(config[key])(value)
    model = CharModel(args.cell, vocab.size, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])

    def evaluate(lines_or_pieces) -> float:
        if mode == "lines":
            total, count = score_lines(model, lines_or_pieces, boundary)
        else:
            total, count = score_pieces(model, lines_or_pieces)
        return total / max(count, 1)

    if mode == "stream":
        batch, seq = config["batch"], config["seq_length"]
        stream_length = len(tokens) // batch
        streams = torch.from_numpy(tokens[: batch * stream_length].reshape(batch, stream_length))
        position, state = 0, None

    best = {"loss": math.inf, "step": 0, "seconds": 0.0, "weights": None}
    started, cpu_started = time.perf_counter(), time.process_time()
    eval_every = max(args.seconds / EVALS_PER_RUN, MIN_EVAL_EVERY)
    next_eval, step, elapsed = eval_every, 0, 0.0
    while True:
        elapsed = time.perf_counter() - started
        if elapsed >= next_eval or elapsed >= args.seconds:
            loss = evaluate(val_sample)
            if loss < best["loss"]:
                best = {"loss": loss, "step": step, "seconds": round(elapsed, 1),
                        "weights": copy.deepcopy(model.state_dict())}
            next_eval += eval_every
            if elapsed >= args.seconds:
                break
        # cosine from lr to lr * lr_floor over the budget's wall-clock time
        progress = min(elapsed / args.seconds, 1.0)
        scale = config["lr_floor"] + (1 - config["lr_floor"]) * 0.5 * (1 + math.cos(
            math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = config["lr"] * scale

        if mode == "lines":
            picks = rng.integers(len(train_data), size=config["batch"])
            x, y, mask = padded_lines([train_data[i] for i in picks], boundary)
            logits, _ = model(x)
            nll = nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none")
            loss = nll[mask].mean()
        else:
            if position + seq + 1 > stream_length:
                position, state = 0, None
            x = streams[:, position: position + seq]
            y = streams[:, position + 1: position + seq + 1]
            logits, state = model(x, state)
            state = detach(state)
            loss = nn.functional.cross_entropy(logits.reshape(-1, vocab.size), y.reshape(-1))
            position += seq
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config["clip"])
        optimizer.step()
        step += 1

    train_seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    model.load_state_dict(best["weights"])
    eval_started = time.perf_counter()
    if mode == "lines":
        total, count = score_lines(model, val_lines, boundary)
    else:
        total, count = score_pieces(model, val_pieces)
    seen = (step * config["batch"] * (config["seq_length"] or 0) / train_chars
            if mode == "stream" else None)
    print(json.dumps({
        "corpus": meta.get("name", args.corpus_dir.name), "cell": args.cell, "mode": mode,
        "config": config, "seconds": args.seconds, "train_seconds": round(train_seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "steps": step, "epochs": round(seen, 3) if seen is not None else None,
        "best_val_nats_per_char": round(total / count, 4), "best_at_step": best["step"],
        "best_at_seconds": best["seconds"], "val_chars_scored": count,
        "val_chars_skipped": skipped, "sample_val_nats_per_char": round(best["loss"], 4),
        "eval_seconds": round(time.perf_counter() - eval_started, 1),
        "threads": args.threads, "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "load_average": [round(x, 2) for x in os.getloadavg()], "torch": torch.__version__,
        "vocab": vocab.size, "train_chars": train_chars}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

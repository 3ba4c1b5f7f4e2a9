"""charrnn's speed as users get it (issue 11). Run from the repository root:

    flock /tmp/charrnn-cpu.lock python benchmarks/bench_train.py     # everything (--full)
    python benchmarks/bench_train.py --quick      # shorter windows, no 100 MB corpus
    python benchmarks/bench_train.py --tiny       # tiny sizes: checks the code paths only
    python benchmarks/bench_train.py --only batch1,large --json out.json

Every figure is one line `key: value unit (details) [context]`, where the context names the
threads, NumPy, the BLAS library and kernel (threadpoolctl), the CPU and OPENBLAS_CORETYPE.
Figures (see docs/benchmarks.md for what each one means):

  batch1   (a) min-char-rnn's setting (100, 25, 1) float64, Adagrad 0.1, one thread: charrnn
           through charrnn.train.train() against the faithful min-char-rnn port
           (benchmarks/minchar.py), their ratio, `python -m charrnn train`'s own summary
           figure, and train() against the bare Run.train_step loop
  large    (b) (512, 100, 64) float32 for rnn, lstm and gru, 1 and 2 threads, 1 and 2 layers,
           through train(), against PyTorch's nn.RNN / nn.LSTM / nn.GRU (one-hot input and
           nn.Embedding input) trained by an honest loop; achieved GFLOP/s against the float32
           matmul peak measured in the same sitting; the GEMM floor (the step's matrix products
           alone, at their shapes: the ceiling of any NumPy trainer on this BLAS)
  policy   (c) the thread policy: auto against --threads 1 on the default names run and on the
           (512, 100, 64) run, quiet and with another process keeping one core busy
  sample   (d) sampling per cell: free-text chars/s (hidden 512), names/s (10,000, hidden 128)
  eval     (e) evaluate_text on a text with many characters outside the vocabulary and on one
           without, same length
  memory   (f) peak RSS training (512, 100, 64) per cell; peak RSS on a 100 MB corpus

Timing: a warm-up window, then 3 timed windows of about --window seconds each; the figure is
the median of the 3. charrnn figures are train()'s own per-window chars/s (the `chars_per_sec`
of its log records: evaluation, sampling and checkpoints are switched off, the validation split
is empty, so the windows hold training steps only).

The parent process never imports NumPy: every measurement runs in a child process (this script
with --worker) whose OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS are set to the
thread count before NumPy loads, except the thread-policy and CLI children, which run with them
unset, as a user's `charrnn train` does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAKESPEARE = REPO / "corpora" / "shakespeare.txt"
NAMES = REPO / "corpora" / "names.txt"
RESULT_PREFIX = "BENCH-RESULT "
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
ITEMS = ("batch1", "large", "policy", "sample", "eval", "memory")
CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}

FULL_SIZES = {"hidden": 512, "seq": 100, "batch": 64, "text_hidden": 512, "names_hidden": 128,
              "names": 10000, "matmul": 2048, "small_hidden": 100}
TINY_SIZES = {"hidden": 64, "seq": 20, "batch": 8, "text_hidden": 64, "names_hidden": 32,
              "names": 500, "matmul": 256, "small_hidden": 20}


# ---------------------------------------------------------------------------------------------
# Worker side: runs in a child whose thread variables were set before NumPy was imported.
# ---------------------------------------------------------------------------------------------

def _emit(result: dict) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def _blas_info() -> dict:
    """NumPy's version and its BLAS pools as threadpoolctl sees them (now, in this process)."""
    import numpy as np
    from threadpoolctl import threadpool_info

    pools = [{k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                    "threading_layer")}
             for p in threadpool_info() if p.get("user_api") == "blas"]
    return {"numpy": np.__version__, "blas": pools}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _report_collector():
    lines: list[tuple[str, str]] = []
    return lines, lambda kind, text: lines.append((kind, text))


START_THREADS = re.compile(r"; (\d+) BLAS threads? \(([^)]*)\); writing")


def _train_once(config) -> dict:
    """One train() call: the per-window chars/s of its log records, and what it said."""
    from charrnn.train import train

    lines, report = _report_collector()
    started = time.perf_counter()
    result = train(config, progress=False, report=report)
    total = time.perf_counter() - started
    match = next((START_THREADS.search(text) for kind, text in lines if kind == "info"
                  and START_THREADS.search(text)), None)
    return {"windows": [record["chars_per_sec"] for record in result.history],
            "whole_call": result.chars_per_second, "loop_seconds": result.seconds,
            "call_seconds": total, "steps": result.step,
            "threads": int(match[1]) if match else None,
            "thread_reason": match[2] if match else None}


def _out_path(spec: dict, name: str) -> str:
    return str(Path(spec["tmp"]) / f"{name}-{os.getpid()}.npz")


def _large_config(spec: dict, cell: str, layers: int, threads, window: int, windows: int,
                  out: str, corpus: Path = SHAKESPEARE):
    """(hidden, seq, batch) float32 Adam on a stream, evaluation/sampling/checkpoints off."""
    from charrnn.config import Config

    sizes = spec["sizes"]
    return Config().replace(
        data={"corpus": str(corpus), "mode": "stream", "val_fraction": 0.0},
        model={"cell": cell, "num_layers": layers, "hidden_size": sizes["hidden"],
               "dtype": "float32", "init_scale": 0.03},
        training={"batch_size": sizes["batch"], "seq_length": sizes["seq"],
                  "optimizer": "adam", "lr": 0.002, "clip": 5.0, "clip_mode": "value",
                  "seed": 0, "steps": window * (1 + windows), "eval_every": window,
                  "sample_every": 0, "checkpoint_every": 0, "threads": threads, "out": out})


def _shipped_config(name: str, spec: dict, threads, window: int, windows: int, out: str,
                    extra: tuple = ()):
    """A shipped config (what `charrnn train --config NAME` runs) with the figure's overrides."""
    from charrnn.config import load_config

    overrides = [f"training.steps={window * (1 + windows)}", f"training.eval_every={window}",
                 "training.sample_every=0", "training.checkpoint_every=0",
                 "data.val_fraction=0.0", f"training.threads={json.dumps(threads)}",
                 f"training.out={json.dumps(out)}", *extra]
    return load_config(name, overrides)


def _bare_step_seconds(config, seconds: float) -> tuple[float, object]:
    """Seconds per Run.train_step (one warm-up step, then steps for about `seconds`)."""
    from charrnn.plumbing.threads import blas_threads, choose_threads
    from charrnn.train import start_run

    run = start_run(config)
    spec = run.model.spec
    choice = choose_threads(config.training.threads, config.training.batch_size,
                            spec.hidden_size, run.model.cell.gates)
    with blas_threads(choice.threads):
        run.train_step()
        steps, started = 0, time.perf_counter()
        while steps == 0 or time.perf_counter() - started < seconds:
            run.train_step()
            steps += 1
    return (time.perf_counter() - started) / steps, run


def _window_steps(step_seconds: float, window_seconds: float) -> int:
    return max(1, round(window_seconds / max(step_seconds, 1e-9)))


def worker_info(spec: dict) -> dict:
    return _blas_info()


def worker_batch1(spec: dict) -> dict:
    """(a): train() on the min-char-rnn config, the faithful yardstick and the bare step loop,
    interleaved (a different order each repeat), one thread."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import minchar
    import numpy as np

    from charrnn.plumbing.threads import blas_threads

    sizes, repeats, window = spec["sizes"], spec["repeats"], spec["window"]
    hidden = sizes["small_hidden"]
    extra = () if hidden == 100 else (f"model.hidden_size={hidden}",)
    probe = _shipped_config("min-char-rnn", spec, 1, 1, 1, _out_path(spec, "probe"), extra)
    step_seconds, bare = _bare_step_seconds(probe, min(window, 0.5))
    k = _window_steps(step_seconds, window)
    chars = probe.training.seq_length * probe.training.batch_size
    text = Path(probe.data.corpus).read_text(encoding="utf-8")  # the same text, as the gist reads
    minchar.setup(text, hidden=hidden, seq=probe.training.seq_length, lr=probe.training.lr,
                  seed=0)
    minchar.train(k)  # warm-up
    config = _shipped_config("min-char-rnn", spec, 1, k, 1, _out_path(spec, "batch1"), extra)

    def run_train():
        result = _train_once(config)
        runs["train"].append(result["windows"][-1])
        runs["whole_call"].append(result["whole_call"])
        runs["threads"] = result["threads"]

    def run_yardstick():
        started = time.perf_counter()
        minchar.train(k)
        runs["yardstick"].append(k * minchar.seq_length / (time.perf_counter() - started))

    def run_bare():
        with blas_threads(1):
            started = time.perf_counter()
            for _ in range(k):
                bare.train_step()
            runs["bare"].append(k * chars / (time.perf_counter() - started))

    # the recurrence alone: the cell's forward and backward loops over the 25 steps (layer 0's
    # lookup, the output layer, clipping and the update counted as free); what a design that
    # loops over time in Python pays at least
    batch = bare.batches.next()
    model, space = bare.model, bare.workspace
    state0 = model.zero_state(1)[0]
    xw = model.cell.input_buffer(*batch.x.shape, model.dtype, space)
    xw[...] = 0.01
    dh = np.full((*batch.x.shape, model.spec.hidden_size), 0.01, dtype=model.dtype)

    def run_recurrence():
        p = model.layer_params(0)
        started = time.perf_counter()
        for _ in range(k):
            _, _, cache = model.cell.forward(xw, state0, p, space)
            model.cell.backward(dh, cache, None, space)
        runs["recurrence"].append(k * chars / (time.perf_counter() - started))

    runs: dict = {"train": [], "whole_call": [], "yardstick": [], "bare": [], "recurrence": []}
    order = [run_train, run_yardstick, run_bare, run_recurrence]
    for _ in range(repeats):
        for fn in order:
            fn()
        order = order[1:] + order[:1]
    return {"window_steps": k, "chars_per_step": chars, "runs": runs,
            "median": {name: _median(values) for name, values in runs.items()
                       if isinstance(values, list)},
            "threads": runs["threads"], "vocab": minchar.vocab_size, **_blas_info()}


def worker_large(spec: dict) -> dict:
    """(b): one (cell, layers, threads) configuration of charrnn through train()."""
    cell, layers, threads = spec["cell"], spec["layers"], spec["threads"]
    probe = _large_config(spec, cell, layers, threads, 1, 1, _out_path(spec, "probe"))
    step_seconds, bare = _bare_step_seconds(probe, min(spec["window"], 0.3))
    k = _window_steps(step_seconds, spec["window"])
    config = _large_config(spec, cell, layers, threads, k, spec["repeats"],
                           _out_path(spec, f"large-{cell}"))
    result = _train_once(config)
    timed = result["windows"][1:]
    out = {"median": _median(timed), "runs": timed, "window_steps": k,
           "whole_call": result["whole_call"], "threads": result["threads"],
           "vocab": len(bare.corpus.vocab), **_blas_info()}
    if spec.get("bare"):
        # train() against the bare loop, interleaved: bare, train(), bare, ...
        from charrnn.plumbing.threads import blas_threads

        chars = config.training.batch_size * config.training.seq_length
        bare_runs, train_runs = [], []
        for _ in range(spec["repeats"]):
            with blas_threads(threads):
                started = time.perf_counter()
                for _ in range(k):
                    bare.train_step()
                bare_runs.append(k * chars / (time.perf_counter() - started))
            train_runs.append(_train_once(config.replace(training={"steps": 2 * k}))
                              ["windows"][-1])
        out["bare"] = {"bare": _median(bare_runs), "train": _median(train_runs),
                       "bare_runs": bare_runs, "train_runs": train_runs}
    return out


def _torch_model(cell: str, V: int, H: int, layers: int, embed: bool):
    import torch
    from torch import nn

    recurrent = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
    options = {"nonlinearity": "tanh"} if cell == "rnn" else {}

    class CharModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, H) if embed else None
            self.rnn = recurrent(H if embed else V, H, num_layers=layers, **options)
            self.head = nn.Linear(H, V)

        def forward(self, x, state):
            if self.embed is not None:
                inputs = self.embed(x)
            else:
                inputs = nn.functional.one_hot(x, V).to(torch.float32)
            out, state = self.rnn(inputs, state)
            return self.head(out), state

    return CharModel()


def worker_torch(spec: dict) -> dict:
    """(b): PyTorch's nn.RNN/LSTM/GRU + Linear, trained as charrnn trains: the same batches of
    the same text, cross-entropy summed over time and averaged over the batch, backward, value
    clipping at 5, Adam lr 0.002, the hidden state carried between chunks and detached."""
    import numpy as np
    import torch

    from charrnn.corpus import StreamBatches, load_corpus

    torch.set_num_threads(spec["threads"])
    sizes, cell, layers = spec["sizes"], spec["cell"], spec["layers"]
    H, T, B = sizes["hidden"], sizes["seq"], sizes["batch"]
    corpus = load_corpus(SHAKESPEARE, "stream", 0.0, 0)
    V = len(corpus.vocab)
    torch.manual_seed(0)
    model = _torch_model(cell, V, H, layers, spec["input"] == "embedding")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.002)
    batches = StreamBatches(corpus.train, B, T)

    def zeros():
        if cell == "lstm":
            return (torch.zeros(layers, B, H), torch.zeros(layers, B, H))
        return torch.zeros(layers, B, H)

    def detached(state):
        return tuple(s.detach() for s in state) if cell == "lstm" else state.detach()

    carried = {"state": zeros()}

    def steps(n: int) -> None:
        for _ in range(n):
            batch = batches.next()
            x = torch.from_numpy(batch.x.astype(np.int64))
            y = torch.from_numpy(batch.y.astype(np.int64))
            state = zeros() if batch.reset else carried["state"]
            logits, state = model(x, state)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1),
                                                     reduction="sum") / B
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), 5.0)
            optimizer.step()
            carried["state"] = detached(state)
            loss.item()

    steps(1)  # warm-up and calibration
    started, n = time.perf_counter(), 0
    while n == 0 or time.perf_counter() - started < min(spec["window"], 0.3):
        steps(1)
        n += 1
    k = _window_steps((time.perf_counter() - started) / n, spec["window"])
    steps(k)  # the warm-up window, as train()'s first window
    runs = []
    for _ in range(spec["repeats"]):
        started = time.perf_counter()
        steps(k)
        runs.append(k * T * B / (time.perf_counter() - started))
    return {"median": _median(runs), "runs": runs, "window_steps": k, "vocab": V,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "mkl": bool(torch.backends.mkl.is_available()),
            "mkldnn": bool(torch.backends.mkldnn.is_available())}


def worker_peak(spec: dict) -> dict:
    """The float32 matmul peak: GFLOP/s (2n^3 / time) of an n x n sgemm, median of repeats."""
    import numpy as np

    n = spec["sizes"]["matmul"]
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty_like(a)
    np.matmul(a, b, out=c)
    per_call = 2 * n ** 3
    started = time.perf_counter()
    np.matmul(a, b, out=c)
    calls = max(1, round(spec["window"] / max(time.perf_counter() - started, 1e-9)))
    rates = []
    for _ in range(spec["repeats"]):
        started = time.perf_counter()
        for _ in range(calls):
            np.matmul(a, b, out=c)
        rates.append(calls * per_call / (time.perf_counter() - started) / 1e9)
    return {"median": _median(rates), "runs": rates, "n": n, **_blas_info()}


def worker_gemm_floor(spec: dict) -> dict:
    """The GEMM floor of one training step: only the matrix products train() must run for a
    (hidden, seq, batch) float32 step of this cell and layer count, at these shapes, timed back
    to back with nothing else. chars/s at this floor is the most any implementation on this BLAS
    could train: everything else (gates, softmax, optimizer) counted as free."""
    import numpy as np

    sizes, cell, layers = spec["sizes"], spec["cell"], spec["layers"]
    H, T, B, V = sizes["hidden"], sizes["seq"], sizes["batch"], spec["vocab"]
    GH = GATES[cell] * H
    rng = np.random.default_rng(0)

    def operands(m, k, n):
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        return a, b, np.empty((m, n), dtype=np.float32)

    per_step = [operands(B, H, GH), operands(B, GH, H)]  # h W_hh^T forward, da W_hh backward
    once = [operands(GH, T * B, H)]  # dW_hh = sum_t da_t h_{t-1}^T
    once += [operands(T * B, H, GH), operands(GH, T * B, H), operands(T * B, GH, H)] * (layers - 1)
    once += [operands(T * B, H, V), operands(V, T * B, H), operands(T * B, V, H)]  # output layer

    def one_step():
        for _ in range(layers):
            for a, b, c in per_step:
                for _ in range(T):
                    np.matmul(a, b, out=c)
        for a, b, c in once:
            np.matmul(a, b, out=c)

    one_step()
    started = time.perf_counter()
    one_step()
    calls = max(1, round(spec["window"] / max(time.perf_counter() - started, 1e-9)))
    rates = []
    for _ in range(spec["repeats"]):
        started = time.perf_counter()
        for _ in range(calls):
            one_step()
        rates.append(calls * T * B / (time.perf_counter() - started))
    return {"median": _median(rates), "runs": rates, **_blas_info()}


def worker_policy(spec: dict) -> dict:
    """(c): train() with each thread setting, interleaved; thread variables are unset here."""
    settings = spec["settings"]
    if spec["run"] == "names":
        def make(threads, window):
            return _shipped_config("names", spec, threads, window, 1,
                                   _out_path(spec, f"policy-{threads}"),
                                   spec.get("names_extra", ()))
    else:
        def make(threads, window):
            return _large_config(spec, "rnn", 1, threads, window, 1,
                                 _out_path(spec, f"policy-{threads}"))
    step_seconds, _ = _bare_step_seconds(make(1, 1), min(spec["window"], 0.3))
    k = _window_steps(step_seconds, spec["window"])
    runs: dict = {str(s): [] for s in settings}
    chosen: dict = {}
    order = list(settings)
    for _ in range(spec["repeats"]):
        for setting in order:
            result = _train_once(make(setting, k))
            runs[str(setting)].append(result["windows"][-1])
            chosen[str(setting)] = f"{result['threads']} ({result['thread_reason']})"
        order.reverse()
    return {"runs": runs, "median": {s: _median(v) for s, v in runs.items()},
            "chosen": chosen, "window_steps": k, **_blas_info()}


def _names_model(cell: str, vocab, hidden: int):
    """An untrained model whose output bias ends a name with probability 1/7 a character, so
    names are about as long as a trained model's (mean about 6)."""
    import numpy as np

    from charrnn.model import Model, ModelSpec

    model = Model.init(ModelSpec(vocab_size=len(vocab), hidden_size=hidden, cell=cell,
                                 dtype="float32"), np.random.default_rng(0))
    model.params["b_y"][vocab.boundary] = np.log((len(vocab) - 1) / 6.0)
    return model


def worker_sample(spec: dict) -> dict:
    """(d): free-text chars/s at text_hidden and names/s for `names` names at names_hidden."""
    import numpy as np

    from charrnn.corpus import load_corpus
    from charrnn.model import Model, ModelSpec
    from charrnn.sample import sample_names, sample_text

    sizes, cell = spec["sizes"], spec["cell"]
    text_vocab = load_corpus(SHAKESPEARE, "stream", 0.0, 0).vocab
    names_vocab = load_corpus(NAMES, "lines", 0.0, 0).vocab
    text_model = Model.init(ModelSpec(vocab_size=len(text_vocab), hidden_size=sizes["text_hidden"],
                                      cell=cell, dtype="float32", init_scale=0.03),
                            np.random.default_rng(0))
    names_model = _names_model(cell, names_vocab, sizes["names_hidden"])
    length, num = spec["text_length"], sizes["names"]
    sample_text(text_model, text_vocab, 100, np.random.default_rng(0))  # warm-up
    sample_names(names_model, names_vocab, 100, np.random.default_rng(0))
    text_runs, names_runs, lengths = [], [], []
    for r in range(spec["repeats"]):
        started = time.perf_counter()
        sample_text(text_model, text_vocab, length, np.random.default_rng(r))
        text_runs.append(length / (time.perf_counter() - started))
        started = time.perf_counter()
        names = sample_names(names_model, names_vocab, num, np.random.default_rng(r))
        names_runs.append(num / (time.perf_counter() - started))
        lengths.append(sum(map(len, names)) / len(names))
    return {"text": {"median": _median(text_runs), "runs": text_runs, "length": length},
            "names": {"median": _median(names_runs), "runs": names_runs, "num": num,
                      "mean_length": statistics.mean(lengths)}, **_blas_info()}


def worker_eval(spec: dict) -> dict:
    """(e): evaluate_text on a clean text and on the same text with every k-th character
    replaced by one outside the vocabulary (stream mode, batch 64, seq 100)."""
    import numpy as np

    from charrnn.corpus import load_corpus
    from charrnn.evaluate import evaluate_text
    from charrnn.model import Model, ModelSpec

    sizes, cell = spec["sizes"], spec["cell"]
    vocab = load_corpus(SHAKESPEARE, "stream", 0.0, 0).vocab
    model = Model.init(ModelSpec(vocab_size=len(vocab), hidden_size=sizes["hidden"], cell=cell,
                                 dtype="float32", init_scale=0.03), np.random.default_rng(0))
    source = SHAKESPEARE.read_text(encoding="utf-8")
    clean = source[100_000: 100_000 + spec["eval_chars"]]
    outside = next(c for c in "\u00e9\u00a7\u20ac\u03bb\u2603" if vocab.unknown(c))
    every = spec["oov_every"]
    dirty = "".join(outside if i % every == every - 1 else ch for i, ch in enumerate(clean))
    results = {}
    for label, text in (("clean", clean), ("oov", dirty)):
        evaluate_text(model, vocab, text[:2000], "stream")  # warm-up
        times, summary = [], None
        budget_end = time.perf_counter() + spec["budget"]
        for _ in range(spec["repeats"]):
            started = time.perf_counter()
            summary = evaluate_text(model, vocab, text, "stream", batch_size=64,
                                    seq_length=100)
            times.append(time.perf_counter() - started)
            if time.perf_counter() > budget_end:
                break
        results[label] = {"median_seconds": _median(times), "runs": times,
                          "characters": summary["characters"],
                          "out_of_vocabulary": summary["out_of_vocabulary"]}
    return {**results, "length": len(clean), "oov_char": outside, "every": every,
            **_blas_info()}


def _is_memory_mapped(array) -> bool:
    import mmap

    import numpy as np

    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker_rss(spec: dict) -> dict:
    """(f): train (hidden, seq, batch) float32 for a few steps through train(); peak RSS."""
    import numpy as np  # noqa: F401 - counted in the baseline

    import charrnn.train  # noqa: F401

    baseline = _rss_mb()
    corpus = Path(spec.get("corpus") or SHAKESPEARE)
    config = _large_config(spec, spec["cell"], 1, 1, spec["steps"], 0,
                           _out_path(spec, f"rss-{spec['cell']}"), corpus)
    from charrnn.train import train

    marks = {}

    def report(kind, text):
        if kind == "info" and "BLAS thread" in text:  # the start line: the run is set up
            marks["after_start"] = _rss_mb()
            marks["start_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    train(config, progress=False, report=report)
    peak = _rss_mb()
    out = {"baseline_mb": baseline, "after_start_mb": marks.get("after_start"),
           "start_seconds": marks.get("start_seconds"), "peak_mb": peak,
           "steps": spec["steps"], **_blas_info()}
    if spec.get("corpus"):
        from charrnn.corpus import load_corpus

        tokens = load_corpus(corpus, "stream", 0.0, 0).train.tokens
        out.update({"tokens_dtype": str(tokens.dtype), "tokens_mb": tokens.nbytes / 1e6,
                    "memory_mapped": _is_memory_mapped(tokens)})
    return out


WORKERS = {"info": worker_info, "batch1": worker_batch1, "large": worker_large,
           "torch": worker_torch, "peak": worker_peak, "policy": worker_policy,
           "gemm_floor": worker_gemm_floor,
           "sample": worker_sample, "eval": worker_eval, "rss": worker_rss}


# ---------------------------------------------------------------------------------------------
# Parent side: no NumPy here; it starts the workers and prints the figures.
# ---------------------------------------------------------------------------------------------

def child_env(threads: int | None, extra: dict | None = None) -> dict:
    """This environment with the thread variables set to threads (None: removed)."""
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        if threads is None:
            env.pop(name, None)
        else:
            env[name] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def _cpu_times() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])


def others_busy(seconds: float = 0.5) -> float | None:
    """Share of the machine's CPU used by other processes over a short window (we are idle)."""
    try:
        idle0, total0 = _cpu_times()
        time.sleep(seconds)
        idle1, total1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


class Bench:
    """Starts workers, prints figure lines, collects the JSON."""

    def __init__(self, args):
        self.args = args
        self.records: list[dict] = []
        self.busy_events: list[str] = []
        self.cpu = cpu_model()
        self.coretype = os.environ.get("OPENBLAS_CORETYPE", "<unset>")
        self.tmp = tempfile.mkdtemp(prefix="charrnn-bench-")
        self.sizes = TINY_SIZES if args.tiny else FULL_SIZES

    # --- workers ---------------------------------------------------------------------------

    def spec(self, **extra) -> dict:
        a = self.args
        return {"sizes": self.sizes, "repeats": a.repeats, "window": a.window, "tmp": self.tmp,
                **extra}

    def wait_until_quiet(self, what: str) -> None:
        deadline = time.monotonic() + self.args.wait_idle
        while True:
            busy = others_busy()
            if busy is None or busy < self.args.busy_threshold:
                return
            if time.monotonic() >= deadline:
                self.busy_events.append(f"{what}: other processes used {100 * busy:.0f}% of "
                                        f"the CPU when it started")
                return
            time.sleep(2.0)

    def worker(self, name: str, threads: int | None, spec: dict, *, quiet: bool = True,
               env_extra: dict | None = None, with_rusage: bool = False):
        """Run this script as a worker; its result (and its own rusage if asked)."""
        named = {k: v for k, v in spec.items() if k in ("cell", "layers", "input", "run")}
        label = f"{name} {json.dumps(named)} threads={threads}"
        if quiet and self.args.wait_idle > 0:
            self.wait_until_quiet(label)
        if self.args.verbose:
            print(f"# ... {label}", file=sys.stderr, flush=True)
        spec = {**spec, "threads": threads}
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
                   "--spec", json.dumps(spec)]
        process = subprocess.Popen(command, cwd=REPO, env=child_env(threads, env_extra),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if with_rusage:
            # os.wait4: this child's own ru_maxrss, not the maximum over all children so far
            stdout_data, stderr_data = process.stdout.read(), process.stderr.read()
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        else:
            stdout_data, stderr_data = process.communicate()
            usage = None
        if process.returncode != 0:
            raise RuntimeError(f"worker {label} failed (exit {process.returncode}):\n"
                               f"{stderr_data[-3000:]}")
        for line in stdout_data.splitlines():
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
                return (result, usage) if with_rusage else result
        raise RuntimeError(f"worker {label} printed no result:\n{stdout_data[-2000:]}")

    # --- output ----------------------------------------------------------------------------

    def context(self, result: dict | None, threads, torch: dict | None = None) -> str:
        parts = [f"threads={threads}"]
        if torch is not None:
            parts.append(f"torch {torch['torch']} (torch.get_num_threads()="
                         f"{torch['torch_threads']}, MKL {'yes' if torch['mkl'] else 'no'}, "
                         f"oneDNN {'yes' if torch['mkldnn'] else 'no'})")
        if result is not None and "numpy" in result:
            parts.append(f"numpy {result['numpy']}")
            parts.append(", ".join(f"{p['internal_api']} {p['version']} "
                                   f"{p.get('architecture') or '?'}"
                                   for p in result.get("blas") or []) or "no BLAS found")
        parts.append(self.cpu)
        parts.append(f"OPENBLAS_CORETYPE={self.coretype}")
        return "; ".join(parts)

    def figure(self, key: str, value, unit: str, detail: str = "", context: str = "",
               raw=None) -> None:
        if isinstance(value, str):
            shown = value
        elif unit in ("chars/s", "names/s"):
            shown = f"{value:.0f}"
        elif unit == "x":
            shown = f"{value:.2f}"
        elif unit in ("%", "MB"):
            shown = f"{value:.0f}"
        else:
            shown = f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"
        text = f"{key}: {shown}{'' if unit in ('x', '%') else ' '}{unit}"
        if detail:
            text += f" ({detail})"
        if context:
            text += f" [{context}]"
        print(text, flush=True)
        self.records.append({"key": key, "value": value, "unit": unit, "detail": detail,
                             "context": context, "raw": raw})

    def note(self, text: str) -> None:
        print(f"# {text}", flush=True)


def blas_text(pools) -> str:
    if not pools:
        return "BLAS: threadpoolctl found none"
    return ", ".join(f"{p['internal_api']} {p['version']} {p.get('architecture') or '?'} "
                     f"({p.get('threading_layer') or '?'}, {p['num_threads']} threads in pool)"
                     for p in pools)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_version() -> str:
    """The commit measured, and whether charrnn/ differs from it (read-only git commands)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                                capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "charrnn"], cwd=REPO,
                               text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" with uncommitted changes in charrnn/" if dirty else "")


def torch_available() -> bool:
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0


def spread(runs: list[float], scale: float = 1.0, digits: int = 0) -> str:
    return (f"median of {len(runs)}, range {min(runs) * scale:.{digits}f}-"
            f"{max(runs) * scale:.{digits}f}")


def flops_per_char(cell: str, layers: int, H: int, V: int) -> int:
    """Forward and backward multiply-adds x 2 per character.

    Per layer: recurrence 2GH^2 forward, 2GH^2 for dh_next and 2GH^2 for dW_hh (the issue's
    6GH^2); a layer above the first also has its input projection W_xh (GH x H): 2GH^2 forward,
    2GH^2 for dW_xh and 2GH^2 for the gradient to the layer below. The output layer: 2HV
    forward, 2HV for dW_hy and 2HV for dh. Layer 0's input is a row lookup (no FLOPs)."""
    G = GATES[cell]
    return 6 * G * H * H * layers + 6 * G * H * H * (layers - 1) + 6 * H * V


# --- the figures ------------------------------------------------------------------------------

def figure_batch1(bench: Bench, results: dict) -> None:
    a = bench.args
    r = bench.worker("batch1", 1, bench.spec())
    results["batch1"] = r
    m, runs = r["median"], r["runs"]
    ctx = bench.context(r, r["threads"])
    small = f"({bench.sizes['small_hidden']},25,1) rnn float64"
    bench.figure("batch1.charrnn_train", m["train"], "chars/s",
                 f"{small}, train() windows of {r['window_steps']} steps, "
                 f"{spread(runs['train'])}", ctx, runs["train"])
    bench.figure("batch1.yardstick_minchar", m["yardstick"], "chars/s",
                 f"faithful min-char-rnn port, same text, {spread(runs['yardstick'])}", ctx,
                 runs["yardstick"])
    bench.figure("batch1.ratio", m["train"] / m["yardstick"], "x",
                 "charrnn train() / yardstick; target >= 6x", ctx)
    bench.figure("batch1.train_overhead_vs_bare_step", 100 * (m["bare"] / m["train"] - 1), "%",
                 f"the bare Run.train_step loop at {m['bare']:.0f} chars/s "
                 f"({spread(runs['bare'])}) against train() at {m['train']:.0f}: bare / train() "
                 f"- 1", ctx, runs["bare"])
    bench.figure("batch1.recurrence_only", m["recurrence"], "chars/s",
                 f"the cell's forward and backward loops alone ({spread(runs['recurrence'])}): "
                 f"{m['recurrence'] / m['yardstick']:.2f}x the yardstick is the most this design "
                 f"(a Python loop over time) could reach if everything else were free; train() "
                 f"spends {100 * m['train'] / m['recurrence']:.0f}% of its time in them", ctx,
                 runs["recurrence"])
    bench.figure("batch1.train_whole_call", m["whole_call"], "chars/s",
                 "TrainResult.chars_per_second: 2 windows incl. the first step and the final "
                 "checkpoint save", ctx, runs["whole_call"])
    # the CLI's own summary line, steps for about 2 windows
    steps = max(50, round(2 * a.window * m["train"] / r["chars_per_step"]))
    cli_runs, cli_threads = [], None
    for repeat in range(a.repeats):
        out = Path(bench.tmp) / f"cli-{repeat}.npz"
        command = [sys.executable, "-m", "charrnn", "train", "--config", "min-char-rnn",
                   "--steps", str(steps), "--threads", "1", "--out", str(out), "--no-progress",
                   "--set", f"training.eval_every={steps}", "--set", "training.sample_every=0",
                   "--set", "training.checkpoint_every=0"]
        if bench.sizes["small_hidden"] != 100:
            command += ["--set", f"model.hidden_size={bench.sizes['small_hidden']}"]
        if a.wait_idle > 0:
            bench.wait_until_quiet("cli batch1")
        done = subprocess.run(command, cwd=REPO, env=child_env(None), capture_output=True,
                              text=True)
        match = re.search(r"([\d,]+) chars/s over", done.stderr)
        if done.returncode != 0 or not match:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        cli_runs.append(float(match[1].replace(",", "")))
        started = START_THREADS.search(done.stderr)
        cli_threads = started[1] if started else "?"
    cli = statistics.median(cli_runs)
    results["batch1"]["cli"] = {"runs": cli_runs, "steps": steps}
    cli_ctx = bench.context(r, cli_threads)
    bench.figure("batch1.cli_train", cli, "chars/s",
                 f"`python -m charrnn train --config min-char-rnn --steps {steps} --threads 1` "
                 f"summary line, {spread(cli_runs)}", cli_ctx, cli_runs)
    bench.figure("batch1.cli_ratio", cli / m["yardstick"], "x",
                 "CLI summary / yardstick; target >= 6x", cli_ctx)


def figure_large(bench: Bench, results: dict, use_torch: bool) -> None:
    a, sizes = bench.args, bench.sizes
    H = sizes["hidden"]
    shape = f"({H},{sizes['seq']},{sizes['batch']}) float32"
    configs = [(layers, threads) for layers in a.layers for threads in a.large_threads
               if not (a.quick and layers > 1 and threads > 1)]
    peaks = {}
    for threads in sorted({t for _, t in configs}):
        peak = bench.worker("peak", threads, bench.spec())
        peaks[threads] = peak
        bench.figure(f"large.matmul_peak.t{threads}", peak["median"], "GFLOP/s",
                     f"{peak['n']}x{peak['n']} float32 sgemm, "
                     f"{spread(peak['runs'], digits=1)}", bench.context(peak, threads),
                     peak["runs"])
    results["large"] = {"peak": peaks}
    inputs = ("onehot", "embedding") if use_torch else ()
    for cell in a.cells:
        for layers, threads in configs:
            tag = f"{cell}.l{layers}.t{threads}"
            want_bare = cell == "rnn" and layers == 1 and threads == 1
            ours = bench.worker("large", threads, bench.spec(cell=cell, layers=layers,
                                                             bare=want_bare))
            results["large"][tag] = {"charrnn": ours}
            ctx = bench.context(ours, ours["threads"])
            bench.figure(f"large.{tag}.charrnn_train", ours["median"], "chars/s",
                         f"{shape} {cell}, {layers} layer(s), train() windows of "
                         f"{ours['window_steps']} steps, {spread(ours['runs'])}", ctx,
                         ours["runs"])
            if want_bare:
                b = ours["bare"]
                bench.figure(f"large.{tag}.train_overhead_vs_bare_step",
                             100 * (b["bare"] / b["train"] - 1), "%",
                             f"the bare Run.train_step loop at {b['bare']:.0f} chars/s against "
                             f"train() at {b['train']:.0f}, interleaved: bare / train() - 1",
                             ctx, b)
            floor = bench.worker("gemm_floor", threads, bench.spec(cell=cell, layers=layers,
                                                                   vocab=ours["vocab"]))
            results["large"][tag]["gemm_floor"] = floor
            bench.figure(f"large.{tag}.gemm_floor", floor["median"], "chars/s",
                         f"the step's matrix products alone, back to back (the ceiling if "
                         f"everything else were free); train() reaches "
                         f"{100 * ours['median'] / floor['median']:.0f}% of it, "
                         f"{spread(floor['runs'])}", bench.context(floor, threads),
                         floor["runs"])
            theirs = {}
            for kind in inputs:
                t = bench.worker("torch", threads, bench.spec(cell=cell, layers=layers,
                                                              input=kind))
                theirs[kind] = t
                results["large"][tag][f"torch_{kind}"] = t
                label = "one-hot" if kind == "onehot" else "nn.Embedding"
                bench.figure(f"large.{tag}.torch_{kind}", t["median"], "chars/s",
                             f"PyTorch nn.{cell.upper()} {label} input, {layers} layer(s), "
                             f"windows of {t['window_steps']} steps, {spread(t['runs'])}",
                             bench.context(None, threads, torch=t), t["runs"])
            if theirs:
                best = max(theirs, key=lambda k: theirs[k]["median"])
                target = {"rnn": ">= 1.3x", "lstm": ">= 1.5x", "gru": ">= 1.5x"}[cell]
                bench.figure(f"large.{tag}.ratio_vs_torch", ours["median"]
                             / theirs[best]["median"], "x",
                             f"charrnn / PyTorch ({best}, the faster input); target {target} "
                             f"at 1 thread", ctx)
                bench.figure(f"large.{tag}.gemm_floor_vs_torch", floor["median"]
                             / theirs[best]["median"], "x",
                             "the GEMM floor / PyTorch: the most any NumPy trainer on this BLAS "
                             "could reach", ctx)
            flops = flops_per_char(cell, layers, H, ours["vocab"])
            achieved = ours["median"] * flops / 1e9
            peak = peaks[threads]["median"]
            bench.figure(f"large.{tag}.achieved", achieved, "GFLOP/s",
                         f"{flops / 1e6:.3f} MFLOP/char (V={ours['vocab']}) = "
                         f"{100 * achieved / peak:.0f}% of the {peak:.1f} GFLOP/s peak at "
                         f"{threads} thread(s); target >= 60% (1 layer, 1 thread)", ctx)
            bench.figure(f"large.{tag}.share_of_peak", 100 * achieved / peak, "%",
                         "achieved / matmul peak", ctx)


def figure_policy(bench: Bench, results: dict) -> None:
    results["policy"] = {}
    quiet = {"names": ["auto", 1], "large": ["auto", 1]}
    for run, settings in quiet.items():
        r = bench.worker("policy", None, bench.spec(run=run, settings=settings))
        results["policy"][f"quiet.{run}"] = r
        what = ("default names run (configs/names.yaml)" if run == "names"
                else f"({bench.sizes['hidden']},{bench.sizes['seq']},{bench.sizes['batch']}) "
                     f"rnn float32")
        for setting in settings:
            bench.figure(f"policy.quiet.{run}.threads_{setting}", r["median"][str(setting)],
                         "chars/s", f"{what}, --threads {setting}: "
                                    f"{r['chosen'][str(setting)]}, "
                                    f"{spread(r['runs'][str(setting)])}",
                         bench.context(r, r["chosen"][str(setting)].split()[0]),
                         r["runs"][str(setting)])
        speedup = r["median"]["auto"] / r["median"]["1"]
        target = ("target: auto >= 1.5x one thread" if run == "large"
                  else "auto / one thread")
        bench.figure(f"policy.quiet.{run}.auto_speedup", speedup, "x", target,
                     bench.context(r, "auto"))
    # with another process keeping one core busy
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        settings = ["auto", 1, 2]
        r = bench.worker("policy", None, bench.spec(run="names", settings=settings),
                         quiet=False)
    finally:
        spinner.terminate()
        spinner.wait()
    results["policy"]["loaded.names"] = r
    for setting in settings:
        bench.figure(f"policy.loaded.names.threads_{setting}", r["median"][str(setting)],
                     "chars/s", f"default names run with one core kept busy, --threads "
                                f"{setting}: {r['chosen'][str(setting)]}, "
                                f"{spread(r['runs'][str(setting)])}",
                     bench.context(r, r["chosen"][str(setting)].split()[0]),
                     r["runs"][str(setting)])
    bench.figure("policy.loaded.names.auto_slowdown", r["median"]["1"] / r["median"]["auto"],
                 "x", "pinned-1 chars/s / auto chars/s under load; target <= 1.3x",
                 bench.context(r, "auto"))
    bench.figure("policy.loaded.names.two_threads_slowdown", r["median"]["1"] / r["median"]["2"],
                 "x", "(info) what 2 threads (OpenBLAS's default before the policy) cost under "
                      "load", bench.context(r, 2))


def figure_sample(bench: Bench, results: dict) -> None:
    sizes = bench.sizes
    results["sample"] = {}
    for cell in bench.args.cells:
        r = bench.worker("sample", 1, bench.spec(cell=cell, text_length=bench.args.text_length))
        results["sample"][cell] = r
        ctx = bench.context(r, 1)
        text, names = r["text"], r["names"]
        bench.figure(f"sample.{cell}.text", text["median"], "chars/s",
                     f"sample_text, hidden {sizes['text_hidden']} float32, {text['length']} "
                     f"chars, {spread(text['runs'])}", ctx, text["runs"])
        bench.figure(f"sample.{cell}.names", names["median"], "names/s",
                     f"sample_names of {names['num']}, hidden {sizes['names_hidden']} float32, "
                     f"untrained with a 1/7 end-of-name bias: mean length "
                     f"{names['mean_length']:.1f}, {spread(names['runs'])}", ctx, names["runs"])


def figure_eval(bench: Bench, results: dict) -> None:
    a = bench.args
    results["eval"] = {}
    for cell in a.cells:
        r = bench.worker("eval", 1, bench.spec(cell=cell, eval_chars=a.eval_chars,
                                               oov_every=a.oov_every, budget=a.eval_budget))
        results["eval"][cell] = r
        ctx = bench.context(r, 1)
        clean, oov = r["clean"], r["oov"]
        bench.figure(f"eval.{cell}.clean", clean["median_seconds"], "s",
                     f"evaluate_text, {r['length']} chars, none outside the vocabulary, hidden "
                     f"{bench.sizes['hidden']} float32, median of {len(clean['runs'])}", ctx,
                     clean["runs"])
        bench.figure(f"eval.{cell}.oov", oov["median_seconds"], "s",
                     f"the same text with every {r['every']}th character {r['oov_char']!r} "
                     f"({oov['out_of_vocabulary']} outside the vocabulary, {oov['characters']} "
                     f"scored), median of {len(oov['runs'])}", ctx, oov["runs"])
        bench.figure(f"eval.{cell}.oov_slowdown", oov["median_seconds"]
                     / clean["median_seconds"], "x",
                     "goal: as fast as the clean text (1x)", ctx)


def generate_corpus(path: Path, size: int, seed: int = 0) -> None:
    """size bytes of Shakespeare-like text: random 40-line passages of the shipped corpus."""
    lines = SHAKESPEARE.read_text(encoding="utf-8").splitlines(keepends=True)
    rng = random.Random(seed)
    written = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        while written < size:
            start = rng.randrange(len(lines) - 40)
            block = "".join(lines[start:start + 40]).encode("utf-8")[: size - written]
            handle.write(block.decode("utf-8", errors="ignore"))
            written += len(block)


def figure_memory(bench: Bench, results: dict) -> None:
    a, sizes = bench.args, bench.sizes
    shape = f"({sizes['hidden']},{sizes['seq']},{sizes['batch']}) float32"
    results["memory"] = {}
    for cell in a.cells:
        r, usage = bench.worker("rss", 1, bench.spec(cell=cell, steps=a.memory_steps),
                                with_rusage=True)
        r["child_maxrss_mb"] = usage.ru_maxrss / 1024
        results["memory"][cell] = r
        bench.figure(f"memory.{cell}.peak_rss", r["child_maxrss_mb"], "MB",
                     f"training {shape} {cell} through train() for {r['steps']} steps on "
                     f"Shakespeare; after imports {r['baseline_mb']:.0f} MB, after start-up "
                     f"{r['after_start_mb']:.0f} MB", bench.context(r, 1))
    if a.corpus_mb <= 0:
        bench.note("memory.corpus: skipped (--quick, or --corpus-mb 0)")
        return
    size = int(a.corpus_mb * 1_000_000)
    corpus_dir = Path(bench.tmp) / "corpus"
    cache_dir = Path(bench.tmp) / "cache"  # CHARRNN_CACHE_DIR: removed with the rest
    corpus_dir.mkdir()
    corpus = corpus_dir / "big.txt"
    started = time.perf_counter()
    generate_corpus(corpus, size)
    generated = time.perf_counter() - started
    passes = {}
    for label in ("first", "second"):
        r, usage = bench.worker("rss", 1, bench.spec(cell="rnn", steps=a.memory_steps,
                                                     corpus=str(corpus)),
                                env_extra={"CHARRNN_CACHE_DIR": str(cache_dir)},
                                with_rusage=True)
        r["child_maxrss_mb"] = usage.ru_maxrss / 1024
        passes[label] = r
        held = ("memory-mapped" if r["memory_mapped"] else "in RAM") + \
            f" as {r['tokens_dtype']} ({r['tokens_mb']:.0f} MB)"
        target = (f"target < {1.5 * size / 1e6 + 150:.0f} MB (1.5 x corpus + 150 MB)"
                  if label == "first" else "target < 300 MB (cached)")
        bench.figure(f"memory.corpus.{label}_run.peak_rss", r["child_maxrss_mb"], "MB",
                     f"training {shape} rnn on a {size / 1e6:.0f} MB corpus, {label} run; "
                     f"{target}; start-up {r['start_seconds']:.1f} s, RSS after imports "
                     f"{r['baseline_mb']:.0f} MB, after start-up {r['after_start_mb']:.0f} MB; "
                     f"tokens {held}", bench.context(r, 1))
    results["memory"]["corpus"] = {"bytes": size, "generated_seconds": generated,
                                   "passes": passes,
                                   "cache_files": sorted(p.name for p in cache_dir.iterdir())
                                   if cache_dir.is_dir() else []}


# --- main ------------------------------------------------------------------------------------

def main_parent(args) -> int:
    import shutil

    bench = Bench(args)
    use_torch = "large" in args.only and not args.no_torch and torch_available()
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    mode = ("tiny" if args.tiny else "") + ("quick" if args.quick else "full")
    bench.note(f"charrnn bench_train {time.strftime('%Y-%m-%d %H:%M:%S')}: {mode}; median of "
               f"{args.repeats} timed windows of about {args.window:g} s after a warm-up")
    bench.note(f"machine: {bench.cpu}, {os.cpu_count()} cores; Python "
               f"{platform.python_version()}; {platform.system()} {platform.release()}")
    bench.note(f"charrnn source: {source_version()}")
    for threads in (1, 2):
        info = bench.worker("info", threads, bench.spec(), quiet=False)
        bench.note(f"at {threads} thread(s): numpy {info['numpy']}; {blas_text(info['blas'])}")
    env = ", ".join(f"{name}={os.environ.get(name, '<unset>')}"
                    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", *THREAD_VARIABLES))
    bench.note(f"environment: {env} (measurement children set the thread variables to their "
               f"thread count; policy and CLI children unset them)")
    if "large" in args.only:
        bench.note(f"torch: {'importable' if use_torch else 'not importable or --no-torch'}")
    results: dict = {"args": vars(args), "sizes": bench.sizes, "cpu": bench.cpu}
    figures = {"batch1": lambda: figure_batch1(bench, results),
               "large": lambda: figure_large(bench, results, use_torch),
               "policy": lambda: figure_policy(bench, results),
               "sample": lambda: figure_sample(bench, results),
               "eval": lambda: figure_eval(bench, results),
               "memory": lambda: figure_memory(bench, results)}
    failed = []
    try:
        for item in ITEMS:
            if item in args.only:
                try:
                    figures[item]()
                except (RuntimeError, OSError) as error:  # report, and go on to the next one
                    failed.append(item)
                    bench.note(f"ERROR in figure {item}: {error}".replace("\n", "\n#   "))
    finally:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    bench.note(f"load average (1 min) at start {load_start:.2f}, at end "
               f"{os.getloadavg()[0]:.2f}; {time.perf_counter() - started:.0f} s in all")
    for event in bench.busy_events:
        bench.note(f"WARNING: measured while the machine was busy: {event}")
    if not bench.busy_events and args.wait_idle > 0:
        bench.note(f"every measurement started with other processes under "
                   f"{100 * args.busy_threshold:.0f}% of the CPU")
    if args.json:
        results["figures"] = bench.records
        results["busy"] = bench.busy_events
        results["failed"] = failed
        Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")
    if failed:
        bench.note(f"figures that failed: {', '.join(failed)}")
    return 1 if failed else 0


def parse_list(text: str, allowed, what: str, kind=str) -> list:
    values = [kind(part.strip()) for part in text.split(",") if part.strip()]
    bad = [v for v in values if allowed is not None and v not in allowed]
    if bad or not values:
        raise SystemExit(f"{what}: expected a comma-separated list of {', '.join(allowed)}, "
                         f"got {text!r}")
    return values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="everything (the default)")
    parser.add_argument("--quick", action="store_true",
                        help="0.3 s windows, no 100 MB corpus, 2 layers at 1 thread only, "
                             "shorter sampling and evaluation texts")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny sizes (hidden 64, batch 8, ...): checks the code paths only")
    parser.add_argument("--only", default=",".join(ITEMS),
                        help=f"comma-separated figures: {', '.join(ITEMS)} (default: all)")
    parser.add_argument("--cells", default=",".join(CELLS), help="cells (default rnn,lstm,gru)")
    parser.add_argument("--layers", default="1,2", help="layer counts for 'large' (default 1,2)")
    parser.add_argument("--large-threads", default="1,2",
                        help="thread counts for 'large' (default 1,2)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed windows per figure; the median is printed (default 3)")
    parser.add_argument("--window", type=float, default=None,
                        help="seconds per timed window (default 1.0; --quick 0.3)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--text-length", type=int, default=None,
                        help="characters per free-text sample (default 5000; --quick 2000)")
    parser.add_argument("--eval-chars", type=int, default=None,
                        help="length of the evaluated texts (default 50000; --quick 10000)")
    parser.add_argument("--oov-every", type=int, default=50,
                        help="every N-th character of the OOV text is outside the vocabulary")
    parser.add_argument("--eval-budget", type=float, default=10.0,
                        help="stop repeating an evaluation after this many seconds")
    parser.add_argument("--memory-steps", type=int, default=3,
                        help="training steps in the memory children")
    parser.add_argument("--corpus-mb", type=float, default=None,
                        help="size of the generated corpus (default 100; --quick 0: skipped)")
    parser.add_argument("--wait-idle", type=float, default=30.0,
                        help="before each measurement wait up to this many seconds while other "
                             "processes keep the CPU busy (default 30; 0: never wait)")
    parser.add_argument("--busy-threshold", type=float, default=0.1,
                        help="share of the machine's CPU used by others that counts as busy")
    parser.add_argument("--json", help="also write every figure and run to this JSON file")
    parser.add_argument("--verbose", action="store_true", help="name each child on stderr")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _emit(WORKERS[args.worker](json.loads(args.spec)))
        return 0
    if args.quick and args.full:
        parser.error("--quick and --full exclude each other")
    args.only = parse_list(args.only, ITEMS, "--only")
    args.cells = parse_list(args.cells, CELLS, "--cells")
    args.layers = parse_list(args.layers, None, "--layers", int)
    args.large_threads = parse_list(args.large_threads, None, "--large-threads", int)
    if args.window is None:
        args.window = 0.3 if args.quick or args.tiny else 1.0
    if args.text_length is None:
        args.text_length = 2000 if args.quick or args.tiny else 5000
    if args.eval_chars is None:
        args.eval_chars = 10_000 if args.quick or args.tiny else 50_000
    if args.corpus_mb is None:
        args.corpus_mb = 2 if args.tiny else 0 if args.quick else 100
    if args.repeats < 1 or min(args.layers) < 1 or min(args.large_threads) < 1:
        parser.error("--repeats, --layers and --large-threads must be at least 1")
    return main_parent(args)


if __name__ == "__main__":
    sys.exit(main())

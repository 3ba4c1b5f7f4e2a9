"""Training, sampling and memory benchmark for charrnn (issue 3). Run from the repository root:

    python benchmarks/bench_train.py            # everything, about 2 minutes on 2 cores
    python benchmarks/bench_train.py --quick    # fewer and shorter repeats, under 1 minute
    python benchmarks/bench_train.py --only 1,3 --repeats 7

Figures (one line each, every one the median of --repeats timed runs):
  1  charrnn at (hidden 100, seq 25, batch 1, float64), min-char-rnn's setting, against the
     min-char-rnn-style yardstick in benchmarks/minchar.py, and their ratio
  2  charrnn at (512, 100, 64, float32) against PyTorch's nn.RNN (one-hot and nn.Embedding
     input), at each of --large-threads
  3  the float32 matmul peak (one thread unless --threads) and charrnn's achieved GFLOP/s at
     (512, 100, 64) by the FLOP count 6H^2 + 6HV per character
  4  sampling: names per second (10000 names) and free-text characters per second at hidden 512
  5  peak resident memory while training on a generated 100 MB corpus

The parent process never imports NumPy: every measurement runs in a child process started with
OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS set to the thread count before NumPy
loads (and torch.set_num_threads), so thread counts are exact. OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE are passed through as they are; to measure without them, unset them for this
command alone: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_train.py`.
The header line says which OpenBLAS kernel (threadpoolctl's "architecture") is active.

On a shared machine wrap the run in a lock, e.g. `flock /tmp/charrnn-cpu.lock python ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAKESPEARE = REPO / "corpora" / "shakespeare.txt"
NAMES = REPO / "corpora" / "names.txt"
NAMES_CHECKPOINT = REPO / "checkpoints" / "names.npz"
RESULT_PREFIX = "BENCH-RESULT "
ITEMS = {"1": "minchar", "2": "large", "3": "peak", "4": "sample", "5": "memory"}
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

SMALL = dict(hidden=100, seq=25, batch=1)
LARGE = dict(hidden=512, seq=100, batch=64)


# ---------------------------------------------------------------------------------------------
# Worker side: runs in a child whose thread variables were set before NumPy was imported.
# ---------------------------------------------------------------------------------------------

def _emit(result: dict) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def _blas_info() -> dict:
    """numpy's version and its BLAS: name, version, kernel and threads (threadpoolctl)."""
    import numpy as np

    info: dict = {"numpy": np.__version__, "blas": None}
    try:
        from threadpoolctl import threadpool_info

        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        info["blas_pools"] = [{k: p.get(k) for k in ("internal_api", "version", "architecture",
                                                       "num_threads", "prefix")} for p in pools]
    except ImportError:
        info["blas_pools"] = None
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # only informational
        pass
    return info


def _time_runs(runners: dict, chars_per_call: dict, repeats: int, target_seconds: float,
               interleave: bool = True) -> dict:
    """Median chars/s of each runner; runner(n) performs n steps. One warm-up and calibration."""
    steps = {}
    for name, runner in runners.items():
        runner(1)  # warm-up: first-call allocations, lazy imports
        started = time.perf_counter()
        runner(2)
        per_step = (time.perf_counter() - started) / 2
        steps[name] = max(1, round(target_seconds / max(per_step, 1e-9)))
    rates: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    for _ in range(repeats):
        for name in order:
            started = time.perf_counter()
            runners[name](steps[name])
            elapsed = time.perf_counter() - started
            rates[name].append(steps[name] * chars_per_call[name] / elapsed)
        if interleave:
            order.reverse()  # A B, B A, ...: neither always runs first
    return {name: {"median": statistics.median(r), "runs": r, "steps": steps[name]}
            for name, r in rates.items()}


def _charrnn_run(hidden: int, seq: int, batch: int, dtype: str, lr: float, corpus: Path):
    from charrnn.config import Config
    from charrnn.train import start_run

    config = Config().replace(
        data={"corpus": str(corpus), "mode": "stream", "val_fraction": 0.0},
        model={"hidden_size": hidden, "dtype": dtype, "activation": "tanh",
               "init_scale": 0.01},
        training={"batch_size": batch, "seq_length": seq, "optimizer": "adagrad", "lr": lr,
                  "clip": 5.0, "clip_mode": "value", "seed": 0, "sample_every": 0,
                  "out": str(Path(tempfile.gettempdir()) / "charrnn-bench.npz")})
    return start_run(config)


def _charrnn_runner(run):
    def runner(n: int) -> None:
        for _ in range(n):
            run.train_step()
    return runner


def worker_minchar(args) -> dict:
    """Figure 1: charrnn vs the min-char-rnn-style loop at (100, 25, 1), interleaved."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from minchar import MinCharRNN

    H, T, B = SMALL["hidden"], SMALL["seq"], SMALL["batch"]
    run64 = _charrnn_run(H, T, B, "float64", 0.1, SHAKESPEARE)
    run32 = _charrnn_run(H, T, B, "float32", 0.1, SHAKESPEARE)
    yardstick = MinCharRNN(run64.corpus.train.tokens, len(run64.corpus.vocab), H, T, 0.1)

    def yardstick_runner(n: int) -> None:
        for _ in range(n):
            yardstick.train_step()

    runners = {"charrnn_f64": _charrnn_runner(run64), "minchar": yardstick_runner,
               "charrnn_f32": _charrnn_runner(run32)}
    return _time_runs(runners, {name: T * B for name in runners}, args.repeats,
                      args.target_seconds)


def _torch_model(V: int, H: int, embed: bool):
    import torch
    from torch import nn

    class CharRNNTorch(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, H) if embed else None
            self.rnn = nn.RNN(H if embed else V, H, nonlinearity="tanh")
            self.head = nn.Linear(H, V)

        def forward(self, x, h):
            if self.embed is not None:
                inputs = self.embed(x)
            else:
                inputs = nn.functional.one_hot(x, V).to(torch.float32)
            out, h = self.rnn(inputs, h)
            return self.head(out), h

    return CharRNNTorch()


def _torch_runner(corpus, embed: bool):
    """nn.RNN(tanh) + Linear + CE (sum over time, mean over batch) + Adagrad + value clip."""
    import numpy as np
    import torch

    from charrnn.corpus import StreamBatches

    H, T, B = LARGE["hidden"], LARGE["seq"], LARGE["batch"]
    V = len(corpus.vocab)
    torch.manual_seed(0)
    model = _torch_model(V, H, embed)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.01, eps=1e-8)
    batches = StreamBatches(corpus.train, B, T)
    state = {"h": torch.zeros(1, B, H)}

    def runner(n: int) -> None:
        for _ in range(n):
            batch = batches.next()
            x = torch.from_numpy(batch.x.astype(np.int64))
            y = torch.from_numpy(batch.y.astype(np.int64))
            h0 = torch.zeros(1, B, H) if batch.reset else state["h"]
            logits, h = model(x, h0)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1),
                                                     reduction="sum") / B
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), 5.0)
            optimizer.step()
            state["h"] = h.detach()
            loss.item()

    return runner


def worker_large(args) -> dict:
    """Figure 2 (and 3's numerator): one variant at (512, 100, 64, float32) in this process."""
    H, T, B = LARGE["hidden"], LARGE["seq"], LARGE["batch"]
    if args.variant == "charrnn":
        run = _charrnn_run(H, T, B, "float32", 0.01, SHAKESPEARE)
        runner = _charrnn_runner(run)
        extra = {"vocab": len(run.corpus.vocab)}
    else:
        import torch

        torch.set_num_threads(args.threads)
        from charrnn.corpus import load_corpus

        corpus = load_corpus(SHAKESPEARE, "stream", 0.0, 0)
        runner = _torch_runner(corpus, embed=args.variant == "torch_embedding")
        extra = {"vocab": len(corpus.vocab), "torch": torch.__version__,
                 "torch_threads": torch.get_num_threads()}
    result = _time_runs({args.variant: runner}, {args.variant: T * B}, args.repeats,
                        args.target_seconds)[args.variant]
    result.update(extra)
    return result


def worker_peak(args) -> dict:
    """Figure 3: GFLOP/s of a large square float32 matmul, median of repeats."""
    import numpy as np

    n = args.matmul_size
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty_like(a)
    np.matmul(a, b, out=c)
    rates = []
    for _ in range(max(args.repeats, 3)):
        started = time.perf_counter()
        for _ in range(3):
            np.matmul(a, b, out=c)
        rates.append(3 * 2 * n ** 3 / (time.perf_counter() - started) / 1e9)
    return {"median": statistics.median(rates), "runs": rates, "n": n}


def worker_sample(args) -> dict:
    """Figure 4: names/s for 10000 names and free-text chars/s at hidden 512."""
    import numpy as np

    from charrnn.corpus import load_corpus
    from charrnn.model import init_params
    from charrnn.sample import sample_names, sample_text

    if NAMES_CHECKPOINT.exists():
        from charrnn.checkpoint import load_checkpoint

        saved = load_checkpoint(NAMES_CHECKPOINT)
        names_params, names_vocab = saved.params, saved.vocab
        names_source = f"{NAMES_CHECKPOINT.relative_to(REPO)}"
    else:
        names_corpus = load_corpus(NAMES, "lines", 0.0, 0)
        names_vocab = names_corpus.vocab
        names_params = init_params(len(names_vocab), 128, 0.01, np.random.default_rng(0),
                                   "float32")
        names_source = "untrained hidden 128 float32 (no checkpoints/names.npz)"
    hidden = names_params["W_hh"].shape[0]
    text_corpus = load_corpus(SHAKESPEARE, "stream", 0.0, 0)
    text_params = init_params(len(text_corpus.vocab), 512, 0.03, np.random.default_rng(0),
                              "float32")
    num, length = 10000, args.text_length
    names_rates, text_rates, mean_lengths = [], [], []
    sample_names(names_params, names_vocab, 100, np.random.default_rng(0))  # warm-up
    for r in range(args.repeats):
        started = time.perf_counter()
        names = sample_names(names_params, names_vocab, num, np.random.default_rng(r))
        names_rates.append(num / (time.perf_counter() - started))
        mean_lengths.append(sum(map(len, names)) / len(names))
        started = time.perf_counter()
        sample_text(text_params, text_corpus.vocab, length, np.random.default_rng(r))
        text_rates.append(length / (time.perf_counter() - started))
    return {"names": {"median": statistics.median(names_rates), "runs": names_rates,
                      "num": num, "hidden": hidden, "source": names_source,
                      "mean_length": statistics.mean(mean_lengths)},
            "text": {"median": statistics.median(text_rates), "runs": text_rates,
                     "length": length, "hidden": 512}}


def _is_memory_mapped(array) -> bool:
    import mmap

    import numpy as np

    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def worker_memory(args) -> dict:
    """Figure 5 (in its own child): load a large corpus and train a few steps; report RSS."""
    import resource

    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    import numpy as np  # noqa: F401 - counted in the baseline

    import charrnn.train  # noqa: F401

    baseline = rss_mb()
    H, T, B = LARGE["hidden"], LARGE["seq"], LARGE["batch"]
    started = time.perf_counter()
    run = _charrnn_run(H, T, B, "float32", 0.01, Path(args.corpus))
    load_seconds = time.perf_counter() - started
    after_load = rss_mb()
    tokens = run.corpus.train.tokens
    started = time.perf_counter()
    for _ in range(args.memory_steps):
        run.train_step()
    return {"baseline_mb": baseline, "after_load_mb": after_load, "peak_mb": rss_mb(),
            "load_seconds": load_seconds, "steps": args.memory_steps,
            "step_seconds": (time.perf_counter() - started) / args.memory_steps,
            "tokens_dtype": str(tokens.dtype), "tokens": int(tokens.size),
            "tokens_mb": tokens.nbytes / 1e6, "memory_mapped": _is_memory_mapped(tokens)}


WORKERS = {"minchar": worker_minchar, "large": worker_large, "peak": worker_peak,
           "sample": worker_sample, "memory": worker_memory, "info": lambda args: _blas_info()}


# ---------------------------------------------------------------------------------------------
# Parent side: no NumPy here; it starts the workers and prints the figures.
# ---------------------------------------------------------------------------------------------

def _child_env(threads: int) -> dict:
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of the whole machine, from /proc/stat (Linux)."""
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


BUSY_EVENTS: list[str] = []


def wait_until_quiet(args, what: str) -> None:
    """Before a measurement, wait (up to --wait-idle seconds) while other work uses the CPU."""
    deadline = time.monotonic() + args.wait_idle
    while True:
        busy = others_busy()
        if busy is None or busy < args.busy_threshold:
            return
        if time.monotonic() >= deadline:
            BUSY_EVENTS.append(f"{what}: other processes used {100 * busy:.0f}% of the CPU "
                               f"when it started")
            return
        time.sleep(2.0)


def run_worker(name: str, threads: int, args, *extra: str, with_rusage: bool = False):
    """Start this script as a worker; return its result (and its rusage if asked)."""
    if name != "info":
        wait_until_quiet(args, f"{name} {' '.join(extra[:2])} ({threads} thread(s))".strip())
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
               "--threads", str(threads), "--repeats", str(args.repeats),
               "--target-seconds", str(args.target_seconds),
               "--matmul-size", str(args.matmul_size), "--text-length", str(args.text_length),
               "--memory-steps", str(args.memory_steps), *extra]
    process = subprocess.Popen(command, cwd=REPO, env=_child_env(threads),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if with_rusage:
        # os.wait4 gives this child's own ru_maxrss, not the maximum over all children so far.
        stdout_data = process.stdout.read()
        stderr_data = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    else:
        stdout_data, stderr_data = process.communicate()
        usage = None
    if process.returncode != 0:
        raise RuntimeError(f"worker {name} {' '.join(extra)} failed "
                           f"(exit {process.returncode}):\n{stderr_data[-3000:]}")
    for line in stdout_data.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
            return (result, usage) if with_rusage else result
    raise RuntimeError(f"worker {name} printed no result:\n{stdout_data[-2000:]}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_version() -> str:
    """The commit measured, and whether charrnn/ differs from it."""
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


def kilo(value: float) -> str:
    return f"{value / 1e3:.1f}K"


def spread(result: dict) -> str:
    runs = result["runs"]
    return f"(median of {len(runs)}, range {kilo(min(runs))}-{kilo(max(runs))})"


def generate_corpus(path: Path, size: int, seed: int = 0) -> None:
    """size bytes of Shakespeare-like text: random 40-line passages of the shipped corpus."""
    lines = SHAKESPEARE.read_text(encoding="utf-8").splitlines(keepends=True)
    rng = random.Random(seed)
    written = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        while written < size:
            start = rng.randrange(len(lines) - 40)
            block = "".join(lines[start:start + 40]).encode("utf-8")
            block = block[: size - written]
            handle.write(block.decode("utf-8", errors="ignore"))
            written += len(block)


def parse_items(text: str) -> list[str]:
    names = {v: k for k, v in ITEMS.items()}
    chosen = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        key = names.get(part, part)
        if key not in ITEMS:
            raise SystemExit(f"--only: unknown item {part!r}; use 1-5 or "
                             f"{', '.join(ITEMS.values())}")
        chosen.append(key)
    return sorted(set(chosen))


def main_parent(args) -> int:
    items = parse_items(args.only)
    large_threads = [int(t) for t in args.large_threads.split(",") if t.strip()]
    use_torch = not args.no_torch and torch_available()
    say = print
    load_start = os.getloadavg()[0]
    say(f"# charrnn bench_train  {time.strftime('%Y-%m-%d %H:%M:%S')}  "
        f"{'quick' if args.quick else 'full'}: repeats={args.repeats}, "
        f"~{args.target_seconds:g}s per timed run")
    say(f"# machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"{platform.system()} {platform.release()}")
    say(f"# charrnn source: {source_version()}")
    used = {args.threads, *(large_threads if "2" in items else [])}
    for threads in sorted(used):
        info = run_worker("info", threads, args)
        pools = info.get("blas_pools")
        pool_text = ("; ".join(f"{p['internal_api']} {p['version']} kernel={p['architecture']} "
                               f"threads={p['num_threads']}" for p in pools)
                     if pools else "threadpoolctl not installed")
        say(f"# threads {threads}: numpy {info['numpy']}, BLAS {info['blas']}: {pool_text}")
    coretype = {name: os.environ.get(name, "<unset>")
                for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    say(f"# env: {', '.join(f'{k}={v}' for k, v in coretype.items())}; figures 1, 3, 4 and 5 at "
        f"{args.threads} thread(s) ({'/'.join(THREAD_VARIABLES)}={args.threads})"
        + (f"; figure 2 at {', '.join(map(str, large_threads))} thread(s)" if "2" in items
           else ""))
    if "2" in items:
        say(f"# torch: {'importable' if use_torch else 'not importable or --no-torch: skipped'}")
    results: dict = {"args": vars(args)}

    if "1" in items:
        r = run_worker("minchar", args.threads, args)
        results["1"] = r
        ours, yard, f32 = r["charrnn_f64"], r["minchar"], r["charrnn_f32"]
        say(f"1 charrnn (100,25,1) float64 train: {kilo(ours['median'])} chars/s {spread(ours)}")
        say(f"1 min-char-rnn yardstick (100,25,1) float64: {kilo(yard['median'])} chars/s "
            f"{spread(yard)}")
        say(f"1 ratio charrnn / yardstick: {ours['median'] / yard['median']:.2f}x (target >= 6x)")
        say(f"1 (info) charrnn (100,25,1) float32 train: {kilo(f32['median'])} chars/s "
            f"{spread(f32)}")

    large: dict = {}
    if "2" in items or "3" in items:
        thread_list = large_threads if "2" in items else [args.threads]
        if "3" in items and args.threads not in thread_list:
            thread_list = [*thread_list, args.threads]
        variants = ["charrnn"]
        if "2" in items and use_torch:
            variants += ["torch_onehot", "torch_embedding"]
        for threads in thread_list:
            for variant in variants:
                if "2" not in items and variant != "charrnn":
                    continue
                large[(threads, variant)] = run_worker("large", threads, args, "--variant",
                                                       variant)
        results["2"] = {f"{t}:{v}": value for (t, v), value in large.items()}
        if "2" in items:
            for threads in large_threads:
                ours = large[(threads, "charrnn")]
                say(f"2 charrnn (512,100,64) float32, {threads} thread(s): "
                    f"{kilo(ours['median'])} chars/s {spread(ours)}")
                torch_rates = {}
                for variant, label in (("torch_onehot", "one-hot"),
                                       ("torch_embedding", "nn.Embedding")):
                    if (threads, variant) in large:
                        theirs = large[(threads, variant)]
                        torch_rates[label] = theirs["median"]
                        say(f"2 torch {theirs['torch']} nn.RNN {label}, {threads} thread(s) "
                            f"(torch.get_num_threads()={theirs['torch_threads']}): "
                            f"{kilo(theirs['median'])} chars/s {spread(theirs)}")
                if torch_rates:
                    best = max(torch_rates, key=torch_rates.get)
                    say(f"2 ratio charrnn / torch ({best}, the faster), {threads} thread(s): "
                        f"{ours['median'] / torch_rates[best]:.2f}x (target >= 1.3x)")

    if "3" in items:
        peak = run_worker("peak", args.threads, args)
        results["3"] = peak
        ours = large[(args.threads, "charrnn")]
        H, V = LARGE["hidden"], ours["vocab"]
        flops_per_char = 6 * H * H + 6 * H * V
        achieved = ours["median"] * flops_per_char / 1e9
        say(f"3 float32 matmul peak ({peak['n']}x{peak['n']}, {args.threads} thread(s)): "
            f"{peak['median']:.1f} GFLOP/s (median of {len(peak['runs'])}, range "
            f"{min(peak['runs']):.1f}-{max(peak['runs']):.1f})")
        say(f"3 charrnn (512,100,64) float32 achieved, {args.threads} thread(s): "
            f"{achieved:.1f} GFLOP/s = {100 * achieved / peak['median']:.0f}% of peak "
            f"(target >= 75%); {flops_per_char / 1e6:.3f} MFLOP/char (V={V}), ceiling "
            f"{kilo(peak['median'] * 1e9 / flops_per_char)} chars/s")

    if "4" in items:
        r = run_worker("sample", args.threads, args)
        results["4"] = r
        names, text = r["names"], r["text"]
        say(f"4 sample names: {kilo(names['median'])} names/s for {names['num']} names "
            f"(hidden {names['hidden']}, {names['source']}, mean length "
            f"{names['mean_length']:.1f}) {spread(names)}")
        say(f"4 sample free text, hidden 512 float32: {kilo(text['median'])} chars/s "
            f"({text['length']} chars) {spread(text)}")

    if "5" in items:
        size = args.corpus_mb * 1_000_000
        with tempfile.TemporaryDirectory(prefix="charrnn-bench-") as tmp:
            corpus = Path(tmp) / "big.txt"
            started = time.perf_counter()
            generate_corpus(corpus, size)
            generated = time.perf_counter() - started
            passes = []
            for label in ("first run", "second run"):
                result, usage = run_worker("memory", args.threads, args, "--corpus",
                                           str(corpus), with_rusage=True)
                result["child_maxrss_mb"] = usage.ru_maxrss / 1024
                passes.append((label, result))
            extra_files = sorted(p.name for p in Path(tmp).iterdir() if p != corpus)
        results["5"] = {"corpus_bytes": size, "generated_seconds": generated,
                        "passes": dict(passes), "files_beside_corpus": extra_files}
        targets = {"first run": f"{1.5 * size / 1e6 + 150:.0f} MB (1.5 x corpus + 150 MB)",
                   "second run": "300 MB (with the memory-mapped cache)"}
        for label, r in passes:
            held = ("memory-mapped" if r["memory_mapped"] else "held in RAM") + \
                   f" as {r['tokens_dtype']} ({r['tokens_mb']:.0f} MB)"
            say(f"5 peak RSS training (512,100,64) on a {size / 1e6:.0f} MB corpus, {label}: "
                f"{r['child_maxrss_mb']:.0f} MB (corpus {size / 1e6:.0f} MB; target < "
                f"{targets[label]}); load {r['load_seconds']:.1f}s, RSS after imports "
                f"{r['baseline_mb']:.0f} MB, after load {r['after_load_mb']:.0f} MB; "
                f"tokens {held}")
        say(f"5 (info) files written beside the corpus: {', '.join(extra_files) or 'none'}")

    say(f"# load average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f}")
    for event in BUSY_EVENTS:
        say(f"# WARNING: measured while the machine was busy: {event}")
    if not BUSY_EVENTS:
        say(f"# every measurement started with other processes under "
            f"{100 * args.busy_threshold:.0f}% of the CPU")
    results["busy"] = BUSY_EVENTS
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads for figures 1, 3, 4 and 5 (default 1)")
    parser.add_argument("--large-threads", default="1,2",
                        help="comma-separated thread counts for figure 2 (default 1,2)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per figure; the median is printed (default 7, quick 3)")
    parser.add_argument("--quick", action="store_true",
                        help="3 repeats of about 0.4 s each (the memory test is the same)")
    parser.add_argument("--only", default="1,2,3,4,5",
                        help="comma-separated items: 1-5 or minchar,large,peak,sample,memory")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--target-seconds", type=float, default=None,
                        help="length of one timed run (default 1.0, quick 0.4)")
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n matmul")
    parser.add_argument("--text-length", type=int, default=None,
                        help="characters per free-text sample (default 5000, quick 2000)")
    parser.add_argument("--corpus-mb", type=int, default=100,
                        help="size of the generated corpus for figure 5 (default 100)")
    parser.add_argument("--memory-steps", type=int, default=3,
                        help="training steps in the memory test")
    parser.add_argument("--wait-idle", type=float, default=60.0,
                        help="before each measurement wait up to this many seconds while other "
                             "processes keep the CPU busy (default 60; 0: never wait)")
    parser.add_argument("--busy-threshold", type=float, default=0.1,
                        help="share of the whole machine's CPU used by others that counts as "
                             "busy (default 0.1)")
    parser.add_argument("--json", help="also write all results (every run) to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    if args.target_seconds is None:
        args.target_seconds = 0.4 if args.quick else 1.0
    if args.text_length is None:
        args.text_length = 2000 if args.quick else 5000
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")
    if args.worker:
        if os.environ.get("OPENBLAS_NUM_THREADS") != str(args.threads):
            # Started by hand: re-exec with the thread variables set before NumPy loads.
            os.execve(sys.executable, [sys.executable, *sys.argv], _child_env(args.threads))
        _emit(WORKERS[args.worker](args))
        return 0
    return main_parent(args)


if __name__ == "__main__":
    sys.exit(main())

"""Where a second BLAS thread starts to pay: the crossover behind
charrnn.plumbing.threads.CROSSOVER.

    flock /tmp/charrnn-cpu.lock python benchmarks/bench_threads.py [--quick] [--json FILE]

Two measurements, each with 1 and with --threads (default 2) BLAS threads, switched in one
process with threadpoolctl (as `charrnn train` switches them) and interleaved window by window:

  gemm   one recurrent step's product, np.dot(h, W_hh^T, out=...) with h (B, H) and W_hh^T
         (H, G*H), both contiguous, as the cells compute it, over a grid of B, H and the gate
         count G (1 rnn, 3 gru, 4 lstm), in float32 and float64;
  step   a whole Run.train_step (charrnn.train.start_run on Shakespeare, stream mode, seq 50,
         Adam, value clipping) over a grid of cells, H and B, float32, and min-char-rnn's
         (100, 25, 1) float64.

Every line gives the multiply-adds of one recurrent product, B x H x G x H (the quantity
charrnn.plumbing.threads.choose_threads compares with CROSSOVER), the median time with each thread
count and the speed-up. The summary gives, per measurement, the smallest size where the extra
threads are at least --gain (default 10%) faster, the size from which on every measured size is, and
whether `auto` (choose_threads on this many cores) picks the faster setting for each step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAKESPEARE = REPO / "corpora" / "shakespeare.txt"
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def interleaved(fn, threads: list[int], repeats: int, window: float) -> dict[int, float]:
    """Median seconds per call of fn() under each thread limit, windows interleaved."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads[0], user_api="blas"):
        fn()
        started = time.perf_counter()
        fn()
        once = time.perf_counter() - started
    calls = max(1, round(window / max(once, 1e-9)))
    times: dict[int, list[float]] = {t: [] for t in threads}
    order = list(threads)
    for _ in range(repeats):
        for t in order:
            with threadpool_limits(limits=t, user_api="blas"):
                fn()  # the pool wakes up outside the window
                started = time.perf_counter()
                for _ in range(calls):
                    fn()
                times[t].append((time.perf_counter() - started) / calls)
        order.reverse()
    return {t: statistics.median(v) for t, v in times.items()}


def crossover(rows: list[dict], gain: float) -> tuple[int | None, int | None]:
    """(smallest work with speed-up >= gain, smallest work from which on every row has it)."""
    ordered = sorted(rows, key=lambda r: r["work"])
    first = next((r["work"] for r in ordered if r["speedup"] >= gain), None)
    stable = None
    for r in reversed(ordered):
        if r["speedup"] < gain:
            break
        stable = r["work"]
    return first, stable


def millions(work: int | None) -> str:
    return "none" if work is None else f"{work / 1e6:.2f}M"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2,
                        help="the thread count compared with 1 (default 2)")
    parser.add_argument("--quick", action="store_true", help="a smaller grid, shorter windows")
    parser.add_argument("--repeats", type=int, default=3, help="windows per setting (median)")
    parser.add_argument("--window", type=float, default=None,
                        help="seconds per timed window (default 0.1 for a GEMM, 3x for a step)")
    parser.add_argument("--gain", type=float, default=1.10,
                        help="speed-up that counts as paying (default 1.10)")
    parser.add_argument("--only", default="gemm,step", help="gemm, step or both")
    parser.add_argument("--json", help="also write every row to this JSON file")
    args = parser.parse_args()
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)  # the pool's size, before NumPy is imported
    sys.path.insert(0, str(REPO))
    import numpy as np
    from threadpoolctl import threadpool_info

    from charrnn.plumbing.threads import CROSSOVER, available_cores, choose_threads

    window = args.window or (0.05 if args.quick else 0.1)
    threads = [1, args.threads]
    cores = available_cores()
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    print(f"# bench_threads: 1 against {args.threads} BLAS threads; {cores} cores available; "
          f"numpy {np.__version__}; "
          + ", ".join(f"{p['internal_api']} {p['version']} {p.get('architecture')}"
                      for p in pools)
          + f"; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '<unset>')}; median of "
            f"{args.repeats} windows of about {window:g} s (GEMM) / {3 * window:g} s (step)")
    if cores < args.threads:
        print(f"# WARNING: only {cores} cores available for {args.threads} threads")
    results: dict = {"threads": args.threads, "cores": cores, "crossover_constant": CROSSOVER,
                     "gemm": [], "step": []}
    only = {part.strip() for part in args.only.split(",")}

    if "gemm" in only:
        batches = (1, 16, 64) if args.quick else (1, 4, 16, 32, 64, 128)
        hiddens = (128, 256, 512) if args.quick else (64, 128, 256, 512, 1024)
        gates = (1, 4) if args.quick else (1, 3, 4)
        rng = np.random.default_rng(0)
        for dtype in ("float32", "float64"):
            rows = []
            for B in batches:
                for H in hiddens:
                    for G in gates:
                        h = rng.standard_normal((B, H)).astype(dtype)
                        W_T = rng.standard_normal((H, G * H)).astype(dtype)
                        out = np.empty((B, G * H), dtype=dtype)
                        t = interleaved(lambda h=h, W_T=W_T, out=out: np.dot(h, W_T, out=out),
                                        threads, args.repeats, window)
                        row = {"dtype": dtype, "B": B, "H": H, "G": G, "work": B * H * G * H,
                               "seconds": t, "speedup": t[1] / t[args.threads]}
                        rows.append(row)
            for row in sorted(rows, key=lambda r: r["work"]):
                print(f"gemm {row['dtype']} B={row['B']} H={row['H']} G={row['G']} work="
                      f"{row['work'] / 1e6:.2f}M: 1 thread {row['seconds'][1] * 1e6:.1f} us, "
                      f"{args.threads} threads {row['seconds'][args.threads] * 1e6:.1f} us, "
                      f"speed-up {row['speedup']:.2f}x", flush=True)
            first, stable = crossover(rows, args.gain)
            print(f"crossover.gemm.{dtype}: {millions(stable)} multiply-adds (every size from "
                  f"here on >= {args.gain:.2f}x with {args.threads} threads; the first such "
                  f"size: {millions(first)})", flush=True)
            results["gemm"] += rows
            results[f"crossover_gemm_{dtype}"] = {"first": first, "stable": stable}

    if "step" in only:
        from charrnn.config import Config
        from charrnn.train import start_run

        tmp = tempfile.mkdtemp(prefix="charrnn-threads-")
        cells = ("rnn", "lstm") if args.quick else ("rnn", "gru", "lstm")
        hiddens = (128, 512) if args.quick else (128, 256, 512)
        batches = (16, 64) if args.quick else (16, 32, 64)
        configs = [("rnn", 100, 1, 25, "float64", "adagrad", 0.1)]
        configs += [(cell, H, B, 50, "float32", "adam", 0.002)
                    for cell in cells for H in hiddens for B in batches]
        rows = []
        for cell, H, B, T, dtype, optimizer, lr in configs:
            config = Config().replace(
                data={"corpus": str(SHAKESPEARE), "mode": "stream", "val_fraction": 0.0},
                model={"cell": cell, "hidden_size": H, "dtype": dtype},
                training={"batch_size": B, "seq_length": T, "optimizer": optimizer, "lr": lr,
                          "sample_every": 0, "out": str(Path(tmp) / "threads.npz")})
            run = start_run(config)
            t = interleaved(run.train_step, threads, args.repeats, 3 * window)
            G = GATES[cell]
            choice = choose_threads("auto", B, H, G, environ={}, cores=cores)
            faster = args.threads if t[1] / t[args.threads] >= args.gain else 1
            row = {"cell": cell, "H": H, "B": B, "T": T, "dtype": dtype, "work": B * H * G * H,
                   "seconds": t, "speedup": t[1] / t[args.threads], "auto": choice.threads,
                   "pays": faster}
            rows.append(row)
            agrees = (choice.threads > 1) == (faster > 1)
            print(f"step {cell} H={H} B={B} T={T} {dtype} work={row['work'] / 1e6:.2f}M: "
                  f"1 thread {t[1] * 1e3:.2f} ms, {args.threads} threads "
                  f"{t[args.threads] * 1e3:.2f} ms, speed-up {row['speedup']:.2f}x; auto picks "
                  f"{choice.threads} ({'agrees' if agrees else 'DISAGREES'})", flush=True)
        first, stable = crossover([r for r in rows if r["dtype"] == "float32"], args.gain)
        wrong = [r for r in rows if (r["auto"] > 1) != (r["pays"] > 1)]
        print(f"crossover.step.float32: {millions(stable)} multiply-adds (every size from here "
              f"on >= {args.gain:.2f}x; the first such size: {millions(first)})")
        print(f"charrnn.plumbing.threads.CROSSOVER: {millions(CROSSOVER)} multiply-adds; "
              f"auto picks the faster setting for {len(rows) - len(wrong)} of {len(rows)} steps"
              + ("" if not wrong else "; it does not for " + ", ".join(
                  f"{r['cell']} H={r['H']} B={r['B']} ({r['speedup']:.2f}x)" for r in wrong)))
        if stable is None:
            verdict = (f"not supported: {args.threads} threads were never reliably faster "
                       f"here (was the machine busy?); measure again on a quiet machine")
        elif first is not None and min(first, stable) <= CROSSOVER <= 2 * stable:
            verdict = "consistent with the measurement"
        else:
            verdict = f"off: consider a value near {millions(stable)}"
        print(f"crossover.verdict: CROSSOVER {millions(CROSSOVER)} is {verdict}")
        results["step"] = rows
        results["crossover_step_float32"] = {"first": first, "stable": stable}
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

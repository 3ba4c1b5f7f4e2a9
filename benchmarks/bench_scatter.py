"""Ways to scatter input gradients into dW_xh: out[v] = sum of rows[j] with idx[j] == v.

    python benchmarks/bench_scatter.py [--threads N] [--repeats N]

Times each alternative at the two benchmark shapes, batch 1 (25 rows of hidden 100, float64)
and (512, 100, 64) (6400 rows of hidden 512, float32), on the character indices of a real
Shakespeare chunk, checks each against np.add.at, and prints the median time of each.
charrnn.model.scatter_rows is the package's current implementation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per candidate")
    args = parser.parse_args()
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)  # before NumPy is imported
    sys.path.insert(0, str(REPO))
    import numpy as np

    from charrnn.model import scatter_rows

    def add_at(idx, rows, V):
        out = np.zeros((V, rows.shape[1]), rows.dtype)
        np.add.at(out, idx, rows)
        return out

    def reduceat(idx, rows, V):
        """The first implementation: stable argsort, gather, np.add.reduceat along axis 0."""
        out = np.zeros((V, rows.shape[1]), rows.dtype)
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        starts = np.flatnonzero(np.diff(sorted_idx, prepend=-1) != 0)
        out[sorted_idx[starts]] = np.add.reduceat(rows[order], starts, axis=0)
        return out

    def sorted_blocks(idx, rows, V):
        """Stable argsort (radix sort for uint8), one gather, one contiguous .sum per index."""
        out = np.zeros((V, rows.shape[1]), rows.dtype)
        order = np.argsort(idx, kind="stable")
        ends = np.cumsum(np.bincount(idx, minlength=V)).tolist()
        sorted_rows = np.take(rows, order, axis=0)
        start = 0
        for v, end in enumerate(ends):
            if end > start:
                sorted_rows[start:end].sum(axis=0, out=out[v])
            start = end
        return out

    def masks(idx, rows, V):
        """A boolean mask and a gather per distinct index (no sort)."""
        out = np.zeros((V, rows.shape[1]), rows.dtype)
        for v in np.flatnonzero(np.bincount(idx, minlength=V)).tolist():
            np.add.reduce(rows[idx == v], axis=0, out=out[v])
        return out

    def onehot_gemm(idx, rows, V):
        """A one-hot (V, N) matrix times rows: a GEMM of 2*V*N*H FLOPs, BLAS-speed."""
        onehot = np.zeros((V, len(idx)), rows.dtype)
        onehot[idx, np.arange(len(idx))] = 1
        return onehot @ rows

    def bincount_flat(idx, rows, V):
        """One np.bincount over (index, column) pairs; float64 weights, so cast back."""
        width = rows.shape[1]
        bins = (idx.astype(np.intp)[:, None] * width + np.arange(width)).reshape(-1)
        sums = np.bincount(bins, weights=rows.reshape(-1), minlength=V * width)
        return sums.reshape(V, width).astype(rows.dtype, copy=False)

    candidates = {
        "np.add.at": add_at,
        "charrnn.model.scatter_rows (current)": lambda i, r, V: scatter_rows(i, r, V),
        "argsort + gather + np.add.reduceat axis 0": reduceat,
        "argsort + gather + .sum per sorted block": sorted_blocks,
        "mask + gather + sum per distinct index": masks,
        "one-hot (V, N) @ rows (GEMM)": onehot_gemm,
        "np.bincount on flattened (index, column)": bincount_flat,
    }
    text = np.frombuffer((REPO / "corpora" / "shakespeare.txt").read_bytes()[:200_000], np.uint8)
    _, codes = np.unique(text, return_inverse=True)
    V = 84  # the Shakespeare vocabulary
    print(f"# threads {args.threads}; OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '<unset>')}; numpy {np.__version__}; "
          f"median of {args.repeats}")
    for N, H, dtype in ((25, 100, np.float64), (6400, 512, np.float32)):
        idx = codes[10_000:10_000 + N].astype(np.uint8)
        rows = np.random.default_rng(0).standard_normal((N, H)).astype(dtype)
        reference = add_at(idx, rows, V)
        tolerance = 1e-10 if dtype == np.float64 else 1e-3
        print(f"{N} rows x hidden {H}, {np.dtype(dtype).name}, {len(np.unique(idx))} distinct "
              f"indices of V={V}")
        base = None
        for name, fn in candidates.items():
            error = float(np.abs(fn(idx, rows, V) - reference).max())
            fn(idx, rows, V)
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                fn(idx, rows, V)
                times.append(time.perf_counter() - started)
            median = float(np.median(times))
            base = base or median
            flag = "" if error <= tolerance else f"  WRONG (max error {error:.1e})"
            print(f"  {name:44s} {median * 1e6:10.1f} us  {base / median:5.1f}x np.add.at{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

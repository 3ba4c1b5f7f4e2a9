"""Sweeps: many configurations of one base config, trained reproducibly on a pool or a cluster.

A sweep file names a base config, overrides for every trial (``set``), lists of values whose
combinations are the trials (``grid``, or ``random`` samples of them) and optional successive
halving (``halving: {rungs: [...], keep: 0.5}``). `load_sweep` validates it into a `SweepPlan`;
`run_sweep` trains the plan through any `concurrent.futures.Executor`: a local process pool
(`LocalExecutors`) or a Dask cluster (`DaskExecutors`), with one code path.

Every trial-rung is one task, `train_trial`: it gets the trial's config as YAML, its corpus as
bytes and, after the first rung, its previous checkpoint as bytes; it trains in a temporary
directory on the worker (resuming bit for bit) and returns the new checkpoint, best checkpoint
and log as bytes. Workers therefore share no files with the driver, and since every trial is
trained by one process with one BLAS thread, the results are the same whatever the number of
workers or machines.

The driver keeps everything in the output directory: ``state.json`` (what is finished, with each
checkpoint's SHA-256), ``results.csv``/``results.jsonl``, ``best.npz`` and ``trials/``. A commit
writes the trial's files as ``*.new``, then the state, then renames them, so a driver killed at
any moment resumes from a consistent state (`Store.recover` rolls a half-done commit forward or
back).

One module a job, in the order a trial-rung meets them:

- `plan`: the sweep file, its trials, and the successive-halving rungs;
- `worker`: `train_trial`, what a pool or Dask worker runs for one trial-rung;
- `executors`: the local process pool, the Dask cluster, and resubmission to them;
- `store`: the output directory (state, trials' files, results, best.npz);
- `runner`: `run_sweep`, the driver loop that ties them together;
- `table`: the results table and the plan listing that the command prints.
"""

from charrnn.sweep.executors import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_RETRIES,
    DaskExecutors,
    LocalExecutors,
)
from charrnn.sweep.plan import RungView, SweepPlan, Trial, load_sweep, rung_views, survivors
from charrnn.sweep.runner import SweepInterrupted, SweepOutcome, run_sweep
from charrnn.sweep.store import check_sweep_outputs, plan_fingerprint, sweep_outputs
from charrnn.sweep.table import RESULT_COLUMNS, describe_plan, format_table
from charrnn.sweep.worker import train_trial

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_RETRIES",
    "RESULT_COLUMNS",
    "DaskExecutors",
    "LocalExecutors",
    "RungView",
    "SweepInterrupted",
    "SweepOutcome",
    "SweepPlan",
    "Trial",
    "check_sweep_outputs",
    "describe_plan",
    "format_table",
    "load_sweep",
    "plan_fingerprint",
    "run_sweep",
    "rung_views",
    "survivors",
    "sweep_outputs",
    "train_trial",
]

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
any moment resumes from a consistent state (`_Store.recover` rolls a half-done commit forward or
back).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import multiprocessing
import os
import random
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import (
    FIRST_COMPLETED,
    BrokenExecutor,
    CancelledError,
    Executor,
    Future,
    ProcessPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charrnn.config import Config, did_you_mean, load_config, parse_yaml, refuse_unknown
from charrnn.errors import CharRNNError, install_command
from charrnn.plumbing.paths import Output, check_outputs
from charrnn.plumbing.reading import Reading, read_bytes
from charrnn.plumbing.writing import atomic_write, output_lock, remove_stale_temporaries

SWEEP_KEYS = ("base", "set", "grid", "random", "halving")
HALVING_KEYS = ("rungs", "keep")
RANDOM_KEYS = ("trials", "seed")
DEFAULT_KEEP = 0.5
STATE_NAME = "state.json"
RESULT_NAMES = ("results.csv", "results.jsonl", "best.npz")
OUT_HINT = "pass another --out"
MAX_SWEEP_BYTES = 1 << 20  # a sweep file is a page of YAML; a larger one is not one
MAX_STATE_BYTES = 1 << 28  # state.json: a record per trial-rung; a larger one is not ours
STATE_FORMAT = "charrnn-sweep-state"
STATE_VERSION = 1
RESULT_COLUMNS = ("steps", "val_loss", "train_loss", "seconds", "status")
DEFAULT_RETRIES = 3  # resubmissions of a trial-rung whose worker died or whose pool broke
DEFAULT_CONNECT_TIMEOUT = 5.0
# set to the per-trial thread count in the environment of the local pool's worker processes, so
# the BLAS library reads it when NumPy loads there
BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
# keys the sweep itself decides: every trial writes DIR/trials/NAME.npz
RESERVED_KEYS = {"training.out": "the sweep writes each trial to DIR/trials/NAME.npz (--out DIR)",
                 "training.threads": "the sweep sets each trial's BLAS threads "
                                     "(--threads-per-trial)"}


# --- the plan ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Trial:
    index: int
    name: str
    values: dict  # swept key (as in the sweep file) -> its value (as in the sweep file)
    config: Config  # corpus path absolute; with halving, training.steps is the last rung


@dataclass(frozen=True)
class SweepPlan:
    path: Path  # the sweep file
    base: Path  # the base config
    keys: tuple[str, ...]  # swept keys in file order: the results' columns
    trials: tuple[Trial, ...]
    rungs: tuple[int, ...] | None  # None: one rung, at each trial's own training.steps
    keep: float

    @property
    def rung_count(self) -> int:
        return len(self.rungs) if self.rungs else 1

    def steps(self, trial: Trial, rung: int) -> int:
        return self.rungs[rung] if self.rungs else trial.config.training.steps

    def planned(self) -> list[int]:
        """Trials entering each rung if none fails."""
        counts = [len(self.trials)]
        for _ in range(self.rung_count - 1):
            counts.append(survivors(counts[-1], self.keep))
        return counts


def survivors(entered: int, keep: float) -> int:
    """How many of the trials that entered a rung go on: floor(entered * keep), at least 1."""
    return max(1, math.floor(entered * keep + 1e-9))


def load_sweep(path: str | Path) -> SweepPlan:
    """Read and validate a sweep file; every trial's config is built and checked here."""
    path = Path(path)
    where = str(path)
    try:
        reading = Reading(path, "sweep file", MAX_SWEEP_BYTES, "give a sweep YAML",
                          "give the path of a sweep YAML (see configs/sweeps/names.yaml)")
        text = b"".join(reading.chunks()).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CharRNNError(f"sweep file {path} cannot be read ({error}); give a readable "
                           f"UTF-8 YAML file") from None
    document = parse_yaml(text, where)
    if not isinstance(document, dict):
        raise CharRNNError(f"{where}: expected a mapping with keys {', '.join(SWEEP_KEYS)}, got "
                           f"{type(document).__name__}")
    refuse_unknown(where, document, SWEEP_KEYS)
    here = path.parent

    base = document.get("base")
    if not isinstance(base, str) or not base.strip():
        raise CharRNNError(f"{where}: 'base' is missing; name the config every trial starts "
                           f"from, e.g. base: configs/names.yaml (relative to the sweep file)")
    base_path = Path(base) if Path(base).is_absolute() else here / base
    if not base_path.exists() and Path(base).suffix not in (".yaml", ".yml") and \
            len(Path(base).parts) == 1:
        base_path = Path(base)  # a shipped config's name, e.g. base: names
    base_config = load_config(base_path)
    valid = _valid_keys(base_config)

    settings = _mapping(document.get("set"), f"{where}: set")
    grid = _mapping(document.get("grid"), f"{where}: grid")
    for key in (*settings, *grid):
        _check_key(key, valid, where)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise CharRNNError(f"{where}: grid {key}: expected a non-empty list of values, e.g. "
                               f"[64, 128], got {values!r}")
        for value in values:
            _check_scalar(value, f"{where}: grid {key}")
        seen = [json.dumps(value) for value in values]
        if len(set(seen)) != len(seen):
            raise CharRNNError(f"{where}: grid {key}: a value is listed twice in {values!r}; "
                               f"list each once")
    if not grid:
        raise CharRNNError(f"{where}: the grid is empty; list values to try, e.g. grid: "
                           f"{{model.hidden_size: [64, 128]}}")
    for key, value in settings.items():
        _check_scalar(value, f"{where}: set {key}")
        if key in grid:
            raise CharRNNError(f"{where}: {key} is both in 'set' and in 'grid'; keep it in one")
    rungs, keep = _halving(document.get("halving"), where)
    if rungs is not None:
        if "training.steps" in grid:
            raise CharRNNError(f"{where}: with halving the rungs set training.steps; take "
                               f"training.steps out of the grid")
        if "training.steps" in settings and settings["training.steps"] != rungs[-1]:
            raise CharRNNError(f"{where}: set training.steps {settings['training.steps']!r} "
                               f"differs from the last rung {rungs[-1]}; make them equal (or "
                               f"leave training.steps out)")

    def resolved(key: str, value: Any) -> Any:  # corpora given here are relative to this file
        if key == "data.corpus" and isinstance(value, str) and value and \
                not Path(value).is_absolute():
            return os.path.abspath(here / value)
        return value

    common = _apply(base_config, {key: resolved(key, value) for key, value in settings.items()},
                    f"{where}: set")
    for key, values in grid.items():  # name the bad value on its own before combining
        for value in values:
            _apply(common, {key: resolved(key, value)}, f"{where}: grid {key}={value!r}")
    keys = tuple(grid)
    combinations = _combinations([grid[key] for key in keys], document.get("random"), where)
    width = max(3, len(str(len(combinations) - 1)))
    trials = []
    for index, combination in enumerate(combinations):
        values = dict(zip(keys, combination))
        name = f"t{index:0{width}d}"
        config = _apply(common, {key: resolved(key, value) for key, value in values.items()},
                        f"{where}: trial {name} ({_describe(values)})")
        corpus = config.data.corpus
        if not Path(corpus).is_absolute():  # a default the config file did not set: the cwd's
            config = config.replace(data={"corpus": os.path.abspath(corpus)})
        if rungs is not None:
            config = config.replace(training={"steps": rungs[-1]})
        _check_trial(config, name, values, rungs, where, base_path)
        trials.append(Trial(index, name, values, config))
    return SweepPlan(path, base_path, keys, tuple(trials), rungs, keep)


def _valid_keys(config: Config) -> list[str]:
    """Every SECTION.KEY the config knows, read from the config itself (new keys included)."""
    return [f"{section}.{name}" for section, values in config.to_dict().items()
            for name in values]


def _check_key(key: Any, valid: list[str], where: str) -> None:
    if not isinstance(key, str) or key not in valid:
        bare = [name.partition(".")[2] for name in valid]
        hint = did_you_mean(str(key), valid)
        if not hint and str(key) in bare:  # 'hidden_size' without its section
            hint = f" (did you mean {valid[bare.index(str(key))]!r}?)"
        raise CharRNNError(f"{where}: unknown key {key!r}{hint}; keys are SECTION.KEY as in "
                           f"--set, e.g. model.hidden_size")
    if key in RESERVED_KEYS:
        raise CharRNNError(f"{where}: {key} cannot be set in a sweep: {RESERVED_KEYS[key]}")


def _check_scalar(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise CharRNNError(f"{where}: expected a number, a string, true/false or null, got "
                           f"{value!r}")


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CharRNNError(f"{where}: expected a mapping of SECTION.KEY: value, got {value!r}")
    for key, item in value.items():
        if isinstance(item, dict):
            example = f"{key}.{next(iter(item), 'KEY')}"
            raise CharRNNError(f"{where}: write keys as SECTION.KEY (e.g. {example}), not as "
                               f"nested mappings")
    return value


def _apply(config: Config, values: dict, where: str) -> Config:
    """config with SECTION.KEY values, validated like --set (errors name `where`)."""
    sections: dict[str, dict] = {}
    for key, value in values.items():
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = value
    try:
        return config.replace(**sections)
    except CharRNNError as error:
        raise CharRNNError(f"{where}: {error}") from None


def _halving(value: Any, where: str) -> tuple[tuple[int, ...] | None, float]:
    if value is None:
        return None, 1.0
    if not isinstance(value, dict):
        raise CharRNNError(f"{where}: halving: expected a mapping like {{rungs: [500, 1500], "
                           f"keep: 0.5}}, got {value!r}")
    refuse_unknown(f"{where}: halving", value, HALVING_KEYS)
    rungs = value.get("rungs")
    if not isinstance(rungs, list) or not rungs or not all(
            isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in rungs):
        raise CharRNNError(f"{where}: halving rungs: expected a list of step counts > 0, e.g. "
                           f"[500, 1500, 3000], got {rungs!r}")
    if any(b <= a for a, b in zip(rungs, rungs[1:])):
        raise CharRNNError(f"{where}: halving rungs {rungs} must increase strictly")
    keep = value.get("keep", DEFAULT_KEEP)
    if isinstance(keep, str):  # YAML 1.1 reads 5e-1 as a string
        with contextlib.suppress(ValueError):
            keep = float(keep)
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
        raise CharRNNError(f"{where}: halving keep must be a fraction in (0, 1], e.g. 0.5, got "
                           f"{keep!r}")
    return tuple(rungs), float(keep)


def _combinations(lists: list[list], spec: Any, where: str) -> list[tuple]:
    """Every combination in grid order (the first key varies slowest), or `random` samples."""
    if spec is None:
        return list(itertools.product(*lists))
    if not isinstance(spec, dict):
        raise CharRNNError(f"{where}: random: expected {{trials: N, seed: S}}, got {spec!r}")
    refuse_unknown(f"{where}: random", spec, RANDOM_KEYS)
    count, seed = spec.get("trials"), spec.get("seed", 0)
    total = math.prod(len(values) for values in lists)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise CharRNNError(f"{where}: random trials must be a whole number >= 1, got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise CharRNNError(f"{where}: random seed must be a whole number >= 0, got {seed!r}")
    if count > total:
        raise CharRNNError(f"{where}: random trials {count} is more than the grid's {total} "
                           f"combinations; lower it, or drop 'random' to run them all")
    chosen = sorted(random.Random(seed).sample(range(total), count))
    combinations = []
    for number in chosen:  # mixed radix, the last list fastest, as in itertools.product
        picked = []
        for values in reversed(lists):
            number, digit = divmod(number, len(values))
            picked.append(values[digit])
        combinations.append(tuple(reversed(picked)))
    return combinations


def _check_trial(config: Config, name: str, values: dict, rungs, where: str,
                 base: Path) -> None:
    what = f"{where}: trial {name} ({_describe(values)})"
    training = config.training
    if not os.path.isfile(config.data.corpus):
        raise CharRNNError(f"{what}: corpus {config.data.corpus} not found; set data.corpus in "
                           f"the sweep file (relative to it) or in the base config {base}")
    if not config.data.val_fraction > 0:
        raise CharRNNError(f"{what}: data.val_fraction is 0, but trials are ranked by validation "
                           f"loss; set data.val_fraction above 0")
    if training.time_limit:
        raise CharRNNError(f"{what}: training.time_limit would make results depend on machine "
                           f"speed; set it to 0 in a sweep")
    if training.steps < 1:
        raise CharRNNError(f"{what}: training.steps must be >= 1 in a sweep")
    for rung in rungs or ():
        if rung % training.eval_every:
            raise CharRNNError(f"{what}: halving rung {rung} is not on the eval_every grid "
                               f"({training.eval_every}); use multiples of "
                               f"{training.eval_every}")


def _describe(values: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items())


# --- the task a worker runs --------------------------------------------------------------------

@contextlib.contextmanager
def _blas_threads(threads: int):
    """Limit BLAS to `threads` with threadpoolctl when it is installed (it also works inside
    already-running Dask workers); otherwise the environment set before NumPy loaded decides."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(threads):
        yield


def train_trial(name: str, config_yaml: str, steps: int, corpus_name: str, corpus: bytes,
                checkpoint: bytes | None = None, log: str | None = None,
                threads: int = 1) -> dict:
    """Train one trial to `steps` on this worker (resuming `checkpoint` if given) in a temporary
    directory; return the new checkpoint, best checkpoint and log as bytes/text with the losses.

    Top-level and given plain values, so any Executor can ship it. The checkpoints keep the
    trial's own config (the driver's corpus path and DIR/trials/NAME.npz), not the worker's
    temporary paths, so `charrnn train --resume` and `charrnn sample --novel` work on them.
    """
    from charrnn.checkpoint import load_checkpoint, save_checkpoint
    from charrnn.config import config_from_yaml_text
    from charrnn.train import best_path, log_path, train

    stored = config_from_yaml_text(config_yaml, f"trial {name} config")
    with tempfile.TemporaryDirectory(prefix=f"charrnn-sweep-{name}-") as temporary:
        directory = Path(temporary)
        corpus_path = directory / "corpus" / corpus_name
        corpus_path.parent.mkdir()
        atomic_write(corpus_path, corpus, "the trial's corpus", follow=False)
        out = directory / f"{name}.npz"
        training = {"out": str(out), "steps": steps, "sample_every": 0, "checkpoint_every": 0}
        if "threads" in stored.to_dict()["training"]:  # the trainer's own BLAS thread policy
            training["threads"] = threads
        run_config = stored.replace(data={"corpus": str(corpus_path)}, training=training)
        logfile = log_path(out, stored.training.log_format)
        if checkpoint is not None:
            atomic_write(out, checkpoint, "the trial's checkpoint", follow=False)
            if log:
                atomic_write(logfile, log, "the trial's metrics log", follow=False)
        notes: list[str] = []

        def report(kind: str, text: str) -> None:
            if kind == "warning":
                notes.append(text)

        outcome: dict = {}

        def run() -> None:
            try:
                with _blas_threads(threads):
                    outcome["result"] = train(
                        run_config, resume=out if checkpoint is not None else None,
                        progress=False, report=report)
            except BaseException as error:  # re-raised below, in the calling thread
                outcome["error"] = error

        # Off the main thread the trainer installs no signal handlers, so the driver's SIGTERM
        # ends a pool worker at once (instead of a save and an exception that nobody reads).
        worker = threading.Thread(target=run, name=f"charrnn-trial-{name}", daemon=True)
        worker.start()
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        result = outcome["result"]
        files = {}
        for key, path in (("checkpoint", out), ("best", best_path(out))):
            if path.exists():
                saved = load_checkpoint(path)
                save_checkpoint(path, dataclasses.replace(saved, config=stored))
                files[key] = path.read_bytes()
        if "checkpoint" not in files:
            raise RuntimeError(f"trial {name}: training wrote no checkpoint")
        best = result.best_val_loss
        train_loss = result.final_train_loss
        return {
            "name": name,
            "checkpoint": files["checkpoint"],
            "best": files.get("best"),
            "log": logfile.read_text(encoding="utf-8") if logfile.exists() else "",
            "log_suffix": logfile.suffix,
            "step": int(result.step),
            "val_loss": float(best) if best is not None and math.isfinite(best) else None,
            "train_loss": (float(train_loss) if train_loss is not None
                           and math.isfinite(train_loss) else None),
            "seconds": float(result.seconds),
            "notes": notes,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        }


# --- executors ---------------------------------------------------------------------------------

_ENVIRON_LOCK = threading.Lock()


def _start_worker() -> None:
    """A local pool worker leaves Ctrl-C to the driver, which ends it with SIGTERM. Its (never
    shown) tqdm bars get a thread lock instead of a multiprocessing one, which a terminated
    worker would leave behind as a 'leaked semaphore' warning."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


class _LocalPool(ProcessPoolExecutor):
    """A spawn-context process pool whose workers start with BLAS limited to `threads`."""

    def __init__(self, workers: int, threads: int):
        super().__init__(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                         initializer=_start_worker)
        self._blas = {name: str(threads) for name in BLAS_ENV}

    def submit(self, fn, /, *args, **kwargs):
        # workers are spawned inside submit and inherit the environment of that moment
        with _ENVIRON_LOCK:
            saved = {name: os.environ.get(name) for name in self._blas}
            os.environ.update(self._blas)
            try:
                return super().submit(fn, *args, **kwargs)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

    def stop(self) -> None:
        """Cancel what has not started and end the worker processes now."""
        terminate_workers = getattr(super(), "terminate_workers", None)  # Python 3.14+
        if terminate_workers is not None:
            terminate_workers()
            return
        processes = list((getattr(self, "_processes", None) or {}).values())
        for process in processes:
            with contextlib.suppress(Exception):
                process.terminate()
        self.shutdown(wait=True, cancel_futures=True)


class LocalExecutors:
    """Makes the process pool of a local sweep (and a fresh one if a worker dies)."""

    def __init__(self, workers: int | None = None, threads: int = 1):
        self.workers = workers or os.cpu_count() or 1
        self.threads = threads

    def __call__(self) -> Executor:
        return _LocalPool(self.workers, self.threads)

    def describe(self) -> str:
        return f"{self.workers} local worker{'s' if self.workers != 1 else ''}"

    def close(self) -> None:
        pass


class DaskExecutors:
    """Executors on a Dask cluster: `Client(address).get_executor()`, connected on first use."""

    def __init__(self, address: str, timeout: float = DEFAULT_CONNECT_TIMEOUT):
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise CharRNNError(f"--address needs Dask, which is not installed; install it with "
                               f"{install_command('sweep')}") from None
        self.address = address
        self.timeout = timeout
        self.client = None

    def __call__(self) -> Executor:
        return self.connect().get_executor(pure=False)  # pure=False: a resubmission is new

    def connect(self):
        """The client, connected (once) to a scheduler with at least one worker."""
        if self.client is not None:
            return self.client
        import distributed

        workers = f"`dask worker {self.address} --nthreads 1`"
        try:
            client = distributed.Client(self.address, timeout=self.timeout,
                                        set_as_default=False)
        except Exception as error:  # OSError on a timeout, ValueError/TypeError on a bad address
            reason = " ".join(str(error).split()) or type(error).__name__
            raise CharRNNError(f"cannot reach the Dask scheduler at {self.address} ({reason}); "
                               f"start one with `dask scheduler` and workers with {workers}, "
                               f"or run without --address") from None
        try:
            client.wait_for_workers(1, timeout=self.timeout)
        except Exception:
            client.close()
            raise CharRNNError(f"the Dask scheduler at {self.address} has no workers after "
                               f"{self.timeout:g} s; start them with {workers}") from None
        self.client = client
        return client

    def describe(self) -> str:
        return f"the Dask cluster at {self.address}"

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = None


# --- the output directory ----------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sweep_outputs(out: Path, plan: SweepPlan) -> list[Path]:
    """Every file a sweep writes in out: the state, the results, best.npz and each trial's
    checkpoint, best checkpoint and log, with the `*.new` each commit writes first."""
    paths = [out / STATE_NAME, *(out / name for name in RESULT_NAMES)]
    for trial in plan.trials:
        for suffix in (".npz", ".best.npz", ".jsonl", ".csv"):
            path = out / "trials" / f"{trial.name}{suffix}"
            paths += [path, path.with_name(path.name + ".new")]
    return paths


def check_sweep_outputs(plan: SweepPlan, out: Path) -> None:
    """Before any work: no file the sweep writes is one of its inputs (the sweep file, the base
    config, a corpus) or anything but a regular file, and none is a symbolic link."""
    inputs: dict[str, str | Path] = {"the sweep file": plan.path, "the base config": plan.base}
    for trial in plan.trials:
        if trial.config.data.corpus not in inputs.values():
            inputs[f"the corpus of trial {trial.name}"] = trial.config.data.corpus
    for path in sweep_outputs(out, plan):  # one at a time: our own names never coincide
        what = f"the sweep's {path.relative_to(out)}"
        check_outputs(inputs, [Output(path, what, OUT_HINT, derived=True)])


def _write(path: Path, data: bytes) -> None:
    """A file of the sweep's, through the one atomic writer; never through a link."""
    atomic_write(path, data, f"the sweep's {path.name}", OUT_HINT, follow=False)


def plan_fingerprint(plan: SweepPlan, corpora: dict[str, bytes]) -> str:
    """What makes two runs the same sweep: trials, their configs and corpora, rungs and keep
    (not where the files are)."""
    trials = []
    for trial in plan.trials:
        corpus = _sha256(corpora[trial.config.data.corpus])
        config = trial.config.replace(data={"corpus": f"sha256:{corpus}"},
                                      training={"out": "trial.npz"})
        trials.append([trial.name, config.to_yaml()])
    document = {"trials": trials, "rungs": list(plan.rungs or ()), "keep": plan.keep}
    return _sha256(json.dumps(document, sort_keys=True).encode())


@dataclass
class RungView:
    """A rung as the records say: who entered, who has finished, who goes on (when decided)."""

    index: int
    entered: list[Trial]
    missing: list[Trial]
    promoted: list[Trial] | None  # None: not decided yet, or the last rung


def rung_views(plan: SweepPlan, records: dict[str, list[dict]]) -> list[RungView]:
    """Replay successive halving over the records, up to the first rung not yet complete.

    Deterministic: ranks by best validation loss, ties (and missing losses) by trial index;
    failed trials never go on.
    """
    views = []
    entered = list(plan.trials)
    for index in range(plan.rung_count):
        done = {trial.name: records.get(trial.name, [])[index]
                for trial in entered if len(records.get(trial.name, [])) > index}
        missing = [trial for trial in entered if trial.name not in done]
        view = RungView(index, entered, missing, None)
        views.append(view)
        if missing or index == plan.rung_count - 1:
            break
        ok = [trial for trial in entered if done[trial.name]["status"] == "ok"]
        ok.sort(key=lambda trial: (_loss_key(done[trial.name]["val_loss"]), trial.index))
        view.promoted = ok[:survivors(len(entered), plan.keep)]
        entered = view.promoted
        if not entered:
            break
    return views


def _loss_key(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else math.inf


class _Store:
    """DIR: the state file, the trials' files, results and best.npz; one driver at a time."""

    def __init__(self, out: Path, plan: SweepPlan, fingerprint: str, resume: bool,
                 report: Callable[[str, str], None]):
        self.out, self.plan, self.report = out, plan, report
        self.trials_dir = out / "trials"
        try:
            self.trials_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CharRNNError(f"cannot create {self.trials_dir}: {error.strerror or error}; "
                               f"choose another --out") from None
        self._best_written: tuple | None = None
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(output_lock(
            out / STATE_NAME, f"another charrnn sweep is writing {out}; wait for it, or pass "
                              f"another --out", OUT_HINT))
        try:
            self.state = self._read_state(fingerprint, resume)
            self.records: dict[str, list[dict]] = self.state["records"]
            self._remove_temporaries()
            self.recover()
        except BaseException:
            self.close()
            raise

    # locking and state
    def close(self) -> None:
        self._lock.close()  # the lock file goes with the lock

    def _read_state(self, fingerprint: str, resume: bool) -> dict:
        path = self.out / STATE_NAME
        names = [trial.name for trial in self.plan.trials]
        if not path.exists():
            if resume:
                raise CharRNNError(f"--resume: {self.out} holds no sweep to resume ({STATE_NAME} "
                                   f"is missing); run without --resume to start it")
            return {"format": STATE_FORMAT, "version": STATE_VERSION,
                    "fingerprint": fingerprint, "sweep": str(self.plan.path),
                    "trials": names, "records": {name: [] for name in names}}
        try:
            raw = read_bytes(path, "the sweep state", MAX_STATE_BYTES, "it is not ours")
            state = json.loads(raw.decode("utf-8"))
            if state.get("format") != STATE_FORMAT or not isinstance(state.get("records"), dict):
                raise ValueError("not a sweep state")
        except (CharRNNError, OSError, UnicodeDecodeError, ValueError, AttributeError,
                RecursionError) as error:
            reason = (str(error) or type(error).__name__).splitlines()[0][:200]
            raise CharRNNError(f"{path} cannot be read ({reason}); delete {self.out} to start "
                               f"the sweep over, or pass another --out") from None
        if state.get("fingerprint") != fingerprint:
            raise CharRNNError(f"{self.out} holds the results of a different sweep (its trials, "
                               f"configs, corpora or rungs differ from {self.plan.path}); pass "
                               f"another --out, or delete {self.out} to start over")
        state["records"] = {name: list(state["records"].get(name, [])) for name in names}
        return state

    def _save_state(self) -> None:
        self.state["records"] = self.records
        _write(self.out / STATE_NAME, (json.dumps(self.state, indent=1) + "\n").encode("utf-8"))

    def _remove_temporaries(self) -> None:
        """The temporary files a killed driver left beside the sweep's files (under the lock,
        all of them are stale); other hidden files in --out are not the sweep's and stay."""
        for path in sweep_outputs(self.out, self.plan):
            remove_stale_temporaries(path)

    def _paths(self, name: str, log_suffix: str = ".jsonl") -> dict[str, Path]:
        return {"log": self.trials_dir / f"{name}{log_suffix}",
                "best": self.trials_dir / f"{name}.best.npz",
                "checkpoint": self.trials_dir / f"{name}.npz"}

    def _last_ok(self, name: str) -> dict | None:
        oks = [record for record in self.records.get(name, []) if record["status"] == "ok"]
        return oks[-1] if oks else None

    def recover(self) -> None:
        """Finish or undo a commit a killed driver left half done; drop records whose
        checkpoint is gone or changed (those trials are trained again, to the same result)."""
        for trial in self.plan.trials:
            name = trial.name
            pending = sorted(self.trials_dir.glob(f"{name}.*.new"))
            pending = [path for path in pending if path.name.split(".")[0] == name]
            last = self._last_ok(name)
            new_checkpoint = self.trials_dir / f"{name}.npz.new"
            forward = (last is not None and new_checkpoint.exists()
                       and _sha256(new_checkpoint.read_bytes()) == last["sha256"])
            for path in sorted(pending, key=lambda p: p == new_checkpoint):  # checkpoint last
                if forward:
                    os.replace(path, path.with_suffix(""))
                else:
                    with contextlib.suppress(OSError):
                        path.unlink()
            if last is None:
                continue
            checkpoint = self.trials_dir / f"{name}.npz"
            try:
                intact = _sha256(checkpoint.read_bytes()) == last["sha256"]
            except OSError:
                intact = False
            if not intact:
                self.report("warning", f"warning: {checkpoint} is missing or changed; trial "
                                       f"{name} is trained again from the start")
                self.records[name] = []
                self._save_state()

    # what is done and what is next
    def done_count(self) -> int:
        return sum(len(records) for records in self.records.values())

    def next_rung(self) -> RungView | None:
        views = rung_views(self.plan, self.records)
        last = views[-1]
        return last if last.missing else None

    def task_arguments(self, trial: Trial, rung: int, corpora: dict[str, bytes],
                       threads: int) -> tuple:
        steps = self.plan.steps(trial, rung)
        paths = self._paths(trial.name)
        config = trial.config.replace(training={"out": str(paths["checkpoint"]), "steps": steps})
        checkpoint = log = None
        if rung > 0:
            checkpoint = paths["checkpoint"].read_bytes()
            if _sha256(checkpoint) != self._last_ok(trial.name)["sha256"]:
                raise CharRNNError(f"{paths['checkpoint']} changed while the sweep ran; "
                                   f"rerun the sweep")
            suffix = "." + trial.config.training.log_format
            logfile = self._paths(trial.name, suffix)["log"]
            log = logfile.read_text(encoding="utf-8") if logfile.exists() else None
        corpus = trial.config.data.corpus
        return (trial.name, config.to_yaml(), steps, Path(corpus).name, corpora[corpus],
                checkpoint, log, threads)

    # commits
    def commit(self, trial: Trial, rung: int, result: dict) -> None:
        previous = self.records[trial.name][:rung]
        seconds = sum(record.get("seconds") or 0.0 for record in previous) + result["seconds"]
        paths = self._paths(trial.name, result["log_suffix"])
        files = [(paths["log"], result["log"].encode("utf-8"))]
        if result["best"] is not None:
            files.append((paths["best"], result["best"]))
        files.append((paths["checkpoint"], result["checkpoint"]))
        for path, data in files:
            _write(path.with_name(path.name + ".new"), data)
        record = {"rung": rung, "steps": result["step"], "val_loss": result["val_loss"],
                  "train_loss": result["train_loss"], "seconds": round(seconds, 3),
                  "status": "ok", "sha256": _sha256(result["checkpoint"]),
                  "worker": result.get("worker")}
        self.records[trial.name] = [*previous, record]
        self._save_state()
        for path, _ in files:
            os.replace(path.with_name(path.name + ".new"), path)
        self.write_results()

    def commit_failure(self, trial: Trial, rung: int, error: str) -> None:
        previous = self.records[trial.name][:rung]
        record = {"rung": rung, "steps": self.plan.steps(trial, rung), "val_loss": None,
                  "train_loss": None, "seconds": round(sum(r.get("seconds") or 0.0
                                                           for r in previous), 3),
                  "status": "failed", "error": error, "sha256": None}
        self.records[trial.name] = [*previous, record]
        self._save_state()
        self.write_results()

    # results
    def rows(self) -> list[dict]:
        """One row per trial and rung trained, in trial then rung order, with its status."""
        views = rung_views(self.plan, self.records)
        promoted = {view.index: {t.name for t in view.promoted}
                    for view in views if view.promoted is not None}
        rows = []
        for trial in self.plan.trials:
            for record in self.records.get(trial.name, []):
                rung = record["rung"]
                if record["status"] != "ok":
                    status = "failed"
                elif rung == self.plan.rung_count - 1:
                    status = "done"
                elif rung in promoted:
                    status = "promoted" if trial.name in promoted[rung] else "pruned"
                else:
                    status = "trained"  # its rung is not decided yet
                row = {"trial": trial.name, **trial.values, "steps": record["steps"],
                       "val_loss": record["val_loss"], "train_loss": record["train_loss"],
                       "seconds": record["seconds"], "status": status}
                if record.get("error"):
                    row["error"] = record["error"]
                rows.append(row)
        return rows

    def ranking(self) -> list[dict]:
        """Each trial's last row, best first: furthest rung, then validation loss, then index;
        failed trials last."""
        index = {trial.name: trial.index for trial in self.plan.trials}
        last = {row["trial"]: row for row in self.rows()}  # rows come in rung order

        def key(row: dict):
            depth = len(self.records[row["trial"]])
            return (row["status"] == "failed", -depth, _loss_key(row["val_loss"]),
                    index[row["trial"]])

        return sorted(last.values(), key=key)

    def write_results(self) -> None:
        rows = self.rows()
        columns = ["trial", *self.plan.keys, *RESULT_COLUMNS]
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
        _write(self.out / "results.csv", text.getvalue().encode("utf-8"))
        lines = "".join(json.dumps(row) + "\n" for row in rows)
        _write(self.out / "results.jsonl", lines.encode("utf-8"))
        ranking = self.ranking()
        leader = ranking[0] if ranking and ranking[0]["status"] != "failed" else None
        if leader is not None:
            key = (leader["trial"], leader["steps"])
            if key != self._best_written or not (self.out / "best.npz").exists():
                paths = self._paths(leader["trial"])
                source = paths["best"] if paths["best"].exists() else paths["checkpoint"]
                _write(self.out / "best.npz", source.read_bytes())
                self._best_written = key


# --- running -----------------------------------------------------------------------------------

@dataclass
class SweepOutcome:
    out: Path
    plan: SweepPlan
    rows: list[dict]  # results.csv, in order
    ranking: list[dict]  # each trial's last row, best first
    trained: int  # trial-rungs trained by this run
    reused: int  # trial-rungs found finished in --out
    seconds: float
    failed: list[dict] = field(default_factory=list)

    @property
    def winner(self) -> dict | None:
        return self.ranking[0] if self.ranking and self.ranking[0]["status"] != "failed" else None


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM reached the driver; what finished is written in `out`."""

    def __init__(self, signum: int, out: Path, done: int, total: int):
        self.signum, self.out, self.done, self.total = signum, out, done, total
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}: {done} of about "
                         f"{total} trial-rungs are finished in {out}")


class _Signals:
    """SIGINT/SIGTERM become a flag the driver loop checks between completions (main thread)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._catch)
        return self

    def _catch(self, signum, frame):
        self.signum = self.signum or signum

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class _Stop(Exception):
    pass


@dataclass
class _Task:
    trial: Trial
    rung: int
    attempts: int = 0
    last_error: str = ""


class _Runner:
    """Submits trial-rungs to executors from `make_executor`, replacing a broken one."""

    def __init__(self, make_executor: Callable[[], Executor], retries: int):
        self.make_executor = make_executor
        self.retries = retries
        self.executor: Executor | None = None
        self.generation = 0
        self.pending: dict[Future, tuple[_Task, int]] = {}
        self.trained = 0

    def _executor(self) -> Executor:
        if self.executor is None:
            self.executor = self.make_executor()
            self.generation += 1
        return self.executor

    def _drop_executor(self, generation: int) -> None:
        """Give up a broken executor (a local pool whose worker died), ending its workers."""
        if self.executor is not None and generation == self.generation:
            executor, self.executor = self.executor, None
            _stop_executor(executor)

    def submit(self, task: _Task, arguments: tuple) -> None:
        for _ in range(self.retries + 2):
            executor = self._executor()
            try:
                future = executor.submit(train_trial, *arguments)
            except BrokenExecutor:
                self._drop_executor(self.generation)
                continue
            self.pending[future] = (task, self.generation)
            return
        raise CharRNNError("the worker pool keeps breaking before a trial starts; check the "
                           "workers' memory and logs")

    def abort(self) -> None:
        for future in self.pending:
            future.cancel()
        executor, self.executor = self.executor, None
        if executor is not None:
            _stop_executor(executor)

    def close(self) -> None:
        executor, self.executor = self.executor, None
        if executor is not None:
            with contextlib.suppress(Exception):
                executor.shutdown(wait=True)


def _stop_executor(executor: Executor) -> None:
    """End an executor now: a local pool's workers are terminated, a Dask executor's tasks
    cancelled."""
    stop = getattr(executor, "stop", None)
    with contextlib.suppress(Exception):
        if stop is not None:
            stop()
        else:
            executor.shutdown(wait=False)


def run_sweep(plan: SweepPlan, out: str | Path, make_executor: Callable[[], Executor], *,
              resume: bool = False, threads: int = 1, retries: int = DEFAULT_RETRIES,
              progress: bool | None = None,
              report: Callable[[str, str], None] | None = None) -> SweepOutcome:
    """Train the plan's trials through executors from make_executor(), writing `out`.

    Trial-rungs already finished in `out` are not trained again. A task whose worker died (or
    whose pool broke) is resubmitted up to `retries` times; a trial whose training raises
    CharRNNError (e.g. it diverged) is recorded as failed and drops out. Raises SweepInterrupted
    on SIGINT/SIGTERM (after stopping the workers) and CharRNNError when a rung cannot be
    completed.
    """
    from tqdm import tqdm

    report = report or (lambda kind, text: print(text, file=sys.stderr))
    out = Path(out)
    started = time.perf_counter()
    check_sweep_outputs(plan, out)
    corpora: dict[str, bytes] = {}
    for trial in plan.trials:
        path = trial.config.data.corpus
        if path not in corpora:
            try:  # once, bounded for a pipe or device (plumbing.reading.Reading)
                corpora[path] = read_bytes(path, "corpus")
            except (CharRNNError, OSError) as error:
                reason = str(error) if isinstance(error, CharRNNError) else (
                    f"corpus {path} cannot be read ({error.strerror or error})")
                raise CharRNNError(f"{reason} (trial {trial.name})") from None
    store = _Store(out, plan, plan_fingerprint(plan, corpora), resume, report)
    runner = _Runner(make_executor, retries)
    reused = store.done_count()
    bar = None
    try:
        store.write_results()
        bar = tqdm(total=sum(plan.planned()), initial=reused, unit="trial-rung",
                   desc="sweep", file=sys.stderr, dynamic_ncols=True,
                   disable=progress is False or (progress is None and not sys.stderr.isatty()))

        def say(kind: str, text: str) -> None:
            bar.clear()
            report(kind, text)
            bar.refresh()

        with _Signals() as signals:
            try:
                while (view := store.next_rung()) is not None:
                    bar.total = store.done_count() + _remaining(plan, view)
                    bar.refresh()
                    lost = _run_rung(plan, store, runner, view, corpora, threads, signals, bar,
                                     say)
                    if lost:
                        names = ", ".join(f"{task.trial.name}" for task in lost)
                        raise CharRNNError(
                            f"{len(lost)} trial-rung(s) could not be trained ({names}) after "
                            f"{retries + 1} attempts each; last error: {lost[-1].last_error}. "
                            f"The finished ones are saved in {out}; rerun the same command to "
                            f"retry them")
            except _Stop:
                runner.abort()
                raise SweepInterrupted(signals.signum, out, store.done_count(),
                                       bar.total) from None
    except BaseException:
        runner.abort()  # an error stops the sweep now, not after the trials in flight
        raise
    finally:
        if bar is not None:
            bar.close()
        runner.close()
        store.close()
    rows = store.rows()
    return SweepOutcome(out, plan, rows, store.ranking(), runner.trained, reused,
                        time.perf_counter() - started,
                        [row for row in rows if row["status"] == "failed"])


def _remaining(plan: SweepPlan, view: RungView) -> int:
    """Trial-rungs still to train if none fails: the missing ones of this rung and the rest."""
    count = len(view.missing)
    entered = len(view.entered)
    for _ in range(view.index + 1, plan.rung_count):
        entered = survivors(entered, plan.keep)
        count += entered
    return count


def _run_rung(plan: SweepPlan, store: _Store, runner: _Runner, view: RungView,
              corpora: dict[str, bytes], threads: int, signals: _Signals, bar,
              say: Callable[[str, str], None]) -> list[_Task]:
    """Train the rung's missing trials; returns those that failed on the workers every time."""
    queue = [_Task(trial, view.index) for trial in view.missing]
    lost: list[_Task] = []
    while queue or runner.pending:
        if signals.signum is not None:
            raise _Stop
        while queue:
            task = queue.pop(0)
            runner.submit(task, store.task_arguments(task.trial, task.rung, corpora, threads))
        done, _ = wait(list(runner.pending), timeout=0.25, return_when=FIRST_COMPLETED)
        for future in sorted(done, key=lambda f: runner.pending[f][0].trial.index):
            task, generation = runner.pending.pop(future)
            trial = task.trial
            try:
                result = future.result()
            except CharRNNError as error:  # the trial itself is bad (diverged, too large, ...)
                store.commit_failure(trial, task.rung, str(error))
                say("warning", f"trial {trial.name} failed at "
                               f"{plan.steps(trial, task.rung)} steps: {error}")
                bar.update(1)
                continue
            except (CancelledError, Exception) as error:  # the worker died, or the pool broke
                if isinstance(error, BrokenExecutor):
                    runner._drop_executor(generation)
                task.attempts += 1
                task.last_error = " ".join(f"{type(error).__name__}: {error}".split())
                if task.attempts > runner.retries:
                    lost.append(task)
                else:
                    queue.append(task)
                continue
            store.commit(trial, task.rung, result)
            runner.trained += 1
            if task.rung == 0:
                for note in result["notes"]:
                    say("warning", f"trial {trial.name}: {note}")
            bar.update(1)
    return lost


# --- reporting ---------------------------------------------------------------------------------

def format_table(plan: SweepPlan, rows: list[dict], ranked: bool = True) -> str:
    """A plain-text table of result rows, with a rank column when `ranked`."""
    columns = ["trial", *plan.keys, *RESULT_COLUMNS]
    header = (["rank"] if ranked else []) + columns
    body = []
    for number, row in enumerate(rows, 1):
        cells = [str(number)] if ranked else []
        for column in columns:
            value = row.get(column)
            if value is None:
                cells.append("-")
            elif column in ("val_loss", "train_loss"):
                cells.append(f"{value:.4f}")
            elif column == "seconds":
                cells.append(f"{value:.1f}")
            else:
                cells.append(str(value))
        body.append(cells)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    numeric = {"rank", "steps", "val_loss", "train_loss", "seconds"}
    lines = []
    for line in [header, *body]:
        lines.append("  ".join(cell.rjust(width) if name in numeric or _is_number(cell)
                               else cell.ljust(width)
                               for cell, width, name in zip(line, widths, header)).rstrip())
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def describe_plan(plan: SweepPlan) -> str:
    """What the sweep will train: its trials and the rungs."""
    rows = [{"trial": trial.name, **trial.values, "steps": trial.config.training.steps}
            for trial in plan.trials]
    columns = ["trial", *plan.keys, "steps"]
    widths = [max(len(str(row[c])) for row in [dict(zip(columns, columns)), *rows])
              for c in columns]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(columns, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)).rstrip())
    if plan.rungs:
        counts = plan.planned()
        lines.append(f"halving: rungs {', '.join(map(str, plan.rungs))} steps, keep {plan.keep:g}"
                     f": {' -> '.join(map(str, counts))} trials, {sum(counts)} trial-rungs")
    return "\n".join(lines)

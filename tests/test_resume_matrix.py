"""Exact resume for every model and optimizer: a run interrupted by a signal at a random step and
resumed ends with the weights, optimizer state, carried state and counters of the uninterrupted
run, bit for bit.

README promise: "exactly resumable"; docs/models.md: "A run stopped at step N and resumed to N+M
gives the same weights, optimizer state and carried state as N+M steps uninterrupted", and
docs/commands.md: "Ctrl-C or SIGTERM saves a checkpoint at the current step", for every cell,
stacked layers, dropout, every optimizer and both precisions.

The whole matrix (cell x layers x dropout x optimizer x dtype, 72 runs) is interrupted in process:
`train()` sends its own process SIGINT or SIGTERM from the progress report of a random step, so
the real handler, the real interrupt save and the real `--resume` path run. A seeded subset that
holds every value of every factor is interrupted from outside: `python -m charrnn train` in a
subprocess, signalled once its log shows the random step (marked slow).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from charrnn.config import Config
from charrnn.train import TrainingInterrupted, train
from conftest import NAMES, SHAKESPEARE

CELLS = ("rnn", "lstm", "gru")
LAYERS = (1, 2)
DROPOUTS = (0.0, 0.3)
OPTIMIZERS = ("adagrad", "sgd", "adam")
DTYPES = ("float32", "float64")
SIGNALS = (signal.SIGINT, signal.SIGTERM)
MATRIX = list(itertools.product(CELLS, LAYERS, DROPOUTS, OPTIMIZERS, DTYPES))
STEPS = 7  # the uninterrupted run's length; interruptions land at a random step before it
LR = {"adagrad": 0.1, "sgd": 0.05, "adam": 0.01}
HANG_GUARD = 600  # seconds: only a hung process ever waits this long
# what a resumed run carries on (rng_state: line order and samples; the rest are counters)
RESUMED_META = ("step", "rng_state", "chars_seen", "optimizer_t", "stream_position",
                "stream_started", "evals_since_best")


def ident(case) -> str:
    cell, layers, dropout, optimizer, dtype = case
    return f"{cell}-{layers}l-drop{dropout:g}-{optimizer}-{dtype}"


def corpora(directory: Path) -> dict[str, Path]:
    """A few hundred names and 3,000 characters of Shakespeare: enough for a handful of steps."""
    names = directory / "names.txt"
    names.write_text("\n".join(NAMES.read_text(encoding="utf-8").splitlines()[::20]) + "\n",
                     encoding="utf-8")
    text = directory / "text.txt"
    text.write_text(SHAKESPEARE.read_text(encoding="utf-8")[:3000], encoding="utf-8")
    return {"lines": names, "stream": text}


def case_config(case, index: int, files: dict[str, Path], out: Path) -> Config:
    """A tiny model of the case; the data mode alternates, so both modes meet every factor
    (stream carries the hidden state across the interruption, lines the batch order's RNG)."""
    cell, layers, dropout, optimizer, dtype = case
    mode = ("stream", "lines")[index % 2]
    return Config().replace(
        data={"corpus": str(files[mode]), "mode": mode, "val_fraction": 0.2},
        model={"cell": cell, "num_layers": layers, "hidden_size": 6, "dropout": dropout,
               "dtype": dtype},
        training={"batch_size": 3, "seq_length": 5, "steps": STEPS, "optimizer": optimizer,
                  "lr": LR[optimizer], "momentum": 0.9 if optimizer == "sgd" else 0.0,
                  "clip_mode": ("value", "norm")[index % 3 == 0], "clip": 1.0, "seed": index,
                  "eval_every": STEPS, "eval_max_chars": 50, "sample_every": 1,
                  "sample_length": 2, "checkpoint_every": 0, "threads": 1, "out": str(out)})


def saved_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def assert_same_run(resumed_path: Path, whole_path: Path) -> None:
    """Weights, optimizer state and carried state bit for bit; the counters and RNG state equal."""
    resumed, whole = saved_arrays(resumed_path), saved_arrays(whole_path)
    assert set(resumed) == set(whole)
    assert any(name.startswith("opt.") for name in whole)
    for name in sorted(set(whole) - {"config", "meta"}):
        assert resumed[name].dtype == whole[name].dtype, name
        assert np.array_equal(resumed[name], whole[name]), name  # exactly, not approximately
    resumed_meta, whole_meta = json.loads(str(resumed["meta"])), json.loads(str(whole["meta"]))
    for key in RESUMED_META:
        assert resumed_meta.get(key) == whole_meta.get(key), key


def interrupt_at(step: int, signum: int):
    """A report callback that sends this process `signum` when the run prints its sample at
    `step` (sample_every 1; samples draw from their own generator, so they change nothing):
    the trainer's own handler catches it between steps, as it would a Ctrl-C."""
    def report(kind: str, text: str) -> None:
        if kind == "sample" and f"sample at step {step} " in text:
            os.kill(os.getpid(), signum)
    return report


def quiet(kind: str, text: str) -> None:
    pass


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return corpora(tmp_path_factory.mktemp("corpora"))


@pytest.mark.parametrize("index", range(len(MATRIX)), ids=[ident(case) for case in MATRIX])
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(index, files, tmp_path):
    case = MATRIX[index]
    rng = random.Random(index)
    stop, signum = rng.randrange(1, STEPS), rng.choice(SIGNALS)
    whole = case_config(case, index, files, tmp_path / "whole.npz")
    train(whole, progress=False, report=quiet)

    split = case_config(case, index, files, tmp_path / "split.npz")
    with pytest.raises(TrainingInterrupted) as caught:
        train(split, progress=False, report=interrupt_at(stop, signum))
    assert (caught.value.signum, caught.value.step) == (signum, stop)
    train(split, resume=tmp_path / "split.npz", progress=False, report=quiet)
    assert_same_run(tmp_path / "split.npz", tmp_path / "whole.npz")


def test_a_changed_update_breaks_the_comparison(files, tmp_path, monkeypatch):
    """The comparison can fail: a resumed run whose Adam forgets its step count (bias
    correction restarts) differs from the uninterrupted run."""
    from charrnn.optim import Optimizer

    index = MATRIX.index(("gru", 2, 0.3, "adam", "float64"))
    case = MATRIX[index]
    train(case_config(case, index, files, tmp_path / "whole.npz"), progress=False, report=quiet)
    split = case_config(case, index, files, tmp_path / "split.npz")
    with pytest.raises(TrainingInterrupted):
        train(split, progress=False, report=interrupt_at(3, signal.SIGINT))
    load_state = Optimizer.load_state
    monkeypatch.setattr(Optimizer, "load_state",
                        lambda self, arrays, t: load_state(self, arrays, 0))
    train(split, resume=tmp_path / "split.npz", progress=False, report=quiet)
    with pytest.raises(AssertionError):
        assert_same_run(tmp_path / "split.npz", tmp_path / "whole.npz")


# --- real signals from outside, to `python -m charrnn train` -----------------------------------

FOREVER = 1_000_000  # a step count no interrupted run reaches before its signal
SUBSET = 4  # >= the most values any factor has, so every value of every factor appears


def covering_subset(seed: int, size: int) -> list[tuple]:
    """`size` cases (and signals) in which each value of each factor appears at least once:
    every factor's values shuffled by a seeded generator and cycled."""
    rng = random.Random(seed)
    columns = []
    for values in (CELLS, LAYERS, DROPOUTS, OPTIMIZERS, DTYPES, SIGNALS):
        shuffled = list(values)
        rng.shuffle(shuffled)
        columns.append([shuffled[i % len(shuffled)] for i in range(size)])
    return list(zip(*columns))


SUBPROCESS_CASES = covering_subset(seed=22, size=SUBSET)


def test_the_subset_covers_every_value_of_every_factor():
    for column, values in enumerate((CELLS, LAYERS, DROPOUTS, OPTIMIZERS, DTYPES, SIGNALS)):
        assert {case[column] for case in SUBPROCESS_CASES} == set(values)


def child_env() -> dict[str, str]:
    return dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def charrnn(*args) -> list[str]:
    return [sys.executable, "-m", "charrnn", *(str(arg) for arg in args)]


def logged_steps(log: Path) -> list[int]:
    if not log.exists():
        return []
    steps = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            pass  # a line being written
    return steps


@pytest.mark.slow
@pytest.mark.parametrize("index", range(SUBSET),
                         ids=[f"{ident(c[:5])}-{signal.Signals(c[5]).name}"
                              for c in SUBPROCESS_CASES])
def test_real_signal_to_a_training_process_then_resume_equals_the_uninterrupted_run(
        index, files, tmp_path):
    *case, signum = SUBPROCESS_CASES[index]
    stop = random.Random(index).randrange(2, 6)
    config = case_config(tuple(case), index, files, Path("run.npz"))
    # a log line every step, to see the step reached
    config = config.replace(training={"steps": FOREVER, "eval_every": 1, "eval_max_chars": 20,
                                      "sample_every": 0})
    (tmp_path / "run.yaml").write_text(config.to_yaml(), encoding="utf-8")
    process = subprocess.Popen(charrnn("train", "--config", "run.yaml", "--no-progress"),
                               cwd=tmp_path, env=child_env(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + HANG_GUARD  # a hang guard, not a speed bound
        while max(logged_steps(tmp_path / "run.jsonl"), default=0) < stop:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "training never reached the step"
            time.sleep(0.005)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=HANG_GUARD)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum], stderr
    reached = max(logged_steps(tmp_path / "run.jsonl"))
    assert reached >= stop
    target = reached + 3
    resumed = subprocess.run(charrnn("train", "--resume", "run.npz", "--steps", target,
                                     "--no-progress"),
                             cwd=tmp_path, env=child_env(), stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=HANG_GUARD)
    assert resumed.returncode == 0, resumed.stderr
    whole = config.replace(training={"steps": target, "out": str(tmp_path / "whole.npz")})
    train(whole, progress=False, report=quiet)
    assert_same_run(tmp_path / "run.npz", tmp_path / "whole.npz")

"""The training loop: batches, truncated BPTT, clipping, the update, evaluation and checkpoints.

`train(config)` reads top to bottom like nanoGPT's train.py, and `Run.train_step` is one step:
forward, backward, clip, update. Everything a resumed run needs to continue bit for bit
(weights, optimizer state, step, RNG state, stream position, carried hidden state, best
validation loss) goes into the checkpoint. The checks made before any work are in
charrnn.runfiles, the learning-rate schedule in charrnn.schedule, the log records in
charrnn.plumbing.metrics_log and signal handling in charrnn.plumbing.signals.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.checkpoint import (
    Checkpoint,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from charrnn.config import Config
from charrnn.corpus import (
    Corpus,
    DocumentBatches,
    LineBatches,
    StreamBatches,
    fingerprint_difference,
    load_corpus,
)
from charrnn.errors import CharRNNError
from charrnn.evaluate import evaluate_split
from charrnn.model import Model, ModelSpec, param_shapes
from charrnn.optim import Layout, clip_gradients, grad_norm, make_optimizer
from charrnn.plumbing.metrics_log import (  # noqa: F401 - sigma_max_W_hh, largest_singular_value: re-exported
    add_step,
    append_record,
    largest_singular_value,
    metrics_record,
    new_window,
    progress_line,
    sigma_max_W_hh,
    trim_log,
)
from charrnn.plumbing.paths import check_writable, same_file
from charrnn.plumbing.signals import EXIT_CODES, SignalCatcher, TrainingInterrupted  # noqa: F401
from charrnn.plumbing.terminal import printable
from charrnn.plumbing.threads import blas_threads, choose_threads
from charrnn.plumbing.workspace import Workspace
from charrnn.runfiles import (  # noqa: F401 - best_path, log_path, run_outputs: re-exported
    best_path,
    check_memory,
    check_run_files,
    checkpoint_bytes,
    log_path,
    mode_warnings,
    output_lock,
    run_outputs,
    stability_warnings,
)
from charrnn.sample import sample_names, sample_text
from charrnn.schedule import (
    BEHIND,
    HARD_CAP,
    Rates,
    describe_plan,
    lr_scale,
    plan,
    planned_seconds,
    schedule_jump,
    time_cap,
)

INIT_FROM_MAY_CHANGE = ("dropout", "dtype")  # model keys a run started --init-from may set
DROPOUT_STREAM = 0xD50  # dropout masks come from default_rng([seed, step, DROPOUT_STREAM])
_output_lock = output_lock  # the name tests knew


@dataclass
class TrainResult:
    out: Path
    step: int
    best_val_loss: float | None
    final_val_loss: float | None
    final_train_loss: float | None
    seconds: float
    chars_per_second: float
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)


def train(config: Config, *, resume: str | Path | None = None,
          init_from: str | Path | None = None, progress: bool | None = None,
          report: Callable[[str, str], None] | None = None,
          plan_evaluations: bool = False) -> TrainResult:
    """Train as the config says; report(kind, text) receives 'warning', 'info', 'progress' and
    'sample' lines (by default they go to stderr).

    With training.time_budget, a new run first plans its steps and schedule at the rate it
    measures (charrnn.schedule.plan; plan_evaluations: the plan also chooses eval_every and
    eval_max_chars); a resumed one continues the plan in its checkpoint.

    progress: show a tqdm bar (None: only when stderr is a terminal; without the bar, one
    plain 'progress' line is reported per evaluation instead).
    Raises CharRNNError for bad input and TrainingInterrupted after saving on SIGINT/SIGTERM.
    """
    report = report or _to_stderr
    training, out = config.training, Path(config.training.out)
    for warning in stability_warnings(config):
        report("warning", f"warning: {warning}")
    check_run_files(config, resume, init_from)  # before any work, not after it
    started = time.perf_counter()
    with output_lock(out), SignalCatcher() as signals:
        run, threads = _set_up(config, resume, init_from, out, report, started, plan_evaluations)
        training = run.config.training  # a time budget has fixed steps and schedule
        log = _Log(run, out, progress, report,
                   fresh=resume is None or not same_file(resume, out))
        signals.training()  # from here a signal is a flag: the loop saves, then stops
        if run.step >= training.steps:
            log.close()
            report("info", f"{resume or 'the run'} is already at step {run.step}, at or past "
                           f"--steps {training.steps}; nothing to do")
            return TrainResult(out, run.step, run.best_val_loss, None, None, 0.0, 0.0)
        stop, cap = None, time_cap(training, run.step)
        try:
            with blas_threads(threads.threads):
                while run.step < training.steps and stop is None:
                    nll_sum, count, norm, clip_fraction = run.train_step()
                    log.step(nll_sum, count, norm, clip_fraction)
                    last = run.step >= training.steps
                    out_of_time = 0 < cap <= log.elapsed()
                    if run.step % training.eval_every == 0 or last or out_of_time:
                        stop = log.evaluate() or ("time" if out_of_time else None)
                    if training.sample_every and run.step % training.sample_every == 0:
                        log.sample()
                    if (training.checkpoint_every and run.step % training.checkpoint_every == 0
                            or last or stop or signals.signum is not None):
                        save_checkpoint(out, run.checkpoint())
                    if signals.signum is not None:
                        raise TrainingInterrupted(signals.signum, out, run.step)
        finally:
            log.close()
        return log.result(stop)


class Run:
    """The state of one training run; `checkpoint()` and `start_run(resume=...)` round-trip all
    of it."""

    def __init__(self, config: Config, corpus: Corpus, params: dict, step: int = 0,
                 meta: dict | None = None, optimizer_state: dict | None = None,
                 state: dict | None = None):
        self.config = config
        self.corpus = corpus
        training = config.training
        dtype = config.model.dtype
        spec = ModelSpec.from_config(config.model, len(corpus.vocab))
        Model(spec, params)  # refuses missing, unexpected or misshapen parameters by name
        self.layout = Layout(param_shapes(spec))
        self.flat_params = self.layout.flatten(params, dtype=dtype)
        self._params = ParamViews(self.layout.views(self.flat_params))
        self.model = Model(spec, self._params)
        self.flat_grad = np.empty_like(self.flat_params)
        self.grads = self.layout.views(self.flat_grad)  # the backward writes straight into these
        self.workspace = Workspace()
        self.notes = [f"warning: {note}" for note in corpus.notes]  # found while setting up
        self.sigma_vectors: dict = {}  # power-iteration vectors for the logged sigma_max
        self.optimizer = make_optimizer(self.layout, training, dtype)
        meta = meta or {}
        if optimizer_state:
            self.optimizer.load_state(optimizer_state, int(meta.get("optimizer_t", step)))
        self.step = step
        self.rng = np.random.default_rng(training.seed)
        if "rng_state" in meta:
            self.rng.bit_generator.state = meta["rng_state"]
        self.best_val_loss = meta.get("best_val_loss")  # best on the eval_every grid
        # the best of every evaluation: what OUT.best.npz holds
        self.best_file_loss = meta.get("best_file_loss", self.best_val_loss)
        self.evals_since_best = int(meta.get("evals_since_best", 0))
        self.chars_seen = int(meta.get("chars_seen", 0))
        if corpus.mode == "stream":
            several = len(corpus.train.documents()) > 1  # a folder: a fresh state at each file
            self.batches = (DocumentBatches if several else StreamBatches)(
                corpus.train, training.batch_size, training.seq_length,
                where=f"corpus {config.data.corpus}")
            self.batches.position = int(meta.get("stream_position", 0))
            self.batches.started = bool(meta.get("stream_started", False))
            self.state = self.model.zero_state(training.batch_size)
            if state is not None and all(a.shape == self.state[0][0].shape
                                         for a in state.values()):
                self.state = self.model.state_from_arrays(state)
        else:
            self.batches = LineBatches(corpus.train, training.batch_size, self.rng)
            self.state = None

    def train_step(self) -> tuple[float, int, float, float]:
        """One step of truncated BPTT; returns (nll sum, characters, grad norm, clip fraction)."""
        training = self.config.training
        batch = self.batches.next()
        batch_size = batch.x.shape[1]
        if self.state is None or batch.reset:
            state0 = self.model.zero_state(batch_size)
        elif batch.reset_lanes is not None and batch.reset_lanes.any():  # a document begins
            keep = ~batch.reset_lanes[:, None]
            state0 = tuple(tuple(a * keep for a in layer) for layer in self.state)
        else:
            state0 = self.state
        # masks from (seed, step) alone, so a resumed run drops exactly the same units
        dropout_rng = (np.random.default_rng([training.seed, self.step, DROPOUT_STREAM])
                       if self.config.model.dropout > 0 else None)
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite is caught just below
            result = self.model.loss_and_grads(
                batch.x, batch.y, state0, batch.mask, dropout_rng=dropout_rng,
                grads_out=self.grads, workspace=self.workspace, check=False)
        nll_sum, count = result.nll_sum, result.count
        grad = self.flat_grad  # self.grads are views of it
        norm = grad_norm(grad)
        if not (math.isfinite(nll_sum) and math.isfinite(norm)):
            what = "loss" if not math.isfinite(nll_sum) else "gradient norm"
            raise CharRNNError(
                f"step {self.step + 1}: the {what} is not finite; the weights were not updated "
                f"and the last saved checkpoint is kept. Lower training.lr, or turn clipping on "
                f"(training.clip_mode: value)")
        clip_fraction = clip_gradients(grad, training.clip_mode, training.clip, norm)
        self.optimizer.scale = lr_scale(self.config.training, self.step)
        with np.errstate(over="ignore", invalid="ignore"):  # save_checkpoint refuses inf weights
            self.optimizer.update(self.flat_params, grad)
        if self.state is not None:
            self.state = result.state_last  # carried to the next chunk, not backpropagated
        self.step += 1
        self.chars_seen += count
        return nll_sum, count, norm, clip_fraction

    @property
    def params(self) -> ParamViews:
        """The weights the forward reads and the optimizer updates (views of one flat vector)."""
        return self._params

    @params.setter
    def params(self, values: dict) -> None:
        for name, value in values.items():
            self._params[name] = value

    def meta(self) -> dict:
        meta = {"step": self.step, "rng_state": self.rng.bit_generator.state,
                "best_val_loss": self.best_val_loss, "best_file_loss": self.best_file_loss,
                "evals_since_best": self.evals_since_best,
                "chars_seen": self.chars_seen, "optimizer_t": self.optimizer.t}
        if isinstance(self.batches, StreamBatches | DocumentBatches):
            meta["stream_position"] = self.batches.position
            meta["stream_started"] = self.batches.started
        if self.corpus.fingerprint is not None:
            meta["corpus"] = self.corpus.fingerprint  # --resume refuses another text
        # data.corpus is kept as given; this finds it from any folder (checkpoint.training_corpus)
        meta["corpus_path"] = os.path.abspath(self.config.data.corpus)
        return meta

    def checkpoint(self) -> Checkpoint:
        state = None if self.state is None else self.model.state_to_arrays(self.state)
        return Checkpoint(self.config, self.corpus.vocab, self.params,
                          self.optimizer.state_arrays(), state, self.meta())

    def evaluate(self, max_chars: int | None) -> float | None:
        if self.corpus.val is None:
            return None
        return evaluate_split(self.model, self.corpus.val, self.corpus.mode, max_chars=max_chars)

    def sample(self, rng: np.random.Generator) -> str:
        if self.corpus.mode == "lines":
            return "\n".join(sample_names(self.model, self.corpus.vocab, 8, rng))
        state0 = None if self.state is None else self.model.select_state(self.state, [0])
        return sample_text(self.model, self.corpus.vocab, self.config.training.sample_length,
                           rng, state0=state0)


def _set_up(config: Config, resume, init_from, out: Path, report, started: float,
            plan_evaluations: bool):
    """The run (fresh, resumed or from weights), planned if it has a time budget, and its BLAS
    threads; the start line said."""
    for path in (out, best_path(out), log_path(out, config.training.log_format)):
        remove_stale_temporaries(path)
    run = start_run(config, resume, init_from)
    check_writable(run_outputs(config)[0], need_bytes=checkpoint_bytes(run))
    for note in [*run.notes, *mode_warnings(run.corpus, config)]:
        report("warning", note)
    spec = run.model.spec
    threads = choose_threads(config.training.threads, config.training.batch_size,
                             spec.hidden_size, run.model.cell.gates)
    training = config.training
    if training.time_budget > 0 and resume is not None and training.step_seconds == 0:
        raise CharRNNError(f"--resume {resume}: the run was not planned for a time budget, and "
                           f"a resumed run never re-plans; resume without --time, or start a "
                           f"new run with --time")
    if training.time_budget > 0 and resume is None:  # rates in the config: injected, not measured
        rates = (Rates(training.step_seconds, training.eval_seconds) if training.step_seconds
                 else measure_rates(run, threads.threads, started, plan_evaluations))
        planned = plan(training, training.time_budget, rates, plan_evaluations)
        if plan_evaluations and rates.eval_chars_per_second:
            planned["eval_max_chars"] = _eval_chars(run, training.time_budget, rates)
        run.config = config.replace(training=planned)
    report("info", start_line(run, threads, out))
    return run, threads


EVAL_SHARE = 0.005  # of the budget, for each evaluation when the plan chooses its size
CALIBRATION_SECONDS, CALIBRATION_EVAL_CHARS = 3.0, 20_000


def measure_rates(run: Run, threads: int, started: float, plan_evaluations: bool) -> Rates:
    """Seconds a training step and an evaluation take on this machine, with the run's threads,
    measured on a throwaway copy of the run (its steps are not the run's: the run's weights do
    not depend on how long measuring took). Saves are timed once and shared out: one per
    checkpoint_every steps, one (the best) per evaluation."""
    training = run.config.training
    copy = Run(run.config, run.corpus, {name: value.copy() for name, value in run.params.items()})
    with blas_threads(threads):
        copy.train_step()  # the first step allocates the workspace
        steps, begun = 0, time.perf_counter()
        while steps < 3 or (time.perf_counter() - begun < CALIBRATION_SECONDS and steps < 500):
            copy.train_step()
            steps += 1
        step_seconds = (time.perf_counter() - begun) / steps
        eval_chars = _eval_size(run, training.eval_max_chars)
        sample = min(eval_chars, CALIBRATION_EVAL_CHARS)
        begun = time.perf_counter()
        copy.evaluate(sample)
        eval_rate = sample / max(time.perf_counter() - begun, 1e-9)  # characters a second
    eval_seconds = eval_chars / eval_rate
    with tempfile.TemporaryDirectory() as folder:
        begun = time.perf_counter()
        save_checkpoint(Path(folder) / "measure.npz", copy.checkpoint())
        save_seconds = time.perf_counter() - begun
    if training.checkpoint_every:
        step_seconds += save_seconds / training.checkpoint_every
    if plan_evaluations:
        eval_seconds = min(eval_seconds, EVAL_SHARE * training.time_budget)
    return Rates(step_seconds, eval_seconds + save_seconds, time.perf_counter() - started,
                 eval_rate)


def _eval_size(run: Run, max_chars: int | None) -> int:
    if run.corpus.val is None:
        return 0
    return min(run.corpus.val.characters, max_chars or run.corpus.val.characters)


def _eval_chars(run: Run, budget: float, rates: Rates) -> int | None:
    """An evaluation's characters when the plan chooses them: all of the validation split if
    that takes at most EVAL_SHARE of the budget, else as many as do (at least 2,000)."""
    fits = int(rates.eval_chars_per_second * EVAL_SHARE * budget)
    return None if fits >= _eval_size(run, None) else max(fits, 2000)


class _Log:
    """The loop's bookkeeping: the progress bar, the sums between evaluations, the metrics log,
    the best checkpoint, patience, samples, and the result."""

    def __init__(self, run: Run, out: Path, progress: bool | None, report, fresh: bool):
        from tqdm import tqdm

        self.run, self.out, self.report = run, out, report
        training = run.config.training
        self.logfile = log_path(out, training.log_format)
        self.fresh = fresh  # a resumed run continues its own log; another --out starts one
        if not fresh:
            trim_log(self.logfile, run.step, training.log_format)
        self.show_bar = progress is True or (progress is None and sys.stderr.isatty())
        self.bar = tqdm(total=training.steps, initial=run.step, disable=not self.show_bar,
                        unit="step", dynamic_ncols=True, file=sys.stderr)
        self.started = time.perf_counter()
        self.first_step, self.chars = run.step, 0
        self.window = new_window()
        self.history: list[dict] = []
        self.val_loss = None
        self.behind = False  # said once: the run has fallen BEHIND x behind its plan

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def step(self, nll_sum: float, count: int, norm: float, clip_fraction: float) -> None:
        self.chars += count
        add_step(self.window, nll_sum, count, norm, clip_fraction)
        self.bar.update(1)

    def evaluate(self) -> str | None:
        """Evaluate, log, keep the best; "patience" when the run should stop early."""
        run, training = self.run, self.run.config.training
        elapsed = self.elapsed()
        self.val_loss = run.evaluate(training.eval_max_chars)
        record = metrics_record(run, self.window, self.val_loss, self.elapsed())
        self.history.append(record)
        try:
            append_record(self.logfile, record, training.log_format, self.fresh)
        except CharRNNError:
            save_checkpoint(self.out, run.checkpoint())  # keep the steps so far
            raise
        self.fresh = False
        val = "-" if self.val_loss is None else f"{self.val_loss:.3f}"
        self.bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=val,
                             cps=f"{record['chars_per_sec']:.0f}")
        if not self.show_bar:
            self.report("progress", progress_line(record, training, elapsed,
                                                  run.step - self.first_step))
        self.window = new_window()
        self._judge_pace()
        return "patience" if _judge(run, self.val_loss, self.out) else None

    def _judge_pace(self) -> None:
        training = self.run.config.training
        if not training.step_seconds or not training.time_budget or self.behind:
            return
        expected = planned_seconds(training, self.run.step - self.first_step, len(self.history))
        if self.elapsed() > BEHIND * expected and self.elapsed() > 5:
            self.behind = True
            self.report("warning", f"warning: step {self.run.step} came after "
                                   f"{self.elapsed():.0f} s where the plan expected "
                                   f"{expected:.0f} s: this machine is slower now than when "
                                   f"the plan was measured; the run keeps its "
                                   f"{training.steps} steps, but stops at "
                                   f"{HARD_CAP:g} x the budget")

    def sample(self) -> None:
        run = self.run
        text = run.sample(np.random.default_rng([run.config.training.seed, run.step]))
        self.bar.clear()
        self.report("sample", f"----- sample at step {run.step} -----\n{text}\n-----")
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()

    def result(self, stop: str | None) -> TrainResult:
        run, training = self.run, self.run.config.training
        if stop == "patience":
            self.report("info", f"stopped early at step {run.step} of {training.steps}: no "
                                f"better validation loss in {training.patience} evaluations")
        elif stop == "time":
            cap = time_cap(training, self.first_step)
            what = ("time limit" if cap == training.time_limit else
                    f"hard cap ({HARD_CAP:g} x the plan's {training.time_budget:g} s budget)")
            self.report("info", f"stopped at the {cap:g} s {what} at step {run.step} of "
                                f"{training.steps}")
        seconds = self.elapsed()
        final_train = self.history[-1]["train_loss"] if self.history else None
        return TrainResult(self.out, run.step, run.best_file_loss, self.val_loss, final_train,
                           seconds, self.chars / max(seconds, 1e-9), stop == "patience",
                           self.history)


def _to_stderr(kind: str, text: str) -> None:
    """Paths and config values in a line are escaped; a sample keeps its line breaks."""
    print(printable(text, newlines=kind == "sample"), file=sys.stderr)


def _judge(run: Run, val_loss: float | None, out: Path) -> bool:
    """Keep the best checkpoint and count evaluations for patience; True: stop early.

    The best checkpoint (OUT.best.npz) is the best of every evaluation, so it is never worse
    than the last one reported. Patience counts only evaluations on the eval_every grid: a
    run's last step or time limit may fall off the grid, and a resumed run must decide as the
    uninterrupted one would.
    """
    training = run.config.training
    if val_loss is None:
        return False
    if run.step % training.eval_every == 0:
        if run.best_val_loss is None or val_loss < run.best_val_loss:
            run.best_val_loss = val_loss
            run.evals_since_best = 0
        else:
            run.evals_since_best += 1
    if run.best_file_loss is None or val_loss < run.best_file_loss:
        run.best_file_loss = val_loss
        save_checkpoint(best_path(out), run.checkpoint())  # its meta is this moment's
    return bool(training.patience) and run.evals_since_best >= training.patience


def start_line(run: Run, threads, out: Path) -> str:
    """What the run is: corpus, mode, size, model, parameters, threads, output."""
    corpus, spec = run.corpus, run.model.spec
    characters = corpus.characters
    parameters = sum(value.size for value in run.params.values())
    begun = f"resuming at step {run.step}; " if run.step else ""
    return (f"{begun}corpus {run.config.data.corpus} ({corpus.mode} mode, {characters:,} "
            f"characters, vocabulary {len(corpus.vocab)}); model {spec.describe()}, "
            f"{parameters:,} parameters, {spec.dtype}; {threads.describe()}; writing {out}"
            + (f"; {describe_plan(run.config.training)}" if run.config.training.step_seconds
               and run.config.training.time_budget else ""))


class ParamViews(dict):
    """Parameters that are views of the trainer's flat vector. Assigning an entry copies into
    its view, so the optimizer goes on training what the forward reads."""

    def __setitem__(self, name: str, value) -> None:
        if name not in self:
            raise CharRNNError(f"no parameter {name!r}; this model has {', '.join(self)}")
        target = dict.__getitem__(self, name)
        value = np.asarray(value)
        if value.shape != target.shape:
            raise CharRNNError(f"parameter {name} has shape {target.shape}, got {value.shape}")
        target[...] = value


def _load_for(config: Config, vocab=None) -> Corpus:
    data = config.data
    corpus = load_corpus(data.corpus, data.mode, data.val_fraction, config.training.seed,
                         vocab=vocab, encoding=data.encoding, errors=data.errors,
                         use_cache=data.cache, val_path=data.val or None)
    check_memory(config, corpus)
    return corpus



def start_run(config: Config, resume: str | Path | None = None,
              init_from: str | Path | None = None, params: dict | None = None) -> Run:
    """A fresh run, one resumed from a checkpoint, one whose weights come from a checkpoint, or
    one that starts from weights in memory (params, named and shaped as the config's model on
    the corpus's vocabulary needs: see charrnn.model.param_shapes)."""
    if params is not None:
        return Run(config, _load_for(config), params)
    if resume is not None:
        saved = load_checkpoint(resume)
        if saved.config.model != config.model:
            raise CharRNNError(f"--resume {resume}: the model settings differ from the "
                               f"checkpoint's; resume without changing model.*")
        corpus = _load_for(config, saved.vocab)
        changed = fingerprint_difference(saved.meta.get("corpus"), corpus.fingerprint)
        if changed:
            raise CharRNNError(f"--resume {resume}: the corpus {config.data.corpus} is not the "
                               f"text this run was trained on ({changed}); a resumed run must "
                               f"see the same text. To train these weights on this text, start "
                               f"a new run from them: charrnn train --init-from {resume} "
                               f"--corpus {config.data.corpus} --out NEW.npz")
        run = Run(config, corpus, saved.params, saved.step, saved.meta, saved.optimizer_state,
                  saved.state)
        if saved.config.training.optimizer != config.training.optimizer:
            run.notes.append(f"warning: the checkpoint was trained with "
                             f"{saved.config.training.optimizer}; {config.training.optimizer} "
                             f"starts from fresh optimizer state")
        jump = schedule_jump(saved.config.training, config.training, saved.step)
        if jump:
            run.notes.append(f"warning: {jump}")
        return run
    if init_from is not None:
        saved = load_checkpoint(init_from)
        model = saved.config.to_dict()["model"]  # the weights fix the model, but for these:
        model.update({key: getattr(config.model, key) for key in INIT_FROM_MAY_CHANGE})
        config = config.replace(model=model)
        corpus = _load_for(config, saved.vocab)
        return Run(config, corpus, saved.params)
    corpus = _load_for(config)
    spec = ModelSpec.from_config(config.model, len(corpus.vocab))
    model = Model.init(spec, np.random.default_rng(config.training.seed))
    return Run(config, corpus, model.params)


class Trainer:
    """Training one step at a time, for a notebook: no files are written unless you save().

        trainer = Trainer(load_config("names", ["model.hidden_size=32"]))
        for _ in range(100):
            loss = trainer.step()          # nats/char of this step's batch
        trainer.evaluate()                 # nats/char on the validation split
        trainer.model                      # the Model being trained (its params are live)
    """

    def __init__(self, config: Config, params: dict | None = None):
        self.run = start_run(config, params=params)
        self.losses: list[float] = []

    @property
    def model(self) -> Model:
        return self.run.model

    def step(self) -> float:
        nll_sum, count, _, _ = self.run.train_step()
        self.losses.append(nll_sum / max(count, 1))
        return self.losses[-1]

    def evaluate(self) -> float | None:
        return self.run.evaluate(None)

    def save(self, path: str | Path) -> Path:
        save_checkpoint(path, self.run.checkpoint())
        return Path(path)

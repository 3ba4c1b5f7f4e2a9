"""The training loop: batches, truncated BPTT, clipping, the update, evaluation and checkpoints.

`train(config)` reads top to bottom like nanoGPT's train.py. Everything a resumed run needs to
continue bit for bit (weights, optimizer state, step, RNG state, stream position, carried hidden
state, best validation loss) goes into the checkpoint.
"""

from __future__ import annotations

import math
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.cells import CELLS
from charrnn.checkpoint import (
    Checkpoint,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from charrnn.config import Config, TrainingConfig
from charrnn.corpus import Corpus, LineBatches, StreamBatches, fingerprint_difference, load_corpus
from charrnn.errors import CharRNNError, Interrupted
from charrnn.evaluate import LN2, evaluate_split
from charrnn.model import Model, ModelSpec, param_shapes
from charrnn.optim import Layout, clip_gradients, grad_norm, make_optimizer
from charrnn.plumbing.metrics_log import append_record, log_output, read_log, trim_log
from charrnn.plumbing.paths import Output, check_outputs, check_writable, same_file
from charrnn.plumbing.threads import blas_threads, choose_threads
from charrnn.plumbing.workspace import Workspace
from charrnn.plumbing.writing import output_lock
from charrnn.sample import sample_names, sample_text

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
INIT_FROM_MAY_CHANGE = ("dropout", "dtype")  # model keys a run started --init-from may set
DROPOUT_STREAM = 0xD50  # dropout masks come from default_rng([seed, step, DROPOUT_STREAM])


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM arrived; the checkpoint at the current step was saved first."""

    def __init__(self, signum: int, path: Path, step: int):
        self.signum, self.path, self.step = signum, path, step
        self.exit_code = EXIT_CODES.get(signum, 1)
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")


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


def best_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".best" + out.suffix)


def log_path(out: str | Path, log_format: str = "jsonl") -> Path:
    out = Path(out)
    return out.with_name(out.stem + "." + log_format)


def lr_scale(training: TrainingConfig, step: int) -> float:
    """The schedule's factor on lr for the update after `step` steps. step: lr_decay once every
    lr_decay_every steps (eval_every when unset). cosine: (1 + cos(pi * step / steps)) / 2, from
    1 for the first update to 0 at step `steps`, after the last one (PyTorch's
    CosineAnnealingLR with T_max = steps, eta_min = 0, stepped after each update), so a run with
    a known budget anneals all the way. A function of the step alone, so resume is exact."""
    if training.lr_schedule == "cosine":
        done = min(step, training.steps) / max(training.steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * done))
    every = training.lr_decay_every or training.eval_every
    return training.lr_decay ** (step // every)


SCHEDULE_KEYS = ("lr", "lr_schedule", "steps", "lr_decay", "lr_decay_every", "eval_every")


def schedule_jump(before: TrainingConfig, now: TrainingConfig, step: int) -> str | None:
    """What a resumed run's changed schedule does to lr at the step it resumes from, if
    anything (a cosine schedule moves with `steps`; any schedule with lr and its own keys)."""
    was, will = lr_scale(before, step) * before.lr, lr_scale(now, step) * now.lr
    if step >= now.steps or math.isclose(was, will, rel_tol=1e-9, abs_tol=1e-15):
        return None
    changed = ", ".join(f"{key} {getattr(before, key)} -> {getattr(now, key)}"
                        for key in SCHEDULE_KEYS if getattr(before, key) != getattr(now, key))
    return (f"the learning-rate schedule differs from the checkpoint's ({changed}): lr jumps "
            f"from {was:.3g} to {will:.3g} at step {step}")


def stability_warnings(config: Config) -> list[str]:
    """Settings measured to diverge (see README, 'Choosing a learning rate'), and settings that
    do nothing."""
    warnings = []
    model, training = config.model, config.training
    if training.optimizer == "adagrad" and training.lr >= 0.02 and model.hidden_size >= 256:
        warnings.append(
            f"adagrad with lr {training.lr} at hidden_size {model.hidden_size} is known to "
            f"diverge (its first step moves every weight by about lr); try training.lr=0.01 or "
            f"training.optimizer=adam with lr 0.002")
    if training.clip_mode == "none" or training.clip == 0:
        warnings.append("gradient clipping is off; exploding gradients can turn the loss into NaN")
    if training.lr_schedule == "cosine" and (training.lr_decay != 1.0
                                             or training.lr_decay_every is not None):
        warnings.append("training.lr_decay and lr_decay_every do nothing with lr_schedule: "
                        "cosine (it decays lr to 0 at training.steps); drop them or use "
                        "lr_schedule: step")
    return warnings


LONG_LINE, LONG_MEDIAN_LINE = 1000, 200  # characters: past these, lines are not examples


def mode_warnings(corpus: Corpus, config: Config) -> list[str]:
    """Lines mode on a text that does not look like one example a line (the rule in README)."""
    if corpus.mode != "lines" or len(corpus.train.lengths) == 0:
        return []
    longest, median = int(corpus.train.lengths.max()), float(np.median(corpus.train.lengths))
    if longest <= LONG_LINE and median <= LONG_MEDIAN_LINE:
        return []
    return [f"warning: {config.data.corpus} does not look like one example a line (longest "
            f"line {longest:,} characters, median {median:,.0f}), yet lines mode trains on "
            f"each line from a fresh state; for running text pass --mode stream"]


class _SignalCatcher:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps (main thread only).

    While the run is being set up (the corpus read, decoded and cached, a checkpoint loaded),
    nothing is saved yet, so a signal stops it at once: Interrupted, even out of a blocking read
    of a pipe that no one writes to. `training()` switches to the flag for the loop.
    """

    def __init__(self):
        self.signum: int | None = None
        self.setting_up = True
        self._previous = {}

    def training(self) -> None:
        self.setting_up = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                self._previous[signum] = signal.signal(signum, self._catch)
        return self

    def _catch(self, signum, frame):
        if self.setting_up:
            raise Interrupted(signum, f"interrupted by {signal.Signals(signum).name} before "
                                      f"training started; nothing was trained or saved")
        self.signum = self.signum or signum  # a second Ctrl-C during the save changes nothing

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _output_lock(out: Path):
    """An exclusive lock beside the checkpoint, so two runs never write the same file."""
    return output_lock(out, f"another charrnn train is writing {out}; wait for it, or pass "
                            f"another --out")


def run_outputs(config: Config) -> list[Output]:
    """The files a run writes: the checkpoint, its best, and the metrics log."""
    out = Path(config.training.out)
    hint = "choose another --out or free the path"
    return [Output(out, "checkpoint", hint, instead="pass another --out"),
            Output(best_path(out), "the best checkpoint", "choose another --out", derived=True),
            log_output(log_path(out, config.training.log_format))]


def check_run_files(config: Config, resume: str | Path | None = None,
                    init_from: str | Path | None = None) -> None:
    """Before any work: no output is an input (the corpus, --init-from, a --resume written
    elsewhere), every output is a regular file charrnn may replace, and each can be written."""
    out = Path(config.training.out)
    inputs = {"the corpus": config.data.corpus, "--init-from": init_from,
              "--resume": None if resume is None or same_file(resume, out) else resume}
    outputs = run_outputs(config)
    check_outputs(inputs, outputs)
    for item in outputs:
        check_writable(item)
    for item in outputs[:2]:  # an existing file there is replaced: it must be a checkpoint
        if item.path.exists() and item.path.stat().st_size and not same_file(item.path, resume):
            from charrnn.checkpoint import is_checkpoint
            if not is_checkpoint(item.path):
                raise CharRNNError(f"{item.what} {item.path} exists and is not a charrnn "
                                   f"checkpoint; charrnn will not replace it: {item.hint}")
    read_log(outputs[2].path, config.training.log_format)  # refuses a file that is not ours


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
        self.notes: list[str] = []  # warnings for the user, found while setting up
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
            self.batches = StreamBatches(corpus.train, training.batch_size, training.seq_length,
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
        if isinstance(self.batches, StreamBatches):
            meta["stream_position"] = self.batches.position
            meta["stream_started"] = self.batches.started
        if self.corpus.fingerprint is not None:
            meta["corpus"] = self.corpus.fingerprint  # --resume refuses another text
        return meta

    def checkpoint(self) -> Checkpoint:
        state = None if self.state is None else self.model.state_to_arrays(self.state)
        return Checkpoint(self.config, self.corpus.vocab, self.params,
                          self.optimizer.state_arrays(), state, self.meta())

    def train_step(self) -> tuple[float, int, float, float]:
        """One step of truncated BPTT; returns (nll sum, characters, grad norm, clip fraction)."""
        training = self.config.training
        batch = self.batches.next()
        batch_size = batch.x.shape[1]
        if self.state is None or batch.reset:
            state0 = self.model.zero_state(batch_size)
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

    def evaluate(self, max_chars: int | None) -> float | None:
        if self.corpus.val is None:
            return None
        training = self.config.training
        return evaluate_split(self.model, self.corpus.val, self.corpus.mode,
                              batch_size=max(training.batch_size, 64),
                              seq_length=training.seq_length, max_chars=max_chars)

    def sample(self, rng: np.random.Generator) -> str:
        if self.corpus.mode == "lines":
            return "\n".join(sample_names(self.model, self.corpus.vocab, 8, rng))
        state0 = None if self.state is None else self.model.select_state(self.state, [0])
        return sample_text(self.model, self.corpus.vocab, self.config.training.sample_length,
                           rng, state0=state0)


def _load_for(config: Config, vocab=None) -> Corpus:
    data = config.data
    corpus = load_corpus(data.corpus, data.mode, data.val_fraction, config.training.seed,
                         vocab=vocab, encoding=data.encoding, errors=data.errors,
                         use_cache=data.cache)
    _check_memory(config, corpus)
    return corpus


def _check_memory(config: Config, corpus: Corpus) -> None:
    """Refuse, before allocating, a run whose arrays cannot fit in this machine's memory."""
    model, training = config.model, config.training
    H, V, B = model.hidden_size, len(corpus.vocab), training.batch_size
    T = (training.seq_length if corpus.mode == "stream"
         else int(corpus.train.lengths.max()) + 1)  # lines: the longest line and its boundary
    spec = ModelSpec.from_config(model, V)
    weights = sum(math.prod(shape) for shape in param_shapes(spec).values())
    gates = CELLS[model.cell].gates
    # weights, flat copy, gradient, flat gradient, two optimizer slots; per step and layer the
    # (T, B, G*H) gate pre-activations and their gradient, a few (T, B, H) states, gradients
    # and dropout masks, and the (T * B, V) softmax
    per_layer = T * B * H * (2 * gates + 5)
    need = np.dtype(model.dtype).itemsize * (6 * weights + model.num_layers * per_layer
                                             + T * B * V)
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        available = min(available, soft)
    if need > available:
        raise CharRNNError(
            f"this run needs about {need / 2**30:.1f} GiB of memory (hidden_size {H}, "
            f"vocabulary {V}, batch_size {B} x {T} steps), more than the "
            f"{available / 2**30:.1f} GiB available; lower model.hidden_size or "
            f"training.batch_size")


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


def train(config: Config, *, resume: str | Path | None = None,
          init_from: str | Path | None = None, progress: bool | None = None,
          report: Callable[[str, str], None] | None = None) -> TrainResult:
    """Train as the config says; report(kind, text) receives 'warning', 'info', 'progress' and
    'sample' lines (by default they go to stderr).

    progress: show a tqdm bar (None: only when stderr is a terminal; without the bar, one
    plain 'progress' line is reported per evaluation instead).
    Raises CharRNNError for bad input and TrainingInterrupted after saving on SIGINT/SIGTERM.
    """
    from tqdm import tqdm

    report = report or _to_stderr
    training = config.training
    out = Path(training.out)
    for warning in stability_warnings(config):
        report("warning", f"warning: {warning}")
    check_run_files(config, resume, init_from)  # before any work, not after it
    logfile = log_path(out, training.log_format)
    with _output_lock(out), _SignalCatcher() as signals:
        for path in (out, best_path(out), logfile):
            remove_stale_temporaries(path)
        run = start_run(config, resume, init_from)
        check_writable(run_outputs(config)[0], need_bytes=_checkpoint_bytes(run))
        for note in [*run.notes, *mode_warnings(run.corpus, config)]:
            report("warning", note)
        spec = run.model.spec
        threads = choose_threads(training.threads, training.batch_size, spec.hidden_size,
                                 run.model.cell.gates)
        report("info", start_line(run, threads, out))
        # a resumed run continues its own log; written to another --out, it starts one
        fresh_log = resume is None or not same_file(resume, out)
        if not fresh_log:
            trim_log(logfile, run.step, training.log_format)
        signals.training()  # from here a signal is a flag: the loop saves, then stops
        if run.step >= training.steps:
            report("info", f"{resume or 'the run'} is already at step {run.step}, at or past "
                           f"--steps {training.steps}; nothing to do")
            return TrainResult(out, run.step, run.best_val_loss, None, None, 0.0, 0.0)
        show_bar = progress is True or (progress is None and sys.stderr.isatty())
        bar = tqdm(total=training.steps, initial=run.step, disable=not show_bar, unit="step",
                   dynamic_ncols=True, file=sys.stderr)
        started = time.perf_counter()
        first_step, run_chars = run.step, 0
        window = _new_window()
        history: list[dict] = []
        val_loss = None
        stopped_early = out_of_time = False
        try:
            with blas_threads(threads.threads):
                while run.step < training.steps:
                    nll_sum, count, norm, clip_fraction = run.train_step()
                    run_chars += count
                    for key, value in (("nll", nll_sum), ("chars", count), ("norm", norm),
                                       ("clip", clip_fraction), ("steps", 1)):
                        window[key] += value
                    bar.update(1)
                    last = run.step >= training.steps
                    elapsed = time.perf_counter() - started
                    out_of_time = training.time_limit > 0 and elapsed >= training.time_limit
                    if run.step % training.eval_every == 0 or last or out_of_time:
                        val_loss = run.evaluate(training.eval_max_chars)
                        record = _metrics(run, window, val_loss, time.perf_counter() - started)
                        history.append(record)
                        try:
                            append_record(logfile, record, training.log_format, fresh_log)
                        except CharRNNError:
                            save_checkpoint(out, run.checkpoint())  # keep the steps so far
                            raise
                        fresh_log = False
                        bar.set_postfix(loss=f"{record['train_loss']:.3f}",
                                        val=("-" if val_loss is None else f"{val_loss:.3f}"),
                                        cps=f"{record['chars_per_sec']:.0f}")
                        if not show_bar:
                            report("progress", progress_line(record, training, elapsed,
                                                             run.step - first_step))
                        window = _new_window()
                        stopped_early = _judge(run, val_loss, out)
                    if training.sample_every and run.step % training.sample_every == 0:
                        sample = run.sample(np.random.default_rng([training.seed, run.step]))
                        bar.clear()
                        report("sample",
                               f"----- sample at step {run.step} -----\n{sample}\n-----")
                        bar.refresh()
                    if (training.checkpoint_every and run.step % training.checkpoint_every == 0
                            or last or stopped_early or out_of_time
                            or signals.signum is not None):
                        save_checkpoint(out, run.checkpoint())
                    if signals.signum is not None:
                        raise TrainingInterrupted(signals.signum, out, run.step)
                    if stopped_early or out_of_time:
                        break
        finally:
            bar.close()
        if stopped_early:
            report("info", f"stopped early at step {run.step} of {training.steps}: no better "
                           f"validation loss in {training.patience} evaluations")
        elif out_of_time:
            report("info", f"stopped at the {training.time_limit:g} s time limit at step "
                           f"{run.step} of {training.steps}")
        seconds = time.perf_counter() - started
        final_train = history[-1]["train_loss"] if history else None
        return TrainResult(out, run.step, run.best_file_loss, val_loss, final_train, seconds,
                           run_chars / max(seconds, 1e-9), stopped_early, history)


def _to_stderr(kind: str, text: str) -> None:
    print(text, file=sys.stderr)


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
    characters = len(corpus.train.tokens) + (0 if corpus.val is None
                                             else len(corpus.val.tokens))
    parameters = sum(value.size for value in run.params.values())
    begun = f"resuming at step {run.step}; " if run.step else ""
    return (f"{begun}corpus {run.config.data.corpus} ({corpus.mode} mode, {characters:,} "
            f"characters, vocabulary {len(corpus.vocab)}); model {spec.describe()}, "
            f"{parameters:,} parameters, {spec.dtype}; {threads.describe()}; writing {out}")


def progress_line(record: dict, training, elapsed: float, steps_done: int) -> str:
    """One plain line per evaluation, for logs and pipes where a bar cannot redraw."""
    val = "-" if record["val_loss"] is None else f"{record['val_loss']:.4f}"
    left = elapsed / max(steps_done, 1) * (training.steps - record["step"])
    if training.time_limit > 0:
        left = min(left, max(training.time_limit - elapsed, 0.0))
    return (f"step {record['step']}/{training.steps}: train {record['train_loss']:.4f}, "
            f"val {val} nats/char; {record['chars_per_sec']:,.0f} chars/s; "
            f"{_duration(left)} left")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _checkpoint_bytes(run: Run) -> int:
    """About what the first checkpoint takes on disk: its arrays and a little for the rest."""
    arrays = [*run.params.values(), *run.optimizer.state_arrays().values()]
    if run.state is not None:
        arrays += list(run.model.state_to_arrays(run.state).values())
    return sum(array.nbytes for array in arrays) + 64 * 1024


def _new_window() -> dict:
    """Sums over the steps since the last evaluation, for its log record."""
    return {"nll": 0.0, "chars": 0, "norm": 0.0, "clip": 0.0, "steps": 0,
            "t0": time.perf_counter()}


def _metrics(run: Run, window: dict, val_loss: float | None, elapsed: float) -> dict:
    """One log record; `seconds` is wall time since this invocation's first step (training,
    evaluations and saves): the x axis of a loss-against-time curve."""
    seconds = max(time.perf_counter() - window["t0"], 1e-9)
    train_loss = window["nll"] / max(window["chars"], 1)
    return {
        "step": run.step,
        "chars_seen": run.chars_seen,
        "train_loss": train_loss,
        "train_bpc": train_loss / LN2,
        "val_loss": val_loss,
        "val_bpc": None if val_loss is None else val_loss / LN2,
        "lr": run.optimizer.rate,
        "grad_norm": window["norm"] / max(window["steps"], 1),
        "clip_fraction": window["clip"] / max(window["steps"], 1),
        **sigma_max_W_hh(run.model, run.sigma_vectors),
        "chars_per_sec": window["chars"] / seconds,
        "seconds": round(elapsed, 3),
    }


EXACT_SVD_ENTRIES = 1 << 18  # up to a 512 x 512 W_hh the full SVD is cheap (a few ms)


def sigma_max_W_hh(model: Model, vectors: dict | None = None) -> dict[str, float]:
    """Largest singular value of each layer's W_hh: sigma_max_W_hh (layer 0), _l1, _l2, ...

    vectors: the power iterations' last right singular vectors, kept between evaluations so a
    large W_hh (an LSTM's (2048, 512)) costs a few matrix-vector products instead of a full SVD
    (180 ms an evaluation)."""
    vectors = {} if vectors is None else vectors
    values = {}
    for layer in range(model.spec.num_layers):
        key = "sigma_max_W_hh" + (f"_l{layer}" if layer else "")
        W_hh = model.layer_params(layer)["W_hh"].astype(np.float64)
        if W_hh.size <= EXACT_SVD_ENTRIES:
            values[key] = float(np.linalg.norm(W_hh, 2))
        else:
            values[key], vectors[key] = largest_singular_value(W_hh, vectors.get(key))
    return values


def largest_singular_value(W: np.ndarray, start: np.ndarray | None = None, rtol: float = 1e-9,
                           max_iterations: int = 1000) -> tuple[float, np.ndarray]:
    """sigma_max(W) by power iteration on W^T W: v <- W^T W v / ||W^T W v||, sigma = ||W v||.

    Each estimate is a lower bound that rises to sigma_max; it stops when an iteration changes
    it by less than rtol. start: a previous right singular vector (converges in a few steps)."""
    v = np.ones(W.shape[1]) if start is None or start.shape != (W.shape[1],) else start
    v = v / np.linalg.norm(v)
    sigma = 0.0
    for _ in range(max_iterations):
        u = W @ v
        estimate = float(np.linalg.norm(u))
        if estimate == 0.0:
            return 0.0, v
        v = W.T @ (u / estimate)
        v /= np.linalg.norm(v)
        if estimate - sigma <= rtol * estimate:
            return estimate, v
        sigma = estimate
    return sigma, v

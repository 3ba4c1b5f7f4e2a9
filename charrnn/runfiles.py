"""What a run checks before it does any work: its files (the checkpoint, its best, the metrics
log: where each goes, that none is an input, that each may be written), its memory, and
settings known to fail or to do nothing."""

from __future__ import annotations

import math
import os
import resource
from pathlib import Path

import numpy as np

from charrnn.cells import CELLS
from charrnn.config import Config
from charrnn.corpus import Corpus
from charrnn.errors import CharRNNError
from charrnn.model import ModelSpec, param_shapes
from charrnn.plumbing.metrics_log import log_output, read_log
from charrnn.plumbing.paths import Output, check_outputs, check_writable, same_file
from charrnn.plumbing.writing import output_lock as _lock


def best_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".best" + out.suffix)


def log_path(out: str | Path, log_format: str = "jsonl") -> Path:
    out = Path(out)
    return out.with_name(out.stem + "." + log_format)


def run_outputs(config: Config) -> list[Output]:
    """The files a run writes: the checkpoint, its best, and the metrics log."""
    out = Path(config.training.out)
    hint = "choose another --out or free the path"
    return [Output(out, "checkpoint", hint, instead="pass another --out"),
            Output(best_path(out), "the best checkpoint", "choose another --out", derived=True),
            log_output(log_path(out, config.training.log_format))]


def output_lock(out: Path):
    """An exclusive lock beside the checkpoint, so two runs never write the same file."""
    return _lock(out, f"another charrnn train is writing {out}; wait for it, or pass another "
                      f"--out")


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


def checkpoint_bytes(run) -> int:
    """About what a Run's first checkpoint takes on disk: its arrays and a little for the rest."""
    arrays = [*run.params.values(), *run.optimizer.state_arrays().values()]
    if run.state is not None:
        arrays += list(run.model.state_to_arrays(run.state).values())
    return sum(array.nbytes for array in arrays) + 64 * 1024


def check_memory(config: Config, corpus: Corpus) -> None:
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

"""What a run checks before it does any work: its files (the checkpoint, its best, the metrics
log: where each goes, that none is an input, that each may be written), its memory, and
settings known to fail or to do nothing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from charrnn.cells import CELLS
from charrnn.config import Config
from charrnn.corpus import Corpus
from charrnn.errors import CharRNNError
from charrnn.model import ModelSpec, param_shapes
from charrnn.plumbing.metrics_log import log_output, read_log
from charrnn.plumbing.paths import Output, check_outputs, check_writable, same_file
from charrnn.plumbing.portability import memory_limit
from charrnn.plumbing.terminal import shown
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


# settings that say where a run writes and how fast it goes, not which run it is
NOT_THE_RUN = ("training.out", "training.threads", "data.corpus", "data.cache")
# what a time budget's plan decides (charrnn.schedule.plan, and eval_max_chars when it chooses
# the evaluations): a planned run saves them, and the same command plans them again
PLANNED_KEYS = tuple(f"training.{name}" for name in (
    "steps", "eval_every", "eval_max_chars", "lr_schedule", "warmup", "lr_floor", "lr_decay",
    "lr_decay_every", "time_budget", "step_seconds", "eval_seconds"))
# what a resumed run cannot change: its lineage is the model, the data and the seed
LINEAGE_SECTIONS = ("model", "data")
OVERWRITE_HINT = "pass another --out, or --overwrite to replace it"


def check_lineage(config: Config, resume: str | Path | None = None) -> None:
    """Before any work: a checkpoint, best checkpoint or log at --out is replaced only by its
    own run: the run resumed from it, or a run of the same config on the same text (the same
    corpus fingerprint). Another run's is refused, naming the run it holds and the way out
    (`charrnn train --overwrite` skips this check)."""
    from charrnn.checkpoint import is_checkpoint, load_checkpoint_records

    out = Path(config.training.out)
    if resume is not None and same_file(resume, out):
        return  # continuing the run in place: its best and log are its own
    found = False
    for path, what in ((out, "checkpoint"), (best_path(out), "the best checkpoint")):
        if not path.is_file() or not is_checkpoint(path):
            continue  # nothing there; a file that is no checkpoint is refused by check_run_files
        found = True
        held, meta = load_checkpoint_records(path)
        if resume is not None:
            lineage, lineage_meta = load_checkpoint_records(resume)
            why = _config_difference(held, lineage, LINEAGE_SECTIONS, ("training.seed",))
            why = why or _text_difference(meta, lineage_meta)
        else:
            planned = PLANNED_KEYS if config.training.time_budget > 0 else ()
            why = (_config_difference(held, config, ignored=planned)
                   or _text_difference(meta, None, config))
        if why:
            further = (f"; to train it further: charrnn train --resume {path} --steps "
                       f"{config.training.steps}" if resume is None and path == out
                       and why == _config_difference(held, config, keys=("training.steps",),
                                                     sections=())
                       else "")
            raise CharRNNError(f"{what} {path} holds another run (step {meta.get('step', 0)} of "
                               f"a run on {held.data.corpus}; {why}); charrnn will not replace "
                               f"it: {OVERWRITE_HINT}{further}")
    log = log_path(out, config.training.log_format)
    if not found and (resume is None or not same_file(resume, log)) and read_log(
            log, config.training.log_format):
        raise CharRNNError(f"the metrics log {log} holds the records of a run whose checkpoint "
                           f"is not there; charrnn will not replace it: {OVERWRITE_HINT}")


def _config_difference(held: Config, now: Config, sections=None, keys=(),
                       ignored=()) -> str | None:
    """The settings in which two configs differ, as 'key then -> now', beyond NOT_THE_RUN and
    ignored; sections (and keys): only these are compared."""
    then, wanted = held.to_dict(), now.to_dict()
    changed = [f"{section}.{name} {shown(value, 40)} -> {shown(wanted[section].get(name), 40)}"
               for section, values in then.items() for name, value in values.items()
               if f"{section}.{name}" not in (*NOT_THE_RUN, *ignored)
               and (sections is None or section in sections or f"{section}.{name}" in keys)
               and wanted[section].get(name) != value]
    if not changed:
        return None
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    return f"its config differs: {', '.join(changed[:3])}{more}"


def _text_difference(meta: dict, other: dict | None, config: Config | None = None) -> str | None:
    """How the text a checkpoint was trained on differs from another checkpoint's, or from the
    corpus a new run would read (read only when it is a file or a folder of them)."""
    from charrnn.corpus import fingerprint_difference, load_corpus

    held = meta.get("corpus")
    if other is not None:
        now = other.get("corpus")
    elif held is None or not (Path(config.data.corpus).is_file()
                              or Path(config.data.corpus).is_dir()):
        return None  # an older checkpoint, or a pipe that can be read only once: the config
    else:
        data = config.data
        now = load_corpus(data.corpus, data.mode, data.val_fraction, config.training.seed,
                          encoding=data.encoding, errors=data.errors,
                          use_cache=data.cache).fingerprint  # cached: the run reads it again
    changed = fingerprint_difference(held, now)
    return f"trained on another text: {changed}" if changed else None


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
    available = memory_limit()
    if available is not None and need > available:
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

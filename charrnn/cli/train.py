"""`charrnn train`: a run from a config, a corpus and the command line's changes."""

from __future__ import annotations

import json
import signal
import stat
import sys
from pathlib import Path

import click

from charrnn.checkpoint import load_checkpoint_config, load_checkpoint_records, training_corpus
from charrnn.choose import choose
from charrnn.cli.common import SEED, default_checkpoint, examples, friendly_errors
from charrnn.config import DEFAULT_CONFIG, load_config, parse_override, with_overrides
from charrnn.config import config_path as config_file
from charrnn.corpus import corpus_text
from charrnn.plumbing.paths import check_outputs, status
from charrnn.plumbing.signals import SignalCatcher
from charrnn.plumbing.terminal import printable
from charrnn.runfiles import check_lineage, check_run_files
from charrnn.schedule import parse_duration
from charrnn.train import INIT_FROM_MAY_CHANGE, TrainingInterrupted, run_outputs
from charrnn.train import train as train_model


@click.command(name="train", epilog=examples(
    "charrnn train                                   # the shipped names config, ~15 s",
    "charrnn train --corpus my.txt --time 10m --out checkpoints/my.npz",
    "charrnn train --resume checkpoints/names.npz --steps 12000"))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), metavar="NAME|FILE",
              help=f"a shipped config's name or a YAML file [default: {DEFAULT_CONFIG}]")
@click.option("--corpus", metavar="FILE|DIR", help="text file to train on, or a directory of "
                                                   "text files, one document each (data.corpus)")
@click.option("--val", "val_file", metavar="FILE", help="held-out text to evaluate on "
                                                        "(data.val) instead of a share of the "
                                                        "corpus")
@click.option("--out", metavar="FILE", help=f"checkpoint to write (training.out); the best is "
                                            f"*.best.npz [default: {default_checkpoint()} with "
                                            f"the {DEFAULT_CONFIG} config]")
@click.option("--steps", type=int, metavar="N",
              help="the step count the run ends at (training.steps)")
@click.option("--time", "budget", metavar="DURATION",
              help="train for this long (90s, 10m, 1.5h; training.time_budget): steps and "
                   "schedule are planned at the measured rate. With --corpus and no --config "
                   "the model is chosen too [default there: 5m]")
@click.option("--seed", type=SEED, help="random seed (training.seed)")
@click.option("--resume", type=click.Path(dir_okay=False), metavar="FILE",
              help="continue a checkpoint's run (writes back to it unless --out is given)")
@click.option("--init-from", type=click.Path(dir_okay=False), metavar="FILE",
              help="start from a checkpoint's weights and vocabulary on a (new) corpus")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="override a config key, e.g. --set training.lr=0.05 (repeatable)")
@click.option("--encoding", metavar="NAME",
              help="corpus text encoding (data.encoding), e.g. latin-1 [default: utf-8]")
@click.option("--mode", type=click.Choice(["lines", "stream"]),
              help="data.mode: lines (one example a line, e.g. names) or stream (running text)")
@click.option("--threads", metavar="N|auto",
              help="BLAS threads (training.threads) [default: auto]")
@click.option("--overwrite", is_flag=True,
              help="replace the checkpoint, best checkpoint and log of another run (another "
                   "config or corpus) at --out, which train otherwise refuses")
@click.option("--progress/--no-progress", default=None,
              help="show the progress bar [default: only on a terminal; otherwise one line per "
                   "evaluation]")
@friendly_errors
def train(config_path, corpus, val_file, out, steps, budget, seed, resume, init_from, overrides,
          encoding, mode, threads, overwrite, progress):
    """Train a model (with no options: the shipped names config).

    Progress, samples and the summary go to standard error; nothing is written to standard
    output. --config takes a file or a shipped config's name (names, names-gru, names-lstm,
    shakespeare, shakespeare-lstm, min-char-rnn)."""
    if resume and config_path:
        raise click.UsageError("--resume continues with the checkpoint's own config; change "
                               "settings with --set SECTION.KEY=VALUE instead of --config")
    if resume and init_from:
        raise click.UsageError("--resume and --init-from exclude each other: --resume continues "
                               "a run, --init-from starts a new one from its weights")
    if threads is not None and threads != "auto":
        try:
            threads = int(threads)
        except ValueError:
            raise click.BadParameter(f"expected auto or a whole number, got {threads!r}",
                                     param_hint="--threads") from None
    if budget is not None and steps is not None:
        raise click.UsageError("--time plans the step count for the budget; give --time or "
                               "--steps, not both")
    seconds = None if budget is None else parse_duration(budget)
    with SignalCatcher():  # choosing reads the corpus: a signal stops it as it stops the trainer's
        chosen, choice = _choose(corpus, config_path, resume, init_from, steps, seconds, mode,
                                 encoding)
    if chosen and out is None:
        out = str(Path("checkpoints") / (Path(corpus).stem + ".npz"))
    flags = {"data.corpus": corpus, "data.val": val_file, "training.out": out or resume,
             "training.time_budget": None if chosen else seconds,
             "training.steps": steps, "training.seed": seed, "data.encoding": encoding,
             "data.mode": mode, "training.threads": threads}
    settings = [f"{key}={json.dumps(value)}" for key, value in flags.items() if value is not None]
    if resume:
        config = _resumed_config(resume, [*settings, *overrides])
    else:
        config = load_config(config_path, [*chosen, *settings, *overrides])
    if init_from:
        config = _init_from_config(config, init_from, overrides)
    if not resume:  # the config file is an input too: no output may be written over it
        check_outputs({"--config": config_file(config_path)}, run_outputs(config))
    if not overwrite:  # another run's files at --out are the user's
        check_run_files(config, resume, init_from)  # an input at --out is said first
        check_lineage(config, resume)
    try:
        if choice:
            _report("info", choice)
        result = train_model(config, resume=resume, init_from=init_from, progress=progress,
                             report=_report, plan_evaluations=bool(chosen))
    except TrainingInterrupted as stop:
        # saved; the process is ending: another Ctrl-C now must not turn into a traceback or
        # change the exit status (the trainer has put the default handlers back)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        _report("info", f"interrupted at step {stop.step}; saved {stop.path}. Resume with: "
                        f"charrnn train --resume {stop.path}")
        sys.exit(stop.exit_code)
    if not result.history:  # already at --steps: the trainer has said so
        return
    best = "-" if result.best_val_loss is None else f"{result.best_val_loss:.4f}"
    _report("info", f"step {result.step}: best val {best} nats/char; "
                    f"{result.chars_per_second:,.0f} chars/s over {result.seconds:.1f} s; saved "
                    f"{result.out}")


def _report(kind: str, text: str) -> None:
    """The trainer's lines, on stderr; paths and config values in them are escaped, and only a
    sample (the model's text) keeps its line breaks."""
    click.echo(printable(text, newlines=kind == "sample"), err=True)


def _choose(corpus, config_path, resume, init_from, steps, seconds, mode, encoding):
    """--corpus without --config (or --resume, --init-from, --steps): the mode and model that
    charrnn.choose picks for the text and the budget, as settings, and the line saying so."""
    if corpus is None or config_path or resume or init_from or steps is not None:
        return [], None
    found = status(corpus)
    if found is None or not (stat.S_ISREG(found.st_mode) or stat.S_ISDIR(found.st_mode)):
        return [], None  # a pipe or device gives its text once, to the trainer: no choosing
    return choose(corpus_text(corpus, encoding or "utf-8"), seconds, mode)


def _init_from_config(config, init_from: str, overrides):
    """--init-from: the checkpoint's model, except dropout and dtype, which a new run may change;
    any other model.* setting given on the command line cannot apply and is refused."""
    model = load_checkpoint_config(init_from).to_dict()["model"]  # the trainer reads the weights
    explicit = {}
    for item in overrides:
        section, name, _ = parse_override(item)
        if section == "model":
            explicit[name] = getattr(config.model, name)
    for name, value in explicit.items():
        if name not in INIT_FROM_MAY_CHANGE and value != model.get(name):
            raise click.UsageError(
                f"--set model.{name}={value} cannot apply with --init-from: the weights of "
                f"{init_from} fix model.{name} to {model.get(name)!r} (only "
                f"{' and '.join('model.' + k for k in INIT_FROM_MAY_CHANGE)} may change)")
    return config.replace(model={**model, **{k: v for k, v in explicit.items()
                                             if k in INIT_FROM_MAY_CHANGE}})


def _resumed_config(resume: str, overrides: list[str]):
    """The checkpoint's own config, with the command line's changes validated on top; its
    corpus found from this folder (the trainer checks its fingerprint), unless --corpus or
    --set data.corpus names another."""
    stored, meta = load_checkpoint_records(resume)
    config = with_overrides(stored, overrides, f"--resume {resume}")
    if config.data.corpus != stored.data.corpus:
        return config
    found = training_corpus(stored, meta, hint="pass its path with --corpus (it must hold the "
                                                "same text: its fingerprint is checked)")
    return config.replace(data={"corpus": found})


command = train

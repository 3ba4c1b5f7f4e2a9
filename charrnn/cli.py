"""The `charrnn` command: a thin click layer over the library; our errors become one-liners."""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
from pathlib import Path

import click
import numpy as np

from charrnn.cells import CELLS
from charrnn.checkpoint import load_checkpoint, load_checkpoint_config
from charrnn.cli_support import SEED, command_line_text, default_checkpoint, friendly_errors
from charrnn.config import DEFAULT_CONFIG, load_config, parse_override, with_overrides
from charrnn.config import config_path as config_file
from charrnn.corpus import read_text
from charrnn.errors import CharRNNError
from charrnn.evaluate import evaluate_corpus_split, evaluate_text
from charrnn.gradcheck import TOLERANCE, default_specs, run_gradcheck
from charrnn.model import ModelSpec
from charrnn.plumbing.paths import check_outputs
from charrnn.plumbing.writing import write_output
from charrnn.sample import (
    beam_names,
    beam_text,
    corpus_membership,
    encode_prime,
    sample_names,
    sample_text,
)
from charrnn.train import INIT_FROM_MAY_CHANGE, TrainingInterrupted, run_outputs
from charrnn.train import train as train_model


def _utf8_stdout() -> None:
    """Samples are UTF-8 whatever the terminal's locale says."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(encoding="utf-8", errors="replace")
            except (ValueError, OSError):  # pragma: no cover - a stream that cannot switch
                pass


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="charrnn")
def main():
    """charrnn: train, sample and check character-level RNN, LSTM and GRU models on NumPy."""
    _utf8_stdout()


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help=f"YAML config [default: {DEFAULT_CONFIG}]")
@click.option("--corpus", help="text file to train on (data.corpus)")
@click.option("--out", help="checkpoint to write (training.out); the best is *.best.npz")
@click.option("--steps", type=int, help="the step count the run ends at (training.steps)")
@click.option("--seed", type=SEED, help="random seed (training.seed)")
@click.option("--resume", type=click.Path(dir_okay=False),
              help="continue a checkpoint's run (writes back to it unless --out is given)")
@click.option("--init-from", type=click.Path(dir_okay=False),
              help="start from a checkpoint's weights and vocabulary on a (new) corpus")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="override a config key, e.g. --set training.lr=0.05 (repeatable)")
@click.option("--encoding", help="corpus text encoding (data.encoding), e.g. latin-1")
@click.option("--mode", type=click.Choice(["lines", "stream"]),
              help="data.mode: lines (one example a line, e.g. names) or stream (running text)")
@click.option("--threads", metavar="N|auto",
              help="BLAS threads (training.threads) [default: auto]")
@click.option("--progress/--no-progress", default=None,
              help="show the progress bar [default: only on a terminal; otherwise one line per "
                   "evaluation]")
@friendly_errors
def train(config_path, corpus, out, steps, seed, resume, init_from, overrides, encoding, mode,
          threads, progress):
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
    flags = {"data.corpus": corpus, "training.out": out or resume,
             "training.steps": steps, "training.seed": seed, "data.encoding": encoding,
             "data.mode": mode, "training.threads": threads}
    settings = [f"{key}={json.dumps(value)}" for key, value in flags.items() if value is not None]
    if resume:
        config = _resumed_config(resume, [*settings, *overrides])
    else:
        config = load_config(config_path, [*settings, *overrides])
    if init_from:
        config = _init_from_config(config, init_from, overrides)
    if not resume:  # the config file is an input too: no output may be written over it
        check_outputs({"--config": config_file(config_path)}, run_outputs(config))
    try:
        result = train_model(config, resume=resume, init_from=init_from, progress=progress,
                             report=lambda kind, text: click.echo(text, err=True))
    except TrainingInterrupted as stop:
        # saved; the process is ending: another Ctrl-C now must not turn into a traceback or
        # change the exit status (the trainer has put the default handlers back)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        click.echo(f"interrupted at step {stop.step}; saved {stop.path}. Resume with: "
                   f"charrnn train --resume {stop.path}", err=True)
        sys.exit(stop.exit_code)
    if not result.history:  # already at --steps: the trainer has said so
        return
    best = "-" if result.best_val_loss is None else f"{result.best_val_loss:.4f}"
    click.echo(f"step {result.step}: best val {best} nats/char; {result.chars_per_second:,.0f} "
               f"chars/s over {result.seconds:.1f} s; saved {result.out}", err=True)


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
    """The checkpoint's own config, with the command line's changes validated on top."""
    return with_overrides(load_checkpoint_config(resume), overrides, f"--resume {resume}")


@main.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="model to sample [default: the default config's training.out]")
@click.option("--num", type=click.IntRange(min=1), help="names to print, one a line "
              "[default: 20 for lines-mode models]")
@click.option("--length", type=click.IntRange(min=0), help="new characters of free text "
              "after the prime [default: 500 for stream-mode models]")
@click.option("--temperature", type=float, default=1.0, show_default=True,
              help="> 0; below 1 is more conservative, above 1 more surprising")
@click.option("--top-k", type=click.IntRange(min=1), help="sample only among the k likeliest")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), metavar="P",
              help="nucleus sampling: only among the smallest set of likeliest characters whose "
              "probability reaches P (0 < P <= 1; applied after --top-k)")
@click.option("--greedy", is_flag=True, help="always take the likeliest character (for text: "
              "the same as --beam 1)")
@click.option("--beam", type=click.IntRange(min=1), metavar="K",
              help="beam search with K beams instead of sampling: the likeliest continuation of "
              "--length characters, or the --num likeliest complete names (--num defaults to K "
              "and may not exceed it)")
@click.option("--beam-score", type=click.Choice(["total", "mean"]),
              help="how --beam ranks complete names: total log-probability (the default; "
              "favours short names) or mean log-probability per character, newline included")
@click.option("--prime", default="", help="text to start from (names: their first letters)")
@click.option("--seed", type=SEED, default=0, show_default=True, help="random seed")
@click.option("--novel", is_flag=True, help="print only distinct names that are in neither "
              "split of the training corpus; gives up (and says why) after 50 draws a name")
@click.option("--max-length", type=click.IntRange(min=1), default=100, show_default=True,
              help="longest name to generate")
@click.option("--output", type=click.Path(dir_okay=False), help="write to this file (UTF-8)")
@friendly_errors
def sample(checkpoint, num, length, temperature, top_k, top_p, greedy, beam, beam_score, prime,
           seed, novel, max_length, output):
    """Generate names (--num) or free text (--length) from a checkpoint: sampled, or the
    likeliest that beam search (--beam K) finds."""
    if num is not None and length is not None:
        raise click.UsageError("--num and --length exclude each other: --num N prints N names, "
                               "--length N prints N characters of text")
    if not (math.isfinite(temperature) and temperature > 0):
        raise click.BadParameter(f"must be a number > 0, got {temperature}",
                                 param_hint="--temperature")
    if novel and length is not None:
        raise click.UsageError("--novel filters names (--num); it has no meaning with --length")
    _refuse_conflicts(temperature, top_k, top_p, greedy, beam, beam_score, novel, num)
    prime = command_line_text(prime)
    path = Path(checkpoint) if checkpoint else default_checkpoint()
    if output:  # before any work: never over the checkpoint, never replacing a device
        check_outputs({"--checkpoint": path}, {"--output": output}, streams=True)
    saved = load_checkpoint(path)
    if output:
        check_outputs({"the training corpus": saved.config.data.corpus},
                      {"--output": output}, streams=True)
    encode_prime(saved.vocab, prime)  # characters outside the vocabulary: say the likely fix
    rng = np.random.default_rng(seed)
    mode = saved.config.data.mode
    options = dict(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy,
                   prime=prime)
    if length is None and (num is not None or mode == "lines"):
        if "\n" in prime or "\r" in prime:  # the boundary: it would end the name early
            raise click.BadParameter("holds a line break, but names are printed one a line; "
                                     "give the first letters of one name (or --length N for "
                                     "free text)", param_hint="--prime")
        if beam:
            names = _beam_names(saved, num or beam, beam, beam_score or "total", prime,
                                max_length)
        else:
            names = _names(saved, num or 20, rng, novel, max_length, options)
        text = "\n".join(names) + "\n"
    else:
        if novel or beam_score:
            raise click.UsageError(f"{'--novel' if novel else '--beam-score'} applies to names, "
                                   f"and this stream-mode model writes text; give --num N for "
                                   f"names")
        length = 500 if length is None else length
        if beam:
            found = beam_text(saved.model, saved.vocab, length, beam, prime,
                              reset_at_boundary=mode == "lines")
            click.echo(f"beam search, {beam} beam(s): log-probability {found.log_prob:.3f} "
                       f"nats over {length} characters", err=True)
            text = found.text + "\n"
        else:
            text = sample_text(saved.model, saved.vocab, length, rng,
                               reset_at_boundary=mode == "lines", **options) + "\n"
    if output:
        write_output(output, text)
    else:
        sys.stdout.write(text)


def _refuse_conflicts(temperature, top_k, top_p, greedy, beam, beam_score, novel, num) -> None:
    """Options that another one would silently override are a usage error."""
    shaping = [flag for flag, given in (("--temperature", temperature != 1.0),
                                        ("--top-k", top_k is not None),
                                        ("--top-p", top_p is not None)) if given]
    if greedy and beam:
        raise click.UsageError("--greedy and --beam exclude each other (for text, --greedy is "
                               "--beam 1)")
    if greedy and shaping:
        raise click.UsageError(f"--greedy always takes the likeliest character, so "
                               f"{' and '.join(shaping)} would be ignored; drop one or the other")
    if greedy and novel:
        raise click.UsageError("--greedy draws the same name every time, so --novel could not "
                               "find more than one; drop --greedy")
    if beam and shaping:
        raise click.UsageError(f"--beam searches for the likeliest output under the model's own "
                               f"probabilities, so {' and '.join(shaping)} would be ignored; drop "
                               f"one or the other")
    if beam and novel:
        raise click.UsageError("--novel draws names until N are new; --beam searches for the "
                               "likeliest ones instead: use one or the other")
    if beam_score and not beam:
        raise click.UsageError("--beam-score ranks the names that --beam finds; give --beam K")
    if beam and num is not None and num > beam:
        raise click.UsageError(f"--num {num} needs --beam {num} or more: beam search returns the "
                               f"best complete names among its {beam} beams")


MAX_DRAWS_PER_NAME = 50  # --novel stops after this many draws for each name asked for


def _training_lines(saved, names) -> dict[str, str] | None:
    """Which of the names are lines of the training corpus, and in which split the trainer put
    them ({name: "train" or "val"}); None when the corpus cannot be read."""
    data = saved.config.data
    try:
        return corpus_membership(data.corpus, data.mode, data.val_fraction,
                                 saved.config.training.seed, names, data.encoding, data.errors)
    except CharRNNError:
        return None


def _split_counts(names, where) -> str:
    train = sum(where.get(name) == "train" for name in names)
    val = sum(where.get(name) == "val" for name in names)
    empty = sum(not name for name in names)
    new = len(names) - train - val - empty
    return (f"{train} in the training split, {val} in the validation split, {new} new"
            + (f", {empty} empty" if empty else ""))


def _report_names(saved, names, where, how="") -> None:
    """makemore's summary, on stderr: how many names are in either split and how many are new."""
    if where is None:
        click.echo(f"{len(names)} names{how}; the training corpus {saved.config.data.corpus} "
                   f"cannot be read here, so they are not compared with it", err=True)
    else:
        click.echo(f"{len(names)} names{how}: {_split_counts(names, where)}", err=True)


def _names(saved, num, rng, novel, max_length, options) -> list[str]:
    if novel:
        return _novel_names(saved, num, rng, max_length, options)
    names = sample_names(saved.model, saved.vocab, num, rng, max_length=max_length, **options)
    _report_names(saved, names, _training_lines(saved, set(names)))
    return names


def _novel_names(saved, num, rng, max_length, options) -> list[str]:
    """num distinct non-empty names in neither split of the training corpus, drawn in rounds
    that grow (one pass over the corpus a round), at most MAX_DRAWS_PER_NAME * num draws."""
    limit = MAX_DRAWS_PER_NAME * num
    found: list[str] = []
    seen: set[str] = set()
    skipped = {"train": 0, "val": 0, "repeat": 0, "empty": 0}
    drawn = 0
    while len(found) < num and drawn < limit:
        size = min(limit - drawn, max(2 * (num - len(found)), drawn))
        batch = sample_names(saved.model, saved.vocab, size, rng, max_length=max_length,
                             **options)
        drawn += size
        where = _training_lines(saved, set(batch))
        if where is None:
            raise CharRNNError(f"--novel needs the training corpus {saved.config.data.corpus}, "
                               f"which cannot be read; run from the directory you trained in")
        for name in batch:
            kind = "empty" if not name else where.get(name) or (
                "repeat" if name in seen else None)
            if kind:
                skipped[kind] += 1
            else:
                seen.add(name)
                found.append(name)
    names = found[:num]
    details = (f"{skipped['train']} in the training split, {skipped['val']} in the validation "
               f"split, {skipped['repeat']} repeats, {skipped['empty']} empty")
    if len(names) == num:
        click.echo(f"{num} names, all new and distinct ({drawn} drawn; left out: {details})",
                   err=True)
        return names
    known, repeats = skipped["train"] + skipped["val"], skipped["repeat"]
    why = ("the model mostly reproduces its training names: raise --temperature or sample an "
           "earlier checkpoint" if known >= max(repeats, skipped["empty"]) else
           "the model keeps drawing the same few names: raise --temperature, loosen --top-k or "
           "--top-p, or shorten --prime" if repeats >= skipped["empty"] else
           "the model mostly ends a name at once")
    click.echo(f"--novel found only {len(names)} of {num} new distinct names: it stopped after "
               f"{drawn} draws, the limit of {MAX_DRAWS_PER_NAME} a name asked for (left out: "
               f"{details}); {why}", err=True)
    return names


def _beam_names(saved, num, beam, score, prime, max_length) -> list[str]:
    found = beam_names(saved.model, saved.vocab, num, beam, prime, max_length, score)
    names = [result.text for result in found]
    _report_names(saved, names, _training_lines(saved, set(names)),
                  f" by beam search ({beam} beams, ranked by {score} log-probability)")
    if len(names) < num:
        click.echo(f"beam search found only {len(names)} complete names of at most "
                   f"{max_length} characters (--max-length)", err=True)
    return names


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="check this config's model (cell, layers, dropout; hidden size up to 8)")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="check the gradient at this checkpoint's weights (in float64)")
@click.option("--cell", type=click.Choice(sorted(CELLS)), help="check only this cell")
@click.option("--seed", type=SEED, default=0, show_default=True, help="random seed")
@friendly_errors
def gradcheck(config_path, checkpoint, cell, seed):
    """Compare every analytic gradient with centred finite differences, in float64."""
    if config_path and checkpoint:
        raise click.UsageError("give --config or --checkpoint, not both")
    params = None
    if checkpoint:
        saved = load_checkpoint(checkpoint)
        params = saved.params
        specs = [saved.spec]
    elif config_path:
        config = load_config(config_path)
        spec = ModelSpec.from_config(config.model, 7)
        specs = [dataclasses.replace(spec, hidden_size=min(spec.hidden_size, 8), init_scale=0.5)]
    else:
        specs = default_specs()
    specs = [spec for spec in specs if cell is None or spec.cell == cell]
    if not specs:
        raise click.UsageError(f"--cell {cell} does not match the model of --checkpoint or "
                               f"--config")
    failed = False
    for label, rows in run_gradcheck(specs, params, seed):
        click.echo(f"{label} (float64, tolerance {TOLERANCE:g})")
        click.echo(f"  {'parameter':<12}{'shape':<14}{'max rel error':>15}{'checked':>9}"
                   f"{'kinks':>7}  ")
        for row in rows:
            failed |= not row.ok
            click.echo(f"  {row.name:<12}{str(row.shape):<14}{row.max_rel_error:>15.3e}"
                       f"{row.checked:>9}{row.skipped_at_kinks:>7}  "
                       f"{'ok' if row.ok else 'FAIL'}")
    if failed:
        raise click.ClickException("gradient check failed: a backward disagrees with finite "
                                   "differences")
    click.echo("all gradients agree with finite differences")


@main.command(name="eval")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="model to evaluate [default: the default config's training.out]")
@click.argument("textfile", type=click.Path(dir_okay=False), required=False)
@click.option("--split", type=click.Choice(["val", "train"]),
              help="instead of TEXTFILE: the checkpoint's own corpus split, cut as in training")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--encoding", default="utf-8", show_default=True, help="text encoding")
@friendly_errors
def eval_command(checkpoint, textfile, split, as_json, encoding):
    """Loss of a checkpoint on TEXTFILE (or --split val): nats/char, bits/char, perplexity."""
    if (textfile is None) == (split is None):
        raise click.UsageError("give a TEXTFILE or --split val, exactly one of them")
    saved = load_checkpoint(Path(checkpoint) if checkpoint else default_checkpoint())
    if split:
        result = evaluate_corpus_split(saved, split)
    else:
        text = read_text(textfile, encoding, "strict", what="text")
        result = evaluate_text(saved.model, saved.vocab, text, saved.config.data.mode)
    if as_json:
        # strict JSON: a value past float64 (perplexity beyond about 709.8 nats) is null
        click.echo(json.dumps({key: None if isinstance(value, float) and not math.isfinite(value)
                               else value for key, value in result.items()}))
        return
    click.echo(f"{result['nats_per_char']:.4f} nats/char, {result['bits_per_char']:.4f} "
               f"bits/char, perplexity {result['perplexity']:.3f} over {result['characters']} "
               f"characters")
    if result["out_of_vocabulary"]:
        click.echo(f"{result['out_of_vocabulary']} character(s) outside the vocabulary were "
                   f"left out: {''.join(result['unknown_characters'])!r}", err=True)


# Other commands live in modules of their own and join the group here.
from charrnn.diagnostics_cli import COMMANDS as _DIAGNOSTICS  # noqa: E402
from charrnn.info_cli import COMMANDS as _INFO  # noqa: E402
from charrnn.sweep_cli import COMMANDS as _SWEEP  # noqa: E402
from charrnn.viz_cli import COMMANDS as _VIZ  # noqa: E402

for _command in [*_DIAGNOSTICS, *_INFO, *_SWEEP, *_VIZ]:
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()

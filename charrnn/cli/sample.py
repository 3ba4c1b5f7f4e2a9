"""`charrnn sample`: names or free text from a checkpoint, sampled or by beam search."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click
import numpy as np

from charrnn.checkpoint import load_checkpoint
from charrnn.cli.common import SEED, command_line_text, default_checkpoint, friendly_errors
from charrnn.names import names_summary, novel_names
from charrnn.plumbing.paths import check_outputs
from charrnn.plumbing.writing import write_output
from charrnn.sample import (
    beam_names,
    beam_text,
    encode_prime,
    sample_names,
    sample_text,
)


@click.command(name="sample")
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


def _names(saved, num, rng, novel, max_length, options) -> list[str]:
    if novel:
        found = novel_names(saved, num, rng, max_length, **options)
        click.echo(found.summary, err=True)
        return found.names
    names = sample_names(saved.model, saved.vocab, num, rng, max_length=max_length, **options)
    click.echo(names_summary(saved, names), err=True)
    return names


def _beam_names(saved, num, beam, score, prime, max_length) -> list[str]:
    found = beam_names(saved.model, saved.vocab, num, beam, prime, max_length, score)
    names = [result.text for result in found]
    click.echo(names_summary(saved, names, f" by beam search ({beam} beams, ranked by {score} "
                                           f"log-probability)"), err=True)
    if len(names) < num:
        click.echo(f"beam search found only {len(names)} complete names of at most "
                   f"{max_length} characters (--max-length)", err=True)
    return names


command = sample

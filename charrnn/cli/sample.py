"""`charrnn sample`: names or free text from a checkpoint, sampled or by beam search."""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path

import click
import numpy as np

from charrnn.checkpoint import corpus_inputs, load_checkpoint
from charrnn.cli.common import (
    SEED,
    checkpoint_option,
    checkpoint_path,
    command_line_text,
    examples,
    friendly_errors,
)
from charrnn.corpus import read_text
from charrnn.errors import CharRNNError
from charrnn.names import names_summary, novel_names
from charrnn.plumbing.paths import check_outputs
from charrnn.plumbing.terminal import printable
from charrnn.plumbing.writing import write_output
from charrnn.sample import (
    beam_names,
    beam_text,
    encode_prime,
    generate_text,
    sample_names,
)

EXAMPLES = examples(
    "charrnn sample --checkpoint checkpoints/names.npz --num 10 --novel",
    "charrnn sample --checkpoint checkpoints/shakespeare.npz --num 3 --length 300 --stop '\\n\\n'",
    "charrnn sample --checkpoint checkpoints/shakespeare.npz --prime-file opening.txt "
    "--output out/")


@click.command(name="sample", epilog=EXAMPLES)
@checkpoint_option("model to sample")
@click.option("--num", type=click.IntRange(min=1), metavar="N",
              help="a lines-mode model: N names, one a line [default: 20]; a stream-mode "
              "model: N independent samples of --length characters [default: 1]")
@click.option("--length", type=click.IntRange(min=0), metavar="N",
              help="new characters of free text after the prime [default: 500]")
@click.option("--temperature", type=float, default=1.0, show_default=True,
              help="> 0; below 1 is more conservative, above 1 more surprising")
@click.option("--top-k", type=click.IntRange(min=1), metavar="K",
              help="sample only among the K likeliest")
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
@click.option("--prime", default="", metavar="TEXT",
              help="text to start from (names: their first letters)")
@click.option("--prime-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="start from this file's text (UTF-8) instead of --prime")
@click.option("--stop", metavar="STRING", help="end each text sample once it writes STRING "
              "(kept at its end); \\n and \\t mean a newline and a tab, e.g. --stop '\\n\\n' "
              "for the end of a paragraph")
@click.option("--seed", type=SEED, default=0, show_default=True, metavar="INTEGER",
              help="random seed")
@click.option("--novel", is_flag=True, help="print only distinct names that are in neither "
              "split of the training corpus; gives up (and says why) after 50 draws a name")
@click.option("--max-length", type=click.IntRange(min=1), default=100, show_default=True,
              metavar="N", help="longest name to generate")
@click.option("--output", type=click.Path(), metavar="FILE|DIR",
              help="write to this file (UTF-8); a directory (one that exists, or DIR/): one "
              "file a text sample, sample-1.txt, sample-2.txt, ...")
@friendly_errors
def sample(checkpoint, num, length, temperature, top_k, top_p, greedy, beam, beam_score, prime,
           prime_file, stop, seed, novel, max_length, output):
    """Generate names or free text from a checkpoint: sampled, or the likeliest that beam
    search (--beam K) finds. A lines-mode model writes names (--num N of them, or --length N
    characters of text); a stream-mode model writes text (--num samples of --length
    characters). On a terminal, text appears as it is generated."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise click.BadParameter(f"must be a number > 0, got {temperature}",
                                 param_hint="--temperature")
    if prime_file is not None and prime:
        raise click.UsageError("give --prime TEXT or --prime-file FILE, not both")
    _refuse_conflicts(temperature, top_k, top_p, greedy, beam, beam_score, novel, num)
    prime = command_line_text(prime)
    path = checkpoint_path(checkpoint)
    # a directory: one file a sample (an existing one, or a name ending in a separator)
    directory = output is not None and (Path(output).is_dir() or output.endswith(("/", os.sep)))
    if output and not directory:  # before any work: never over the checkpoint, never a device
        check_outputs({"--checkpoint": path, "--prime-file": prime_file}, {"--output": output},
                      streams=True)
    saved = load_checkpoint(path)
    if output and not directory:
        check_outputs(corpus_inputs(saved.config, saved.meta),  # as typed and absolute
                      {"--output": output}, streams=True)
    if prime_file is not None:
        prime = read_text(prime_file, what="--prime-file")
    prime_option = "--prime-file" if prime_file is not None else "--prime"
    encode_prime(saved.vocab, prime, prime_option)  # outside the vocabulary: say the fix
    rng = np.random.default_rng(seed)
    mode = saved.config.data.mode
    options = dict(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy,
                   prime=prime)
    if mode == "lines" and length is None:
        if stop is not None:
            raise click.UsageError("--stop ends text samples; a name ends at its line's end")
        if directory:
            raise click.BadParameter("is a directory; names go to one file", param_hint="--output")
        if "\n" in prime or "\r" in prime:  # the boundary: it would end the name early
            raise click.BadParameter("holds a line break, but names are printed one a line; "
                                     "give the first letters of one name (or --length N for "
                                     "free text)", param_hint=prime_option)
        if beam:
            names = _beam_names(saved, num or beam, beam, beam_score or "total", prime,
                                max_length)
        else:
            names = _names(saved, num or 20, rng, novel, max_length, options)
        _write(output, "\n".join(names) + "\n")
        return
    if mode == "lines" and num is not None:
        raise click.UsageError("--num and --length exclude each other for this lines-mode "
                               "model: --num N prints N names, --length N prints N characters "
                               "of text")
    if novel or beam_score:
        raise click.UsageError(f"{'--novel' if novel else '--beam-score'} applies to names, "
                               f"which lines-mode models write; this stream-mode model writes "
                               f"text (--num N gives N samples of it)")
    num = 1 if num is None else num
    length = 500 if length is None else length
    if num > 1 and (beam or greedy):
        raise click.UsageError(f"{'--beam' if beam else '--greedy'} gives the same text every "
                               f"time, so --num {num} would repeat it; drop one or the other")
    stop = _unescape(stop) if stop else None
    if beam:
        found = beam_text(saved.model, saved.vocab, length, beam, prime,
                          reset_at_boundary=mode == "lines")
        text = found.text[:len(prime)] + _cut(found.text[len(prime):], stop)
        click.echo(f"beam search, {beam} beam(s): log-probability {found.log_prob:.3f} "
                   f"nats over {length} characters", err=True)
        _write(output, text + "\n")
        return
    samples = (generate_text(saved.model, saved.vocab, length, rng,
                             reset_at_boundary=mode == "lines", stop=stop, **options)
               for _ in range(num))
    if directory:
        try:
            Path(output).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CharRNNError(f"cannot make the directory {output} ({error.strerror}); give "
                               f"another --output") from None
        for index, chars in enumerate(samples, 1):
            target = Path(output) / f"sample-{index}.txt"
            check_outputs({"--checkpoint": path, **corpus_inputs(saved.config, saved.meta)},
                          {"--output": target})
            write_output(target, prime + "".join(chars) + "\n")
        click.echo(printable(f"wrote {num} sample(s) to {output}: sample-1.txt ... "
                             f"sample-{num}.txt"), err=True)
        return
    if output:
        _write(output, "".join(_framed(samples, prime, num)))
        return
    live = sys.stdout.isatty()  # a terminal sees each character as it is drawn, escaped
    for piece in _framed(samples, prime, num):
        sys.stdout.write(printable(piece, newlines=True) if live else piece)
        if live:
            sys.stdout.flush()


def _framed(samples, prime: str, num: int):
    """The samples' text piece by piece: one character at a time as each is drawn, and, when
    there are several, a header line before each and a blank line between them."""
    for index, chars in enumerate(samples, 1):
        if num > 1:
            yield ("\n" if index > 1 else "") + f"=== sample {index} of {num} ===\n"
        yield prime
        yield from chars
        yield "\n"


def _unescape(stop: str) -> str:
    r"""--stop's text with \n, \t and \\ read as a newline, a tab and a backslash."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)],
                  command_line_text(stop))


def _cut(text: str, stop: str | None) -> str:
    """text up to and including the first stop."""
    at = text.find(stop) if stop else -1
    return text if at < 0 else text[:at + len(stop)]


def _write(output, text: str) -> None:
    if output:
        write_output(output, text)
    else:  # on a terminal, characters it would act on are shown as escapes
        sys.stdout.write(printable(text, newlines=True) if sys.stdout.isatty() else text)


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
        click.echo(printable(found.summary), err=True)
        return found.names
    names = sample_names(saved.model, saved.vocab, num, rng, max_length=max_length, **options)
    click.echo(printable(names_summary(saved, names)), err=True)
    return names


def _beam_names(saved, num, beam, score, prime, max_length) -> list[str]:
    found = beam_names(saved.model, saved.vocab, num, beam, prime, max_length, score)
    names = [result.text for result in found]
    how = f" by beam search ({beam} beams, ranked by {score} log-probability)"
    click.echo(printable(names_summary(saved, names, how)), err=True)
    if len(names) < num:
        click.echo(f"beam search found only {len(names)} complete names of at most "
                   f"{max_length} characters (--max-length)", err=True)
    return names


command = sample

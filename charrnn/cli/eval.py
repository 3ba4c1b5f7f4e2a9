"""`charrnn eval`: a checkpoint's loss on a text or on its own corpus split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from charrnn.checkpoint import load_checkpoint
from charrnn.cli.common import default_checkpoint, friendly_errors
from charrnn.corpus import read_text
from charrnn.evaluate import evaluate_corpus_split, evaluate_text


@click.command(name="eval")
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


command = eval_command

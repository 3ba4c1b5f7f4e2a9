"""`charrnn eval`: a checkpoint's loss on a text or on its own corpus split."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import click

from charrnn.checkpoint import load_checkpoint, training_corpus
from charrnn.cli.common import checkpoint_option, checkpoint_path, examples, friendly_errors
from charrnn.corpus import read_text
from charrnn.evaluate import evaluate_corpus_split, evaluate_text


@click.command(name="eval", epilog=examples(
    "charrnn eval --checkpoint checkpoints/names.best.npz --split val",
    "charrnn eval --checkpoint checkpoints/shakespeare.npz --text hamlet.txt",
    "charrnn eval --text more-names.txt --json       # the default checkpoint"))
@checkpoint_option("model to evaluate")
@click.option("--text", "text_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="the text to score (or give it as TEXTFILE)")
@click.argument("textfile", type=click.Path(dir_okay=False), required=False,
                metavar="[TEXTFILE]")
@click.option("--split", type=click.Choice(["val", "train"]),
              help="instead of --text: the checkpoint's own corpus split, cut as in training")
@click.option("--corpus", type=click.Path(dir_okay=False), metavar="FILE",
              help="with --split: the training corpus, moved or copied since (it must hold the "
                   "same text) [default: where training read it]")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--encoding", default="utf-8", show_default=True, metavar="NAME",
              help="--text's encoding")
@friendly_errors
def eval_command(checkpoint, text_file, textfile, split, corpus, as_json, encoding):
    """Loss of a checkpoint on a text (--text FILE) or on its own corpus split (--split val):
    nats/char, bits/char, perplexity."""
    if text_file and textfile and text_file != textfile:
        raise click.UsageError(f"two texts given, --text {text_file} and {textfile}; give one")
    textfile = text_file or textfile
    if (textfile is None) == (split is None):
        raise click.UsageError("give --text FILE or --split val, exactly one of them")
    if corpus is not None and split is None:
        raise click.UsageError("--corpus names the training corpus for --split; to evaluate "
                               "another text, give it with --text")
    saved = load_checkpoint(checkpoint_path(checkpoint))
    if split:  # found from any folder; evaluate_corpus_split checks it by its fingerprint
        found = training_corpus(saved.config, saved.meta, corpus,
                                hint="pass it with --corpus (the same text: its fingerprint is "
                                     "checked)")
        saved = replace(saved, config=saved.config.replace(data={"corpus": found}))
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

"""`charrnn info`: what a checkpoint holds, without loading more than its small records."""

from __future__ import annotations

import json
from pathlib import Path

import click

from charrnn.checkpoint import Checkpoint, load_checkpoint, training_corpus
from charrnn.cli.common import checkpoint_option, checkpoint_path, examples, friendly_errors
from charrnn.export import export_formats
from charrnn.plumbing.terminal import printable


def checkpoint_info(path: Path, saved: Checkpoint) -> dict:
    """The facts `charrnn info` prints, as one JSON-ready dict."""
    spec, meta = saved.spec, saved.meta
    return {
        "checkpoint": str(path),
        "format_version": saved.version,
        "cell": spec.cell,
        "num_layers": spec.num_layers,
        "hidden_size": spec.hidden_size,
        "activation": spec.chosen_activation,
        "dropout": spec.dropout,
        "dtype": spec.dtype,
        "parameters": int(sum(value.size for value in saved.params.values())),
        "vocab_size": len(saved.vocab),
        "vocabulary": saved.vocab.decode(range(len(saved.vocab))),
        "data_mode": saved.config.data.mode,
        "corpus": saved.config.data.corpus,
        "corpus_fingerprint": saved.corpus_fingerprint,
        "corpus_path": meta.get("corpus_path"),  # absolute, as training saw it (newer files)
        "corpus_here": corpus_here(saved),
        "step": saved.step,
        "steps": saved.config.training.steps,
        "chars_seen": int(meta.get("chars_seen", 0)),
        "best_val_loss": saved.best_val_loss,
        "optimizer": saved.config.training.optimizer,
        "export_formats": export_formats(saved),
        "config": saved.config.to_dict(),
    }


@click.command(epilog=examples(
    "charrnn info --checkpoint checkpoints/names.npz",
    "charrnn info checkpoints/names.best.npz --json",
    "charrnn info                      # the default checkpoint"))
@checkpoint_option("the checkpoint to describe (or give it as CHECKPOINT)")
@click.argument("positional", required=False, metavar="[CHECKPOINT]",
                type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@friendly_errors
def info(checkpoint, positional, as_json):
    """What a checkpoint is: model, vocabulary, progress, corpus and config."""
    path = checkpoint_path(checkpoint, positional)
    facts = checkpoint_info(path, load_checkpoint(path))
    if as_json:
        click.echo(json.dumps(facts))
        return
    best = facts["best_val_loss"]
    kind = (f"{facts['cell']} ({facts['activation']})" if facts["activation"]
            else facts["cell"])
    _say(f"checkpoint {path} (format version {facts['format_version']})")
    _say(f"  model       {kind}, {facts['num_layers']} layer(s) of {facts['hidden_size']}, "
         f"dropout {facts['dropout']:g}, {facts['dtype']}, {facts['parameters']:,} "
         f"parameters")
    _say(f"  vocabulary  {facts['vocab_size']} characters: {facts['vocabulary']!r}")
    _say(f"  progress    step {facts['step']} of {facts['steps']}, "
         f"{facts['chars_seen']:,} characters seen, best validation "
         f"{'-' if best is None else f'{best:.4f} nats/char'}")
    fingerprint = facts["corpus_fingerprint"]
    _say(f"  corpus      {facts['corpus']} ({facts['data_mode']} mode"
         f"{'' if not fingerprint else f'; {fingerprint_text(fingerprint)}'})")
    if facts["corpus_path"] and facts["corpus_path"] != facts["corpus"]:
        _say(f"              stored as {facts['corpus_path']}")
    _say(f"              {facts['corpus_here']}")
    _say(f"  export to   {', '.join(facts['export_formats']) or '-'} "
         f"(charrnn export CHECKPOINT --to FORMAT --out PATH)")
    _say("  config:")
    for line in saved_yaml(facts).rstrip("\n").split("\n"):
        _say("    " + line)


def corpus_here(saved: Checkpoint) -> str:
    """Where the training corpus is found from this folder, and whether it is still the text
    the run was trained on (by its fingerprint). A pipe or device is never opened."""
    from charrnn.corpus import fingerprint_difference, load_corpus
    from charrnn.errors import CharRNNError

    data = saved.config.data
    try:
        found = training_corpus(saved.config, saved.meta)
    except CharRNNError:
        return "not found from this folder (give it to eval --corpus, train --corpus)"
    if not (Path(found).is_file() or Path(found).is_dir()):  # a pipe is never opened
        return f"found at {found}, which is no regular file: not read"
    if saved.corpus_fingerprint is None:
        return f"found at {found} (this checkpoint has no fingerprint to compare)"
    try:
        now = load_corpus(found, data.mode, data.val_fraction, saved.config.training.seed,
                          encoding=data.encoding, errors=data.errors, use_cache=data.cache)
    except CharRNNError as error:
        return f"found at {found}, but it cannot be read: {error}"
    changed = fingerprint_difference(saved.corpus_fingerprint, now.fingerprint)
    return f"found at {found}: " + (f"another text ({changed})" if changed else "the same text")


def _say(text: str) -> None:
    """One line of the report: paths, config values and meta are the file's, shown escaped."""
    click.echo(printable(text))


def fingerprint_text(fingerprint: dict) -> str:
    return (f"{fingerprint['characters']:,} characters, sha256 "
            f"{fingerprint['sha256'][:16]}...")


def saved_yaml(facts: dict) -> str:
    import yaml

    return yaml.safe_dump(facts["config"], sort_keys=False)


command = info

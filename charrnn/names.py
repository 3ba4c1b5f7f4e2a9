"""Names judged by novelty as well as loss (makemore's habit): which sampled names are lines of
the training corpus, in which split, and a draw of names that are new.

Each function returns what it found and a one-line summary; printing it is the caller's job
(the command line writes it to stderr, a notebook may show it or not).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charrnn.checkpoint import Checkpoint
from charrnn.errors import CharRNNError
from charrnn.sample import corpus_membership, sample_names

MAX_DRAWS_PER_NAME = 50  # novel_names stops after this many draws for each name asked for


class Names(NamedTuple):
    names: list[str]
    summary: str  # one line: how many are in each split and how many are new


def training_lines(saved: Checkpoint, names) -> dict[str, str] | None:
    """Which of the names are lines of the training corpus, and in which split the trainer put
    them ({name: "train" or "val"}); None when the corpus cannot be read."""
    data = saved.config.data
    try:
        return corpus_membership(data.corpus, data.mode, data.val_fraction,
                                 saved.config.training.seed, names, data.encoding, data.errors)
    except CharRNNError:
        return None


def split_counts(names, where: dict[str, str]) -> str:
    """'3 in the training split, 1 in the validation split, 16 new' for names and their
    training_lines."""
    train = sum(where.get(name) == "train" for name in names)
    val = sum(where.get(name) == "val" for name in names)
    empty = sum(not name for name in names)
    new = len(names) - train - val - empty
    return (f"{train} in the training split, {val} in the validation split, {new} new"
            + (f", {empty} empty" if empty else ""))


def names_summary(saved: Checkpoint, names, how: str = "") -> str:
    """makemore's summary line: how many names are in either split and how many are new (how:
    words after 'N names', e.g. ' by beam search')."""
    where = training_lines(saved, set(names))
    if where is None:
        return (f"{len(names)} names{how}; the training corpus {saved.config.data.corpus} "
                f"cannot be read here, so they are not compared with it")
    return f"{len(names)} names{how}: {split_counts(names, where)}"


def novel_names(saved: Checkpoint, num: int, rng: np.random.Generator, max_length: int = 100,
                **options) -> Names:
    """num distinct non-empty names in neither split of the training corpus, drawn in rounds
    that grow (one pass over the corpus a round), at most MAX_DRAWS_PER_NAME * num draws; fewer
    come back when the limit is reached, and the summary says why. options: sample_names's
    temperature, top_k, top_p, greedy, prime."""
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
        where = training_lines(saved, set(batch))
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
        return Names(names, f"{num} names, all new and distinct ({drawn} drawn; left out: "
                            f"{details})")
    known, repeats = skipped["train"] + skipped["val"], skipped["repeat"]
    why = ("the model mostly reproduces its training names: raise --temperature or sample an "
           "earlier checkpoint" if known >= max(repeats, skipped["empty"]) else
           "the model keeps drawing the same few names: raise --temperature, loosen --top-k or "
           "--top-p, or shorten --prime" if repeats >= skipped["empty"] else
           "the model mostly ends a name at once")
    return Names(names, f"--novel found only {len(names)} of {num} new distinct names: it "
                        f"stopped after {drawn} draws, the limit of {MAX_DRAWS_PER_NAME} a name "
                        f"asked for (left out: {details}); {why}")

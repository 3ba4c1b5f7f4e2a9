"""Loss of a model on text: nats per character, bits per character and perplexity."""

from __future__ import annotations

import math

import numpy as np

from charrnn.corpus import (
    Split,
    eval_batches,
    fingerprint_difference,
    line_split,
    load_corpus,
    normalise_lines,
    stream_cut,
)
from charrnn.errors import CharRNNError
from charrnn.model import Model
from charrnn.vocab import Vocabulary

LN2 = math.log(2.0)  # nats to bits


def score_split(model: Model, split: Split, mode: str, batch_size: int = 64,
                seq_length: int = 100, max_chars: int | None = None) -> tuple[float, int]:
    """(sum of nats, characters scored) over the split, cut as corpus.eval_batches cuts it."""
    total, count = 0.0, 0
    state = None
    for batch in eval_batches(split, mode, batch_size, seq_length, max_chars):
        if batch.reset or state is None or state[0][0].shape[0] != batch.x.shape[1]:
            state = model.zero_state(batch.x.shape[1])
        nll_sum, n, state = model.forward_loss(batch.x, batch.y, state, batch.mask,
                                               check=False)
        total += nll_sum
        count += n
    return total, count


def stream_segments(tokens: np.ndarray, batch_size: int, seq_length: int) -> list[np.ndarray]:
    """The contiguous streams eval_batches cuts a stream-mode split into (each from a zero
    state; every character but a stream's first is predicted)."""
    streams, stride = stream_cut(len(tokens), batch_size, seq_length)
    return [tokens[i * stride:(i + 1) * stride] for i in range(streams)]


def score_segments(model: Model, segments: list[np.ndarray], batch_size: int = 64,
                   seq_length: int = 100) -> tuple[float, int]:
    """(sum of nats, characters scored) over many independent streams of any lengths, each
    from a zero state, batch_size of them side by side (longest first, so little padding) and
    seq_length steps at a time with the state carried: the same sums as scoring each alone."""
    total, count = 0.0, 0
    order = sorted(range(len(segments)), key=lambda i: -len(segments[i]))
    for first in range(0, len(order), batch_size):
        group = [segments[i] for i in order[first:first + batch_size]]
        lengths = np.array([len(g) for g in group])
        grid = np.zeros((int(lengths.max()), len(group)), dtype=np.int64)
        for lane, segment in enumerate(group):
            grid[:len(segment), lane] = segment
        targets = np.arange(1, len(grid))[:, None] < lengths[None, :]  # (T - 1, lanes)
        state = model.zero_state(len(group))
        for start in range(0, len(grid) - 1, seq_length):
            end = min(start + seq_length, len(grid) - 1)
            mask = targets[start:end]
            nll_sum, n, state = model.forward_loss(grid[start:end], grid[start + 1:end + 1],
                                                   state, mask, check=False)
            total += nll_sum
            count += n
    return total, count


def evaluate_split(model: Model, split: Split, mode: str, batch_size: int = 64,
                   seq_length: int = 100, max_chars: int | None = None) -> float:
    """Mean nats per predicted character over the split."""
    total, count = score_split(model, split, mode, batch_size, seq_length, max_chars)
    return total / max(count, 1)


def _summary(total: float, count: int, where: str) -> dict:
    if count == 0:
        raise CharRNNError(f"no characters of {where} could be scored: it is too short or every "
                           f"line or run holds characters outside the vocabulary")
    nats = total / count
    return {"nats_per_char": nats, "bits_per_char": nats / LN2, "perplexity": perplexity(nats),
            "characters": count}


def perplexity(nats: float) -> float:
    """exp(nats per character); inf past about 709.8 nats, where a float64 overflows."""
    try:
        return math.exp(nats)
    except OverflowError:
        return math.inf


def evaluate_text(model: Model, vocab: Vocabulary, text: str, mode: str,
                  batch_size: int = 64, seq_length: int = 100) -> dict:
    """Loss on a text read in the model's data mode. Characters outside the vocabulary are
    counted and reported; the loss covers the text's lines (lines mode) or runs (stream mode)
    that hold none of them, never a silently altered text."""
    if mode == "lines":
        text = normalise_lines(text)
    indices, known = vocab.encode_known(text)
    unknown_chars = vocab.unknown(text)
    out_of_vocabulary = int((~known).sum())
    if mode == "lines":
        boundary = vocab.boundary
        stand_in = (boundary + 1) % len(vocab)  # any index but the boundary keeps lines whole
        split = line_split(np.where(known, indices, stand_in).astype(indices.dtype), boundary)
        # bad[i]: split.tokens[i] stood for an unknown character (tokens has a leading boundary)
        bad = np.zeros(len(split.tokens) + 1, dtype=np.int64)
        bad[1: len(known) + 1] = ~known
        bad_before = np.cumsum(bad)
        first = split.starts + 1
        clean = bad_before[first + split.lengths - 1] == bad_before[first - 1]
        split = Split(split.tokens, split.starts[clean], split.lengths[clean])
        splits = [split] if len(split.starts) else []
        total, count = 0.0, 0
        for split in splits:
            split_total, split_count = score_split(model, split, mode, batch_size, seq_length)
            total += split_total
            count += split_count
    else:
        # cut the text at unknown characters; each run of known ones is scored on its own, as
        # a split of its own would be, but all runs side by side in one batch
        edges = np.flatnonzero(np.diff(np.concatenate([[0], known.astype(np.int8), [0]])))
        segments = [segment for a, b in zip(edges[::2], edges[1::2]) if b - a >= 2
                    for segment in stream_segments(indices[a:b], batch_size, seq_length)]
        total, count = score_segments(model, segments, batch_size, seq_length)
    return {**_summary(total, count, "the text"), "out_of_vocabulary": out_of_vocabulary,
            "unknown_characters": unknown_chars}


def evaluate_corpus_split(saved, which: str = "val") -> dict:
    """Loss of a checkpoint on its own training corpus's validation (or training) split, cut
    exactly as the trainer cut it; the corpus is read from the checkpoint's data.corpus."""
    data, training = saved.config.data, saved.config.training
    corpus = load_corpus(data.corpus, data.mode, data.val_fraction, training.seed, saved.vocab,
                         data.encoding, data.errors, use_cache=data.cache)
    changed = fingerprint_difference(saved.corpus_fingerprint, corpus.fingerprint)
    if changed:  # its lines would be split anew: training lines would leak into validation
        raise CharRNNError(f"the corpus {data.corpus} changed since this checkpoint was trained "
                           f"({changed}), so its {which} split is no longer the one training "
                           f"held out; restore the corpus, or evaluate on a file: charrnn eval "
                           f"--checkpoint CHECKPOINT TEXTFILE")
    split = corpus.val if which == "val" else corpus.train
    if split is None:
        raise CharRNNError(f"the checkpoint's corpus {data.corpus} has no validation split "
                           f"(data.val_fraction is {data.val_fraction}); pass a TEXTFILE")
    total, count = score_split(saved.model, split, data.mode,
                               batch_size=max(training.batch_size, 64),
                               seq_length=training.seq_length)
    return {**_summary(total, count, f"the {which} split"), "out_of_vocabulary": 0,
            "unknown_characters": [], "split": which, "corpus": str(data.corpus)}

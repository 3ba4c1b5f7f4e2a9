"""Loss of a model on text: nats per character, bits per character and perplexity."""

from __future__ import annotations

import math
import sys

import numpy as np

from charrnn.corpus import (
    Split,
    eval_batches,
    fingerprint_difference,
    known_runs,
    line_split,
    load_corpus,
    normalise_lines,
)
from charrnn.errors import CharRNNError
from charrnn.model import Model
from charrnn.plumbing.workspace import Workspace
from charrnn.vocab import Vocabulary

LN2 = math.log(2.0)  # nats to bits


EVAL_LANES = 128  # pieces scored side by side: large batches, no backward (see bench_eval.py)
EVAL_CHUNK = 100  # time steps a forward call; the state is carried, so it changes no sum
MIN_PIECE = 200  # characters: shorter pieces would spend too much of themselves warming up
PROGRESS_CHARS = 1_000_000  # texts past this show a progress bar on a terminal


def score_split(model: Model, split: Split, mode: str, batch_size: int = EVAL_LANES,
                seq_length: int = EVAL_CHUNK, max_chars: int | None = None,
                progress: bool | None = None) -> tuple[float, int]:
    """(sum of nats, characters scored) over the split.

    lines mode: every line's characters and the boundary that ends it, batch_size lines at a
    time. stream mode: every character of each document but its first, given everything before
    it in the document: stream_pieces cuts the documents into about batch_size pieces scored
    side by side (a piece starts from a zero state with the character before it as input).
    max_chars: about that many characters, spread over the split (every line's or piece's
    start). progress: a bar on stderr (None: on a terminal, for texts past PROGRESS_CHARS)."""
    if mode == "lines":
        batches = list(eval_batches(split, mode, batch_size, seq_length, max_chars))
        bar = _progress_bar(sum(batch.characters for batch in batches), progress)
        total, count = 0.0, 0
        workspace = Workspace()  # buffers reused from batch to batch: 1.5x faster measured
        for batch in batches:
            state = model.zero_state(batch.x.shape[1])
            nll_sum, n, _ = model.forward_loss(batch.x, batch.y, state, batch.mask,
                                               workspace=workspace, check=False)
            total, count = total + nll_sum, count + n
            bar.update(n)
        bar.close()
        return total, count
    pieces = stream_pieces(split, batch_size)
    if max_chars is not None and pieces:
        length = max(2, max_chars // len(pieces) + 1)
        pieces = [piece[:length] for piece in pieces]
    return score_segments(model, pieces, batch_size, seq_length, progress)


def stream_pieces(split: Split, lanes: int = EVAL_LANES,
                  min_piece: int = MIN_PIECE) -> list[np.ndarray]:
    """A stream-mode split's documents (one, unless it was read from several files or cut at
    unknown characters) cut into about `lanes` pieces that overlap by one character, so every
    character of a document but its first is a target exactly once."""
    runs = [run for run in split.documents() if len(run) >= 2]
    targets = sum(len(run) - 1 for run in runs)
    per_piece = max(min_piece, -(-targets // max(lanes, 1)))
    return [run[first: first + per_piece + 1]
            for run in runs for first in range(0, len(run) - 1, per_piece)]


def stream_segments(tokens: np.ndarray, batch_size: int, seq_length: int) -> list[np.ndarray]:
    """The contiguous pieces score_split cuts one stream into (seq_length is unused: kept for
    callers of the first release's signature)."""
    return stream_pieces(Split(tokens), batch_size)


def score_segments(model: Model, segments: list[np.ndarray], batch_size: int = EVAL_LANES,
                   seq_length: int = EVAL_CHUNK,
                   progress: bool | None = None) -> tuple[float, int]:
    """(sum of nats, characters scored) over many independent streams of any lengths, each
    from a zero state, batch_size of them side by side (longest first, so little padding) and
    seq_length steps at a time with the state carried: the same sums as scoring each alone."""
    total, count = 0.0, 0
    workspace = Workspace()  # buffers reused from chunk to chunk: 1.5x faster measured
    bar = _progress_bar(sum(max(len(s) - 1, 0) for s in segments), progress)
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
                                                   state, None if mask.all() else mask,
                                                   workspace=workspace, check=False)
            total += nll_sum
            count += n
            bar.update(n)
    bar.close()
    return total, count


def _progress_bar(characters: int, show: bool | None):
    from tqdm import tqdm

    if show is None:
        show = characters > PROGRESS_CHARS and sys.stderr.isatty()
    return tqdm(total=characters, disable=not show, unit="char", unit_scale=True,
                desc="evaluating", leave=False, file=sys.stderr)


def evaluate_split(model: Model, split: Split, mode: str, batch_size: int = EVAL_LANES,
                   seq_length: int = EVAL_CHUNK, max_chars: int | None = None) -> float:
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
                  batch_size: int = EVAL_LANES, seq_length: int = EVAL_CHUNK) -> dict:
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
        # cut the text at unknown characters; each run of known ones is a document, scored as
        # a split of its own would be, but all runs side by side in one batch
        total, count = score_split(model, known_runs(indices, known), mode, batch_size,
                                   seq_length)
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
                           f"--checkpoint CHECKPOINT --text TEXTFILE")
    split = corpus.val if which == "val" else corpus.train
    if split is None:
        raise CharRNNError(f"the checkpoint's corpus {data.corpus} has no validation split "
                           f"(data.val_fraction is {data.val_fraction}); pass --text TEXTFILE")
    total, count = score_split(saved.model, split, data.mode)
    return {**_summary(total, count, f"the {which} split"), "out_of_vocabulary": 0,
            "unknown_characters": [], "split": which, "corpus": str(data.corpus)}

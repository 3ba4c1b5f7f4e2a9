"""Reading a corpus, splitting off validation data, and cutting (batch, time) training batches.

Two data modes:
- ``stream``: the corpus is one long character stream (min-char-rnn). It is cut into
  ``batch_size`` contiguous streams; each step takes ``seq_length`` characters from each, at one
  shared position that wraps to 0 (with a fresh hidden state) at the end, as min-char-rnn does.
- ``lines``: each line is one example (makemore). It is fed after a boundary character (newline)
  from a zero hidden state and ends by predicting the boundary; a batch of lines is padded to its
  longest line and a mask takes the padding out of loss and gradients.

The corpus is held as one integer index array; batches are whole-array gathers from it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.plumbing.corpus_cache import encode_file, normalise_lines, scan_text, text_chunks
from charrnn.vocab import BOUNDARY, Vocabulary

# A split's stream needs seq_length + 1 characters: seq_length inputs and the next one as target.
MIN_STREAM_EXTRA = 1
FINGERPRINT_CHUNK = 1 << 20


def read_text(path: str | Path, encoding: str = "utf-8", errors: str = "strict",
              what: str = "corpus") -> str:
    """The file's text, read once (a pipe or device up to a cap); a missing, unreadable, empty
    or undecodable file is a CharRNNError."""
    text = "".join(text_chunks(Path(path), encoding, errors, lines=False, what=what))
    if not text:
        raise CharRNNError(f"{what} {path} is empty; give it some text")
    return text


def text_start(path: str | Path, max_chars: int, encoding: str = "utf-8",
               errors: str = "strict", what: str = "corpus") -> str:
    """The first max_chars characters of a regular file, reading no more of it than that."""
    pieces, count = [], 0
    for text in scan_text(path, encoding, errors, what=what):
        pieces.append(text[: max_chars - count])
        count += len(pieces[-1])
        if count >= max_chars:
            break
    text = "".join(pieces)
    if not text:
        raise CharRNNError(f"{what} {path} is empty; give it some text")
    return text


def longest_line(path: str | Path, max_chars: int, encoding: str = "utf-8",
                 errors: str = "strict", what: str = "corpus") -> str:
    """The longest line of a regular file (its first max_chars characters if longer), in one
    pass and memory bounded by a chunk and max_chars."""
    best, current = "", ""
    for text in scan_text(path, encoding, errors, lines=True, what=what):
        pieces = text.split("\n")
        pieces[0] = current + pieces[0]
        for line in pieces[:-1]:
            if len(line) > len(best):
                best = line[:max_chars]
        current = pieces[-1][:max_chars]  # a longer line is cut: the cut is all that is kept
    if len(current) > len(best):
        best = current
    if not best:
        raise CharRNNError(f"{what} {path} has no non-empty line")
    return best


def corpus_fingerprint(vocab: Vocabulary, tokens: np.ndarray) -> dict:
    """What identifies a training text: its length in characters and the SHA-256 of its code
    points (UTF-32-LE), whatever the file's encoding and whichever vocabulary indexes it."""
    digest = hashlib.sha256()
    for first in range(0, len(tokens), FINGERPRINT_CHUNK):
        chunk = np.asarray(tokens[first: first + FINGERPRINT_CHUNK])
        digest.update(vocab.codes[chunk].astype("<u4").tobytes())
    return {"characters": int(len(tokens)), "sha256": digest.hexdigest()}


def fingerprint_difference(saved: dict | None, now: dict | None) -> str | None:
    """None when the texts are the same (or the checkpoint predates fingerprints), else how
    they differ, for an error message."""
    if not saved or not now or saved == now:
        return None
    if saved["characters"] != now["characters"]:
        return f"{saved['characters']} characters then, {now['characters']} now"
    return (f"the same length, other text: sha256 {saved['sha256'][:12]}... then, "
            f"{now['sha256'][:12]}... now")


@dataclass
class Split:
    """One part of a corpus as indices. Lines mode adds each line's start and length.

    In lines mode ``tokens`` is the text with a boundary before every line, so line i's inputs are
    tokens[starts[i] : starts[i] + lengths[i] + 1] and its targets the same shifted by one.
    """

    tokens: np.ndarray
    starts: np.ndarray | None = None
    lengths: np.ndarray | None = None

    @property
    def characters(self) -> int:
        """Characters predicted in one pass over the split."""
        if self.lengths is not None:
            return int(self.lengths.sum() + len(self.lengths))
        return max(len(self.tokens) - 1, 0)

    def lines(self, vocab: Vocabulary) -> list[str]:
        assert self.starts is not None and self.lengths is not None
        text = vocab.decode(self.tokens)
        return [text[s + 1: s + 1 + n] for s, n in zip(self.starts.tolist(),
                                                        self.lengths.tolist())]


def line_split(tokens: np.ndarray, boundary: int, keep: np.ndarray | None = None) -> Split:
    """Lines of a boundary-separated index array (leading boundary added), empty ones dropped."""
    flat = np.concatenate([np.array([boundary], dtype=tokens.dtype), tokens])
    if flat[-1] != boundary:
        flat = np.concatenate([flat, np.array([boundary], dtype=tokens.dtype)])
    ends = np.flatnonzero(flat == boundary)
    starts, lengths = ends[:-1], np.diff(ends) - 1
    nonempty = lengths > 0
    starts, lengths = starts[nonempty], lengths[nonempty]
    if keep is not None:
        starts, lengths = starts[keep], lengths[keep]
    return Split(flat, starts.astype(np.int64), lengths.astype(np.int64))


@dataclass
class Corpus:
    vocab: Vocabulary
    mode: str
    train: Split
    val: Split | None
    fingerprint: dict | None = None  # corpus_fingerprint of the whole text, train and val

    @property
    def characters(self) -> int:
        """Characters of the whole text, train and validation, each counted once: the
        fingerprint's count, the figure `charrnn info` shows."""
        if self.fingerprint is not None:
            return self.fingerprint["characters"]
        if self.mode == "lines":  # both splits index one array: the text after a boundary
            return len(self.train.tokens) - 1
        return len(self.train.tokens) + (0 if self.val is None else len(self.val.tokens))


def split_indices(count: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random (train, val) line numbers, each in ascending order."""
    n_val = int(round(count * val_fraction))
    if val_fraction > 0 and n_val == 0 and count >= 2:
        n_val = 1
    n_val = min(n_val, count - 1)  # at least one line is left to train on
    order = np.random.default_rng([seed, 0x5EED]).permutation(count)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def build_corpus(text: str, mode: str, val_fraction: float, seed: int,
                 vocab: Vocabulary | None = None, where: str = "corpus") -> Corpus:
    """Encode text with vocab (built from the text when None) and split off validation data."""
    if mode == "lines":
        text = normalise_lines(text)
        if vocab is None:
            vocab = Vocabulary.from_text(text, extra=BOUNDARY)
    elif vocab is None:
        vocab = Vocabulary.from_text(text)
    tokens = vocab.encode(text, where)
    corpus = corpus_from_tokens(tokens, vocab, mode, val_fraction, seed, where)
    corpus.fingerprint = corpus_fingerprint(vocab, tokens)
    return corpus


def corpus_from_tokens(tokens: np.ndarray, vocab: Vocabulary, mode: str, val_fraction: float,
                       seed: int, where: str = "corpus") -> Corpus:
    """Split encoded text: the tail in stream mode (views, so a memory map stays one), seeded
    random lines in lines mode."""
    if mode == "lines":
        if vocab.boundary is None:
            raise CharRNNError(f"{where}: lines mode needs a newline in the vocabulary, and the "
                               f"checkpoint's has none; use data.mode: stream")
        everything = line_split(tokens, vocab.boundary)
        if len(everything.starts) == 0:
            raise CharRNNError(f"{where} has no non-empty lines; lines mode needs one example a "
                               f"line")
        train_ids, val_ids = split_indices(len(everything.starts), val_fraction, seed)
        train = Split(everything.tokens, everything.starts[train_ids],
                      everything.lengths[train_ids])
        val = (Split(everything.tokens, everything.starts[val_ids], everything.lengths[val_ids])
               if len(val_ids) else None)
        return Corpus(vocab, mode, train, val)
    n_val = int(len(tokens) * val_fraction)
    train = Split(tokens[: len(tokens) - n_val])
    val = Split(tokens[len(tokens) - n_val:]) if n_val >= 2 else None
    return Corpus(vocab, mode, train, val)


def load_corpus(path: str | Path, mode: str, val_fraction: float, seed: int,
                vocab: Vocabulary | None = None, encoding: str = "utf-8",
                errors: str = "strict", use_cache: bool = True) -> Corpus:
    """Read, encode (once: see corpus_cache) and split the corpus file."""
    vocab, tokens = encode_file(path, mode, vocab, encoding, errors, use_cache)
    corpus = corpus_from_tokens(tokens, vocab, mode, val_fraction, seed, f"corpus {path}")
    corpus.fingerprint = corpus_fingerprint(vocab, tokens)
    return corpus


@dataclass
class Batch:
    """Inputs and targets, time-major (T, B), with an optional (T, B) mask of real positions."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray | None
    reset: bool  # the carried hidden state starts from zero for this batch

    @property
    def characters(self) -> int:
        return int(self.mask.sum()) if self.mask is not None else self.x.size


class StreamBatches:
    """min-char-rnn's chunking, batch_size streams wide: position p steps by seq_length."""

    def __init__(self, split: Split, batch_size: int, seq_length: int, where: str = "corpus"):
        self.stream_length = len(split.tokens) // batch_size
        if self.stream_length < seq_length + MIN_STREAM_EXTRA:
            raise CharRNNError(
                f"{where}: the training text has {len(split.tokens)} characters, so each of "
                f"batch_size={batch_size} streams has {self.stream_length}, fewer than "
                f"seq_length + 1 = {seq_length + 1}; use a longer corpus or lower "
                f"training.batch_size / training.seq_length")
        self.tokens = split.tokens
        self.seq_length = seq_length
        self.stream_starts = np.arange(batch_size, dtype=np.int64) * self.stream_length
        self.offsets = np.arange(seq_length + 1, dtype=np.int64)
        self.position = 0
        self.started = False

    def next(self) -> Batch:
        # min-char-rnn: `if p+seq_length+1 >= len(data) or n == 0: hprev = 0; p = 0`
        reset = not self.started or self.position + self.seq_length + 1 >= self.stream_length
        if reset:
            self.position = 0
        self.started = True
        window = self.tokens[(self.stream_starts + self.position)[None, :] + self.offsets[:, None]]
        self.position += self.seq_length
        return Batch(window[:-1], window[1:], None, reset)


def gather_lines(split: Split, line_ids: np.ndarray) -> Batch:
    """The chosen lines, padded to the longest: inputs start at the boundary before each line."""
    lengths = split.lengths[line_ids] + 1  # + 1: the boundary that ends the line is predicted
    steps = np.arange(int(lengths.max()), dtype=np.int64)
    mask = steps[:, None] < lengths[None, :]
    positions = split.starts[line_ids][None, :] + np.minimum(steps[:, None], lengths[None, :] - 1)
    return Batch(split.tokens[positions], split.tokens[positions + 1], mask, True)


class LineBatches:
    """batch_size lines drawn at random (with replacement, makemore-style) each step."""

    def __init__(self, split: Split, batch_size: int, rng: np.random.Generator):
        self.split = split
        self.batch_size = batch_size
        self.rng = rng

    def next(self) -> Batch:
        line_ids = self.rng.integers(len(self.split.starts), size=self.batch_size)
        return gather_lines(self.split, line_ids)


def stream_cut(length: int, batch_size: int, seq_length: int) -> tuple[int, int]:
    """How evaluation cuts a text of length characters into contiguous streams: (how many, each
    one's length). At most batch_size, each at least seq_length + 1 long where the text allows."""
    streams = max(1, min(batch_size, (length - 1) // max(seq_length, 1)))
    return streams, length // streams


def eval_batches(split: Split, mode: str, batch_size: int, seq_length: int,
                 max_chars: int | None = None):
    """Batches that cover the split once (or about max_chars characters spread over it).

    Stream mode cuts the text into batch_size contiguous streams whose hidden state is carried from
    chunk to chunk, so every character but each stream's first is predicted once.
    """
    if mode == "lines":
        line_ids = np.arange(len(split.starts))
        if max_chars is not None:
            # about max_chars characters of lines spread evenly over the split (its lines are
            # in file order, which for names is alphabetical)
            mean_length = float(np.mean(split.lengths + 1))
            wanted = min(len(line_ids), max(1, int(max_chars / mean_length)))
            line_ids = np.unique(np.linspace(0, len(line_ids) - 1, wanted).round().astype(int))
        for first in range(0, len(line_ids), batch_size):
            yield gather_lines(split, line_ids[first: first + batch_size])
        return
    tokens = split.tokens
    streams, stride = stream_cut(len(tokens), batch_size, seq_length)
    # with max_chars, the first max_chars / streams characters of each stream: a sample spread
    # over the whole split, not just its beginning
    length = stride if max_chars is None else max(2, min(stride, max_chars // streams + 1))
    grid = tokens[: streams * stride].reshape(streams, stride)[:, :length].T  # (time, stream)
    for first in range(0, length - 1, seq_length):
        last = min(first + seq_length, length - 1)
        yield Batch(grid[first:last], grid[first + 1: last + 1], None, first == 0)

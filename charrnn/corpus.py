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
from dataclasses import dataclass, field
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
    document_starts: np.ndarray | None = None  # stream mode: where each document begins

    def documents(self) -> list[np.ndarray]:
        """Stream mode: the split's documents (one, unless it came from several files or was
        cut at characters outside the vocabulary), each read from a fresh state."""
        if self.document_starts is None or len(self.document_starts) <= 1:
            return [self.tokens]
        edges = [*self.document_starts.tolist(), len(self.tokens)]
        return [self.tokens[a:b] for a, b in zip(edges[:-1], edges[1:])]

    @property
    def characters(self) -> int:
        """Characters predicted in one pass over the split."""
        if self.lengths is not None:
            return int(self.lengths.sum() + len(self.lengths))
        return sum(max(len(document) - 1, 0) for document in self.documents())

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


def known_runs(indices: np.ndarray, known: np.ndarray) -> Split:
    """A stream-mode split of the runs of known characters (known[i]: indices[i] stands for a
    character of the vocabulary), each run a document of its own."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], known.astype(np.int8), [0]])))
    runs = [indices[a:b] for a, b in zip(edges[::2], edges[1::2])]
    if not runs:
        return Split(indices[:0])
    starts = np.cumsum([0] + [len(run) for run in runs[:-1]]).astype(np.int64)
    return Split(np.concatenate(runs), document_starts=starts)


@dataclass
class Corpus:
    vocab: Vocabulary
    mode: str
    train: Split
    val: Split | None
    fingerprint: dict | None = None  # corpus_fingerprint of the whole text, train and val
    notes: list[str] = field(default_factory=list)  # for the user: files skipped, and why

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
                errors: str = "strict", use_cache: bool = True,
                val_path: str | Path | None = None) -> Corpus:
    """Read, encode (once: see corpus_cache) and split the corpus: a file, or a directory whose
    every text file is one document. val_path: held-out text from its own file instead of a
    split of the corpus (val_fraction then unused)."""
    if Path(path).is_dir():
        corpus = _load_documents(Path(path), mode, 0.0 if val_path else val_fraction, seed,
                                 vocab, encoding, errors)
    else:
        vocab, tokens = encode_file(path, mode, vocab, encoding, errors, use_cache)
        corpus = corpus_from_tokens(tokens, vocab, mode, 0.0 if val_path else val_fraction,
                                    seed, f"corpus {path}")
        corpus.fingerprint = corpus_fingerprint(vocab, tokens)
    if val_path:
        text = read_text(val_path, encoding, errors, what="validation text")
        corpus.val, skipped = held_out(text, corpus.vocab, mode)
        if skipped:
            corpus.notes.append(f"--val {val_path}: {skipped:,} characters outside the "
                                f"training text's vocabulary are not scored (in lines mode, "
                                f"the lines holding them)")
    return corpus


def held_out(text: str, vocab: Vocabulary, mode: str) -> tuple[Split | None, int]:
    """A validation split of a separate text, and the characters left unscored: in lines mode
    the lines holding a character outside vocab; in stream mode the text is cut at such
    characters into runs, each a document."""
    if mode == "lines":
        lines = normalise_lines(text).split("\n")
        good = [line for line in lines if line and vocab.encode_known(line)[1].all()]
        skipped = sum(len(line) for line in lines) - sum(len(line) for line in good)
        if not good:
            return None, skipped
        return line_split(vocab.encode("\n".join(good)), vocab.boundary), skipped
    indices, known = vocab.encode_known(text)
    return known_runs(indices, known), int((~known).sum())


def corpus_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The text of a corpus file, or of every text file of a directory (one after another),
    undecodable bytes replaced: for a summary such as charrnn.choose's."""
    path = Path(path)
    files = text_files(path)[0] if path.is_dir() else [path]
    if not files:
        raise CharRNNError(f"corpus directory {path} holds no text files; give a folder of "
                           f"text files, or a file")
    return "\n".join(read_text(file, encoding, "replace") for file in files)


SNIFF_BYTES = 8192


def text_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(text files, binary files) under folder, in sorted path order; hidden files and folders
    are left out. A file is binary when its first SNIFF_BYTES hold a NUL byte."""
    texts, binary = [], []
    for path in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if not path.is_file():
            continue
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
        (binary if b"\0" in head else texts).append(path)
    return texts, binary


def _load_documents(folder: Path, mode: str, val_fraction: float, seed: int,
                    vocab: Vocabulary | None, encoding: str, errors: str) -> Corpus:
    """Every text file under folder, one document each. Lines mode pools their lines (and
    splits them as one file's); stream mode holds out the last val_fraction of each document,
    so the validation text comes from every document."""
    files, binary = text_files(folder)
    skipped = (f" ({len(binary)} binary file(s) skipped: {', '.join(p.name for p in binary[:3])}"
               f"{', ...' if len(binary) > 3 else ''})" if binary else "")
    texts = []
    for path in files:
        try:
            text = read_text(path, encoding, errors)
        except CharRNNError as error:
            if "is empty" in str(error):
                continue
            raise
        texts.append(normalise_lines(text) if mode == "lines" else text)
    if not texts:
        raise CharRNNError(f"corpus directory {folder} holds no text files{skipped}; give a "
                           f"folder of text files, or a file")
    notes = [f"corpus {folder}: {len(binary)} binary file(s) skipped: "
             f"{', '.join(str(p.relative_to(folder)) for p in binary[:5])}"
             f"{', ...' if len(binary) > 5 else ''}"] if binary else []
    where = f"corpus {folder}"
    if mode == "lines":
        joined = "\n".join(text.rstrip("\n") for text in texts)
        corpus = build_corpus(joined, mode, val_fraction, seed, vocab, where)
    else:
        vocab = vocab or Vocabulary.from_text("".join(texts))
        documents = [vocab.encode(text, f"{where}: {path}") for text, path in zip(texts, files)]
        heads, tails = [], []
        for tokens in documents:
            n_val = int(len(tokens) * val_fraction)
            n_val = n_val if n_val >= 2 else 0
            heads.append(tokens[: len(tokens) - n_val])
            if n_val:
                tails.append(tokens[len(tokens) - n_val:])
        corpus = Corpus(vocab, mode, _documents(heads), _documents(tails) if tails else None)
        # the set's text, and where each document ends: files split otherwise differ
        corpus.fingerprint = corpus_fingerprint(vocab, np.concatenate(documents))
        ends = np.cumsum([len(tokens) for tokens in documents]).astype("<i8").tobytes()
        corpus.fingerprint["sha256"] = hashlib.sha256(
            corpus.fingerprint["sha256"].encode("ascii") + ends).hexdigest()
    corpus.notes = notes
    return corpus


def _documents(pieces: list[np.ndarray]) -> Split:
    pieces = [piece for piece in pieces if len(piece)]
    starts = np.cumsum([0] + [len(piece) for piece in pieces[:-1]]).astype(np.int64)
    return Split(np.concatenate(pieces), document_starts=starts)


@dataclass
class Batch:
    """Inputs and targets, time-major (T, B), with an optional (T, B) mask of real positions."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray | None
    reset: bool  # the carried hidden state starts from zero for this batch
    reset_lanes: np.ndarray | None = None  # (B,) bool: these lanes start a document from zero

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


class DocumentBatches:
    """Stream mode over several documents: every lane reads whole documents (a long one cut
    into pieces about a lane long, overlapping by one character), each from a zero state.

    Each piece starts at a chunk boundary and fills whole chunks of seq_length steps (its last
    chunk padded, the padding masked out of loss and gradient), so a lane's state is reset
    exactly where its next document begins (Batch.reset_lanes). Lanes take pieces longest
    first, each to the lane with the fewest chunks; at the end all lanes wrap to 0 together.
    """

    def __init__(self, split: Split, batch_size: int, seq_length: int, where: str = "corpus"):
        documents = [d for d in split.documents() if len(d) >= 2]
        total = sum(len(d) - 1 for d in documents)
        piece = max(seq_length, -(-total // batch_size))
        pieces = [d[first: first + piece + 1] for d in documents
                  for first in range(0, len(d) - 1, piece)]
        if not pieces:
            raise CharRNNError(f"{where}: no document has two characters to train on")
        lanes = [[] for _ in range(batch_size)]
        filled = np.zeros(batch_size, dtype=np.int64)  # chunks per lane
        for p in sorted(pieces, key=len, reverse=True):
            lane = int(np.argmin(filled))
            lanes[lane].append((int(filled[lane]), p))
            filled[lane] += -(-(len(p) - 1) // seq_length)
        self.chunks = int(filled.max())
        T = self.chunks * seq_length
        dtype = pieces[0].dtype
        self.x = np.zeros((T, batch_size), dtype=dtype)
        self.y = np.zeros((T, batch_size), dtype=dtype)
        self.mask = np.zeros((T, batch_size), dtype=bool)
        self.starts = np.zeros((self.chunks, batch_size), dtype=bool)
        for lane, placed in enumerate(lanes):
            for chunk, p in placed:
                at = chunk * seq_length
                self.x[at: at + len(p) - 1, lane] = p[:-1]
                self.y[at: at + len(p) - 1, lane] = p[1:]
                self.mask[at: at + len(p) - 1, lane] = True
                self.starts[chunk, lane] = True
        self.seq_length = seq_length
        self.position = 0  # in chunks
        self.started = False

    def next(self) -> Batch:
        if not self.started or self.position >= self.chunks:
            self.position = 0
        reset = self.position == 0
        self.started = True
        rows = slice(self.position * self.seq_length, (self.position + 1) * self.seq_length)
        lanes = self.starts[self.position]
        self.position += 1
        return Batch(self.x[rows], self.y[rows], self.mask[rows], reset, lanes)


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
        # by length, so a batch pads little (the sum does not depend on the order)
        line_ids = line_ids[np.argsort(split.lengths[line_ids], kind="stable")]
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

"""The text the model reads for the page: its length, the checkpoint's held-out text by
default, and any text put in the shape its mode reads (whole names, or the first characters)."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np

from charrnn.checkpoint import training_corpus
from charrnn.corpus import fingerprint_difference, load_corpus, normalise_lines
from charrnn.errors import CharRNNError
from charrnn.plumbing.corpus_cache import text_chunks
from charrnn.plumbing.paths import file_kind, status

# A page holds every embedded number in the browser's memory and one <span> per character; past
# a few thousand characters it grows past a few MB and hovering and recolouring lag.
MAX_LENGTH = 5000
DEFAULT_LENGTH = 2000


def check_length(length: int | None) -> int:
    """The number of characters to show: DEFAULT_LENGTH, or length up to MAX_LENGTH."""
    if length is None:
        return DEFAULT_LENGTH
    if length < 1:
        raise CharRNNError(f"--length must be at least 1, got {length}")
    if length > MAX_LENGTH:
        raise CharRNNError(f"--length {length} is above the cap of {MAX_LENGTH} characters: "
                           f"a longer page grows past a few MB and turns slow to hover and "
                           f"recolour; make several pages of up to {MAX_LENGTH} characters")
    return length


def read_start(path: str | Path, mode: str, length: int, encoding: str = "utf-8",
               what: str = "--text") -> tuple[str, bool]:
    """As much of a file's start as the page can show, and whether the file holds more: length
    characters (stream mode), or its non-empty lines while they fit in length characters
    (lines mode). Reading stops there (a chunk past it at most), so a 300 MB file costs what
    its first page costs; a pipe is read as far as that too."""
    lines = mode == "lines"
    rows: list[str] = []
    kept, partial = 0, ""
    for text in text_chunks(Path(path), encoding, "strict", lines, what):
        if not lines:
            partial += text
            if len(partial) > length:
                return partial[:length], True
            continue
        parts = (partial + text).split("\n")
        partial = parts.pop()[:length + 1]  # a longer first line is refused by prepare_text
        for row in parts:
            if row:
                rows.append(row)
                kept += len(row) + 1
                if kept > length:
                    return "".join(row + "\n" for row in rows), True
    if lines:
        return "".join(row + "\n" for row in rows) + partial, False
    return partial, False


def prepare_text(text: str, mode: str, length: int, source: str,
                 more: bool = False) -> tuple[str, str]:
    """The text as the page shows it, and where it came from (with what was cut).

    Lines mode: non-empty lines, each ending in "\n", whole lines up to length characters.
    Stream mode: the first length characters. more: text is the start of a longer file
    (read_start), whose whole size is not known.
    """
    if mode == "lines":
        rows = [row for row in normalise_lines(text).split("\n") if row]
        if not rows:
            raise CharRNNError(f"{source} holds no line with a character in it; a names model "
                               f"reads one name a line")
        if len(rows[0]) + 1 > length:
            raise CharRNNError(f"the first line of {source} has {len(rows[0])} characters, "
                               f"more than --length {length} allows with its end; raise "
                               f"--length (at most {MAX_LENGTH})")
        total = np.cumsum([len(row) + 1 for row in rows])
        count = int(np.searchsorted(total, length, side="right"))
        if count < len(rows):
            source += (f" (its first {count:,} lines)" if more
                       else f" (its first {count:,} of {len(rows):,} lines)")
        return "".join(row + "\n" for row in rows[:count]), source
    if not text:
        raise CharRNNError(f"{source} is empty; viz needs at least one character")
    if more:
        source += f" (its first {length:,} characters)"
    elif len(text) > length:
        source += f" (its first {length:,} of {len(text):,} characters)"
    return text[:length], source


def default_text(saved, length: int) -> tuple[str, str]:
    """Held-out text: a stretch of the checkpoint's validation split from a line's start
    (stream mode), or validation names spread evenly over the split, one a row (lines mode).
    The corpus is found from any folder (checkpoint.training_corpus) and checked by its
    fingerprint; a pipe or device is never opened (nothing may be writing to it now)."""
    data = saved.config.data
    hint = "pass --text FILE or --prime TEXT"
    path = training_corpus(saved.config, saved.meta, hint=hint)
    found = status(path)
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise CharRNNError(f"the checkpoint's corpus {path} is a {file_kind(found.st_mode)}, "
                           f"which viz does not open (it would wait for a writer); {hint}")
    try:
        corpus = load_corpus(path, data.mode, data.val_fraction, saved.config.training.seed,
                             saved.vocab, data.encoding, data.errors, use_cache=data.cache)
    except CharRNNError as error:
        raise CharRNNError(f"the checkpoint's corpus cannot be read ({error}); {hint}") from None
    changed = fingerprint_difference(saved.corpus_fingerprint, corpus.fingerprint)
    if changed:
        raise CharRNNError(f"the checkpoint's corpus {path} is not the text it was trained on "
                           f"({changed}), so its held-out part is unknown; {hint}")
    split, where = corpus.val, f"the validation split of {data.corpus}"
    if split is None:
        split, where = corpus.train, f"{data.corpus} (it has no validation split)"
    if data.mode == "lines":
        names = split.lines(saved.vocab)
        wanted = max(1, int(length / (np.mean([len(name) + 1 for name in names]) or 1)))
        picks = np.unique(np.linspace(0, len(names) - 1, min(wanted, len(names))).round())
        chosen = [names[int(i)] for i in picks]
        total = np.cumsum([len(name) + 1 for name in chosen])
        chosen = chosen[:max(1, int(np.searchsorted(total, length, side="right")))]
        return ("".join(name + "\n" for name in chosen),
                f"{len(chosen):,} names of {where}, spread over it")
    head = saved.vocab.decode(split.tokens[:length + 200])
    start = head.find("\n", 0, 200) + 1  # from the start of a line when one starts early
    return head[start:start + length], f"a stretch of {where}"

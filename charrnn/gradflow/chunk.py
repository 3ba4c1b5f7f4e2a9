"""The chunk of text gradflow analyses: the text given, or a default from the checkpoint's
corpus, shaped as the model read text in training."""

from __future__ import annotations

import numpy as np

from charrnn.checkpoint import Checkpoint, training_corpus
from charrnn.corpus import longest_line, normalise_lines, text_start
from charrnn.errors import CharRNNError
from charrnn.sample import sample_text

DEFAULT_LENGTH = 50
SAMPLE_SEED = 0  # the fallback text is the model's own sample from this seed
SAMPLE_LENGTH = 1000  # characters sampled, to pick the longest line from (lines mode)


def chunk_text(saved: Checkpoint, length: int = DEFAULT_LENGTH, text: str | None = None,
               source: str = "the given text") -> tuple[str, str]:
    """The characters to analyse (T inputs and the last target) and where they came from.

    A lines-mode model is read as it was trained: each line after a newline and followed by one,
    so a newline is added at the start and the end of the text where missing. Without a text
    (None) it is default_text's. At most length + 1 characters are kept.
    """
    if text is None:
        text, source = default_text(saved, length)
    if saved.config.data.mode == "lines":
        text = normalise_lines(text)
        text = text if text.startswith("\n") else "\n" + text
        text = text if text.endswith("\n") else text + "\n"
    text = text[: length + 1]
    if len(text) < 2:
        raise CharRNNError(f"{source} gives {len(text)} character(s); gradflow needs at least 2 "
                           f"(an input and the next character as its target)")
    return text, source


def default_text(saved: Checkpoint, length: int) -> tuple[str, str]:
    """The checkpoint's corpus (found from any folder: checkpoint.training_corpus): its longest
    line for a lines-mode model, which never carried its state from one line to the next, else
    its start. When the corpus cannot be read (or is a pipe, never opened), the model's own
    sample from a fixed seed instead."""
    data = saved.config.data
    lines = data.mode == "lines"
    try:  # only what is needed, in one bounded pass: never the whole corpus in memory
        corpus = training_corpus(saved.config, saved.meta)
        if lines:
            line = longest_line(corpus, length + 1, data.encoding, data.errors)
            return line, f"the longest line of corpus {corpus}"
        text = text_start(corpus, length + 1, data.encoding, data.errors)
        return text, f"the start of corpus {corpus}"
    except CharRNNError:
        text = sample_text(saved.model, saved.vocab, max(length + 1, SAMPLE_LENGTH),
                           np.random.default_rng(SAMPLE_SEED), reset_at_boundary=lines)
        origin = f"the model's sample (seed {SAMPLE_SEED}; corpus {data.corpus} unreadable)"
    if lines:
        return max(normalise_lines(text).split("\n"), key=len), f"the longest line of {origin}"
    return text, f"the start of {origin}"


def lines_crossed(saved: Checkpoint, text: str) -> int:
    """Newlines among the inputs after the first, where a lines-mode model would have reset."""
    return text[1:-1].count("\n") if saved.config.data.mode == "lines" else 0

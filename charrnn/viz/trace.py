"""Running a checkpoint's model over a text: the Trace the page is drawn from.

trace_model records, for every character shown, the loss the model paid for it, its top guesses
for it, and the state of every unit after reading it (the series each cell shows, from
`model.cell.shown_series()`), reading the text as `charrnn eval` does.

Alignment: position i of a Trace is character text[i]. losses[i], top_ids[i] and top_probs[i]
describe the prediction of text[i], made before the model read it; series[name][i] is the state
after the model read text[i] (Karpathy's convention: a character is coloured by what the unit did
when it read that character).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from charrnn.errors import CharRNNError

TOP_K = 5
LINES_BATCH = 128  # names run through the model together, padded to the longest


@dataclass
class Trace:
    """What the model did on a text, one row per character shown.

    text: the characters, in order; in lines mode (names) every row ends with "\\n", which stands
        for the end of the name (the model's last prediction of each row).
    losses (N,): nats the model paid for text[i], -ln p(text[i]); NaN where nothing predicted it
        (the first character of a stream, an unknown character, a line left out).
    top_ids (N, K), top_probs (N, K): its K likeliest guesses for text[i], indices into vocab,
        likeliest first; -1 and 0 where nothing predicted it.
    series: name -> (N, H) array: a state after reading text[i] (keys like "layer 0 h",
        "layer 0 c", "layer 0 gate f"); NaN rows where the model did not read the character.
    vocab: the model's characters in index order.
    known (N,): False for characters outside the vocabulary (shown greyed, never dropped).
    ranges: series with a natural range, coloured on it (tanh h: (-1, 1), gates: (0, 1)); the
        others are coloured on each unit's own range.
    facts: shown in the page's header, in order (cell, layers, hidden size, step, val loss, ...).
    """

    text: str
    losses: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    series: dict[str, np.ndarray]
    vocab: str
    mode: str = "stream"
    known: np.ndarray | None = None
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    facts: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.text)
        self.losses = np.asarray(self.losses, dtype=np.float64)
        self.top_ids = np.asarray(self.top_ids, dtype=np.int64)
        self.top_probs = np.asarray(self.top_probs, dtype=np.float64)
        if self.known is None:
            self.known = np.ones(n, dtype=bool)
        self.known = np.asarray(self.known, dtype=bool)
        if self.mode not in ("stream", "lines"):
            raise ValueError(f"mode must be stream or lines, got {self.mode!r}")
        if self.losses.shape != (n,) or self.known.shape != (n,):
            raise ValueError(f"losses and known must have shape ({n},)")
        if self.top_ids.ndim != 2 or self.top_ids.shape[0] != n:
            raise ValueError(f"top_ids must have shape ({n}, K)")
        if self.top_probs.shape != self.top_ids.shape:
            raise ValueError("top_probs must have top_ids' shape")
        if self.top_ids.size and self.top_ids.max() >= len(self.vocab):
            raise ValueError("top_ids must index vocab")
        for name, values in self.series.items():
            if values.ndim != 2 or values.shape[0] != n:
                raise ValueError(f"series {name!r} must have shape ({n}, H)")

    @property
    def scored(self) -> np.ndarray:
        return np.isfinite(self.losses)

    def mean_loss(self) -> float | None:
        """Mean nats per predicted character (what `charrnn eval` reports on the same text)."""
        scored = self.scored
        return float(self.losses[scored].mean()) if scored.any() else None


def cell_series(model) -> list[tuple[int, str, str, tuple[float, float] | None]]:
    """(layer, cache field, series name, natural range) of every series the model has."""
    return [(layer, series.field, f"layer {layer} {series.label}", series.natural_range)
            for layer in range(model.spec.num_layers) for series in model.cell.shown_series()]


def _forward(model, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The model's own forward over x (T, B) from a zero state, without dropout: log-softmax
    (T, B, V) in float64 and every series (T, B, H) from the cells' caches."""
    fwd = model.forward(x, model.zero_state(x.shape[1]))
    logits = model.logits(fwd.h_top).astype(np.float64)
    logits -= logits.max(axis=-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    series = {}
    for layer, field_name, name, _ in cell_series(model):
        cache = fwd.layers[layer][2]
        series[name] = np.array(getattr(cache, field_name), dtype=np.float64)
    return logp, series


def _top(logp: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k likeliest indices of every row of logp (..., V), likeliest first, and their p."""
    ids = np.argpartition(-logp, k - 1, axis=-1)[..., :k]
    values = np.take_along_axis(logp, ids, axis=-1)
    order = np.argsort(-values, axis=-1, kind="stable")
    return np.take_along_axis(ids, order, axis=-1), np.exp(np.take_along_axis(values, order, -1))


def trace_model(saved, text: str, mode: str | None = None, top_k: int = TOP_K,
                facts: dict | None = None) -> Trace:
    """Run a checkpoint's model over text and record everything the page shows.

    Stream mode reads the text as one stream from a zero state; at a character outside the
    vocabulary the model stops and starts afresh after it, exactly as `charrnn eval` cuts the
    text into runs. Lines mode (the checkpoint's data.mode) reads each line as a name: after a
    newline, from a zero state, ending by predicting the newline; a line holding a character
    outside the vocabulary is shown but not read, as `charrnn eval` leaves it out. text must
    already be in shape (see prepare_text): in lines mode, non-empty lines each ending in "\n".
    """
    model, vocab = saved.model, saved.vocab
    mode = mode or saved.config.data.mode
    n = len(text)
    k = min(top_k, len(vocab))
    indices, known = vocab.encode_known(text)
    indices = indices.astype(np.int64)
    names = cell_series(model)
    H = model.spec.hidden_size
    losses = np.full(n, np.nan)
    top_ids = np.full((n, k), -1, dtype=np.int64)
    top_probs = np.zeros((n, k))
    # float32 is plenty for a page that stores one byte a value, and halves a big model's memory
    series = {name: np.full((n, H), np.nan, dtype=np.float32) for _, _, name, _ in names}
    if mode == "lines":
        _trace_lines(model, vocab, text, indices, known, losses, top_ids, top_probs, series)
    else:
        _trace_stream(model, indices, known, losses, top_ids, top_probs, series)
    return Trace(text=text, losses=losses, top_ids=top_ids, top_probs=top_probs, series=series,
                 vocab=vocab.chars, mode=mode, known=known,
                 ranges={name: natural for _, _, name, natural in names if natural},
                 facts=dict(facts or {}))


def _trace_stream(model, indices, known, losses, top_ids, top_probs, series) -> None:
    n = len(indices)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], known.astype(np.int8), [0]])))
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()):
        logp, states = _forward(model, indices[a:b, None])
        logp = logp[:, 0]
        ids, probs = _top(logp, top_ids.shape[1])
        # step t read position a + t and predicts a + t + 1: up to the character after the
        # run (an unknown one, which gets the guesses but no loss)
        end = min(b + 1, n)
        top_ids[a + 1:end] = ids[:end - a - 1]
        top_probs[a + 1:end] = probs[:end - a - 1]
        losses[a + 1:b] = -logp[np.arange(b - a - 1), indices[a + 1:b]]
        for name, values in states.items():
            series[name][a:b] = values[:, 0]


def _trace_lines(model, vocab, text, indices, known, losses, top_ids, top_probs, series) -> None:
    boundary = vocab.boundary
    if boundary is None:
        raise CharRNNError("this lines-mode model has no newline in its vocabulary, so it cannot "
                           "read names; the checkpoint is damaged")
    if text and not text.endswith("\n"):
        raise CharRNNError("in lines mode every name ends with a newline, the text's last one "
                           "too (prepare_text puts a text in shape)")
    ends = np.flatnonzero(known & (indices == boundary))
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64) if len(ends) else ends
    # like charrnn eval: an empty line is no name, and a name with an unknown character is not read
    clean = [(s, e) for s, e in zip(starts.tolist(), ends.tolist())
             if e > s and known[s:e].all()]
    for first in range(0, len(clean), LINES_BATCH):
        group = clean[first:first + LINES_BATCH]
        longest = max(e - s for s, e in group)
        # inputs: the boundary, the name, the boundary (read, so the page has the state after
        # the end of the name); the rest is padding that no position below reads
        x = np.full((longest + 2, len(group)), boundary, dtype=np.int64)
        for row, (s, e) in enumerate(group):
            x[1:e - s + 1, row] = indices[s:e]
        logp, states = _forward(model, x)
        ids, probs = _top(logp, top_ids.shape[1])
        for row, (s, e) in enumerate(group):
            steps = np.arange(e - s + 1)  # step t predicts position s + t (the end: e)
            targets = indices[s:e + 1]
            losses[s:e + 1] = -logp[steps, row, targets]
            top_ids[s:e + 1] = ids[steps, row]
            top_probs[s:e + 1] = probs[steps, row]
            for name, values in states.items():
                series[name][s:e + 1] = values[steps + 1, row]

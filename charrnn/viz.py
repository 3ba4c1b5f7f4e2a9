"""`charrnn viz`: one self-contained HTML page of what every character and every unit does.

The work is split in two halves that meet in a Trace:
- trace_model runs a checkpoint over a text and records, for every character shown, the loss the
  model paid for it, its top guesses for it, and the state of every unit after reading it;
- find_units, build_page and write_page need only the Trace: they correlate units with simple
  features of the text, and write one HTML file (inline CSS and JavaScript, data embedded as
  JSON, no network access of any kind) that colours the text by surprise or by any unit.

Alignment: position i of a Trace is character text[i]. losses[i], top_ids[i] and top_probs[i]
describe the prediction of text[i], made before the model read it; series[name][i] is the state
after the model read text[i] (Karpathy's convention: a character is coloured by what the unit did
when it read that character).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.corpus import load_corpus, normalise_lines
from charrnn.errors import CharRNNError
from charrnn.plumbing.paths import Output, check_outputs
from charrnn.plumbing.writing import atomic_write

# A page holds every embedded number in the browser's memory and one <span> per character; past
# a few thousand characters it grows past a few MB and hovering and recolouring lag.
MAX_LENGTH = 5000
DEFAULT_LENGTH = 2000
TOP_K = 5
# Unit activations are embedded as one byte each (base64: 4 characters per 3 bytes). A page
# embeds whole series (every unit of "layer 0 h", ...) while characters x units stay within this
# budget, in the order h, c, gates; the units the finder picked are always embedded.
VALUE_BUDGET = 4_000_000
LEVELS = 254  # quantisation steps: byte 0..254 is a value, 255 marks "no value here"
MISSING = 255
FINDINGS = 12  # units listed as worth a look
PER_FEATURE = 3  # at most this many of them for one feature
MIN_ABS_R = 0.2  # weaker correlations are not worth a look

QUOTES = '"'
OPEN_QUOTES, CLOSE_QUOTES = "\u201c\u00ab", "\u201d\u00bb"  # curly and guillemets
OPEN_BRACKETS, CLOSE_BRACKETS = "([{", ")]}"
VOWELS = "aeiouAEIOU"


# --- the data structure -------------------------------------------------------------------------

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


@dataclass(frozen=True)
class Finding:
    """One unit that follows one feature of the text: Pearson r over the characters read."""

    series: str
    unit: int
    feature: str
    r: float


# --- features of the text and the units that follow them ----------------------------------------

def text_features(text: str, mode: str = "stream") -> dict[str, np.ndarray]:
    """Simple features of the text at each character, as known after reading it (float arrays).

    position in the line (names: in the name), inside quotes, inside brackets, start of a word
    (not for names: a name is one word), vowel. Each is computed for the whole text at once.
    """
    n = len(text)
    chars = np.array(list(text), dtype="<U1") if n else np.zeros(0, dtype="<U1")
    index = np.arange(n)
    newline = chars == "\n"
    # characters since the last newline: a newline itself is 0, the next character 1
    last_newline = np.maximum.accumulate(np.where(newline, index, -1)) if n else index
    position = (index - last_newline).astype(np.float64)
    # inside quotes: an odd number of straight quotes read so far, or an open curly quote
    straight = np.cumsum(np.isin(chars, list(QUOTES))) % 2 == 1
    curly = _clipped_depth(np.isin(chars, list(OPEN_QUOTES)), np.isin(chars, list(CLOSE_QUOTES)))
    inside_quotes = straight | (curly > 0)
    brackets = _clipped_depth(np.isin(chars, list(OPEN_BRACKETS)),
                              np.isin(chars, list(CLOSE_BRACKETS)))
    letter = np.char.isalpha(chars)
    after_letter = np.concatenate([[False], letter[:-1]]) if n else letter
    features = {
        "position in the name" if mode == "lines" else "position in the line": position,
        "inside quotes": inside_quotes,
        "inside brackets": brackets > 0,
        "start of a word": letter & ~after_letter,
        "vowel": np.isin(chars, list(VOWELS)),
    }
    if mode == "lines":  # a name is one word: its start is position 1, already covered
        del features["start of a word"]
    return {name: values.astype(np.float64) for name, values in features.items()}


def _clipped_depth(opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
    """Nesting depth after each character, never below 0 (a stray closer is ignored):
    the running sum minus its lowest point so far, the reflected walk, without a loop."""
    walk = np.cumsum(opens.astype(np.int64) - closes.astype(np.int64))
    return walk - np.minimum(np.minimum.accumulate(walk), 0) if walk.size else walk


def correlations(values: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Pearson r of every feature (N, F) with every unit (N, H): (F, H), 0 where one is constant."""
    values = values - values.mean(axis=0)
    features = features - features.mean(axis=0)
    value_norm = np.sqrt(np.einsum("nh,nh->h", values, values))
    feature_norm = np.sqrt(np.einsum("nf,nf->f", features, features))
    scale = np.outer(feature_norm, value_norm)
    product = features.T @ values
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(scale > 1e-12 * max(float(scale.max(initial=0.0)), 1.0), product / scale, 0.0)
    return np.clip(r, -1.0, 1.0)


def find_units(text: str, series: dict[str, np.ndarray], mode: str = "stream",
               known: np.ndarray | None = None, limit: int = FINDINGS,
               per_feature: int = PER_FEATURE, min_abs_r: float = MIN_ABS_R) -> list[Finding]:
    """The units that follow a feature of the text most closely, strongest |r| first.

    Every unit of every series is correlated with every feature of text_features over the
    characters the model read (known ones with finite values). At most per_feature units are
    kept for one feature, so one easy feature cannot fill the whole list.
    """
    features = text_features(text, mode)
    names = list(features)
    matrix = np.stack([features[name] for name in names], axis=1)  # (N, F)
    readable = np.ones(len(text), dtype=bool) if known is None else np.asarray(known, bool)
    candidates: list[Finding] = []
    for series_name, values in series.items():
        values = np.asarray(values, dtype=np.float64)
        rows = readable & np.isfinite(values).all(axis=1)
        if rows.sum() < 3:
            continue
        r = correlations(values[rows], matrix[rows])  # (F, H)
        for f, feature in enumerate(names):
            best = np.argsort(-np.abs(r[f]), kind="stable")[:per_feature]
            candidates += [Finding(series_name, int(u), feature, float(r[f, u])) for u in best]
    strongest: dict[str, list[Finding]] = {}
    for finding in sorted(candidates, key=lambda item: -abs(item.r)):
        kept = strongest.setdefault(finding.feature, [])
        if abs(finding.r) >= min_abs_r and len(kept) < per_feature:
            kept.append(finding)
    ranked = sorted((item for kept in strongest.values() for item in kept),
                    key=lambda item: -abs(item.r))
    return ranked[:limit]


# --- running a model over a text -----------------------------------------------------------------

LINES_BATCH = 128  # names run through the model together, padded to the longest


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


# --- choosing the text --------------------------------------------------------------------------

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


def prepare_text(text: str, mode: str, length: int, source: str) -> tuple[str, str]:
    """The text as the page shows it, and where it came from (with what was cut).

    Lines mode: non-empty lines, each ending in "\n", whole lines up to length characters.
    Stream mode: the first length characters.
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
            source += f" (its first {count:,} of {len(rows):,} lines)"
        return "".join(row + "\n" for row in rows[:count]), source
    if not text:
        raise CharRNNError(f"{source} is empty; viz needs at least one character")
    if len(text) > length:
        source += f" (its first {length:,} of {len(text):,} characters)"
    return text[:length], source


def default_text(saved, length: int) -> tuple[str, str]:
    """Held-out text: a stretch of the checkpoint's validation split from a line's start
    (stream mode), or validation names spread evenly over the split, one a row (lines mode).
    The corpus is the checkpoint's data.corpus, relative to the current directory."""
    data = saved.config.data
    try:
        corpus = load_corpus(data.corpus, data.mode, data.val_fraction, saved.config.training.seed,
                             saved.vocab, data.encoding, data.errors, use_cache=data.cache)
    except CharRNNError as error:
        raise CharRNNError(f"the checkpoint's corpus cannot be read ({error}); run from the "
                           f"directory it was trained in, or pass --text FILE or --prime "
                           f"TEXT") from None
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


def checkpoint_facts(saved, path, source: str) -> dict:
    """The page header's facts about the checkpoint and the text."""
    spec = saved.spec
    best = saved.meta.get("best_val_loss")
    return {
        "cell": spec.cell_label,
        "layers": spec.num_layers,
        "hidden size": spec.hidden_size,
        "step": f"{saved.step:,}",
        "best val loss": "none" if best is None else f"{best:.3f} nats/char",
        "vocabulary": f"{len(saved.vocab)} characters",
        "mode": saved.config.data.mode,
        "checkpoint": str(path),
        "text": source,
    }


# --- the page -----------------------------------------------------------------------------------

def series_kind(name: str) -> str:
    """'h', 'c', 'gate' or 'candidate' from a series name like 'layer 0 gate f'."""
    for kind in ("gate", "candidate"):
        if f" {kind} " in f" {name} ":
            return kind
    return name.split()[-1] if name.split() else name


def choose_series(trace: Trace, findings: list[Finding],
                  budget: int = VALUE_BUDGET) -> dict[str, list[int] | None]:
    """Series to embed whole (None), within budget characters x units in the order h, c, gates,
    and the single units the findings need from series left out."""
    n = max(len(trace.text), 1)
    rank = {"h": 0, "c": 1, "gate": 2}
    order = sorted(trace.series, key=lambda name: rank.get(series_kind(name), 3))
    chosen: dict[str, list[int] | None] = {}
    used = 0
    for name in order:
        size = n * trace.series[name].shape[1]
        if used + size <= budget:
            chosen[name] = None
            used += size
    for finding in findings:
        if finding.series in trace.series and chosen.get(finding.series, []) is not None:
            units = chosen.setdefault(finding.series, [])
            if finding.unit not in units:
                units.append(finding.unit)
    # whole series first, in the trace's order; then the partial ones
    whole = [name for name in trace.series if name in chosen and chosen[name] is None]
    partial = [name for name in trace.series if name in chosen and chosen[name] is not None]
    return {name: chosen[name] for name in whole + partial}


def _quantise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes (N, H) uint8, lo (H,), hi (H,)): each unit on its own range in LEVELS steps."""
    finite = np.isfinite(values)
    any_finite = finite.any(axis=0)
    lo = np.where(any_finite, np.nanmin(np.where(finite, values, np.inf), axis=0), 0.0)
    hi = np.where(any_finite, np.nanmax(np.where(finite, values, -np.inf), axis=0), 0.0)
    lo, hi = _round_sig(lo, 5), _round_sig(hi, 5)
    width = np.where(hi > lo, hi - lo, 1.0)
    scaled = np.rint((np.where(finite, values, lo) - lo) / width * LEVELS)
    codes = np.clip(scaled, 0, LEVELS).astype(np.uint8)
    codes[~finite] = MISSING
    return codes, lo, hi


def _round_sig(values: np.ndarray, digits: int) -> np.ndarray:
    """Round to `digits` significant digits, whole-array."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.where(values != 0, np.floor(np.log10(np.abs(values))), 0)
    decimals = (digits - 1 - magnitude).astype(np.int64)
    return np.array([round(float(v), int(d)) for v, d in zip(values.ravel(), decimals.ravel())]
                    ).reshape(values.shape) if values.size else values


def _rounded_list(values: np.ndarray, decimals: int) -> list:
    """JSON-ready floats rounded to `decimals` places, None for NaN."""
    values = np.round(np.asarray(values, dtype=np.float64), decimals)
    return [None if not math.isfinite(v) else v for v in values.tolist()]


def _fact_text(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def page_data(trace: Trace, findings: list[Finding], budget: int = VALUE_BUDGET) -> dict:
    """Everything the page's script needs, JSON-ready, numbers rounded."""
    chosen = choose_series(trace, findings, budget)
    series = []
    for name, units in chosen.items():
        values = trace.series[name]
        total = values.shape[1]
        columns = list(range(total)) if units is None else sorted(units)
        codes, lo, hi = _quantise(np.asarray(values, dtype=np.float64)[:, columns])
        fixed = trace.ranges.get(name)
        series.append({
            "name": name, "kind": series_kind(name), "total": total,
            "units": None if units is None else columns,
            "lo": lo.tolist(), "hi": hi.tolist(),
            "fixed": None if fixed is None else [float(fixed[0]), float(fixed[1])],
            "q": base64.b64encode(np.ascontiguousarray(codes).tobytes()).decode("ascii"),
        })
    index = {entry["name"]: i for i, entry in enumerate(series)}
    mean = trace.mean_loss()
    top_probs = np.where(trace.top_ids >= 0, trace.top_probs, 0.0)
    return {
        "version": 1,
        "mode": trace.mode,
        "facts": [[str(key), _fact_text(value)] for key, value in trace.facts.items()],
        "vocab": list(trace.vocab),
        "text": trace.text,
        "known": "".join("1" if k else "0" for k in trace.known.tolist()),
        "loss": _rounded_list(trace.losses, 3),
        "k": int(trace.top_ids.shape[1]),
        "topIds": trace.top_ids.reshape(-1).tolist(),
        "topProbs": _rounded_list(top_probs.reshape(-1), 4),
        "meanLoss": None if mean is None else round(mean, 4),
        "scored": int(trace.scored.sum()),
        "uniform": round(math.log(max(len(trace.vocab), 2)), 4),
        "series": series,
        "left": [name for name in trace.series if name not in chosen or chosen[name] is not None],
        "findings": [{"series": index[item.series], "unit": item.unit, "feature": item.feature,
                      "r": round(item.r, 3)} for item in findings if item.series in index],
    }


def script_json(data) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' can end the element or open a
    comment, every non-ASCII character (U+2028 included) is escaped; NaN is refused."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def build_page(trace: Trace, findings: list[Finding], budget: int = VALUE_BUDGET) -> str:
    """One self-contained HTML page: inline CSS and JavaScript, the data as embedded JSON, no
    URL of any kind. The script builds the DOM with textContent, so no character of the text
    can become markup."""
    return PAGE.replace("/*DATA*/", script_json(page_data(trace, findings, budget)), 1)


# --- writing the page ---------------------------------------------------------------------------

PAGE_HINT = "choose another --out"


def check_output_path(out: str | Path, inputs: Mapping[str, str | Path | None] | None = None
                      ) -> Path:
    """Refuse, before any work, a page path that is one of the inputs ({label: path}, e.g.
    {"--checkpoint": ..., "--text": ...}; links resolved) or exists as anything but a regular
    file: charrnn.plumbing.paths.check_outputs."""
    check_outputs(dict(inputs or {}), [Output(Path(out), "--out", PAGE_HINT)])
    return Path(out)


def write_page(out: str | Path, page: str,
               inputs: Mapping[str, str | Path | None] | None = None) -> Path:
    """Write the page through the one atomic writer (charrnn.plumbing.writing), so a reader never
    sees half a page and a failed write leaves the old one; its mode is kept, and a link at out is
    followed to the page it names. Returns out."""
    check_output_path(out, inputs)
    return atomic_write(out, page, "the page", PAGE_HINT)


# --- the page's HTML, CSS and JavaScript --------------------------------------------------------

PAGE = r"""<!DOCTYPE html>
<html lang="en" data-viz-status="loading">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>charrnn viz</title>
<style>
:root {
  --ink: #1f2328; --muted: #656d76; --line: #d8dee4; --panel: #f6f8fa; --accent: #0969da;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono",
    monospace;
}
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans",
    sans-serif; }
header { padding: 14px 24px 10px; border-bottom: 1px solid var(--line); background: var(--panel); }
h1 { font-size: 20px; margin: 0 0 8px; font-weight: 600; }
h1 small { font-weight: 400; color: var(--muted); font-size: 15px; }
h2 { font-size: 15px; margin: 0 0 6px; font-weight: 600; }
.facts { display: flex; flex-wrap: wrap; gap: 6px; margin: 0; padding: 0; list-style: none; }
.facts li { background: #fff; border: 1px solid var(--line); border-radius: 12px;
  padding: 1px 10px; font-size: 13px; }
.facts b { font-weight: 600; color: var(--muted); margin-right: 4px; }
details.help { margin-top: 8px; font-size: 14px; max-width: 75em; }
details.help summary { cursor: pointer; color: var(--accent); }
details.help ul { margin: 6px 0 2px; padding: 0; list-style: none; display: grid; gap: 6px 22px;
  grid-template-columns: repeat(auto-fit, minmax(250px, 1fr)); }
details.help li { margin: 0; font-size: 13.5px; }
details.help { max-width: none; }
.layout { display: grid; grid-template-columns: minmax(0, 1fr) 380px; gap: 20px;
  padding: 14px 24px 30px; align-items: start; }
@media (max-width: 900px) { .layout { grid-template-columns: 1fr; } }
.controls { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 14px;
  padding: 8px 10px; border: 1px solid var(--line); border-radius: 8px; background: var(--panel); }
.seg { display: inline-flex; border: 1px solid var(--line); border-radius: 6px; overflow: hidden; }
.seg button { border: 0; background: #fff; padding: 4px 12px; font: inherit; cursor: pointer; }
.seg button + button { border-left: 1px solid var(--line); }
.seg button.on { background: var(--accent); color: #fff; }
.picker { display: inline-flex; align-items: center; gap: 6px; transition: opacity .15s; }
.by-loss .picker { opacity: .55; }
.picker select, .picker button { font: inherit; font-size: 14px; }
.picker input[type=range] { width: 160px; }
.picker output { font-family: var(--mono); min-width: 5.5em; }
.legend { display: inline-flex; align-items: center; gap: 6px; font-size: 12px;
  color: var(--muted); }
.legend .bar { width: 150px; height: 12px; border: 1px solid var(--line); border-radius: 3px; }
.summary { margin: 10px 2px 6px; font-size: 14px; color: var(--muted); }
.summary b { color: var(--ink); }
.text { font-family: var(--mono); font-size: 15px; line-height: 1.7; white-space: pre-wrap;
  word-break: break-all; padding: 10px 12px; border: 1px solid var(--line); border-radius: 8px;
  tab-size: 4; }
.text.names { columns: 11em; column-gap: 18px; white-space: pre; }
.row { break-inside: avoid; padding: 0 2px; }
.ch { cursor: pointer; border-radius: 2px; }
.ch:hover { outline: 1px solid #57606a; }
.ch.pinned { outline: 2px solid var(--ink); }
.ch.nl { color: #8c959f; font-size: 12px; }
.ch.unk { background: #e6e6e6 !important; color: #8c959f; text-decoration: line-through wavy;
  text-decoration-thickness: 1px; }
.ch.first { color: #57606a; }
aside { position: sticky; top: 10px; display: flex; flex-direction: column; gap: 14px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.inspect-head { display: flex; align-items: baseline; gap: 10px; }
.big { font-family: var(--mono); font-size: 26px; min-width: 1.4em; text-align: center;
  border: 1px solid var(--line); border-radius: 6px; padding: 0 6px; background: #fff; }
.where { color: var(--muted); font-size: 13px; }
.lossline { margin: 6px 0 8px; font-size: 14px; }
.hint { color: var(--muted); font-size: 13px; }
ol.guesses { list-style: none; margin: 4px 0 8px; padding: 0; }
ol.guesses li { display: grid; grid-template-columns: 3.2em 1fr 4em; gap: 8px; align-items: center;
  font-size: 13px; padding: 1px 0; }
ol.guesses .g { font-family: var(--mono); text-align: center; border: 1px solid var(--line);
  border-radius: 4px; background: #fff; }
ol.guesses li.hit .g { border-color: #1a7f37; background: #dafbe1; font-weight: 700; }
ol.guesses .pbar { height: 10px; background: #eaeef2; border-radius: 3px; overflow: hidden; }
ol.guesses .pbar i { display: block; height: 100%; background: #8c959f; }
ol.guesses li.hit .pbar i { background: #1a7f37; }
ol.guesses .p { text-align: right; font-family: var(--mono); }
ol.guesses li.hint { display: block; }
canvas.strip { width: 100%; height: 64px; display: block; background: #fff;
  border: 1px solid var(--line); border-radius: 4px; cursor: crosshair; }
.stripnote { font-size: 12px; color: var(--muted); margin-top: 3px; }
ul.found { list-style: none; padding: 0; margin: 4px 0 0; }
ul.found li + li { margin-top: 4px; }
ul.found button { width: 100%; text-align: left; font: inherit; font-size: 13px; cursor: pointer;
  display: grid; grid-template-columns: 1fr 4.4em; gap: 2px 8px; padding: 5px 8px;
  border: 1px solid var(--line); border-radius: 6px; background: #fff; }
ul.found button:hover { border-color: var(--accent); }
ul.found button.on { border-color: var(--accent); background: #ddf4ff; }
ul.found .u { font-family: var(--mono); }
ul.found .r { font-family: var(--mono); text-align: right; }
ul.found .f { color: var(--muted); grid-column: 1 / span 2; }
.note { font-size: 12px; color: var(--muted); margin-top: 6px; }
noscript p { padding: 20px; }
</style>
</head>
<body>
<header>
  <h1>charrnn viz <small id="subtitle"></small></h1>
  <ul class="facts" id="facts"></ul>
  <details class="help" open>
    <summary>How to read this page</summary>
    <ul>
      <li><b>Surprise.</b> Each character is coloured by the model's surprise at it,
        &minus;ln&nbsp;p in nats, p being the probability the model gave it just before reading
        it. White: expected. <span id="uniformnote"></span></li>
      <li><b>Hover</b> over a character (click to pin it, arrow keys to move) to see the model's
        five likeliest guesses for it, and its hidden state after reading it: one bar a unit.</li>
      <li><b>Units.</b> Switch the colouring to one unit and the text shows what that unit did
        as it read each character (Karpathy's pictures of quote and line-length cells).
        Click a bar in the hidden state to pick its unit.</li>
      <li><b>Units worth a look</b> were found by correlating every unit with simple features of
        this text (<span id="featurelist">position in the line, inside quotes or brackets, start
        of a word, vowel</span>).
        r near +1 or &minus;1 means the unit follows the feature closely; a correlation is a hint,
        not proof: check it by eye in the text.</li>
    </ul>
  </details>
</header>
<noscript><p>This page draws everything with JavaScript; please allow scripts for this file.</p>
</noscript>
<div class="layout">
  <main>
    <div class="controls">
      <span class="seg" id="colourby">
        <button type="button" data-by="loss" class="on">Surprise</button>
        <button type="button" data-by="unit">Unit</button>
      </span>
      <span class="picker">
        <select id="series" aria-label="series"></select>
        <button type="button" id="prev" aria-label="previous unit">&#9664;</button>
        <input type="range" id="unit" min="0" max="0" value="0" aria-label="unit">
        <button type="button" id="next" aria-label="next unit">&#9654;</button>
        <output id="unitlabel"></output>
      </span>
      <span class="legend"><span id="legendlo"></span><span class="bar" id="legendbar"></span>
        <span id="legendhi"></span><span id="legendname"></span></span>
    </div>
    <div class="summary" id="summary"></div>
    <div class="text" id="text"></div>
  </main>
  <aside>
    <section class="card" id="inspect">
      <div class="inspect-head"><span class="big" id="bigchar">&nbsp;</span>
        <span class="where" id="where">Hover over a character.</span></div>
      <div class="lossline" id="lossline"></div>
      <h2 id="guesstitle">The model's top guesses for it</h2>
      <ol class="guesses" id="guesses"></ol>
      <h2>Hidden state after reading it</h2>
      <canvas class="strip" id="strip" width="356" height="64"></canvas>
      <div class="stripnote" id="stripnote"></div>
    </section>
    <section class="card">
      <h2>Units worth a look</h2>
      <div class="hint" id="foundhint"></div>
      <ul class="found" id="found"></ul>
      <div class="note" id="leftnote"></div>
    </section>
  </aside>
</div>
<script type="application/json" id="viz-data">/*DATA*/</script>
<script>
(function () {
  "use strict";
  var root = document.documentElement;
  function fail(message) { root.setAttribute("data-viz-status", "error: " + message); }
  window.addEventListener("error", function (event) { fail(event.message || "script error"); });
  try { main(); } catch (error) { fail(String(error && error.stack || error)); throw error; }

  function main() {
    var D = JSON.parse(document.getElementById("viz-data").textContent);
    var chars = Array.from(D.text);  // code points, as Python counts them
    var N = chars.length, K = D.k, lines = D.mode === "lines";
    var $ = function (id) { return document.getElementById(id); };
    function el(tag, cls, text) {
      var node = document.createElement(tag);
      if (cls) node.className = cls;
      if (text !== undefined) node.textContent = text;
      return node;
    }
    var series = D.series.map(function (s) {
      var raw = atob(s.q), q = new Uint8Array(raw.length);
      for (var i = 0; i < raw.length; i++) q[i] = raw.charCodeAt(i);
      var cols = s.lo.length, units = s.units || null;
      return { name: s.name, kind: s.kind, total: s.total, units: units, cols: cols, q: q,
               lo: s.lo, hi: s.hi, fixed: s.fixed };
    });
    function value(s, i, col) {
      var b = s.q[i * s.cols + col];
      if (b === 255) return NaN;
      return s.lo[col] + b * (s.hi[col] - s.lo[col]) / 254;
    }
    function unitId(s, col) { return s.units ? s.units[col] : col; }
    function colOf(s, unit) {
      if (!s.units) return unit >= 0 && unit < s.cols ? unit : -1;
      return s.units.indexOf(unit);
    }

    // --- colours ---------------------------------------------------------------------------
    function lossColour(nats) {
      var t = Math.max(0, Math.min(1, nats / Math.max(D.uniform, 1e-9)));
      return "hsl(4, 88%, " + (100 - 50 * t).toFixed(1) + "%)";
    }
    function divergingColour(t) {  // t in [-1, 1]
      t = Math.max(-1, Math.min(1, t));
      var light = (100 - 48 * Math.abs(t)).toFixed(1);
      return t < 0 ? "hsl(212, 85%, " + light + "%)" : "hsl(14, 88%, " + light + "%)";
    }
    function sequentialColour(t) {  // t in [0, 1]
      t = Math.max(0, Math.min(1, t));
      return "hsl(268, 60%, " + (100 - 46 * t).toFixed(1) + "%)";
    }
    function unitScale(s, col) {  // {lo, hi, colour(v)} for one unit
      var lo, hi;
      if (s.fixed) { lo = s.fixed[0]; hi = s.fixed[1]; }
      else { lo = s.lo[col]; hi = s.hi[col]; }
      if (lo >= 0) {
        var top = s.fixed ? hi : Math.max(hi, 1e-9);
        return { lo: 0, hi: top, colour: function (v) { return sequentialColour(v / top); } };
      }
      var m = s.fixed ? Math.max(-lo, hi) : Math.max(Math.abs(lo), Math.abs(hi), 1e-9);
      return { lo: -m, hi: m, colour: function (v) { return divergingColour(v / m); } };
    }

    // --- header ----------------------------------------------------------------------------
    var facts = $("facts");
    D.facts.forEach(function (pair) {
      var li = el("li");
      li.appendChild(el("b", "", pair[0]));
      li.appendChild(document.createTextNode(pair[1]));
      facts.appendChild(li);
    });
    var checkpointFact = D.facts.filter(function (p) { return p[0] === "checkpoint"; })[0];
    if (checkpointFact) {
      var base = checkpointFact[1].split(/[\\/]/).pop();
      document.title = "charrnn viz: " + base;
      $("subtitle").textContent = base;
    }
    $("uniformnote").textContent = "Deep red: as unlikely as a uniform guess among its " +
      D.vocab.length + " characters (ln " + D.vocab.length + " = " + D.uniform.toFixed(2) +
      " nats) or worse.";

    if (lines) $("featurelist").textContent = "position in the name, vowel";

    // --- the text --------------------------------------------------------------------------
    function shown(ch) {
      if (ch === "\n") return "\u23ce";
      if (ch === "\t") return "\t";
      var code = ch.codePointAt(0);
      if (code < 32) return String.fromCodePoint(0x2400 + code);
      if (code === 127) return "\u2421";
      return ch;
    }
    function describe(ch) {
      if (ch === "\n") return lines ? "end of name" : "newline";
      if (ch === " ") return "space";
      if (ch === "\t") return "tab";
      var code = ch.codePointAt(0);
      var hex = "U+" + code.toString(16).toUpperCase().padStart(4, "0");
      if (code < 32 || code === 127) return "control character " + hex;
      return "\u201c" + ch + "\u201d " + hex;
    }
    var box = $("text");
    if (lines) box.classList.add("names");
    var spans = new Array(N), row = null, line = 0, column = 0, where = new Array(N);
    var fragment = document.createDocumentFragment();
    for (var i = 0; i < N; i++) {
      var ch = chars[i];
      var span = el("span", "ch", shown(ch));
      span.dataset.i = i;
      if (ch === "\n") span.classList.add("nl");
      if (D.known[i] !== "1") span.classList.add("unk");
      spans[i] = span;
      where[i] = [line, column];
      if (lines) {
        if (!row) { row = el("div", "row"); fragment.appendChild(row); }
        row.appendChild(span);
        if (ch === "\n") { row = null; }
      } else {
        fragment.appendChild(span);
        if (ch === "\n") fragment.appendChild(document.createElement("br"));
      }
      if (ch === "\n") { line += 1; column = 0; } else { column += 1; }
    }
    box.appendChild(fragment);

    // --- state -----------------------------------------------------------------------------
    var state = { by: "loss", series: 0, col: 0, pinned: -1, shownAt: -1 };
    var lastH = -1;
    series.forEach(function (s, k) { if (s.kind === "h" && !s.units) lastH = k; });
    state.series = lastH >= 0 ? lastH : 0;

    var select = $("series");
    series.forEach(function (s, k) {
      var label = s.name + (s.units ? " (" + s.units.length + " of " + s.total + " units)" : "");
      var option = el("option", "", label); option.value = k; select.appendChild(option);
    });
    if (!series.length) {
      select.disabled = true; $("unit").disabled = true;
      $("colourby").querySelector("[data-by=unit]").disabled = true;
    }

    function paint() {
      var s = series[state.series];
      if (state.by === "unit" && s) {
        var scale = unitScale(s, state.col);
        for (var i = 0; i < N; i++) {
          var v = value(s, i, state.col);
          spans[i].style.backgroundColor = isNaN(v) ? "" : scale.colour(v);
        }
        legend(scale.lo, scale.hi, scale.colour, s.name + ", unit " + unitId(s, state.col));
      } else {
        for (var j = 0; j < N; j++) {
          var loss = D.loss[j];
          spans[j].style.backgroundColor = loss === null ? "" : lossColour(loss);
          spans[j].classList.toggle("first", loss === null && D.known[j] === "1");
        }
        legend(0, D.uniform, lossColour, "nats of surprise");
      }
      root.classList.toggle("by-loss", state.by !== "unit");
      var buttons = $("colourby").querySelectorAll("button");
      for (var b = 0; b < buttons.length; b++)
        buttons[b].classList.toggle("on", buttons[b].dataset.by === state.by);
      var items = $("found").querySelectorAll("button");
      for (var f = 0; f < items.length; f++) {
        var finding = D.findings[+items[f].dataset.k];
        var same = state.by === "unit" && finding.series === state.series &&
          finding.unit === unitId(s, state.col);
        items[f].classList.toggle("on", same);
      }
    }
    function legend(lo, hi, colour, name) {
      var stops = [];
      for (var k = 0; k <= 10; k++) stops.push(colour(lo + (hi - lo) * k / 10));
      $("legendbar").style.background = "linear-gradient(to right, " + stops.join(", ") + ")";
      $("legendlo").textContent = fmt(lo);
      $("legendhi").textContent = fmt(hi);
      $("legendname").textContent = name;
    }
    function fmt(x) { return Math.abs(x) >= 100 ? x.toFixed(0) : (+x.toPrecision(3)).toString(); }

    function syncPicker() {
      var s = series[state.series];
      if (!s) return;
      select.value = state.series;
      var range = $("unit");
      range.max = s.cols - 1; range.value = state.col;
      $("unitlabel").textContent = "unit " + unitId(s, state.col) + "/" + s.total;
    }
    function pick(seriesIndex, col, by) {
      state.series = seriesIndex; state.col = col;
      if (by) state.by = by;
      syncPicker(); paint();
      inspect(state.pinned >= 0 ? state.pinned : state.shownAt);
    }
    select.addEventListener("change", function () {
      var s = series[+select.value], old = series[state.series];
      var unit = unitId(old, state.col), col = colOf(s, unit);
      pick(+select.value, col >= 0 ? col : 0, "unit");
    });
    $("unit").addEventListener("input", function () {
      pick(state.series, +$("unit").value, "unit");
    });
    function step(delta) {
      var s = series[state.series]; if (!s) return;
      pick(state.series, (state.col + delta + s.cols) % s.cols, "unit");
    }
    $("prev").addEventListener("click", function () { step(-1); });
    $("next").addEventListener("click", function () { step(1); });
    $("colourby").addEventListener("click", function (event) {
      var by = event.target.dataset && event.target.dataset.by;
      if (by && !event.target.disabled) { state.by = by; paint(); }
    });

    // --- summary ---------------------------------------------------------------------------
    var unknown = 0;
    for (var u = 0; u < N; u++) if (D.known[u] !== "1") unknown += 1;
    var summary = $("summary");
    if (D.meanLoss !== null) {
      summary.appendChild(document.createTextNode("Mean surprise "));
      summary.appendChild(el("b", "", D.meanLoss.toFixed(3) + " nats/char"));
      summary.appendChild(document.createTextNode(" (" + (D.meanLoss / Math.LN2).toFixed(3) +
        " bits) over " + D.scored.toLocaleString("en") + " predicted characters"));
    } else {
      summary.appendChild(document.createTextNode("No character could be scored"));
    }
    var notes = [];
    if (unknown) notes.push(unknown + " character" + (unknown === 1 ? "" : "s") +
      " outside the model's vocabulary (struck through, grey: not scored)");
    var unscored = N - D.scored - unknown;
    if (unscored > 0 && lines) {
      notes.push(unscored + " more in names holding such a character (not read, as charrnn " +
        "eval leaves those names out)");
    } else if (unscored > 0) {
      notes.push(unscored + " with nothing before " + (unscored === 1 ? "it" : "them") +
        " to predict from (uncoloured)");
    }
    summary.appendChild(document.createTextNode(notes.length ? "; " + notes.join("; ") : ""));
    summary.appendChild(document.createTextNode("."));

    // --- the inspector ---------------------------------------------------------------------
    var canvas = $("strip"), ctx = canvas.getContext("2d");
    function inspect(i) {
      if (i < 0 || i >= N) { drawStrip(-1); return; }
      state.shownAt = i;
      var ch = chars[i];
      $("bigchar").textContent = ch === " " ? "\u2423" : shown(ch);
      var pos = where[i];
      var place = lines ?
        "name " + (pos[0] + 1) + ", " + (ch === "\n" ? "its end" : "letter " + (pos[1] + 1)) :
        "line " + (pos[0] + 1) + ", column " + (pos[1] + 1);
      $("where").textContent = describe(ch) + " \u00b7 " + place + " \u00b7 #" + i;
      var lossline = $("lossline"); lossline.textContent = "";
      var loss = D.loss[i];
      if (D.known[i] !== "1" && lines) {
        lossline.textContent = "Outside the model's vocabulary: it could not guess this " +
          "character, so the model did not read this name (charrnn eval leaves it out too).";
      } else if (D.known[i] !== "1") {
        lossline.textContent = "Outside the model's vocabulary: it could not guess this " +
          "character, and it did not read it (its state starts afresh after it).";
      } else if (loss === null && lines) {
        lossline.textContent = "This name holds a character outside the vocabulary, so the " +
          "model did not read it (charrnn eval leaves such names out too).";
      } else if (loss === null) {
        lossline.textContent = "The model starts afresh here (the start of the text, or just " +
          "after a character outside its vocabulary): nothing predicted this character.";
      } else {
        lossline.appendChild(document.createTextNode("Surprise "));
        lossline.appendChild(el("b", "", loss.toFixed(2) + " nats"));
        lossline.appendChild(document.createTextNode(": the model gave it p = " +
          pct(Math.exp(-loss)) + "."));
      }
      var list = $("guesses"); list.textContent = "";
      var any = false;
      for (var k = 0; k < K; k++) {
        var id = D.topIds[i * K + k];
        if (id < 0) continue;
        any = true;
        var p = D.topProbs[i * K + k], guess = D.vocab[id];
        var li = el("li", guess === ch ? "hit" : "");
        li.appendChild(el("span", "g", guess === " " ? "\u2423" : shown(guess)));
        var bar = el("span", "pbar"), fill = el("i");
        fill.style.width = (100 * p).toFixed(1) + "%"; bar.appendChild(fill); li.appendChild(bar);
        li.appendChild(el("span", "p", pct(p)));
        li.title = describe(guess);
        list.appendChild(li);
      }
      $("guesstitle").textContent = any ? "The model's top " + K + " guesses for it" :
        "The model's top guesses for it";
      if (!any) list.appendChild(el("li", "hint", "none: the model made no prediction here"));
      drawStrip(i);
    }
    function pct(p) {
      if (p < 0.001) return "<0.1%";
      return (100 * p).toFixed(p < 0.1 ? 1 : 0) + "%";
    }
    function drawStrip(i) {
      var s = series[state.series], ratio = window.devicePixelRatio || 1;
      var width = canvas.clientWidth || 356, height = canvas.clientHeight || 64;
      canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, width, height);
      var note = $("stripnote");
      if (!s) { note.textContent = "No unit activations were embedded."; return; }
      // a fixed range (tanh, gates) is shared; otherwise each unit on its own largest value,
      // as the text is coloured
      var fixedScale = s.fixed ? Math.max(Math.abs(s.fixed[0]), Math.abs(s.fixed[1])) : 0;
      var positive = s.fixed ? s.fixed[0] >= 0 : false;
      var base = positive ? height - 2 : height / 2, reach = positive ? height - 4 : height / 2 - 2;
      ctx.fillStyle = "#d8dee4"; ctx.fillRect(0, Math.round(base), width, 1);
      var w = width / s.cols;
      if (i >= 0) {
        for (var c = 0; c < s.cols; c++) {
          var v = value(s, i, c);
          if (isNaN(v)) continue;
          var scale = fixedScale || Math.max(Math.abs(s.lo[c]), Math.abs(s.hi[c]), 1e-9);
          var bar = Math.max(-1, Math.min(1, v / scale)) * reach;
          ctx.fillStyle = c === state.col ? "#1f2328" : (v < 0 ? "#4a8fd9" : "#e0683f");
          var gap = w > 3 ? 1 : 0;
          ctx.fillRect(c * w + gap / 2, bar < 0 ? base : base - bar, Math.max(w - gap, 0.6),
                       Math.abs(bar));
        }
      }
      ctx.fillStyle = "rgba(9, 105, 218, 0.18)";
      ctx.fillRect(state.col * w, 0, Math.max(w, 2), height);
      var text = s.name + ": " + s.cols + (s.units ? " of " + s.total : "") + " units" +
        (s.fixed ? "" : ", each on its own range");
      if (i >= 0) {
        var v0 = value(s, i, state.col);
        text += "; unit " + unitId(s, state.col) + " = " + (isNaN(v0) ? "\u2013" : v0.toFixed(3));
      }
      note.textContent = text + ". Click a bar to colour the text by its unit.";
    }
    canvas.addEventListener("click", function (event) {
      var s = series[state.series]; if (!s) return;
      var rect = canvas.getBoundingClientRect();
      var col = Math.floor((event.clientX - rect.left) / rect.width * s.cols);
      pick(state.series, Math.max(0, Math.min(s.cols - 1, col)), "unit");
    });
    function pin(i) {
      if (state.pinned >= 0) spans[state.pinned].classList.remove("pinned");
      state.pinned = i;
      if (i >= 0) spans[i].classList.add("pinned");
      inspect(i);
    }
    box.addEventListener("mouseover", function (event) {
      var i = event.target.dataset ? event.target.dataset.i : undefined;
      if (i !== undefined && state.pinned < 0) inspect(+i);
    });
    box.addEventListener("click", function (event) {
      var i = event.target.dataset ? event.target.dataset.i : undefined;
      if (i === undefined) return;
      pin(+i === state.pinned ? -1 : +i);
      if (state.pinned < 0) inspect(+i);
    });
    document.addEventListener("keydown", function (event) {
      var tag = event.target.tagName;
      if (state.pinned < 0 || tag === "INPUT" || tag === "SELECT") return;
      var to = event.key === "ArrowRight" ? state.pinned + 1 :
        event.key === "ArrowLeft" ? state.pinned - 1 : -2;
      if (to >= 0 && to < N) { pin(to); event.preventDefault(); }
      if (event.key === "Escape") pin(-1);
    });

    // --- units worth a look ----------------------------------------------------------------
    var found = $("found");
    $("foundhint").textContent = D.findings.length ?
      "The units whose activation follows a feature of this text most closely. Click one." :
      "No unit follows any of the features tried (|r| below 0.2).";
    D.findings.forEach(function (finding, k) {
      var s = series[finding.series];
      var button = el("button"); button.type = "button"; button.dataset.k = k;
      button.appendChild(el("span", "u", s.name + " \u00b7 unit " + finding.unit));
      var sign = finding.r > 0 ? "+" : "\u2212";
      button.appendChild(el("span", "r", "r " + sign + Math.abs(finding.r).toFixed(2)));
      button.appendChild(el("span", "f", finding.r > 0 ? "tracks " + finding.feature :
        "tracks " + finding.feature + ", inverted (low where it holds)"));
      button.addEventListener("click", function () {
        pick(finding.series, colOf(s, finding.unit), "unit");
      });
      var li = el("li"); li.appendChild(button); found.appendChild(li);
    });
    if (D.left.length) {
      $("leftnote").textContent = "Left out to keep the page small (a shorter --length keeps " +
        "them): " + D.left.join(", ") + ". Their units above stay available.";
    }

    // --- start, and the hooks tests and links use -------------------------------------------
    var params = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) return;
      var eq = part.indexOf("=");
      params[decodeURIComponent(eq < 0 ? part : part.slice(0, eq))] =
        eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1));
    });
    if (D.findings.length) {
      var top = D.findings[0];
      state.series = top.series; state.col = Math.max(colOf(series[top.series], top.unit), 0);
    }
    syncPicker(); paint();
    if (params.unit !== undefined) {  // #unit=layer 0 h:17
      var cut = params.unit.lastIndexOf(":");
      var name = params.unit.slice(0, cut), wanted = +params.unit.slice(cut + 1);
      series.forEach(function (s, k) {
        if (s.name === name && colOf(s, wanted) >= 0) pick(k, colOf(s, wanted), "unit");
      });
    }
    if (params.char !== undefined && +params.char >= 0 && +params.char < N) pin(+params.char);
    else {
      var first = -1;
      for (var c = 0; c < N && first < 0; c++) if (D.loss[c] !== null) first = c;
      inspect(first);
    }
    if (params.selftest !== undefined) selfTest();
    root.setAttribute("data-viz-ms", String(Math.round(performance.now())));
    root.setAttribute("data-viz-status", "ok");

    function selfTest() {  // click the first unit worth a look, as a reader would
      var before = spans.map(function (s) { return s.style.backgroundColor; });
      var button = found.querySelector("button");
      var result = ["findings=" + D.findings.length];
      if (button) {
        button.click();
        var changed = 0;
        for (var i = 0; i < N; i++) if (spans[i].style.backgroundColor !== before[i]) changed += 1;
        var s = series[state.series];
        result.push("clicked=" + s.name + ":" + unitId(s, state.col), "by=" + state.by,
          "changed=" + changed, "active=" + found.querySelectorAll("button.on").length);
      }
      var target = -1;
      for (var j = 0; j < N && target < 0; j++) if (D.loss[j] !== null) target = j;
      if (target >= 0) {
        spans[target].dispatchEvent(new MouseEvent("click", { bubbles: true }));
        result.push("pinned=" + state.pinned, "guesses=" + $("guesses").children.length);
      }
      root.setAttribute("data-viz-selftest", result.join(";"));
    }
  }
})();
</script>
</body>
</html>
"""

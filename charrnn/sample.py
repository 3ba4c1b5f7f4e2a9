"""Sampling: many names in parallel (one row a name, each stopping at its own boundary), or text;
and beam search for the likeliest text or names.

Temperature divides the logits before the softmax: below 1 is more conservative (likelier
characters), above 1 more adventurous. top_k keeps only the k likeliest characters; top_p then
keeps the smallest set of the likeliest characters whose probability reaches p (nucleus
sampling); greedy takes the likeliest one every time.

Beam search keeps the `beam` likeliest partial sequences (by total log-probability under the
model, temperature 1) and extends them all at once, one batch row a beam; with beam 1 it is
greedy decoding. For names, every beam's completion (its boundary) is a candidate name, and the
likeliest complete names are returned, ranked by their total log-probability or, optionally,
by their mean log-probability per predicted character (which favours shorter names less).
"""

from __future__ import annotations

import unicodedata
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from charrnn.corpus import split_indices
from charrnn.errors import CharRNNError
from charrnn.model import Model
from charrnn.plumbing.corpus_cache import scan_text
from charrnn.vocab import Vocabulary

TOP_P_ROUNDING = 1e-12  # a probability mass within this of top_p counts as reaching it
BEAM_SCORES = ("total", "mean")


def _scaled(logits: np.ndarray, temperature: float) -> np.ndarray:
    """logits / temperature; where a temperature so small overflows that (1e-320, say), the
    row's limit as T -> 0: the likeliest characters alone (greedy), never NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = logits / temperature
    overflowed = ~np.isfinite(scaled).all(axis=-1, keepdims=True) & np.isfinite(logits).all(
        axis=-1, keepdims=True)
    if overflowed.any():
        likeliest = logits == logits.max(axis=-1, keepdims=True)
        scaled = np.where(overflowed, np.where(likeliest, 0.0, -np.inf), scaled)
    return scaled


def probabilities(logits: np.ndarray, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """softmax(logits / temperature) over the last axis, restricted to the top_k entries, then
    to the smallest set of the likeliest entries whose probability reaches top_p (renormalised).
    top_p None or 1 keeps everything."""
    if temperature <= 0:
        raise CharRNNError(f"temperature must be > 0, got {temperature}; use --greedy for the "
                           f"likeliest character every time")
    scaled = _scaled(np.asarray(logits, dtype=np.float64), temperature)
    if top_k is not None and top_k < scaled.shape[-1]:
        kth = np.partition(scaled, -top_k, axis=-1)[..., -top_k, None]
        scaled = np.where(scaled < kth, -np.inf, scaled)
    scaled -= scaled.max(axis=-1, keepdims=True)
    p = np.exp(scaled)
    p /= p.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1:
        _check_top_p(top_p)
        order = np.argsort(-p, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=-1)
        before = np.cumsum(sorted_p, axis=-1) - sorted_p  # mass of the likelier entries
        keep_sorted = before < top_p - TOP_P_ROUNDING
        keep_sorted[..., 0] = True
        keep = np.empty_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        p = np.where(keep, p, 0.0)
        p /= p.sum(axis=-1, keepdims=True)
    return p


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax(logits) over the last axis, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def draw(p: np.ndarray, rng: np.random.Generator, greedy: bool = False) -> np.ndarray:
    """One index a row of p (N, V): by inverse CDF on one uniform number a row, or argmax."""
    if greedy:
        return p.argmax(axis=-1)
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(p.shape[0])[:, None] * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=-1), p.shape[-1] - 1)


def _check_top_k(top_k: int | None, vocab_size: int) -> int | None:
    if top_k is not None and top_k < 1:
        raise CharRNNError(f"--top-k must be at least 1, got {top_k}")
    return None if top_k is None else min(top_k, vocab_size)


def _check_top_p(top_p: float | None) -> None:
    if top_p is not None and not 0 < top_p <= 1:
        raise CharRNNError(f"--top-p must be in (0, 1], got {top_p}")


# --- the prime ---------------------------------------------------------------------------------

def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed
                                                if not unicodedata.combining(c)))


def _accented(char: str) -> bool:
    return _strip_accents(char) != char


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def prime_fix(vocab: Vocabulary, prime: str) -> str | None:
    """The likely fix for a prime with characters outside the vocabulary, worded for the user
    (None when no simple change of case, accents or Unicode form makes it valid)."""
    known = vocab.chars
    only_lower = not any(c.isupper() for c in known)
    only_upper = not any(c.islower() for c in known)
    no_accents = not any(_accented(c) for c in known)

    def says(general: bool, fact: str, change: str) -> str:
        return f"the model knows {fact}" if general else f"{change} would do"

    candidates = [  # the least change first
        (unicodedata.normalize("NFC", prime), "the prime's accents are separate combining "
                                              "marks and the model's are not"),
        (unicodedata.normalize("NFKC", prime), "the prime holds compatibility characters "
                                               "(ligatures, full-width letters)"),
        (prime.lower(), says(only_lower, "only lower-case letters", "lower case")),
        (prime.upper(), says(only_upper, "only upper-case letters", "upper case")),
        (_strip_accents(prime), says(no_accents, "no accented letters", "dropping the accents")),
        (_strip_accents(prime.lower()), says(only_lower and no_accents, "only lower-case "
                                             "letters without accents", "lower case without "
                                             "accents")),
        (_strip_accents(prime.upper()), says(only_upper and no_accents, "only upper-case "
                                             "letters without accents", "upper case without "
                                             "accents")),
    ]
    for fixed, reason in candidates:
        if fixed and fixed != prime and not vocab.unknown(fixed):
            return f"{reason}: try --prime {_shell_quote(fixed)}"
    return None


def encode_prime(vocab: Vocabulary, prime: str, what: str = "--prime") -> np.ndarray:
    """The prime's indices; characters outside the vocabulary are an error that lists them and
    suggests the likely fix. what: where the prime came from, for the message."""
    missing = vocab.unknown(prime)
    if not missing:
        return vocab.encode(prime, what)
    shown = ", ".join(repr(ch) for ch in missing[:20])
    if len(missing) > 20:
        shown += f" and {len(missing) - 20} more"
    fix = prime_fix(vocab, prime)
    if fix is None:
        chars = vocab.chars.replace("\n", "")
        newline = " and the newline" if vocab.boundary is not None else ""
        fix = (f"the model knows only {chars!r}{newline}" if len(chars) <= 100 else
               "remove them or sample a model trained on text that has them")
    raise CharRNNError(f"{what} has {len(missing)} character(s) outside the model's "
                       f"vocabulary: {shown}; {fix}")


# --- sampling ----------------------------------------------------------------------------------

def sample_names(model: Model, vocab: Vocabulary, num: int, rng: np.random.Generator,
                 temperature: float = 1.0, top_k: int | None = None, greedy: bool = False,
                 prime: str = "", max_length: int = 100,
                 top_p: float | None = None) -> list[str]:
    """num names, all generated at once as a batch; each row stops at its own boundary."""
    boundary = _boundary(vocab)
    top_k = _check_top_k(top_k, len(vocab))
    _check_top_p(top_p)
    prefix = np.concatenate([[boundary], encode_prime(vocab, prime)]).astype(np.int64)
    inputs = np.repeat(prefix[:, None], num, axis=1)
    fwd = model.forward(inputs, model.zero_state(num))
    state = fwd.state_last
    logits = model.logits(fwd.h_top[-1])
    step = model.stepper()
    generated = np.full((num, max_length), boundary, dtype=np.int64)
    alive = np.ones(num, dtype=bool)
    for t in range(max_length):
        x = draw(probabilities(logits, temperature, top_k, top_p), rng, greedy)
        generated[:, t] = np.where(alive, x, boundary)
        alive &= x != boundary
        if not alive.any():
            break
        state, logits = step(x, state)
    text = vocab.decode(generated.reshape(-1))
    return [prime + text[i * max_length:(i + 1) * max_length].split("\n", 1)[0]
            for i in range(num)]


def _boundary(vocab: Vocabulary) -> int:
    if vocab.boundary is None:
        raise CharRNNError("this model has no newline in its vocabulary, so it cannot end a "
                           "name; use --length N for free text")
    return vocab.boundary


def _primed(model: Model, vocab: Vocabulary, prime: str, state0, reset_at_boundary: bool):
    """(state, logits (1, V)) after feeding the prime as sample_text does."""
    state = model.zero_state(1) if state0 is None else state0
    start = vocab.boundary if vocab.boundary is not None else 0
    feed = encode_prime(vocab, prime).astype(np.int64)
    if reset_at_boundary or len(feed) == 0:
        feed = np.concatenate([[start], feed]).astype(np.int64)
    if reset_at_boundary:  # only the prime's last line matters to a lines-mode model
        last_boundary = np.flatnonzero(feed == vocab.boundary)[-1]
        feed = feed[last_boundary:]
        state = model.zero_state(1)
    fwd = model.forward(feed[:, None], state)
    return fwd.state_last, model.logits(fwd.h_top[-1])


def sample_text(model: Model, vocab: Vocabulary, length: int, rng: np.random.Generator,
                temperature: float = 1.0, top_k: int | None = None, greedy: bool = False,
                prime: str = "", state0=None, reset_at_boundary: bool = False,
                top_p: float | None = None, stop: str | None = None) -> str:
    """prime followed by length new characters (fewer when stop ends it: see generate_text).

    Without a prime the model starts after a newline (or its first character if it has none).
    state0: a batch-1 state to start from (e.g. a training stream's). reset_at_boundary: start a
    fresh state after every newline, as lines-mode models were trained.
    """
    return prime + "".join(generate_text(model, vocab, length, rng, temperature, top_k, greedy,
                                         prime, state0, reset_at_boundary, top_p, stop))


def generate_text(model: Model, vocab: Vocabulary, length: int, rng: np.random.Generator,
                  temperature: float = 1.0, top_k: int | None = None, greedy: bool = False,
                  prime: str = "", state0=None, reset_at_boundary: bool = False,
                  top_p: float | None = None, stop: str | None = None) -> Iterator[str]:
    """The characters sample_text adds after the prime, each as soon as it is drawn (so a
    terminal can show them as they come). stop: end after the first time the generated text
    (not the prime) ends with this string, which is the last thing yielded."""
    top_k = _check_top_k(top_k, len(vocab))
    _check_top_p(top_p)
    state, logits = _primed(model, vocab, prime, state0, reset_at_boundary)
    # the loop below is one step of the model and one draw: everything else is set up here
    step = model.stepper()
    uniforms = rng.random(length)
    last = len(vocab) - 1
    logits = logits[0]
    zero = model.zero_state(1)
    x_t = np.zeros(1, dtype=np.int64)
    tail = ""  # the last len(stop) characters generated
    for t in range(length):
        p = probabilities(logits, temperature, top_k, top_p)
        if greedy:
            x = int(p.argmax())
        else:  # inverse CDF, as draw() does for a batch
            cdf = np.cumsum(p)
            x = min(int(np.searchsorted(cdf, uniforms[t] * cdf[-1], side="right")), last)
        char = chr(int(vocab.codes[x]))
        yield char
        if stop:
            tail = (tail + char)[-len(stop):]
            if tail == stop:
                return
        if t == length - 1:
            return
        if reset_at_boundary and x == vocab.boundary:
            state = zero
        x_t[0] = x
        state, logits = step(x_t, state)
        logits = logits[0]


# --- beam search -------------------------------------------------------------------------------

class BeamResult(NamedTuple):
    text: str  # the prime and what the search added
    log_prob: float  # total log-probability (nats) of the added characters (and boundary)
    scored: int  # characters the log-probability covers: the added ones and, for names, the
    # boundary that ends the name


def _check_beam(beam: int) -> None:
    if beam < 1:
        raise CharRNNError(f"--beam must be at least 1, got {beam}")


def _best(key: np.ndarray, count: int) -> np.ndarray:
    """Flat indices of the count largest entries of key, largest first; ties: lowest first."""
    return np.argsort(-key.reshape(-1), kind="stable")[:count]


def beam_text(model: Model, vocab: Vocabulary, length: int, beam: int, prime: str = "",
              state0=None, reset_at_boundary: bool = False) -> BeamResult:
    """The prime and the length characters that beam search finds likeliest to follow it.

    Keeps the `beam` partial continuations of highest total log-probability, advanced as one
    batch. Beam search alone can end below the greedy continuation (the greedy prefix may be
    pruned on the way), so the greedy continuation runs as one more row of the batch and the
    likelier of the two is returned: never less likely than greedy; beam 1 is greedy exactly.
    The prime is fed as sample_text feeds it.
    """
    _check_beam(beam)
    state, logits = _primed(model, vocab, prime, state0, reset_at_boundary)
    step = model.stepper()
    V = len(vocab)
    # rows 0..B-1 are the beams, best first; the last row is the greedy continuation
    state = model.select_state(state, [0, 0])
    logits = np.repeat(logits, 2, axis=0)
    scores, greedy_score = np.zeros(1), 0.0
    parents = np.zeros((length, beam), dtype=np.int64)
    chars = np.zeros((length, beam), dtype=np.int64)
    greedy = np.zeros(length, dtype=np.int64)
    for t in range(length):
        B = len(scores)
        logp = log_softmax(logits)
        total = scores[:, None] + logp[:B]
        # one beam: its continuations share its score, so rank them by the logits themselves
        # (greedy's choice exactly, with no rounding from adding the score)
        chosen = _best(logits[:1] if B == 1 else total, min(beam, total.size))
        parent, x = np.divmod(chosen, V)
        scores = total.reshape(-1)[chosen]
        parents[t, : len(chosen)] = parent
        chars[t, : len(chosen)] = x
        greedy[t] = g = int(np.argmax(logits[B]))
        greedy_score += float(logp[B, g])
        if t == length - 1:
            break
        x = np.append(x, g)
        state = model.select_state(state, np.append(parent, B))
        if reset_at_boundary:
            fresh = (x == vocab.boundary)[:, None]
            if fresh.any():
                state = tuple(tuple(np.where(fresh, 0, a).astype(a.dtype) for a in layer)
                              for layer in state)
        state, logits = step(x, state)
    if length == 0:
        return BeamResult(prime, 0.0, 0)
    if greedy_score > scores[0]:
        return BeamResult(prime + vocab.decode(greedy), greedy_score, length)
    out = np.zeros(length, dtype=np.int64)
    row = 0  # the best beam: they are kept in order of score
    for t in range(length - 1, -1, -1):
        out[t] = chars[t, row]
        row = parents[t, row]
    return BeamResult(prime + vocab.decode(out), float(scores[0]), length)


def beam_names(model: Model, vocab: Vocabulary, num: int, beam: int, prime: str = "",
               max_length: int = 100, score: str = "total") -> list[BeamResult]:
    """The num likeliest complete names (prime plus up to max_length characters) that beam
    search with `beam` >= num beams finds, best first.

    Each step extends every beam by every character: each beam's boundary ends a candidate name
    (empty names excepted) and the best `beam` other extensions go on. As in beam_text, the
    greedy path runs as one more row, so the greedy name (when it ends within max_length) is a
    candidate too. score "total" ranks names by total log-probability (the boundary included),
    "mean" by log-probability per predicted character. Fewer than num come back when fewer
    complete names fit in max_length.
    """
    _check_beam(beam)
    if score not in BEAM_SCORES:
        raise CharRNNError(f"beam score must be one of {', '.join(BEAM_SCORES)}, got {score!r}")
    if num > beam:
        raise CharRNNError(f"--num {num} needs --beam {num} or more: beam search returns the "
                           f"best names among its beams")
    boundary = _boundary(vocab)
    prefix = np.concatenate([[boundary], encode_prime(vocab, prime)]).astype(np.int64)
    fwd = model.forward(np.repeat(prefix[:, None], 2, axis=1), model.zero_state(2))
    state, logits = fwd.state_last, model.logits(fwd.h_top[-1])
    step = model.stepper()
    V = len(vocab)
    # rows 0..B-1 are the beams, best first; the last row is the greedy path (which goes on
    # with its likeliest other character where greedy sampling would end the name)
    scores = np.zeros(2)
    sequences = np.zeros((2, 0), dtype=np.int64)
    finished: list[tuple[float, float, int, np.ndarray]] = []  # (key, total, order, sequence)
    found = 0
    for t in range(max_length + 1):
        B = len(scores) - 1
        logp = log_softmax(logits)
        total = scores[:, None] + logp
        if t > 0 or prime:
            ends = total[:, boundary]
            keys = ends if score == "total" else ends / (t + 1)
            greedy_is_a_beam = bool((sequences[:B] == sequences[B]).all(axis=1).any())
            for row in range(B + (not greedy_is_a_beam)):
                finished.append((float(keys[row]), float(ends[row]), found, sequences[row]))
                found += 1
            finished.sort(key=lambda entry: (-entry[0], entry[2]))
            del finished[num:]
        if t == max_length or V == 1:
            break
        extend = total.copy()
        extend[:, boundary] = -np.inf
        chosen = _best(extend[:B], min(beam, B * (V - 1)))
        parent, x = np.divmod(chosen, V)
        g = int(np.argmax(extend[B]))
        rows, x = np.append(parent, B), np.append(x, g)
        scores = np.append(extend[:B].reshape(-1)[chosen], extend[B, g])
        sequences = np.concatenate([sequences[rows], x[:, None]], axis=1)
        # log-probabilities only fall as a name grows: once no row beats the num-th best
        # complete name, no later name can (this holds for the total, not for the mean)
        if score == "total" and len(finished) == num and scores.max() <= finished[-1][0]:
            break
        state = model.select_state(state, rows)
        state, logits = step(x, state)
    return [BeamResult(prime + vocab.decode(sequence), total, len(sequence) + 1)
            for _, total, _, sequence in finished]


# --- which split a name is in -----------------------------------------------------------------

def corpus_membership(path: str | Path, mode: str, val_fraction: float, seed: int,
                      candidates, encoding: str = "utf-8",
                      errors: str = "strict") -> dict[str, str]:
    """Which of the candidate strings are lines of the corpus, and in which split the trainer
    put them: {name: "train" or "val"} ("train" when a line occurs in both). Candidates that
    are no line of the corpus are left out.

    The corpus is read once in chunks (corpus_cache.scan_text: a regular file, up to its cap; a
    pipe or device is never opened, so a FIFO the trainer read is not read again), remembering
    only the candidates' positions, so memory does not grow with the corpus. Lines mode splits
    seeded random non-empty lines (corpus.split_indices, as the trainer does); stream mode
    splits off the last val_fraction of the characters, and a line counts as validation data
    when it starts there.
    """
    lines_mode = mode == "lines"
    wanted = {c for c in candidates if c and "\n" not in c}
    longest = max(map(len, wanted), default=0)
    where: dict[str, array] = {}
    count = 0  # lines mode: non-empty lines so far; stream mode: characters so far
    open_text: str | None = ""  # the line being read (None once longer than any candidate)
    open_len = 0

    def close(text: str | None, length: int) -> None:
        nonlocal count
        if lines_mode:
            if length == 0:
                return
            if text is not None and text in wanted:
                where.setdefault(text, array("q")).append(count)
            count += 1
        else:
            if text is not None and text in wanted:
                where.setdefault(text, array("q")).append(count)
            count += length + 1

    for chunk in scan_text(path, encoding, errors, lines=lines_mode):
        parts = chunk.split("\n")
        first = parts[0]
        open_len += len(first)
        open_text = open_text + first if open_text is not None and open_len <= longest else None
        if len(parts) == 1:
            continue
        close(open_text, open_len)
        full = parts[1:-1]
        if wanted and not wanted.isdisjoint(full):
            for line in full:
                close(line, len(line))
        elif lines_mode:
            count += len(full) - full.count("")
        else:
            count += sum(map(len, full)) + len(full)
        open_text = parts[-1] if len(parts[-1]) <= longest else None
        open_len = len(parts[-1])
    close(open_text, open_len)
    if not lines_mode:
        count -= 1  # the last line has no newline after it (one was counted)
    return _classify(where, lines_mode, count, val_fraction, seed)


def _classify(where: dict, lines_mode: bool, count: int, val_fraction: float,
              seed: int) -> dict[str, str]:
    if lines_mode:
        is_val = np.zeros(count, dtype=bool)
        if count:
            is_val[split_indices(count, val_fraction, seed)[1]] = True
        return {name: "train" if not is_val[np.frombuffer(found, dtype=np.int64)].all()
                else "val" for name, found in where.items()}
    n_val = int(count * val_fraction)  # as corpus_from_tokens cuts a stream
    cut = count - n_val if n_val >= 2 else count
    return {name: "train" if min(found) < cut else "val" for name, found in where.items()}

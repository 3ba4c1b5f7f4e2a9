"""Sampling: many names in parallel (one row a name, each stopping at its own boundary), or text.

Temperature divides the logits before the softmax: below 1 is more conservative (likelier
characters), above 1 more adventurous. top_k keeps only the k likeliest characters; greedy takes
the likeliest one every time.
"""

from __future__ import annotations

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.model import Model
from charrnn.vocab import Vocabulary


def probabilities(logits: np.ndarray, temperature: float = 1.0,
                  top_k: int | None = None) -> np.ndarray:
    """softmax(logits / temperature) over the last axis, restricted to the top_k entries."""
    if temperature <= 0:
        raise CharRNNError(f"temperature must be > 0, got {temperature}; use --greedy for the "
                           f"likeliest character every time")
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    if top_k is not None and top_k < scaled.shape[-1]:
        kth = np.partition(scaled, -top_k, axis=-1)[..., -top_k, None]
        scaled = np.where(scaled < kth, -np.inf, scaled)
    scaled -= scaled.max(axis=-1, keepdims=True)
    p = np.exp(scaled)
    return p / p.sum(axis=-1, keepdims=True)


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


def sample_names(model: Model, vocab: Vocabulary, num: int, rng: np.random.Generator,
                 temperature: float = 1.0, top_k: int | None = None, greedy: bool = False,
                 prime: str = "", max_length: int = 100) -> list[str]:
    """num names, all generated at once as a batch; each row stops at its own boundary."""
    boundary = vocab.boundary
    if boundary is None:
        raise CharRNNError("this model has no newline in its vocabulary, so it cannot end a "
                           "name; use --length N for free text")
    top_k = _check_top_k(top_k, len(vocab))
    prefix = np.concatenate([[boundary], vocab.encode(prime, "--prime")]).astype(np.int64)
    inputs = np.repeat(prefix[:, None], num, axis=1)
    fwd = model.forward(inputs, model.zero_state(num))
    state = fwd.state_last
    logits = model.logits(fwd.h_top[-1])
    step = model.stepper()
    generated = np.full((num, max_length), boundary, dtype=np.int64)
    alive = np.ones(num, dtype=bool)
    for t in range(max_length):
        x = draw(probabilities(logits, temperature, top_k), rng, greedy)
        generated[:, t] = np.where(alive, x, boundary)
        alive &= x != boundary
        if not alive.any():
            break
        state, logits = step(x, state)
    text = vocab.decode(generated.reshape(-1))
    return [prime + text[i * max_length:(i + 1) * max_length].split("\n", 1)[0]
            for i in range(num)]


def sample_text(model: Model, vocab: Vocabulary, length: int, rng: np.random.Generator,
                temperature: float = 1.0, top_k: int | None = None, greedy: bool = False,
                prime: str = "", state0=None, reset_at_boundary: bool = False) -> str:
    """prime followed by length new characters.

    Without a prime the model starts after a newline (or its first character if it has none).
    state0: a batch-1 state to start from (e.g. a training stream's). reset_at_boundary: start a
    fresh state after every newline, as lines-mode models were trained.
    """
    top_k = _check_top_k(top_k, len(vocab))
    state = model.zero_state(1) if state0 is None else state0
    start = vocab.boundary if vocab.boundary is not None else 0
    feed = vocab.encode(prime, "--prime").astype(np.int64)
    if reset_at_boundary or len(feed) == 0:
        feed = np.concatenate([[start], feed]).astype(np.int64)
    if reset_at_boundary:  # only the prime's last line matters to a lines-mode model
        last_boundary = np.flatnonzero(feed == vocab.boundary)[-1]
        feed = feed[last_boundary:]
        state = model.zero_state(1)
    fwd = model.forward(feed[:, None], state)
    state = fwd.state_last
    # the loop below is one step of the model and one draw: everything else is set up here
    step = model.stepper()
    uniforms = rng.random(length)
    last = len(vocab) - 1
    logits = model.logits(fwd.h_top[-1])[0]
    generated = np.empty(length, dtype=np.int64)
    zero = model.zero_state(1)
    x_t = np.zeros(1, dtype=np.int64)
    for t in range(length):
        p = probabilities(logits, temperature, top_k)
        if greedy:
            x = int(p.argmax())
        else:  # inverse CDF, as draw() does for a batch
            cdf = np.cumsum(p)
            x = min(int(np.searchsorted(cdf, uniforms[t] * cdf[-1], side="right")), last)
        generated[t] = x
        if reset_at_boundary and x == vocab.boundary:
            state = zero
        x_t[0] = x
        state, logits = step(x_t, state)
        logits = logits[0]
    return prime + vocab.decode(generated)

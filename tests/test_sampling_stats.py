"""Sampling draws from the distribution its options define, and beam search on free text finds the
likeliest continuation.

README promise: `charrnn sample` gives free text "sampled, greedy or by beam search"; in
docs/commands.md, `--temperature T` ("lower is more conservative"), `--top-k K` ("only among the
K likeliest characters"), `--top-p P` ("only among the smallest set of likeliest characters whose
probability reaches P") and `--beam K` ("the likeliest continuation of `--length` characters").

The definitions are written out here, independently of charrnn.sample:
    temperature  p_i = exp(z_i / T) / sum_j exp(z_j / T)
    top-k        p restricted to the k largest logits, renormalised
    top-p        p restricted to the smallest set of the largest p_i whose sum reaches P
    draw         index i with probability p_i
`probabilities()` must equal them to rounding. The draws are checked by Pearson's chi-square
goodness-of-fit test: N draws from the sampling code (`draw()` for a batch, the loop of
`sample_text()`, and `sample_names()`) counted per character against N p_i. Each test rejects
at p-value < ALPHA = 1e-6, the stated false-alarm rate of one such test on a correct sampler;
the seeds are fixed, so the outcome is reproducible. Characters the definition excludes must
never be drawn at all. Broken definitions (top-k keeping one too many or one too few,
temperature applied as a product, top-p keeping one character too few, an inverse-CDF draw
shifted by one) are rejected by the same test on the same draws, so it can fail.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from charrnn.model import Model, ModelSpec
from charrnn.sample import beam_text, draw, probabilities, sample_names, sample_text
from charrnn.vocab import Vocabulary

ALPHA = 1e-6  # false-alarm rate of each goodness-of-fit test
DRAWS = 20_000
TEXT_DRAWS = 4_000  # sample_text takes one model step a draw
# distinct logits (ties would make "the k largest" ambiguous), not sorted
LOGITS = np.array([0.3, 1.9, -0.4, 1.1, 2.6, -1.5, 0.8, 1.4])
OPTIONS = [  # (temperature, top_k, top_p)
    (1.0, None, None),
    (0.5, None, None),
    (2.5, None, None),
    (1.0, 3, None),
    (1.0, None, 0.6),
    (0.7, 5, 0.8),
]


# --- the definitions -----------------------------------------------------------------------------

def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def defined(z: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
            top_p: float | None = None) -> np.ndarray:
    """The sampling distribution as the README defines it, for one row of logits."""
    p = softmax(z / temperature)
    if top_k is not None:
        kept = np.argsort(-z)[:top_k]
        p = np.where(np.isin(np.arange(len(z)), kept), p, 0.0)
        p /= p.sum()
    if top_p is not None:
        order = np.argsort(-p)
        size = 1 + next(i for i in range(len(p)) if p[order[: i + 1]].sum() >= top_p)
        p = np.where(np.isin(np.arange(len(z)), order[:size]), p, 0.0)
        p /= p.sum()
    return p


def chi_square_sf(x: float, df: int) -> float:
    """P(X >= x) for X ~ chi-square with df degrees of freedom (closed forms for whole df)."""
    if df % 2 == 0:  # exp(-x/2) sum_{j < df/2} (x/2)^j / j!
        return math.exp(-x / 2) * sum((x / 2) ** j / math.factorial(j) for j in range(df // 2))
    tail, term = math.erfc(math.sqrt(x / 2)), math.sqrt(2 * x / math.pi) * math.exp(-x / 2)
    for j in range(1, (df + 1) // 2):  # + sqrt(2x/pi) e^{-x/2} x^{j-1} / (1 * 3 * ... * (2j-1))
        tail += term
        term *= x / (2 * j + 1)
    return tail


def goodness_of_fit(counts: np.ndarray, p: np.ndarray) -> float:
    """Pearson's chi-square p-value of counts against p; 0.0 when a character p excludes was
    drawn (impossible under p, whatever the sample size)."""
    n = counts.sum()
    if np.any(counts[p == 0] > 0):
        return 0.0
    support = p > 0
    expected = n * p[support]
    statistic = float(np.sum((counts[support] - expected) ** 2 / expected))
    return chi_square_sf(statistic, int(support.sum()) - 1) if support.sum() > 1 else 1.0


def test_the_chi_square_tail_is_right():
    """Textbook critical values (alpha 0.05 and 0.001) of several degrees of freedom."""
    for x, df, alpha in ((3.841459, 1, 0.05), (5.991465, 2, 0.05), (7.814728, 3, 0.05),
                         (11.0705, 5, 0.05), (24.32189, 7, 0.001), (20.51501, 5, 0.001)):
        assert chi_square_sf(x, df) == pytest.approx(alpha, rel=1e-5)


# --- probabilities() against the definitions -----------------------------------------------------

@pytest.mark.parametrize("temperature, top_k, top_p", OPTIONS)
def test_probabilities_are_the_definition(temperature, top_k, top_p):
    p = probabilities(LOGITS[None, :], temperature, top_k, top_p)[0]
    np.testing.assert_allclose(p, defined(LOGITS, temperature, top_k, top_p), rtol=1e-12,
                               atol=1e-15)


def test_lower_temperature_is_more_conservative():
    """The likeliest character gains and the entropy falls as T goes down (README)."""
    entropies, top = [], []
    for temperature in (3.0, 1.5, 1.0, 0.5, 0.2):
        p = probabilities(LOGITS, temperature)
        entropies.append(float(-(p * np.log(p)).sum()))
        top.append(float(p.max()))
    assert entropies == sorted(entropies, reverse=True) and top == sorted(top)


# --- draws against the definitions ---------------------------------------------------------------

def constant_model(logits: np.ndarray) -> Model:
    """A model whose next-character logits are `logits` whatever it has read (W_hy = 0), so a
    sampled text is independent draws from one known distribution."""
    spec = ModelSpec(len(logits), 4, init_scale=0.5)
    model = Model.init(spec, np.random.default_rng(0))
    params = dict(model.params, W_hy=np.zeros_like(model.params["W_hy"]),
                  b_y=np.asarray(logits, dtype=np.float64))
    return Model(spec, params)


VOCAB = Vocabulary.from_text("\nabcdefg")  # the boundary is index 0, as the names models have


def counts_of(indices: np.ndarray) -> np.ndarray:
    return np.bincount(indices, minlength=len(LOGITS))


def batch_draws(temperature, top_k, top_p, seed) -> np.ndarray:
    """draw(): one uniform a row of a batch (sample_names' path)."""
    p = probabilities(np.tile(LOGITS, (DRAWS, 1)), temperature, top_k, top_p)
    return counts_of(draw(p, np.random.default_rng(seed)))


def text_draws(temperature, top_k, top_p, seed) -> np.ndarray:
    """sample_text()'s own loop: one model step and one inverse-CDF draw a character."""
    text = sample_text(constant_model(LOGITS), VOCAB, TEXT_DRAWS, np.random.default_rng(seed),
                       temperature=temperature, top_k=top_k, top_p=top_p, prime="a")
    return counts_of(VOCAB.encode(text[1:]).astype(np.int64))


def name_draws(temperature, top_k, top_p, seed) -> np.ndarray:
    """sample_names(): the first character of DRAWS names, one batch (an empty name drew the
    boundary)."""
    names = sample_names(constant_model(LOGITS), VOCAB, DRAWS, np.random.default_rng(seed),
                         temperature=temperature, top_k=top_k, top_p=top_p, max_length=1)
    first = "".join(name[:1] or "\n" for name in names)
    return counts_of(VOCAB.encode(first).astype(np.int64))


SAMPLERS = {"draw": batch_draws, "sample_text": text_draws, "sample_names": name_draws}


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("temperature, top_k, top_p", OPTIONS)
def test_draws_follow_the_defined_distribution(sampler, temperature, top_k, top_p):
    counts = SAMPLERS[sampler](temperature, top_k, top_p, seed=7)
    assert counts.sum() == (TEXT_DRAWS if sampler == "sample_text" else DRAWS)
    p_value = goodness_of_fit(counts, defined(LOGITS, temperature, top_k, top_p))
    assert p_value >= ALPHA, (counts, p_value)


def shifted_draw(p, rng):
    """An inverse-CDF draw off by one bucket: the index after the right one."""
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(p.shape[0])[:, None] * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=-1) + 1, p.shape[-1] - 1)


def top_p_one_short(z, temperature, top_p):
    """Nucleus sampling that stops one character before the mass reaches P."""
    p = softmax(z / temperature)
    order = np.argsort(-p)
    size = next(i for i in range(len(p)) if p[order[: i + 1]].sum() >= top_p)
    p = np.where(np.isin(np.arange(len(z)), order[: max(size, 1)]), p, 0.0)
    return p / p.sum()


BROKEN = {  # (options the draws use, the broken definition they are tested against)
    "top-k keeps k + 1": ((1.0, 3, None), lambda: defined(LOGITS, 1.0, 4)),
    "top-k keeps k - 1": ((1.0, 3, None), lambda: defined(LOGITS, 1.0, 2)),
    "temperature multiplies": ((0.5, None, None), lambda: softmax(LOGITS * 0.5)),
    "temperature ignored": ((2.5, None, None), lambda: softmax(LOGITS)),
    "top-p one short": ((1.0, None, 0.6), lambda: top_p_one_short(LOGITS, 1.0, 0.6)),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_definition_is_rejected(case):
    (temperature, top_k, top_p), broken = BROKEN[case]
    for sampler in (batch_draws, text_draws):
        assert goodness_of_fit(sampler(temperature, top_k, top_p, seed=7), broken()) < ALPHA


def test_an_inverse_cdf_draw_off_by_one_is_rejected():
    p = probabilities(np.tile(LOGITS, (DRAWS, 1)))
    counts = counts_of(shifted_draw(p, np.random.default_rng(7)))
    assert goodness_of_fit(counts, softmax(LOGITS)) < ALPHA
    assert goodness_of_fit(batch_draws(1.0, None, None, 7), softmax(LOGITS)) >= ALPHA


# --- beam search on free text against brute force ------------------------------------------------

def continuation_log_probs(model: Model, context: np.ndarray, length: int, V: int):
    """Every continuation of `length` characters (V^length rows) and its total log-probability
    after `context`, from a zero state: one batched forward pass of the model."""
    continuations = np.array(list(itertools.product(range(V), repeat=length)), dtype=np.int64)
    rows = len(continuations)
    sequences = np.concatenate([np.tile(context, (rows, 1)), continuations], axis=1).T  # (T, B)
    fwd = model.forward(sequences[:-1], model.zero_state(rows))
    logits = model.logits(fwd.h_top)  # (T - 1, B, V)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)
                           ) - logits.max(-1, keepdims=True)
    targets = sequences[1:]
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]  # (T - 1, B)
    return continuations, picked[len(context) - 1:].sum(axis=0)


@pytest.mark.parametrize("cell, layers", [("rnn", 1), ("lstm", 2), ("gru", 1)])
@pytest.mark.parametrize("prime", ["", "ca"])
def test_beam_text_matches_brute_force(cell, layers, prime):
    """V = 3, 5 characters: all 243 continuations scored. An exhaustive beam (243) returns the
    likeliest; every narrower beam returns text whose stated log-probability is its true one,
    at least greedy's, at most the best."""
    vocab = Vocabulary.from_text("abc")
    V, length = len(vocab), 5
    for seed in range(4):
        spec = ModelSpec(V, 8, cell=cell, num_layers=layers, init_scale=1.0)
        model = Model.init(spec, np.random.default_rng(seed))
        context = vocab.encode(prime).astype(np.int64) if prime else np.zeros(1, np.int64)
        continuations, log_probs = continuation_log_probs(model, context, length, V)
        best = int(np.argmax(log_probs))
        greedy = sample_text(model, vocab, length, np.random.default_rng(0), greedy=True,
                             prime=prime)
        greedy_log_prob = log_probs[int(np.flatnonzero(
            (continuations == vocab.encode(greedy[len(prime):])).all(axis=1))[0])]
        for beam in (1, 2, 3, 9, V ** length):
            result = beam_text(model, vocab, length, beam, prime=prime)
            assert result.text.startswith(prime) and result.scored == length
            row = int(np.flatnonzero(
                (continuations == vocab.encode(result.text[len(prime):])).all(axis=1))[0])
            assert result.log_prob == pytest.approx(log_probs[row], abs=1e-9)
            assert log_probs[row] >= greedy_log_prob - 1e-9
            assert log_probs[row] <= log_probs[best] + 1e-9
        assert row == best, (vocab.decode(continuations[best]), result.text)

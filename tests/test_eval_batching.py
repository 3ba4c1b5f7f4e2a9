"""Evaluation of a text with many characters outside the vocabulary scores every run of known
characters in one batch, with exactly the sums of scoring each run on its own.

README promise: `charrnn eval` gives "nats/char, bits/char and perplexity of a checkpoint on a
text"; docs/commands.md: characters outside the vocabulary are counted and reported, never dropped
silently.
"""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.corpus import Split
from charrnn.evaluate import evaluate_text, score_segments, score_split, stream_segments
from charrnn.model import Model, ModelSpec
from charrnn.vocab import Vocabulary


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_batched_runs_score_as_each_run_alone(cell):
    rng = np.random.default_rng(0)
    vocab = Vocabulary.from_text("abcdefgh \n")
    model = Model.init(ModelSpec(vocab_size=len(vocab), hidden_size=12, cell=cell,
                                 num_layers=2, init_scale=0.3), rng)
    chars = np.array(list("abcdefgh \nXY"))
    text = "".join(rng.choice(chars, size=3000, p=[0.09] * 10 + [0.05, 0.05]))
    result = evaluate_text(model, vocab, text, "stream", batch_size=8, seq_length=20)
    # each run of known characters on its own, as the first release scored them
    indices, known = vocab.encode_known(text)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], known.astype(np.int8), [0]])))
    total, count = 0.0, 0
    for a, b in zip(edges[::2], edges[1::2]):
        if b - a >= 2:
            t, n = score_split(model, Split(indices[a:b]), "stream", 8, 20)
            total, count = total + t, count + n
    assert result["characters"] == count
    assert result["nats_per_char"] == pytest.approx(total / count, rel=1e-10)
    assert result["out_of_vocabulary"] == text.count("X") + text.count("Y") > 100


def test_segments_of_a_long_run_match_the_validation_cut():
    tokens = np.arange(1000) % 7
    segments = stream_segments(tokens, batch_size=4, seq_length=50)
    # four pieces overlapping by one character: every character but the first is a target
    assert [len(s) for s in segments] == [251, 251, 251, 250]
    assert sum(len(s) - 1 for s in segments) == len(tokens) - 1
    model = Model.init(ModelSpec(vocab_size=7, hidden_size=5), np.random.default_rng(1))
    batched = score_segments(model, segments, 4, 50)
    alone = score_split(model, Split(tokens), "stream", 4, 50)
    assert batched[1] == alone[1] and batched[0] == pytest.approx(alone[0], rel=1e-12)

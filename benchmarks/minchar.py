"""The yardstick: Andrej Karpathy's min-char-rnn.py (BSD License), ported to Python 3 for timing.

The operations are the gist's own, unchanged: module-level parameters and Adagrad memories, a
(vocab_size, 1) one-hot column from np.zeros for every input character, np.dot for every product
(including Wxh times the one-hot column and dhraw times its transpose), the softmax as
np.exp(ys[t]) / np.sum(np.exp(ys[t])), the backward loop as written, np.clip(dparam, -5, 5,
out=dparam), and the update mem += dparam * dparam; param += -learning_rate * dparam /
np.sqrt(mem + 1e-8). The main loop is the gist's: the p / n pointer and its reset of hprev, the
inputs and targets built by char_to_ix from the text slices, smooth_loss. Left out: the prints
and the sampling every 100 iterations (a benchmark times training only). Python 3 needs range
for xrange; nothing else changed, and the local names are the gist's.

    import minchar
    minchar.setup(open("corpora/shakespeare.txt").read())
    minchar.train(1000)          # 1000 iterations of the gist's loop; returns smooth_loss

setup() builds the vocabulary as the gist does (list(set(data)), whose order depends on the
string hash seed: it changes indices, not timing). The gist does not seed NumPy; pass seed= to
make a run repeatable.
"""

import numpy as np


def setup(text, hidden=100, seq=25, lr=1e-1, seed=None):
    """The gist's data I/O, hyperparameters, model parameters and loop state, as module globals."""
    global data, chars, data_size, vocab_size, char_to_ix, ix_to_char
    global hidden_size, seq_length, learning_rate, Wxh, Whh, Why, bh, by
    global n, p, hprev, mWxh, mWhh, mWhy, mbh, mby, smooth_loss
    if seed is not None:
        np.random.seed(seed)
    data = text
    chars = list(set(data))
    data_size, vocab_size = len(data), len(chars)
    char_to_ix = {ch: i for i, ch in enumerate(chars)}
    ix_to_char = {i: ch for i, ch in enumerate(chars)}
    hidden_size = hidden
    seq_length = seq
    learning_rate = lr
    Wxh = np.random.randn(hidden_size, vocab_size) * 0.01
    Whh = np.random.randn(hidden_size, hidden_size) * 0.01
    Why = np.random.randn(vocab_size, hidden_size) * 0.01
    bh = np.zeros((hidden_size, 1))
    by = np.zeros((vocab_size, 1))
    n, p = 0, 0
    hprev = np.zeros((hidden_size, 1))
    mWxh, mWhh, mWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    mbh, mby = np.zeros_like(bh), np.zeros_like(by)
    smooth_loss = -np.log(1.0 / vocab_size) * seq_length


def lossFun(inputs, targets, hprev):
    """The gist's lossFun: summed loss, gradients (clipped) and the last hidden state."""
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
        ys[t] = np.dot(Why, hs[t]) + by
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
        loss += -np.log(ps[t][targets[t], 0])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
        np.clip(dparam, -5, 5, out=dparam)
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


def train(steps):
    """`steps` iterations of the gist's main loop (without its prints and sampling)."""
    global n, p, hprev, smooth_loss
    for _ in range(steps):
        if p + seq_length + 1 >= len(data) or n == 0:
            hprev = np.zeros((hidden_size, 1))
            p = 0
        inputs = [char_to_ix[ch] for ch in data[p:p + seq_length]]
        targets = [char_to_ix[ch] for ch in data[p + 1:p + seq_length + 1]]

        loss, dWxh, dWhh, dWhy, dbh, dby, hprev = lossFun(inputs, targets, hprev)
        smooth_loss = smooth_loss * 0.999 + loss * 0.001

        for param, dparam, mem in zip([Wxh, Whh, Why, bh, by],
                                      [dWxh, dWhh, dWhy, dbh, dby],
                                      [mWxh, mWhh, mWhy, mbh, mby]):
            mem += dparam * dparam
            param += -learning_rate * dparam / np.sqrt(mem + 1e-8)

        p += seq_length
        n += 1
    return smooth_loss


if __name__ == "__main__":  # a smoke run: the smoothed loss falls
    import sys
    import time
    from pathlib import Path

    corpus = Path(sys.argv[1] if len(sys.argv) > 1
                  else Path(__file__).resolve().parents[1] / "corpora" / "shakespeare.txt")
    setup(corpus.read_text(encoding="utf-8"), seed=0)
    print(f"data has {data_size} characters, {vocab_size} unique")
    for _ in range(5):
        started = time.perf_counter()
        loss_now = train(500)
        seconds = time.perf_counter() - started
        print(f"iter {n}, smooth loss {loss_now:.3f}, {500 * seq_length / seconds:.0f} chars/s")

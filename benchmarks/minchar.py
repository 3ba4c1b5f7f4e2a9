"""The yardstick: a straightforward min-char-rnn-style trainer (batch of one, one-hot inputs).

This follows the algorithm of Karpathy's min-char-rnn.py: column vectors, a one-hot (V, 1) input
per time step, a Python loop over time for the forward pass and another for the backward pass
with every product computed per step (including W_xh @ one-hot and dW_xh += da @ x^T), the
gradients clipped to [-5, 5] entry by entry and an Adagrad update with eps 1e-8, float64. The
stream is read in chunks of seq_length from position 0 and wraps (with a zero hidden state) at
the end, exactly as min-char-rnn does. It is written independently for the benchmark; it does not
use charrnn, so it measures the plain per-timestep NumPy style charrnn is compared against.
"""

from __future__ import annotations

import numpy as np


class MinCharRNN:
    """The model, its Adagrad memory and its position in the stream."""

    def __init__(self, data: np.ndarray, vocab_size: int, hidden_size: int = 100,
                 seq_length: int = 25, learning_rate: float = 0.1, seed: int = 0):
        rng = np.random.default_rng(seed)
        V, H = vocab_size, hidden_size
        self.data = np.asarray(data, dtype=np.int64)
        self.vocab_size = V
        self.seq_length = seq_length
        self.learning_rate = learning_rate
        self.Wxh = rng.standard_normal((H, V)) * 0.01  # input to hidden
        self.Whh = rng.standard_normal((H, H)) * 0.01  # hidden to hidden
        self.Why = rng.standard_normal((V, H)) * 0.01  # hidden to output
        self.bh = np.zeros((H, 1))
        self.by = np.zeros((V, 1))
        self.mem = [np.zeros_like(p) for p in self.params()]
        self.hprev = np.zeros((H, 1))
        self.position = 0
        self.started = False

    def params(self) -> list[np.ndarray]:
        return [self.Wxh, self.Whh, self.Why, self.bh, self.by]

    def loss_and_grads(self, inputs: list[int], targets: list[int], hprev: np.ndarray):
        """Summed cross-entropy of one chunk, its gradients, and the last hidden state."""
        xs, hs, ps = {}, {}, {}
        hs[-1] = np.copy(hprev)
        loss = 0.0
        for t in range(len(inputs)):
            xs[t] = np.zeros((self.vocab_size, 1))  # one-hot input
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(self.Wxh @ xs[t] + self.Whh @ hs[t - 1] + self.bh)
            logits = self.Why @ hs[t] + self.by
            e = np.exp(logits - np.max(logits))
            ps[t] = e / np.sum(e)
            loss += -np.log(ps[t][targets[t], 0])
        dWxh, dWhh, dWhy = (np.zeros_like(self.Wxh), np.zeros_like(self.Whh),
                            np.zeros_like(self.Why))
        dbh, dby = np.zeros_like(self.bh), np.zeros_like(self.by)
        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(len(inputs))):
            dy = np.copy(ps[t])
            dy[targets[t]] -= 1  # softmax cross-entropy gradient
            dWhy += dy @ hs[t].T
            dby += dy
            dh = self.Why.T @ dy + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh  # through tanh
            dbh += dhraw
            dWxh += dhraw @ xs[t].T
            dWhh += dhraw @ hs[t - 1].T
            dhnext = self.Whh.T @ dhraw
        grads = [dWxh, dWhh, dWhy, dbh, dby]
        for g in grads:
            np.clip(g, -5, 5, out=g)  # against exploding gradients
        return loss, grads, hs[len(inputs) - 1]

    def train_step(self) -> float:
        """One chunk of seq_length chars: forward, backward, clip, Adagrad; returns the loss."""
        n = self.seq_length
        if not self.started or self.position + n + 1 >= len(self.data):
            self.hprev = np.zeros_like(self.hprev)
            self.position = 0
        self.started = True
        chunk = self.data[self.position: self.position + n + 1].tolist()
        loss, grads, self.hprev = self.loss_and_grads(chunk[:-1], chunk[1:], self.hprev)
        for param, grad, mem in zip(self.params(), grads, self.mem):
            mem += grad * grad
            param += -self.learning_rate * grad / np.sqrt(mem + 1e-8)
        self.position += n
        return loss


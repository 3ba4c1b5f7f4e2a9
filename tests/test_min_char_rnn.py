"""batch_size 1 reproduces Karpathy's min-char-rnn: same chunks, loss, clipping and Adagrad.

README promise: the `min-char-rnn` config, "Karpathy's exact settings", "reproduces it step by
step".

The reference below is written from min-char-rnn's published algorithm (column vectors, one-hot
inputs, a Python loop over time, np.clip to [-5, 5], Adagrad with eps 1e-8), independently of
charrnn's code, and both start from the same weights.
"""

from __future__ import annotations

import numpy as np

from charrnn.config import load_config
from charrnn.train import start_run
from conftest import REPO


def min_char_rnn_step(params, memory, inputs, targets, hprev, vocab_size, lr=0.1):
    Wxh, Whh, Why, bh, by = (params[k] for k in ("W_xh", "W_hh", "W_hy", "b_h", "b_y"))
    xs, hs, ps = {}, {-1: hprev.copy()}, {}
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        ys = Why @ hs[t] + by
        ps[t] = np.exp(ys) / np.sum(np.exp(ys))
        loss += -np.log(ps[t][targets[t], 0])
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = ps[t].copy()
        dy[targets[t]] -= 1
        grads["W_hy"] += dy @ hs[t].T
        grads["b_y"] += dy
        dh = Why.T @ dy + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        grads["b_h"] += dhraw
        grads["W_xh"] += dhraw @ xs[t].T
        grads["W_hh"] += dhraw @ hs[t - 1].T
        dhnext = Whh.T @ dhraw
    for name in params:
        np.clip(grads[name], -5, 5, out=grads[name])
        memory[name] += grads[name] * grads[name]
        params[name] += -lr * grads[name] / np.sqrt(memory[name] + 1e-8)
    return loss, hs[len(inputs) - 1]


def _min_char_rnn_run(text_file, tmp_path):
    config = load_config(REPO / "configs" / "min-char-rnn.yaml",
                         [f"data.corpus={text_file}", f"training.out={tmp_path / 'm.npz'}"])
    return config, start_run(config)


def test_min_char_rnn_config_reproduces_the_reference_step_by_step(text_file, tmp_path):
    """Same losses and weights to rounding. Summation order differs (a lookup instead of a
    one-hot product), and Adagrad amplifies rounding in near-zero gradients by up to
    1/sqrt(1e-8), so the runs are compared over the first 10 steps, where that is below 1e-9."""
    config, run = _min_char_rnn_run(text_file, tmp_path)
    vocab_size = len(run.corpus.vocab)
    # min-char-rnn's names: charrnn calls layer 0's weights l0.W_xh, l0.W_hh, l0.b_h
    reference = {k.removeprefix("l0."): v.copy().reshape(v.shape[0], -1) if "b_" in k
                 else v.copy() for k, v in run.params.items()}
    memory = {k: np.zeros_like(v) for k, v in reference.items()}
    data = run.corpus.train.tokens
    seq_length = config.training.seq_length
    hprev = np.zeros((config.model.hidden_size, 1))
    for n in range(10):
        p = n * seq_length
        inputs, targets = data[p:p + seq_length], data[p + 1:p + seq_length + 1]
        loss, hprev = min_char_rnn_step(reference, memory, inputs, targets, hprev, vocab_size)
        nll_sum, count, _, _ = run.train_step()
        assert count == seq_length
        assert abs(nll_sum - loss) < 1e-10 * loss, f"step {n}: loss {nll_sum} != {loss}"
    for key, value in run.params.items():
        name = key.removeprefix("l0.")
        np.testing.assert_allclose(value.reshape(reference[name].shape), reference[name],
                                   rtol=1e-9, atol=1e-10, err_msg=name)
        np.testing.assert_allclose(run.optimizer.state_arrays()[f"mem.{key}"].reshape(
            reference[name].shape), memory[name], rtol=1e-8, atol=1e-12, err_msg=name)
    ((h_carried,),) = run.state
    np.testing.assert_allclose(h_carried.reshape(-1, 1), hprev, rtol=1e-8, atol=1e-9)


def test_min_char_rnn_chunking_wraps_and_resets_where_the_reference_does(text_file, tmp_path):
    config, run = _min_char_rnn_run(text_file, tmp_path)
    data = run.corpus.train.tokens
    seq_length = config.training.seq_length
    p = 0
    for n in range(2 * len(data) // seq_length + 3):
        reset = p + seq_length + 1 >= len(data) or n == 0
        if reset:
            p = 0
        batch = run.batches.next()
        assert batch.reset == reset, n
        np.testing.assert_array_equal(batch.x[:, 0], data[p:p + seq_length])
        np.testing.assert_array_equal(batch.y[:, 0], data[p + 1:p + seq_length + 1])
        p += seq_length


def test_first_step_by_hand_on_a_two_character_text(tmp_path):
    """One step on 'ab' * n with hidden size 1, worked out with scalars."""
    corpus = tmp_path / "ab.txt"
    corpus.write_text("ab" * 20, encoding="utf-8")
    config = load_config(REPO / "configs" / "min-char-rnn.yaml",
                         [f"data.corpus={corpus}", f"training.out={tmp_path / 'm.npz'}",
                          "model.hidden_size=1", "training.seq_length=1"])
    run = start_run(config)
    w = {k.removeprefix("l0."): v.copy() for k, v in run.params.items()}
    # inputs 'a' (index 0), target 'b' (index 1), h_prev = 0
    h = np.tanh(w["W_xh"][0, 0] + w["b_h"][0])
    o = w["W_hy"][:, 0] * h + w["b_y"]
    p = np.exp(o) / np.exp(o).sum()
    do = p - np.array([0.0, 1.0])
    grads = {"W_hy": do[:, None] * h, "b_y": do}
    da = (1 - h * h) * (w["W_hy"][:, 0] @ do)
    grads.update(W_xh=np.array([[da, 0.0]]), W_hh=np.array([[0.0]]), b_h=np.array([da]))
    nll_sum, _, _, _ = run.train_step()
    assert nll_sum == np.float64(-np.log(p[1]))
    for name, g in grads.items():
        g = np.clip(g, -5, 5)
        expected = w[name] - 0.1 * g / np.sqrt(g * g + 1e-8)
        key = name if name in run.params else "l0." + name
        np.testing.assert_allclose(run.params[key], expected, rtol=1e-12, atol=1e-15)

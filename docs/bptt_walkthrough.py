# %% [markdown]
# # One step of backpropagation through time, by hand and by charrnn
#
# Run this file cell by cell (VS Code, Jupyter with jupytext, or `python docs/bptt_walkthrough.py`).
# It trains nothing big: it takes a handful of names, runs a small vanilla RNN forward over them,
# backpropagates through time, checks one gradient entry by finite differences, takes one Adam
# step and samples. The test suite runs it, so every number it prints is current.

# %%
import numpy as np

from charrnn import Model, ModelSpec, Vocabulary, load_config, sample_names
from charrnn.train import Trainer

names = ["emma", "olivia", "ava", "mia", "noah", "liam"]
vocab = Vocabulary.from_text("\n".join(names) + "\n")
print(f"vocabulary of {len(vocab)}: {vocab.decode(range(len(vocab)))!r}")

# %% [markdown]
# ## The batch: time-major (T, B) indices, a padding mask
# Each name is read after a newline and ends by predicting the newline (makemore's way).

# %%
T = max(len(n) for n in names) + 1
B = len(names)
x = np.full((T, B), vocab.boundary)  # inputs: "\n" then the name
y = np.full((T, B), vocab.boundary)  # targets: the name then "\n"
mask = np.zeros((T, B), dtype=bool)
for b, name in enumerate(names):
    ids = vocab.encode(name)
    x[1:len(ids) + 1, b] = ids
    y[:len(ids), b] = ids
    mask[:len(ids) + 1, b] = True
print(x.shape, "inputs;", int(mask.sum()), "characters to predict")

# %% [markdown]
# ## Forward and backward
# `loss_and_grads` runs h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h), the softmax over W_hy h_t + b_y,
# and the hand-written backward. `objective` is the number whose gradient `grads` holds: the summed
# loss over time averaged over the batch; `nll_sum / count` is nats per character.

# %%
spec = ModelSpec(vocab_size=len(vocab), hidden_size=16, init_scale=0.1, dtype="float64")
model = Model.init(spec, np.random.default_rng(0))
result = model.loss_and_grads(x, y, model.zero_state(B), mask)
print(f"loss {result.nll_sum / result.count:.4f} nats/char (uniform: {np.log(len(vocab)):.4f})")
print({name: g.shape for name, g in result.grads.items()})

# %% [markdown]
# ## The same gradient by finite differences
# Nudge one recurrent weight by +-eps and watch the objective: the slope must match the backward.

# %%
eps = 1e-5
W_hh = model.params["l0.W_hh"]
i, j = 3, 7
original = W_hh[i, j]
W_hh[i, j] = original + eps
plus = model.loss_and_grads(x, y, model.zero_state(B), mask).objective
W_hh[i, j] = original - eps
minus = model.loss_and_grads(x, y, model.zero_state(B), mask).objective
W_hh[i, j] = original
numeric = (plus - minus) / (2 * eps)
analytic = result.grads["l0.W_hh"][i, j]
print(f"dL/dW_hh[{i},{j}]: backward {analytic:.10f}, finite differences {numeric:.10f}")
assert abs(analytic - numeric) <= 1e-7 * max(1.0, abs(analytic))

# %% [markdown]
# ## Training one step at a time, and a sample
# `Trainer` wraps the same training loop `charrnn train` runs, one step per call.

# %%
config = load_config("names", ["model.hidden_size=32", "training.batch_size=32",
                               "model.dtype=float64", "training.out=walkthrough.npz"])
trainer = Trainer(config)
first = trainer.step()
for _ in range(99):
    last = trainer.step()
print(f"step 1: {first:.3f} nats/char; step 100: {last:.3f}; validation {trainer.evaluate():.3f}")
print(sample_names(trainer.model, trainer.run.corpus.vocab, 5, np.random.default_rng(0)))

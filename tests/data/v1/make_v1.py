"""Writes the version-1 fixtures with the first release's charrnn (commit 75bdf45).

    git worktree add /tmp/v1 75bdf45 && python tests/data/v1/make_v1.py   (from the repo root)
"""
# ruff: noqa: E402, I001
import json
import sys

import numpy as np

sys.path.insert(0, "/tmp/v1")
import charrnn.model as first_release_model

assert first_release_model.__file__.startswith("/tmp/v1"), first_release_model.__file__
from charrnn.config import Config
from charrnn.train import train
from charrnn.checkpoint import load_checkpoint
from charrnn.evaluate import evaluate_corpus_split
from charrnn.sample import sample_names, sample_text

out = "tests/data/v1"


def quiet(kind, text):
    pass


expected = {}
for mode, corpus, optimizer in (("lines", "names.txt", "adam"), ("stream", "text.txt", "adagrad")):
    base = Config().replace(
        data={"corpus": f"{out}/{corpus}", "mode": mode, "cache": False},
        model={"hidden_size": 16, "dtype": "float64"},
        training={"batch_size": 4, "seq_length": 10, "steps": 40, "optimizer": optimizer,
                  "lr": 0.01 if optimizer == "adam" else 0.05, "eval_every": 20,
                  "sample_every": 0, "checkpoint_every": 0, "seed": 5,
                  "out": f"{out}/{mode}.npz"})
    train(base, progress=False, report=quiet)
    # the same run continued to 80 steps by the first release, written beside it
    longer = base.replace(training={"steps": 80, "out": f"{out}/{mode}-80.npz"})
    train(longer, resume=f"{out}/{mode}.npz", progress=False, report=quiet)
    saved = load_checkpoint(f"{out}/{mode}.npz")
    entry = {"val": evaluate_corpus_split(saved, "val")["nats_per_char"]}
    rng = np.random.default_rng(0)
    if mode == "lines":
        entry["names"] = sample_names(saved.params, saved.vocab, 5, rng)
    else:
        entry["text"] = sample_text(saved.params, saved.vocab, 60, rng, h0=saved.hidden[0])
    expected[mode] = entry
with open(f"{out}/expected.json", "w") as handle:
    json.dump(expected, handle, indent=1)
print(expected)

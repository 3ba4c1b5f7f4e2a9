"""Checkpoints of format version 1 (the first release) still load, evaluate, sample and resume
exactly as the first release did.

README promise: checkpoints are "exactly resumable"; docs/checkpoints.md, "Version 1": the first
release's checkpoints "still load, evaluate, sample and resume exactly as before".

tests/data/v1 holds small version-1 checkpoints written by the first release (commit 75bdf45)
by tests/data/v1/make_v1.py, and what that release computed from them: the validation loss,
a seeded sample, and each run continued from step 40 to step 80 (`*-80.npz`).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from charrnn.checkpoint import load_checkpoint
from charrnn.corpus import load_corpus
from charrnn.evaluate import evaluate_corpus_split, stream_pieces
from charrnn.sample import sample_names, sample_text
from charrnn.train import train
from conftest import REPO

V1 = REPO / "tests" / "data" / "v1"
EXPECTED = json.loads((V1 / "expected.json").read_text())


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # the fixtures' configs name their corpora relative to the repo


@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_version_1_checkpoint_loads_under_version_2_names(mode):
    saved = load_checkpoint(V1 / f"{mode}.npz")
    assert saved.version == 1
    assert list(saved.params) == ["l0.W_xh", "l0.W_hh", "l0.b_h", "W_hy", "b_y"]
    assert saved.spec.cell == "rnn" and saved.spec.num_layers == 1
    assert (saved.state is not None) == (mode == "stream")
    with np.load(V1 / f"{mode}.npz") as archive:  # the same numbers under the old names
        np.testing.assert_array_equal(archive["W_hh"], saved.params["l0.W_hh"])


def test_version_1_names_checkpoint_evaluates_as_the_first_release_did():
    result = evaluate_corpus_split(load_checkpoint(V1 / "lines.npz"), "val")
    assert result["nats_per_char"] == pytest.approx(EXPECTED["lines"]["val"], rel=1e-12)


def test_version_1_text_checkpoint_scores_every_character_of_its_split():
    """The first release skipped each stream's first characters and last few, so its stream
    figure is of fewer characters; today every character but the split's first is scored, in
    pieces read from a zero state. Checked against the model's own step, one character at a
    time, over the same pieces."""
    saved = load_checkpoint(V1 / "stream.npz")
    result = evaluate_corpus_split(saved, "val")
    data = saved.config.data
    split = load_corpus(data.corpus, data.mode, data.val_fraction, saved.config.training.seed,
                        saved.vocab).val
    step, total, count = saved.model.stepper(), 0.0, 0
    for piece in stream_pieces(split):
        state = saved.model.zero_state(1)
        for x, y in zip(piece[:-1], piece[1:]):
            state, logits = step(np.array([x]), state)
            logits = logits[0].astype(np.float64)
            total += np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[y]
            count += 1
    assert result["characters"] == count == len(split.tokens) - 1
    assert result["nats_per_char"] == pytest.approx(total / count, rel=1e-12)


def test_version_1_checkpoints_sample_as_the_first_release_did():
    names = load_checkpoint(V1 / "lines.npz")
    assert sample_names(names.model, names.vocab, 5,
                        np.random.default_rng(0)) == EXPECTED["lines"]["names"]
    text = load_checkpoint(V1 / "stream.npz")
    stream0 = text.model.select_state(text.model.state_from_arrays(text.state), [0])
    assert sample_text(text.model, text.vocab, 60, np.random.default_rng(0),
                       state0=stream0) == EXPECTED["stream"]["text"]


@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_version_1_checkpoint_resumes_exactly(mode, tmp_path):
    resumed = tmp_path / f"{mode}.npz"
    shutil.copy(V1 / f"{mode}.npz", resumed)
    config = load_checkpoint(resumed).config.replace(training={"steps": 80,
                                                               "out": str(resumed)})
    train(config, resume=resumed, progress=False, report=lambda kind, text: None)
    ours, theirs = load_checkpoint(resumed), load_checkpoint(V1 / f"{mode}-80.npz")
    assert ours.version == 2 and ours.step == theirs.step == 80
    for name in theirs.params:
        np.testing.assert_allclose(ours.params[name], theirs.params[name], rtol=1e-12,
                                   atol=1e-15, err_msg=name)
    for key in theirs.optimizer_state:
        np.testing.assert_allclose(ours.optimizer_state[key], theirs.optimizer_state[key],
                                   rtol=1e-12, atol=1e-15, err_msg=key)
    if mode == "stream":
        np.testing.assert_allclose(ours.state["state.l0.h"], theirs.state["state.l0.h"],
                                   rtol=1e-12, atol=1e-15)

"""The worked example a teacher runs cell by cell (docs/bptt_walkthrough.py) runs here, so it
cannot rot; and the traps it steers around stay closed.

README promise: the Python use the README shows (docs/python.md: "a worked example a teacher can
run" cell by cell, docs/bptt_walkthrough.py, and `Trainer`).
"""

from __future__ import annotations

import math
import runpy

import numpy as np
import pytest

from charrnn.config import load_config
from charrnn.errors import CharRNNError
from charrnn.train import Trainer
from conftest import REPO


def test_walkthrough_runs_and_its_checks_hold(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(REPO / "docs" / "bptt_walkthrough.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "finite differences" in printed and "step 100:" in printed
    assert list(tmp_path.iterdir()) == []  # a notebook's trainer writes nothing by itself


def test_trainer_starts_from_weights_in_memory_and_reports_each_step(names_file):
    config = load_config("names", [f"data.corpus={names_file}", "model.hidden_size=8"])
    first = Trainer(config)
    weights = {name: value * 0.5 for name, value in first.model.params.items()}
    second = Trainer(config, params=weights)
    np.testing.assert_array_equal(second.model.params["l0.W_hh"], weights["l0.W_hh"])
    losses = [second.step() for _ in range(3)]
    assert len(second.losses) == 3 and second.losses == losses
    # near-zero weights predict uniformly: log(V) nats a character; then it learns
    assert losses[0] == pytest.approx(math.log(len(second.run.corpus.vocab)), abs=1e-3)
    assert losses[2] < losses[1] < losses[0]
    with pytest.raises(CharRNNError, match="l0.W_hh"):
        Trainer(config, params={**weights, "l0.W_hh": np.zeros((3, 3))})


def test_assigning_a_parameter_keeps_it_training(names_file):
    """run.params['l0.W_hh'] = new copies into the trainer's buffer: the next step updates it."""
    trainer = Trainer(load_config("names", [f"data.corpus={names_file}",
                                            "model.hidden_size=8"]))
    new = np.full((8, 8), 0.01, dtype=trainer.model.dtype)
    trainer.run.params["l0.W_hh"] = new
    np.testing.assert_array_equal(trainer.model.params["l0.W_hh"], new)
    trainer.step()
    assert not np.array_equal(trainer.model.params["l0.W_hh"], new)


def test_setting_the_learning_rate_sticks(names_file):
    trainer = Trainer(load_config("names", [f"data.corpus={names_file}", "model.hidden_size=8",
                                            "training.lr_decay=0.5",
                                            "training.lr_decay_every=1"]))
    trainer.run.optimizer.lr = 0.25
    trainer.step()
    trainer.step()
    assert trainer.run.optimizer.lr == 0.25 and trainer.run.optimizer.rate == 0.25 * 0.5

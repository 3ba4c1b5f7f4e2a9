"""Speed work must not change results: a fixed seed's float64 trajectory matches the one stored
from the first implementation (commit d0c0b39, before any optimisation), step by step.

README promise: the same command gives the same model (docs/models.md: "The same config and seed
give bit-identical checkpoints"), through every speed change since the first implementation.

The stored file was written by running the loop below with that commit's charrnn on sys.path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from charrnn.config import Config
from charrnn.train import start_run
from conftest import NAMES, REPO, SHAKESPEARE

STORED = json.loads((REPO / "tests" / "data" / "trajectory_d0c0b39.json").read_text())


@pytest.mark.parametrize("key", sorted(STORED))
def test_float64_trajectory_matches_the_stored_one(key, tmp_path):
    mode, optimizer = key.split("-")
    corpus = SHAKESPEARE if mode == "stream" else NAMES
    lr = {"adagrad": 0.05, "adam": 0.003}[optimizer]
    config = Config().replace(
        data={"corpus": str(corpus), "mode": mode},
        model={"hidden_size": 32, "dtype": "float64"},
        training={"batch_size": 8, "seq_length": 16, "steps": 25, "optimizer": optimizer,
                  "lr": lr, "seed": 3, "out": str(tmp_path / "t.npz")})
    run = start_run(config)
    losses = [run.train_step()[0] for _ in range(25)]
    expected = STORED[key]
    np.testing.assert_allclose(losses, expected["nll_sums"], rtol=1e-12)
    assert float(np.sum(run.params["l0.W_hh"])) == pytest.approx(expected["W_hh_sum"], rel=1e-12)
    assert float(np.abs(run.params["l0.W_xh"]).sum()) == pytest.approx(expected["W_xh_abs_sum"],
                                                                    rel=1e-12)

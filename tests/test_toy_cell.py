"""README promise: a new cell is one file and one registry line. A fourth cell, defined in
tests/toy_cells/leaky.py alone, trains, samples, evaluates, passes gradcheck, and works in
gradflow and viz, through the real command line, with nothing else in charrnn changed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.cells import CELLS
from charrnn.checkpoint import load_checkpoint
from charrnn.cli import main
from charrnn.gradcheck import default_specs, run_gradcheck

pytestmark = pytest.mark.slow  # trains a model and writes a page: seconds, not milliseconds


@pytest.fixture(scope="module")
def leaky():
    import toy_cells.leaky as module

    yield module.LeakyCell
    CELLS.pop("leaky", None)


def run(*args, ok=True):
    result = CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def trained(leaky, tmp_path_factory):
    folder = tmp_path_factory.mktemp("leaky")
    corpus = folder / "names.txt"
    corpus.write_text("anna\nbob\ncarla\ndmitri\neve\nfrancesca\ngus\nhana\n" * 20)
    out = folder / "leaky.npz"
    run("train", "--corpus", corpus, "--out", out, "--steps", 60, "--no-progress",
        "--set", "model.cell=leaky", "--set", "model.hidden_size=12",
        "--set", "training.eval_every=20", "--set", "training.sample_every=0")
    return out


def test_the_fourth_cell_is_a_valid_choice_everywhere(leaky):
    assert "leaky" in CELLS
    assert any(spec.cell == "leaky" for spec in default_specs())


def test_the_fourth_cell_trains_and_its_checkpoint_knows_it(trained):
    saved = load_checkpoint(trained)
    assert saved.spec.cell == "leaky"
    assert type(saved.model.cell).__name__ == "LeakyCell"


def test_the_fourth_cell_passes_gradcheck_and_a_broken_backward_fails_it(leaky, monkeypatch):
    result = run("gradcheck", "--cell", "leaky")
    assert "leaky" in result.output and "FAIL" not in result.output
    backward = leaky.backward

    def broken(self, dh, cache, grads=None, workspace=None, keep_state_grads=False):
        dxw, dstate, kept = backward(self, dh, cache, grads, workspace, keep_state_grads)
        grads["W_hh"] *= 1.01  # a 1% error in one gradient
        return dxw, dstate, kept

    monkeypatch.setattr(leaky, "backward", broken)
    specs = [spec for spec in default_specs() if spec.cell == "leaky"]
    worst = max(row.max_rel_error for _, rows in run_gradcheck(specs) for row in rows)
    assert worst > 1e-3


def test_the_fourth_cell_samples_and_evaluates(trained):
    names = run("sample", "--checkpoint", trained, "--num", 5, "--seed", 1).stdout.split()
    assert len(names) == 5 and all(name.isalpha() for name in names)
    scores = json.loads(run("eval", "--checkpoint", trained, "--split", "val", "--json").stdout)
    assert 0 < scores["nats_per_char"] < np.log(len(load_checkpoint(trained).vocab))


def test_the_fourth_cell_works_in_gradflow(trained):
    flow = json.loads(run("gradflow", "--checkpoint", trained, "--json", "--length", 12).stdout)
    text = json.dumps(flow)
    assert "leaky" in text
    report = run("gradflow", "--checkpoint", trained, "--length", 12).output
    assert "leaky" in report


def test_the_fourth_cell_works_in_viz(trained, tmp_path):
    page = tmp_path / "leaky.html"
    run("viz", "--checkpoint", trained, "--out", page, "--prime", "anna\nbob\n")
    html = page.read_text(encoding="utf-8")
    assert "candidate u" in html and "leaky" in html

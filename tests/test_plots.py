"""Pictures: `charrnn plot` and `charrnn gradflow --plot` write PNGs with matplotlib for every cell,
with legends that hide no curve, and say in one line how to install it without; reading the
trainer's JSONL and CSV metrics logs.

README promise: `charrnn plot` draws "loss and gradient-norm curves from a training log" (and
`gradflow --plot` its picture), with matplotlib from the `[plot]` extra.
"""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner
from test_gradflow import random_problem, write_checkpoint

from charrnn.cli import main
from charrnn.config import Config
from charrnn.errors import CharRNNError, install_command
from charrnn.gradflow import analyse_chunk, compare_curves, impulse_response
from charrnn.plots import (
    draw_comparison,
    draw_gradflow,
    draw_impulse,
    draw_training_curves,
    read_metrics,
)
from charrnn.train import train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = "anna\nbob\nchristopher\ndora\neve\nfrank\ngina\nhugo\nida\njon\n"
INSTALL = install_command("plot")  # from this clone: pip install -e "<clone>[plot]"


def trained_log(tmp_path, log_format: str):
    """A real metrics log: a few steps of a tiny lines-mode run, evaluated every 2 steps."""
    corpus = tmp_path / "names.txt"
    corpus.write_text(NAMES * 3, encoding="utf-8")
    config = Config().replace(
        data={"corpus": str(corpus)}, model={"hidden_size": 8},
        training={"steps": 6, "eval_every": 2, "batch_size": 4, "sample_every": 0,
                  "checkpoint_every": 0, "log_format": log_format,
                  "out": str(tmp_path / "run.npz")})
    train(config, progress=False, report=lambda kind, text: None)
    return tmp_path / f"run.{log_format}", tmp_path / "run.npz"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make every `import matplotlib...` fail, as on a machine without the extra."""
    for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # None in sys.modules: ImportError


# --- with matplotlib ---------------------------------------------------------------------------

@pytest.mark.parametrize("log_format", ["jsonl", "csv"])
def test_plot_draws_the_log_that_training_writes(tmp_path, log_format):
    pytest.importorskip("matplotlib")
    log, _ = trained_log(tmp_path, log_format)
    result = run("plot", log)
    assert result.exit_code == 0, result.output
    assert "3 evaluations, last step 6" in result.output
    assert_png(tmp_path / "run.png")


def test_gradflow_plot_writes_the_heat_map(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "pictures" / "flow.png"
    result = run("gradflow", "--checkpoint", write_checkpoint(tmp_path), "--plot", out)
    assert result.exit_code == 0, result.output
    assert "sum to the trainer's dW_xh" in result.stdout and f"wrote {out}" in result.stderr
    assert_png(out)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradflow_impulse_plot_writes_a_png(tmp_path, cell):
    pytest.importorskip("matplotlib")
    out = tmp_path / "impulse.png"
    result = run("gradflow", "--checkpoint", write_checkpoint(tmp_path, cell=cell), "--impulse",
                 "--prime", "anna\nchristopher", "--plot", out)
    assert result.exit_code == 0, result.output
    assert_png(out)


def test_gradflow_plot_of_a_stacked_lstm_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "flow.png"
    path = write_checkpoint(tmp_path, cell="lstm", layers=2, dropout=0.3)
    result = run("gradflow", "--checkpoint", path, "--plot", out)
    assert result.exit_code == 0, result.output
    assert_png(out)


def legend_overlaps(figure) -> list[str]:
    """Each legend that covers part of any axes' plotting area, once the figure is drawn."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legends = list(figure.legends) + [a.get_legend() for a in figure.axes if a.get_legend()]
    found = []
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for axes in figure.axes:
            if axes.get_label() == "<colorbar>":
                continue
            area = axes.get_window_extent(renderer)
            if box.overlaps(area):
                found.append(f"{[t.get_text() for t in legend.get_texts()][:2]} on "
                             f"{axes.get_title()!r}")
    return found


def test_gradflow_pictures_keep_every_legend_off_the_curves():
    """Legends sit outside the axes (the pictures' most crowded cases: a 2-layer LSTM with h and c
    curves and fits, a GRU with its gate panel, three models compared)."""
    pytest.importorskip("matplotlib")
    lstm, x, y, state0 = random_problem("lstm", layers=2, T=10)
    gru, *_ = random_problem("gru", T=10, seed=3)
    flows = [analyse_chunk(lstm, x, y, state0), analyse_chunk(gru, x, y)]
    for flow in flows:
        assert legend_overlaps(draw_gradflow(flow, "abcdefghij", "t")) == []
    impulse = draw_impulse(impulse_response(lstm, x, state0), "t")
    assert legend_overlaps(impulse) == []
    assert all(axes.get_yscale() == "log" for axes in impulse.axes)  # sizes over decades
    curves = compare_curves(flows, ["a.npz", "b.npz"])
    figure = draw_comparison(curves, "t")
    assert legend_overlaps(figure) == []
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert len(labels) == len(curves) == 3 and labels[1].startswith("a.npz (lstm) c, x")


def test_training_curves_draw_a_log_with_per_layer_sigma_max(tmp_path):
    pytest.importorskip("matplotlib")
    log = tmp_path / "run.jsonl"
    log.write_text("".join(json.dumps({"step": s, "train_loss": 3.0 - s / 10, "val_loss": 3.1,
                                       "grad_norm": 1.0, "clip_fraction": 0.0,
                                       "sigma_max_W_hh": 1.5, "sigma_max_W_hh_l1": 1.2}) + "\n"
                           for s in (1, 2, 3)), encoding="utf-8")
    records = read_metrics(log)
    assert records[0]["sigma_max_W_hh_l1"] == 1.2
    draw_training_curves(records, "run").canvas.draw()
    result = run("plot", log)
    assert result.exit_code == 0 and "3 evaluations, last step 3" in result.output


def test_plot_refuses_to_overwrite_its_log(tmp_path):
    pytest.importorskip("matplotlib")
    log, _ = trained_log(tmp_path, "jsonl")
    result = run("plot", log, "--out", log)
    assert result.exit_code == 1 and "never writes over one of its inputs" in result.output
    assert log.read_text(encoding="utf-8").startswith("{")


# --- without matplotlib ------------------------------------------------------------------------

def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, no_matplotlib):
    log = tmp_path / "run.jsonl"
    log.write_text(json.dumps({"step": 1, "train_loss": 2.0}) + "\n", encoding="utf-8")
    result = run("plot", log, "--out", tmp_path / "run.png")
    assert result.exit_code == 1
    assert INSTALL in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run.png").exists()


def test_gradflow_plot_without_matplotlib_says_how_to_install_it(tmp_path, no_matplotlib):
    out = tmp_path / "flow.png"
    result = run("gradflow", "--checkpoint", write_checkpoint(tmp_path), "--plot", out)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: ")
    assert INSTALL in lines[0] and not out.exists()


def test_gradflow_json_and_text_work_without_matplotlib(tmp_path, no_matplotlib):
    path = write_checkpoint(tmp_path)
    as_json = run("gradflow", "--checkpoint", path, "--json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["W_xh_sum_check"]["ok"]
    text = run("gradflow", "--checkpoint", path, "--impulse")
    assert text.exit_code == 0 and "w=-0.9" in text.output


# --- reading logs ------------------------------------------------------------------------------

def test_read_metrics_takes_empty_csv_cells_as_not_measured(tmp_path):
    log = tmp_path / "run.csv"
    log.write_text("step,chars_seen,train_loss,val_loss\n4,80,2.5,\n2,40,3.0,2.9\n",
                   encoding="utf-8")
    records = read_metrics(log)
    assert [r["step"] for r in records] == [2.0, 4.0]  # sorted by step
    assert records[1]["val_loss"] is None and records[0]["val_loss"] == 2.9


def test_read_metrics_names_the_damaged_line(tmp_path):
    log = tmp_path / "run.jsonl"
    log.write_text('{"step": 1, "train_loss": 2.0}\n{"step": 2, "train_\n', encoding="utf-8")
    with pytest.raises(CharRNNError, match="line 2 is not JSON"):
        read_metrics(log)
    with pytest.raises(CharRNNError, match="not found"):
        read_metrics(tmp_path / "missing.jsonl")


def test_plot_given_a_checkpoint_names_its_log(tmp_path):
    import numpy as np

    pytest.importorskip("matplotlib")
    checkpoint = tmp_path / "m.npz"
    np.savez(checkpoint, a=np.zeros(2))
    result = CliRunner().invoke(main, ["plot", str(checkpoint)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is a checkpoint, not a metrics log" in result.output
    # no log beside it: the hint says where it would be, and names no command that would fail
    assert "(m.jsonl or m.csv), which is not in" in result.output
    assert "charrnn plot" not in result.output
    (tmp_path / "m.jsonl").write_text("")
    result = CliRunner().invoke(main, ["plot", str(checkpoint)])
    assert f"charrnn plot {tmp_path / 'm.jsonl'}" in result.output

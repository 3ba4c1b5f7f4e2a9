"""What a user sees: the start line, progress without a terminal, the time-limit message, the
mode warning, `charrnn info`, --mode, --threads, --init-from's model settings, and the thread
policy's decision (not its speed).

README promise: "The start line says what it chose and planned" (docs/commands.md: "one line saying
what it does", off a terminal "one plain line per evaluation"), the thread rule, `charrnn info`,
and `python -m charrnn`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from charrnn.checkpoint import load_checkpoint
from charrnn.plumbing.threads import CROSSOVER, choose_threads
from conftest import run_cli

run = run_cli


TINY = ["--set", "model.hidden_size=8", "--set", "training.eval_every=5", "--set",
        "training.sample_every=0", "--set", "training.batch_size=4"]


@pytest.fixture
def names(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("anna\nbob\ncarla\ndave\nemma\nfrank\n" * 10, encoding="utf-8")
    return path


@pytest.mark.slow
def test_start_line_and_plain_progress_lines_without_a_terminal(names, tmp_path):
    """stderr is a pipe here: one start line, then one plain line per evaluation."""
    out = tmp_path / "m.npz"
    result = subprocess.run(
        [sys.executable, "-m", "charrnn", "train", "--corpus", names, "--out", out, "--steps",
         "10", "--threads", "1", *TINY], capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # training writes nothing to stdout
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"corpus {names} (lines mode, ")
    for fragment in ("vocabulary 14", "model rnn (tanh), 1 layer of 8", "parameters",
                     "1 BLAS thread (training.threads)", f"writing {out}"):
        assert fragment in lines[0]
    progress = [line for line in lines if line.startswith("step ") and "left" in line]
    assert [line.split(":")[0] for line in progress] == ["step 5/10", "step 10/10"]
    assert "nats/char" in progress[0] and "chars/s" in progress[0]


def test_time_limit_says_it_stopped(names, tmp_path):
    result = run("train", "--corpus", names, "--out", tmp_path / "m.npz", "--steps", 100000,
                 *TINY, "--set", "training.time_limit=0.2")
    assert "s time limit at step" in result.output and "of 100000" in result.output


def test_mode_option_and_warning_for_running_text_in_lines_mode(tmp_path):
    text = tmp_path / "prose.txt"
    text.write_text(("It was the best of times, it was the worst of times. " * 40 + "\n") * 3,
                    encoding="utf-8")
    lines = run("train", "--corpus", text, "--out", tmp_path / "a.npz", "--steps", 2, *TINY)
    assert "does not look like one example a line" in lines.output
    assert "--mode stream" in lines.output
    stream = run("train", "--corpus", text, "--out", tmp_path / "b.npz", "--steps", 2,
                 "--mode", "stream", *TINY)
    assert "does not look like" not in stream.output
    assert load_checkpoint(tmp_path / "b.npz").config.data.mode == "stream"


def test_info_prints_the_checkpoint_facts(names, tmp_path):
    out = tmp_path / "g.npz"
    run("train", "--corpus", names, "--out", out, "--steps", 5, *TINY, "--set",
        "model.cell=gru", "--set", "model.num_layers=2")
    facts = json.loads(run("info", out, "--json").output)
    assert (facts["cell"], facts["num_layers"], facts["hidden_size"]) == ("gru", 2, 8)
    assert facts["step"] == 5 and facts["format_version"] == 2 and facts["vocab_size"] == 14
    saved = load_checkpoint(out)
    assert facts["parameters"] == sum(v.size for v in saved.params.values())
    assert facts["best_val_loss"] == pytest.approx(saved.meta["best_file_loss"])
    text = run("info", out).output
    assert "gru, 2 layer(s) of 8" in text and "step 5 of 5" in text and "config:" in text


def test_init_from_refuses_model_settings_it_cannot_apply(names, tmp_path):
    base = tmp_path / "base.npz"
    run("train", "--corpus", names, "--out", base, "--steps", 3, *TINY)
    refused = run("train", "--corpus", names, "--out", tmp_path / "x.npz", "--init-from", base,
                  "--set", "model.hidden_size=16", ok=False)
    assert refused.exit_code == 2 and "cannot apply with --init-from" in refused.output
    assert "model.hidden_size" in refused.output
    run("train", "--corpus", names, "--out", tmp_path / "y.npz", "--init-from", base,
        "--steps", 3, "--set", "model.dropout=0.3", *TINY[6:])
    tuned = load_checkpoint(tmp_path / "y.npz")
    assert tuned.spec.dropout == 0.3 and tuned.spec.hidden_size == 8


def test_threads_option_is_validated(names, tmp_path):
    result = run("train", "--corpus", names, "--threads", "many", ok=False)
    assert result.exit_code == 2 and "--threads" in result.output


@pytest.mark.parametrize("batch, hidden, gates, expected", [
    (64, 128, 1, 1),  # the names default: far below the crossover
    (1, 100, 1, 1),  # min-char-rnn
    (64, 512, 1, 2),  # 16.8M multiply-adds a step: two threads pay
    (64, 512, 4, 2),  # an LSTM of 512
])
def test_auto_thread_policy_decision(batch, hidden, gates, expected):
    choice = choose_threads("auto", batch, hidden, gates, environ={}, cores=2, load=0.0)
    assert choice.threads == expected
    assert (batch * hidden * gates * hidden >= CROSSOVER) == (expected > 1)


def test_thread_policy_respects_the_users_environment_and_explicit_counts():
    assert choose_threads("auto", 64, 512, 4, {"OPENBLAS_NUM_THREADS": "1"}, 2).threads == 1
    busy = choose_threads("auto", 64, 512, 4, {}, cores=2, load=1.2)
    assert busy.threads == 1 and "busy" in busy.reason  # another process holds a core
    chosen = choose_threads("auto", 64, 128, 1, {"OMP_NUM_THREADS": "2"}, 2)
    assert chosen.threads == 2 and "OMP_NUM_THREADS" in chosen.reason
    assert choose_threads(3, 1, 8, 1, {"OPENBLAS_NUM_THREADS": "1"}, 2).threads == 3
    assert choose_threads("auto", 64, 512, 4, {}, 1).threads == 1  # one core: one thread


def test_the_limit_reaches_blas_during_training(names, tmp_path, monkeypatch):
    """The chosen count is what threadpoolctl reports inside the training loop."""
    from threadpoolctl import threadpool_info

    import charrnn.train as training

    seen = []
    real_step = training.Run.train_step

    def spy(self):
        seen.append({pool["num_threads"] for pool in threadpool_info()
                     if pool["user_api"] == "blas"})
        return real_step(self)

    monkeypatch.setattr(training.Run, "train_step", spy)
    run("train", "--corpus", names, "--out", tmp_path / "m.npz", "--steps", 2, "--threads", 1,
        *TINY)
    assert seen and all(pools <= {1} for pools in seen)


@pytest.mark.slow
def test_python_dash_m_and_version():
    result = subprocess.run([sys.executable, "-m", "charrnn", "--version"], capture_output=True,
                            text=True, timeout=600)
    import charrnn

    assert result.returncode == 0 and charrnn.__version__ in result.stdout
    # the version pyproject.toml declares, not a stale install's or the "0+unknown" fallback
    from conftest import REPO

    declared = re.search(r'^version = "([^"]+)"$', (REPO / "pyproject.toml").read_text(),
                         re.MULTILINE).group(1)
    assert result.stdout.strip() == f"charrnn, version {declared}"
    assert charrnn.__version__ == declared


def test_install_hints_name_the_right_command(monkeypatch, tmp_path):
    """From this clone (editable): pip install -e "<clone>[plot]"; installed: charrnn[plot]."""
    import charrnn.errors as errors
    from conftest import REPO

    assert errors.install_command("plot") == f'pip install -e "{REPO}[plot]"'
    fake = tmp_path / "site-packages" / "charrnn" / "errors.py"
    fake.parent.mkdir(parents=True)
    monkeypatch.setattr(errors, "__file__", str(fake))
    assert errors.install_command("sweep") == 'pip install "charrnn[sweep]"'

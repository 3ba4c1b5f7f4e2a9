"""The command line: each command works end to end, and bad input gets one clear line.

README promise: every command of the "Commands" table works end to end, and "Bad input gets one
line, a non-zero exit and no traceback".
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from charrnn.checkpoint import load_checkpoint
from conftest import REPO, run_cli

run = run_cli


def train_tiny(corpus, out, *extra, mode="lines"):
    return run("train", "--corpus", corpus, "--out", out, "--steps", 20,
               "--set", "model.hidden_size=16", "--set", f"data.mode={mode}",
               "--set", "training.eval_every=10", "--set", "training.sample_every=0", *extra)


@pytest.fixture
def names_model(names_file, tmp_path):
    out = tmp_path / "names.npz"
    train_tiny(names_file, out)
    return out


@pytest.fixture
def text_model(text_file, tmp_path):
    out = tmp_path / "text.npz"
    train_tiny(text_file, out, "--set", "training.seq_length=20", mode="stream")
    return out


def test_train_writes_latest_best_and_log(names_model):
    assert names_model.exists()
    assert names_model.with_name("names.best.npz").exists()
    assert names_model.with_name("names.jsonl").exists()
    assert load_checkpoint(names_model).step == 20


def test_sample_num_prints_that_many_names_and_a_novelty_summary(names_model):
    result = run("sample", "--checkpoint", names_model, "--num", 7, "--seed", 3)
    names = result.stdout.splitlines()
    assert len(names) == 7 and all("\n" not in n for n in names)
    assert "7 names:" in result.stderr and "new" in result.stderr


def test_sample_novel_keeps_only_names_outside_the_corpus(names_model, names_file):
    known = set(names_file.read_text().splitlines())
    result = run("sample", "--checkpoint", names_model, "--num", 15, "--novel")
    names = result.stdout.splitlines()
    assert len(names) == 15 and not known & set(names)


def test_sample_honours_seed(names_model):
    a = run("sample", "--checkpoint", names_model, "--num", 10, "--seed", 1).stdout
    b = run("sample", "--checkpoint", names_model, "--num", 10, "--seed", 1).stdout
    c = run("sample", "--checkpoint", names_model, "--num", 10, "--seed", 2).stdout
    assert a == b and a != c


def test_sample_length_prints_prime_then_exactly_n_characters(text_model):
    result = run("sample", "--checkpoint", text_model, "--length", 50, "--prime", "The ")
    text = result.stdout[:-1]  # the trailing newline the command adds
    assert text.startswith("The ") and len(text) == 4 + 50


def test_greedy_is_deterministic_and_low_temperature_is_close_to_greedy(text_model):
    greedy = run("sample", "--checkpoint", text_model, "--length", 40, "--greedy").stdout
    other = run("sample", "--checkpoint", text_model, "--length", 40, "--greedy", "--seed",
                9).stdout
    cold = run("sample", "--checkpoint", text_model, "--length", 40, "--temperature",
               "1e-6").stdout
    assert greedy == other == cold


def test_sample_output_file_is_utf8(text_model, tmp_path):
    target = tmp_path / "out.txt"
    run("sample", "--checkpoint", text_model, "--length", 30, "--output", target)
    assert len(target.read_text(encoding="utf-8")) == 31


def test_eval_json_reports_loss_and_out_of_vocabulary(text_model, tmp_path):
    text = tmp_path / "eval.txt"
    text.write_text("Now is the winter of our discontent ☃ made glorious summer", "utf-8")
    result = json.loads(run("eval", "--checkpoint", text_model, text, "--json").stdout)
    for key in ("nats_per_char", "bits_per_char", "perplexity", "characters",
                "out_of_vocabulary"):
        assert key in result
    assert result["out_of_vocabulary"] == 1
    assert result["bits_per_char"] == pytest.approx(result["nats_per_char"] / np.log(2))
    assert result["perplexity"] == pytest.approx(np.exp(result["nats_per_char"]))
    # better than a uniform guess over the vocabulary, which scores log(V)
    assert 0 < result["nats_per_char"] < math.log(len(load_checkpoint(text_model).vocab))


def test_eval_in_lines_mode_matches_the_trainers_validation_loss(names_model, tmp_path):
    from charrnn.train import start_run
    saved = load_checkpoint(names_model)
    run_state = start_run(saved.config)
    run_state.params = saved.params
    val_lines = run_state.corpus.val.lines(saved.vocab)
    text = tmp_path / "val.txt"
    text.write_text("\n".join(val_lines) + "\n", "utf-8")
    result = json.loads(run("eval", "--checkpoint", names_model, text, "--json").stdout)
    assert result["nats_per_char"] == pytest.approx(run_state.evaluate(None), rel=1e-9)
    assert result["characters"] == sum(len(n) + 1 for n in val_lines)


@pytest.mark.slow
def test_gradcheck_passes_and_prints_a_table():
    result = run("gradcheck")
    for name in ("l0.W_xh", "l0.W_hh", "l0.b_h", "W_hy", "b_y", "h0.l0", "c0.l0", "l1.W_xh",
                 "l0.b_hn"):
        assert name in result.output
    for label in ("rnn (tanh)", "rnn (relu)", "lstm, 1 layer", "gru, 2 layers of 6, dropout"):
        assert label in result.output
    assert "FAIL" not in result.output


def test_gradcheck_on_a_checkpoint(names_model):
    assert "all gradients agree" in run("gradcheck", "--checkpoint", names_model).output


@pytest.mark.slow
def test_gradcheck_fails_with_nonzero_exit_when_a_backward_is_wrong(monkeypatch):
    import charrnn.model as model

    original = model.softmax_loss_backward

    def broken(*args, **kwargs):
        dh, dW_hy, db_y = original(*args, **kwargs)
        db_y *= 1.01  # in place: the trainer reads its flat gradient buffer, not the return
        return dh, dW_hy, db_y

    monkeypatch.setattr(model, "softmax_loss_backward", broken)
    result = run("gradcheck", ok=False)
    assert result.exit_code != 0 and "FAIL" in result.output
    assert "gradient check failed" in result.output


# --- bad input: one line, non-zero exit, no traceback ---------------------------------------

def one_line_error(result, *fragments):
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    error_lines = [line for line in lines if line.startswith("Error")]
    assert len(error_lines) == 1, result.output
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]


def test_missing_corpus(tmp_path):
    one_line_error(run("train", "--corpus", tmp_path / "nope.txt", "--out", tmp_path / "o.npz",
                       ok=False), "not found", "nope.txt")


def test_corpus_that_is_a_directory_without_text_files(tmp_path):
    # a directory is a corpus of its text files, one document each (tests/test_budget.py)
    one_line_error(run("train", "--corpus", tmp_path, "--out", tmp_path / "o.npz", ok=False),
                   "holds no text files")


def test_empty_corpus(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    one_line_error(run("train", "--corpus", empty, "--out", tmp_path / "o.npz", ok=False),
                   "is empty")


def test_corpus_shorter_than_a_chunk_per_stream(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("hello world, this is short")
    one_line_error(run("train", "--corpus", short, "--out", tmp_path / "o.npz", "--set",
                       "data.mode=stream", "--set", "training.batch_size=4", ok=False),
                   "seq_length + 1", "batch_size=4")


def test_corpus_that_is_not_utf8_names_the_byte_offset(tmp_path):
    bad = tmp_path / "latin.txt"
    bad.write_bytes(b"anna\nbj\xf6rn\n")
    one_line_error(run("train", "--corpus", bad, "--out", tmp_path / "o.npz", ok=False),
                   "byte offset 7", "line 2", "--encoding")
    run("train", "--corpus", bad, "--out", tmp_path / "o.npz", "--encoding", "latin-1",
        "--steps", 2, "--set", "model.hidden_size=4", "--set", "training.sample_every=0")


def test_unknown_config_key_suggests_the_closest(tmp_path):
    one_line_error(run("train", "--set", "training.learning_rate=0.1", ok=False),
                   "unknown key 'learning_rate'", "did you mean 'lr'")
    config = tmp_path / "c.yaml"
    config.write_text("trainig:\n  steps: 3\n")
    one_line_error(run("train", "--config", config, ok=False), "unknown section 'trainig'",
                   "did you mean 'training'")


@pytest.mark.parametrize("setting, fragment", [
    ("training.lr=-0.1", "training.lr: must be > 0"),
    ("model.hidden_size=0", "model.hidden_size: must be >= 1"),
    ("data.val_fraction=1.0", "data.val_fraction: must be < 1"),
    ("data.val_fraction=-0.5", "data.val_fraction: must be >= 0"),
    ("training.steps=many", "training.steps: expected int"),
    ("training.optimizer=adamw", "did you mean 'adam'"),
    ("model.hidden_size=10000000", "model.hidden_size: must be <= "),
    ("training.seq_length=0", "training.seq_length: must be >= 1"),
    ("model.cell=transformer", "model.cell: must be one of rnn, lstm, gru"),
    ("model.num_layers=0", "model.num_layers: must be >= 1"),
    ("model.dropout=1.0", "model.dropout: must be < 1"),
    ("model.dropout=-0.1", "model.dropout: must be >= 0"),
])
def test_wrong_type_or_out_of_range_values(setting, fragment):
    one_line_error(run("train", "--set", setting, ok=False), fragment)


def test_activation_is_only_for_the_vanilla_cell():
    one_line_error(run("train", "--set", "model.cell=lstm", "--set", "model.activation=relu",
                       ok=False), "model.activation", "does not apply to cell lstm", "one of: rnn")


def test_checkpoint_whose_arrays_do_not_match_its_cell_is_refused(tmp_path, names_model):
    """A vanilla checkpoint whose config is edited to say lstm: shapes disagree, one line."""
    with np.load(names_model) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["config"] = np.array(str(arrays["config"]).replace("cell: rnn", "cell: lstm"))
    np.savez(tmp_path / "edited.npz", **arrays)
    result = run("sample", "--checkpoint", tmp_path / "edited.npz", ok=False)
    one_line_error(result, "lstm", "shape")
    assert "l0.W_xh" in result.output or "l0.W_hh" in result.output


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.slow
def test_every_command_works_with_gated_and_stacked_cells(cell, tmp_path, monkeypatch):
    """train (lines and stream), resume, sample, eval and gradcheck on a 2-layer model."""
    monkeypatch.chdir(tmp_path)
    names = tmp_path / "names.txt"
    names.write_text("anna\nbob\ncarla\ndave\nemma\nfrank\n" * 20, encoding="utf-8")
    for mode in ("lines", "stream"):
        out = tmp_path / f"{mode}.npz"
        settings = ["--set", f"model.cell={cell}", "--set", "model.num_layers=2", "--set",
                    "model.dropout=0.2", "--set", "model.hidden_size=8", "--set",
                    f"data.mode={mode}", "--set", "training.eval_every=5", "--set",
                    "training.sample_every=5", "--set", "training.batch_size=4"]
        run("train", "--corpus", names, "--out", out, "--steps", 10, *settings)
        run("train", "--resume", out, "--steps", 15)
        saved = load_checkpoint(out)
        assert saved.step == 15 and saved.spec.cell == cell and saved.spec.num_layers == 2
        if mode == "stream":
            assert set(saved.state) == {"state.l0.h", "state.l1.h"} | (
                {"state.l0.c", "state.l1.c"} if cell == "lstm" else set())
        sampled = run("sample", "--checkpoint", out, "--seed", 1).stdout
        assert sampled.strip()
        result = json.loads(run("eval", "--checkpoint", out, "--split", "val", "--json").stdout)
        assert math.isfinite(result["nats_per_char"])
        assert "all gradients agree" in run("gradcheck", "--checkpoint", out).output


def test_invalid_yaml_says_where(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("training: {steps: 3\n")
    one_line_error(run("train", "--config", config, ok=False), "c.yaml", "line")


def test_missing_truncated_and_foreign_checkpoints(tmp_path, names_model):
    one_line_error(run("sample", "--checkpoint", tmp_path / "none.npz", ok=False), "not found")
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes(names_model.read_bytes()[:500])
    one_line_error(run("sample", "--checkpoint", truncated, ok=False), "cut.npz")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    one_line_error(run("sample", "--checkpoint", foreign, ok=False), "not a charrnn checkpoint")
    text = tmp_path / "text.npz"
    text.write_text("hello")
    one_line_error(run("eval", "--checkpoint", text, names_model, ok=False), "text.npz")


def test_prime_with_characters_outside_the_vocabulary_lists_them(names_model):
    one_line_error(run("sample", "--checkpoint", names_model, "--prime", "Zoë", ok=False),
                   "'Z'", "'ë'")


def test_num_and_length_together_are_refused(names_model):
    result = run("sample", "--checkpoint", names_model, "--num", 3, "--length", 10, ok=False)
    assert result.exit_code == 2 and "exclude each other" in result.output


def test_temperature_must_be_positive(names_model):
    for bad in ("0", "-1", "nan", "inf"):
        result = run("sample", "--checkpoint", names_model, "--temperature", bad, ok=False)
        assert result.exit_code == 2 and "must be a number > 0" in result.output, bad


def test_shipped_configs_are_valid():
    from charrnn.config import load_config
    for path in sorted((REPO / "configs").glob("*.yaml")):
        config = load_config(path)
        assert (REPO / config.data.corpus).exists(), path


def test_eval_split_val_scores_the_held_out_part_like_the_trainer(text_model):
    from charrnn.train import start_run
    saved = load_checkpoint(text_model)
    state = start_run(saved.config)
    state.params = saved.params
    result = json.loads(run("eval", "--checkpoint", text_model, "--split", "val",
                            "--json").stdout)
    # every character of the split but its first (issue 23, point 6)
    assert result["characters"] == len(state.corpus.val.tokens) - 1
    assert result["nats_per_char"] == pytest.approx(state.evaluate(None), rel=1e-9)
    assert run("eval", "--checkpoint", text_model, ok=False).exit_code == 2


def test_exponent_without_a_dot_is_a_number_not_a_string(tmp_path):
    from charrnn.config import load_config
    config = load_config(REPO / "configs" / "names.yaml", ["training.lr=1e-3"])
    assert config.training.lr == 0.001
    one_line_error(run("train", "--set", "training.lr=fast", ok=False), "expected float")


def test_out_that_is_a_directory_name():
    one_line_error(run("train", "--out", ".", ok=False), "is a directory, not a checkpoint")


@pytest.mark.slow
def test_absurd_num_is_one_line_out_of_memory(names_model):
    """In a child limited to 1 GiB of address space, so the attempt can neither take the
    host's memory nor get pytest killed where memory is overcommitted."""
    import resource
    import subprocess
    import sys

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    child = subprocess.run([sys.executable, "-m", "charrnn", "sample", "--checkpoint",
                            str(names_model), "--num", str(10**12)], capture_output=True,
                           text=True, timeout=600, preexec_fn=limit_memory)
    assert child.returncode == 1 and "Traceback" not in child.stderr, child.stderr
    errors = [line for line in child.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "out of memory" in errors[0], child.stderr


@pytest.mark.slow
def test_sample_writes_utf8_even_under_the_c_locale(tmp_path):
    import os
    import subprocess
    import sys
    corpus = tmp_path / "u.txt"
    corpus.write_text("ça va très bien, 日本語 😀\n" * 200, encoding="utf-8")
    out = tmp_path / "u.npz"
    train_tiny(corpus, out, "--set", "training.seq_length=8", mode="stream")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIO"))}
    env.update(LANG="C", LC_ALL="C", PYTHONUTF8="0")
    result = subprocess.run([sys.executable, "-m", "charrnn", "sample", "--checkpoint",
                             str(out), "--length", "30", "--prime", "très 日本"],
                            capture_output=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode("utf-8")  # raises if the bytes are not UTF-8
    assert text.startswith("très 日本") and len(text.rstrip("\n")) >= 30 + 7


def test_resume_writes_back_to_its_checkpoint_and_refuses_a_config(names_file, tmp_path):
    first = tmp_path / "first.npz"
    train_tiny(names_file, first)
    run("train", "--resume", first, "--steps", 30)
    assert load_checkpoint(first).step == 30
    config = tmp_path / "c.yaml"
    config.write_text(f"training: {{out: {tmp_path / 'other.npz'}}}\n")
    result = run("train", "--resume", first, "--config", config, "--steps", 40, ok=False)
    assert result.exit_code == 2 and "--set" in result.output
    assert load_checkpoint(first).step == 30 and not (tmp_path / "other.npz").exists()


def test_sample_still_works_after_the_corpus_gains_new_characters(names_model, names_file):
    with open(names_file, "a", encoding="utf-8") as handle:
        handle.write("josé\n")
    result = run("sample", "--checkpoint", names_model, "--num", 4)
    assert len(result.stdout.splitlines()) == 4 and "4 names:" in result.stderr


def test_eval_of_a_text_with_nothing_to_score_is_an_error(text_model, tmp_path):
    text = tmp_path / "unknown.txt"
    text.write_text("☃☃☃", encoding="utf-8")
    one_line_error(run("eval", "--checkpoint", text_model, text, "--json", ok=False),
                   "no characters")


def test_out_named_like_a_log_is_refused():
    one_line_error(run("train", "--out", "checkpoints/run.jsonl", ok=False), "metrics log")

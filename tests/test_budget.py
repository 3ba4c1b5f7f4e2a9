"""Training to a time budget (issue 23): durations, the plan, resuming a planned run, the choice
made for a corpus without a config, corpora of many files, --val, and bad input. No test here
asserts a wall-clock time: the plan's rates are injected (training.step_seconds and
eval_seconds), so the plan, and the model, do not depend on this machine's speed.

README promise: charrnn is "able to take your own text and a time budget and plan the run that
fits"; "the plan is stored in the checkpoint, so `charrnn train --resume` goes on bit for bit"
(docs/budget.md).
"""

from __future__ import annotations

import dataclasses
import signal

import numpy as np
import pytest

from charrnn.checkpoint import load_checkpoint
from charrnn.choose import TextFacts, choose, choose_mode, choose_model
from charrnn.corpus import DocumentBatches, Split, load_corpus
from charrnn.errors import CharRNNError
from charrnn.evaluate import score_split
from charrnn.model import Model, ModelSpec
from charrnn.schedule import Rates, lr_scale, parse_duration, plan
from charrnn.train import TrainingInterrupted, train
from conftest import run_cli, tiny_config

NAMES = ["anna", "bob", "carla", "dmitri", "eve", "frank", "gia", "hugo", "ines", "jon"] * 30
PROSE = ("It was the best of times, it was the worst of times, it was the age of wisdom,\n"
         "it was the age of foolishness, it was the epoch of belief.\n\n") * 40


# --- durations -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1.5h", 5400),
                                           ("45", 45), ("2min", 120), (" 3 M ", 180)])
def test_durations_parse_to_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text, fragment", [("10x", "unknown unit 'x'"),
                                            ("ten minutes", "expected a duration"),
                                            ("0s", "more than 0")])
def test_bad_durations_say_what_is_wrong(text, fragment):
    with pytest.raises(CharRNNError, match=fragment):
        parse_duration(text)


# --- the plan and its schedule ----------------------------------------------------------------

def planned(budget=60.0, step=0.01, evaluation=0.2, eval_every=100, choose=False, **training):
    config = tiny_config("c.txt", "m.npz", eval_every=eval_every, **training)
    return plan(config.training, budget, Rates(step, evaluation), choose)


def test_the_plan_is_a_function_of_the_budget_and_the_measured_rates():
    first, second = planned(), planned()
    assert first == second
    # 0.92 * 60 s at 10 ms a step and 0.2 s an evaluation every 100 steps and at the end
    steps = first["steps"]
    assert steps % 10 == 0 and steps * 0.01 + (steps / 100 + 1) * 0.2 <= 0.92 * 60
    assert (steps + 10) * 0.01 + ((steps + 10) / 100 + 1) * 0.2 > 0.92 * 60 - 0.1
    assert first["step_seconds"] == 0.01 and first["eval_seconds"] == 0.2
    assert planned(step=0.02)["steps"] < steps  # a slower machine plans fewer steps
    assert planned(budget=120)["steps"] > 2 * steps - 20


def test_a_chosen_plan_picks_about_ten_evaluations():
    chosen = planned(choose=True)
    assert chosen["steps"] // chosen["eval_every"] in (9, 10)


def test_the_schedule_warms_up_then_ends_exactly_at_the_planned_step():
    for shape in ("cosine", "linear"):
        config = tiny_config("c.txt", "m.npz", lr_schedule=shape)
        keys = planned(lr_schedule=shape)
        assert keys["lr_schedule"] == shape  # a config's own decay shape is kept
        training = config.replace(training=keys).training
        warmup, steps = training.warmup, training.steps
        assert warmup > 0
        assert lr_scale(training, 0) == pytest.approx(1 / warmup)
        assert lr_scale(training, warmup - 1) == pytest.approx(1.0)
        assert lr_scale(training, warmup) == pytest.approx(1.0)
        assert 0 < lr_scale(training, steps - 1) < 0.01
        assert lr_scale(training, steps) == 0.0
    assert planned()["lr_schedule"] == "cosine"  # a step schedule is replaced by the plan's


def test_a_floor_ends_the_decay_at_its_share_of_lr():
    training = tiny_config("c.txt", "m.npz", lr_schedule="linear", steps=100, warmup=10,
                           lr_floor=0.1).training
    assert lr_scale(training, 100) == pytest.approx(0.1)
    assert lr_scale(training, 55) == pytest.approx(0.1 + 0.9 * 0.5)


def test_a_budget_too_small_for_one_evaluation_interval_is_refused():
    with pytest.raises(CharRNNError, match="too small to train one evaluation interval"):
        planned(budget=2.0, step=0.01, evaluation=0.2, eval_every=250)


# --- a planned run, resumed ------------------------------------------------------------------

def planned_config(corpus, out, **training):
    return tiny_config(corpus, out, time_budget=5.0, step_seconds=0.004, eval_seconds=0.05,
                       eval_every=20, checkpoint_every=0, **training)


def test_a_planned_run_trains_the_planned_steps_and_records_the_plan(names_file, tmp_path):
    result = train(planned_config(names_file, tmp_path / "a.npz"), progress=False)
    saved = load_checkpoint(tmp_path / "a.npz")
    expected = plan(planned_config(names_file, "x.npz").training, 5.0, Rates(0.004, 0.05))
    assert result.step == saved.step == expected["steps"] == saved.config.training.steps
    for key in ("steps", "warmup", "lr_schedule", "step_seconds", "eval_seconds"):
        assert getattr(saved.config.training, key) == expected[key], key


def test_resuming_a_planned_run_never_replans_and_ends_bit_for_bit(names_file, tmp_path,
                                                                   monkeypatch):
    import charrnn.train as training

    whole = tmp_path / "whole.npz"
    train(planned_config(names_file, whole), progress=False)

    real_step = training.Run.train_step

    def interrupt_at_step_100(self):
        result = real_step(self)
        if self.step == 100:
            signal.raise_signal(signal.SIGINT)
        return result

    cut = tmp_path / "cut.npz"
    monkeypatch.setattr(training.Run, "train_step", interrupt_at_step_100)
    with pytest.raises(TrainingInterrupted):
        train(planned_config(names_file, cut), progress=False)
    assert load_checkpoint(cut).step == 100
    monkeypatch.setattr(training.Run, "train_step", real_step)

    def no_measuring(*args, **kwargs):
        raise AssertionError("a resumed run measured and planned again")

    monkeypatch.setattr(training, "measure_rates", no_measuring)
    config = load_checkpoint(cut).config
    train(config, resume=cut, progress=False)
    a, b = load_checkpoint(whole), load_checkpoint(cut)
    assert a.step == b.step
    assert (dataclasses.replace(a.config.training, out="")
            == dataclasses.replace(b.config.training, out=""))
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name


@pytest.mark.slow  # measures this machine's step rate for real
def test_a_measured_plan_fits_the_budget_and_says_so(names_file, tmp_path):
    lines = []
    config = tiny_config(names_file, tmp_path / "m.npz", time_budget=8.0, eval_every=20,
                         checkpoint_every=0)
    train(config, progress=False, report=lambda kind, text: lines.append(text))
    saved = load_checkpoint(tmp_path / "m.npz")
    training = saved.config.training
    assert training.step_seconds > 0 and training.steps == saved.step >= 20
    start = next(line for line in lines if "plan for 8 s" in line)
    assert f"{training.steps:,} steps" in start and "ms a step" in start


def test_a_resumed_run_without_a_plan_is_not_given_one(names_file, tmp_path):
    out = tmp_path / "m.npz"
    train(tiny_config(names_file, out), progress=False)
    config = load_checkpoint(out).config.replace(training={"time_budget": 60.0, "steps": 40})
    with pytest.raises(CharRNNError, match="never re-plans"):
        train(config, resume=out, progress=False)


# --- the choice -------------------------------------------------------------------------------

def test_a_list_of_short_lines_is_trained_line_by_line_and_running_text_as_a_stream():
    names = [f"{name}{chr(97 + i % 26)}{chr(97 + i // 26)}" for i, name in enumerate(NAMES)]
    assert choose_mode(TextFacts.of("\n".join(names)))[0] == "lines"
    assert choose_mode(TextFacts.of("\n".join(NAMES)))[0] == "stream"  # repeated lines
    assert choose_mode(TextFacts.of(PROSE))[0] == "stream"
    verse = "\n".join(f"Of man's first disobedience, and the fruit {i}" for i in range(300))
    assert choose_mode(TextFacts.of(verse))[0] == "stream"  # long lines


def test_the_choice_is_settings_and_a_line_naming_the_budget():
    settings, line = choose("\n".join(f"{name}{i}" for i, name in enumerate(NAMES)), None)
    assert "data.mode=lines" in settings and "training.time_budget=300.0" in settings
    assert "the default budget" in line
    settings, line = choose(PROSE, 120.0, mode="lines")  # --mode wins
    assert "data.mode=lines" in settings and "--mode" in line and "--time" in line


def test_the_model_table_grows_with_the_budget_and_guards_small_corpora():
    small, large = choose_model("lines", 300_000, 60), choose_model("lines", 300_000, 600)
    assert large["model"]["num_layers"] > small["model"]["num_layers"]
    assert choose_model("stream", 50_000, 60)["model"]["dropout"] > \
        choose_model("stream", 500_000, 60)["model"]["dropout"]


# --- many files, and --val ----------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path, text_file):
    text = text_file.read_text(encoding="utf-8")
    docs = tmp_path / "docs"
    (docs / "more").mkdir(parents=True)
    for i, part in enumerate([text[:6000], text[6000:13000], text[13000:]]):
        (docs / ("more" if i == 2 else ".") / f"part{i}.txt").write_text(part, encoding="utf-8")
    (docs / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0" * 20)
    (docs / ".hidden.txt").write_text("\u00a7\u00a7", encoding="utf-8")
    return docs


def test_a_directory_is_one_document_a_text_file_and_binary_files_are_skipped(folder):
    corpus = load_corpus(folder, "stream", 0.1, 0)
    assert len(corpus.train.documents()) == 3 and len(corpus.val.documents()) == 3
    assert corpus.fingerprint["characters"] == sum(len(d) for d in corpus.train.documents()) \
        + sum(len(d) for d in corpus.val.documents())
    assert any("picture.png" in note and "binary" in note for note in corpus.notes)
    assert "\u00a7" not in corpus.vocab  # a hidden file is left out
    # each document's tail is held out
    whole = [len(d) for d in load_corpus(folder, "stream", 0.0, 0).train.documents()]
    assert [len(d) for d in corpus.train.documents()] == [n - int(n * 0.1) for n in whole]


def test_document_batches_read_every_character_once_and_reset_at_each_document(folder):
    split = load_corpus(folder, "stream", 0.0, 0).train
    batches = DocumentBatches(split, 4, 10)
    seen, resets = 0, 0
    for _ in range(batches.chunks):
        batch = batches.next()
        seen += batch.characters
        resets += int(batch.reset_lanes.sum())
    assert seen == split.characters  # every character but each piece's first is a target
    assert resets >= len(split.documents())
    assert batches.next().reset  # the next pass starts over


def test_a_directory_without_text_files_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.bin").write_bytes(b"\0\1\2")
    with pytest.raises(CharRNNError, match="holds no text files.*1 binary"):
        load_corpus(empty, "stream", 0.1, 0)


def test_a_separate_validation_text_is_scored_where_its_characters_are_known(text_file,
                                                                            tmp_path):
    val = tmp_path / "val.txt"
    val.write_text("To be, or not to be: that is the question. \u00e6\u00e6 Whether 'tis nobler",
                   encoding="utf-8")
    corpus = load_corpus(text_file, "stream", 0.1, 0, val_path=val)
    assert corpus.train.characters == len(text_file.read_text(encoding="utf-8")) - 1
    assert len(corpus.val.documents()) == 2 and "2 characters" in corpus.notes[0]


def test_evaluation_scores_every_character_of_each_document_but_its_first():
    model = Model.init(ModelSpec(vocab_size=7, hidden_size=5), np.random.default_rng(1))
    tokens = np.arange(5000) % 7
    assert score_split(model, Split(tokens), "stream", 16, 30)[1] == 4999
    docs = Split(tokens, document_starts=np.array([0, 1000, 1003]))
    assert score_split(model, docs, "stream", 16, 30)[1] == 4997


# --- the command line --------------------------------------------------------------------------

def test_time_and_steps_together_are_refused_in_one_line(names_file, tmp_path):
    result = run_cli("train", "--corpus", names_file, "--time", "1m", "--steps", "10",
                     ok=False)
    assert result.exit_code == 2 and "give --time or --steps, not both" in result.output


def test_an_unknown_unit_is_one_line(names_file):
    result = run_cli("train", "--corpus", names_file, "--time", "10 parsecs", ok=False)
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code != 0 and len(errors) == 1 and "unknown unit" in errors[0]


def test_a_budget_too_small_is_one_line(names_file, tmp_path):
    result = run_cli("train", "--config", "names", "--corpus", names_file, "--out",
                     tmp_path / "m.npz", "--time", "2s", "--set", "training.step_seconds=0.01",
                     "--set", "training.eval_seconds=0.2", ok=False)
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "too small to train one evaluation interval" in errors[0]


def test_an_empty_directory_is_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("train", "--corpus", empty, "--out", tmp_path / "m.npz", ok=False)
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "holds no text files" in errors[0]


def test_a_corpus_without_a_config_is_chosen_for_and_planned(names_file, tmp_path):
    result = run_cli("train", "--corpus", names_file, "--out", tmp_path / "m.npz", "--time",
                     "30s", "--set", "training.step_seconds=0.5", "--set",
                     "training.eval_seconds=0.05", "--set", "model.hidden_size=16",
                     "--no-progress")
    assert "chose lines mode" in result.output and "plan for 30 s" in result.output
    saved = load_checkpoint(tmp_path / "m.npz")
    assert saved.config.data.mode == "lines" and saved.config.training.time_budget == 30
    assert saved.step == saved.config.training.steps


def test_a_run_on_a_directory_resumes_bit_for_bit(folder, tmp_path, monkeypatch):
    import charrnn.train as training

    def config(out):
        return tiny_config(folder, out, mode="stream", steps=30, seq_length=10, batch_size=4)

    train(config(tmp_path / "whole.npz"), progress=False)
    real_step = training.Run.train_step

    def interrupt_at_step_13(self):
        result = real_step(self)
        if self.step == 13:
            signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(training.Run, "train_step", interrupt_at_step_13)
    with pytest.raises(TrainingInterrupted):
        train(config(tmp_path / "cut.npz"), progress=False)
    monkeypatch.setattr(training.Run, "train_step", real_step)
    train(config(tmp_path / "cut.npz"), resume=tmp_path / "cut.npz", progress=False)
    a, b = load_checkpoint(tmp_path / "whole.npz"), load_checkpoint(tmp_path / "cut.npz")
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name

"""The trainer: it learns, it is reproducible, and a resumed run continues bit for bit.

README promise: "checkpointed, exactly resumable"; docs/models.md: "The same config and seed give
bit-identical checkpoints."
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from charrnn.checkpoint import load_checkpoint
from charrnn.train import Run, best_path, log_path, start_run, train
from conftest import tiny_config


def quiet(kind, text):
    pass


def test_training_on_names_lowers_validation_loss_below_a_bound(names_file, tmp_path):
    config = tiny_config(names_file, tmp_path / "n.npz", steps=400, eval_every=100,
                         batch_size=32, lr=0.01)
    untrained = start_run(config).evaluate(None)
    result = train(config, progress=False, report=quiet)
    # uniform over 27 symbols is 3.30 nats; letter frequencies alone give about 2.9
    assert untrained > 3.2
    assert result.best_val_loss < 2.45, result.history
    saved = load_checkpoint(best_path(config.training.out))
    assert saved.meta["best_val_loss"] == pytest.approx(result.best_val_loss)
    assert result.best_val_loss <= min(record["val_loss"] for record in result.history)


def test_best_checkpoint_is_never_worse_than_the_last_evaluation(names_file, tmp_path):
    """A run shorter than eval_every still gets a best checkpoint, from its last evaluation
    (off the grid), and the summary's best is what that file holds."""
    config = tiny_config(names_file, tmp_path / "short.npz", steps=7, eval_every=100)
    result = train(config, progress=False, report=quiet)
    saved = load_checkpoint(best_path(config.training.out))
    assert saved.step == 7 and result.best_val_loss == result.final_val_loss
    assert saved.meta["best_file_loss"] == result.best_val_loss
    assert saved.meta["best_val_loss"] is None  # off the grid: patience has seen nothing yet


def test_changing_eval_every_does_not_change_the_trained_weights(names_file, tmp_path):
    """With lr_decay_every set, how often you evaluate does not move the schedule."""
    weights = []
    for eval_every in (5, 20):
        config = tiny_config(names_file, tmp_path / f"e{eval_every}.npz", steps=20,
                             eval_every=eval_every, lr_decay=0.5, lr_decay_every=10)
        train(config, progress=False, report=quiet)
        weights.append(load_checkpoint(config.training.out).params["l0.W_hh"])
    np.testing.assert_array_equal(weights[0], weights[1])
    unset = tiny_config(names_file, tmp_path / "old.npz", steps=20, eval_every=5,
                        lr_decay=0.5)  # the first release's meaning: decay every eval_every
    result = train(unset, progress=False, report=quiet)
    assert [round(r["lr"] / 0.01, 6) for r in result.history] == [1.0, 0.5, 0.25, 0.125]


def test_cosine_schedule_anneals_from_lr_to_zero_at_the_last_step(names_file, tmp_path):
    """lr * (1 + cos(pi * step / steps)) / 2, as the update of each logged step used it."""
    config = tiny_config(names_file, tmp_path / "cos.npz", steps=20, eval_every=5,
                         lr_schedule="cosine", lr_decay=0.5)  # lr_decay: ignored by cosine
    said = []
    result = train(config, progress=False, report=lambda kind, text: said.append(text))
    assert any("lr_decay and lr_decay_every do nothing" in line for line in said), said
    used = [record["lr"] / 0.01 for record in result.history]
    expected = [0.5 * (1 + np.cos(np.pi * (step - 1) / 20)) for step in (5, 10, 15, 20)]
    np.testing.assert_allclose(used, expected, rtol=1e-12)
    assert used[-1] < 0.01 and used == sorted(used, reverse=True)


def test_a_cosine_run_stopped_by_its_time_limit_resumes_bit_for_bit(text_file, tmp_path):
    whole = tiny_config(text_file, tmp_path / "whole.npz", "stream", steps=30,
                        lr_schedule="cosine")
    train(whole, progress=False, report=quiet)
    cut = tiny_config(text_file, tmp_path / "cut.npz", "stream", steps=30,
                      lr_schedule="cosine", time_limit=1e-9)  # stops after its first step
    assert train(cut, progress=False, report=quiet).step < 30
    said = []
    train(cut.replace(training={"time_limit": 0.0}), resume=cut.training.out, progress=False,
          report=lambda kind, text: said.append(text))
    assert not [line for line in said if "schedule" in line], said  # the same steps: no jump
    a, b = load_checkpoint(whole.training.out), load_checkpoint(cut.training.out)
    assert a.step == b.step == 30
    for key in a.params:
        assert np.array_equal(a.params[key], b.params[key]), key


def test_resuming_a_cosine_run_with_other_steps_says_how_lr_jumps(text_file, tmp_path):
    config = tiny_config(text_file, tmp_path / "c.npz", "stream", steps=10,
                         lr_schedule="cosine")
    train(config, progress=False, report=quiet)
    said = []
    train(config.replace(training={"steps": 20}), resume=config.training.out, progress=False,
          report=lambda kind, text: said.append(text))
    jump = [line for line in said if "schedule differs from the checkpoint's (steps 10 -> 20)"
            in line]
    # at step 10 of 10 lr had reached 0; of 20 it is halfway down: 0.01 * 0.5
    assert jump and "lr jumps from 0 to 0.005 at step 10" in jump[0], said
    said.clear()  # back to a step schedule at step 20: lr is back up at 0.01 * 0.5 ** (20 // 5)
    back = config.replace(training={"steps": 30, "lr_schedule": "step", "lr_decay": 0.5,
                                    "lr_decay_every": 5})
    train(back, resume=config.training.out, progress=False,
          report=lambda kind, text: said.append(text))
    assert any("lr_schedule cosine -> step" in line and "from 0 to 0.000625 at step 20" in line
               for line in said), said
    said.clear()  # already past --steps: nothing will be trained, so nothing to warn about
    train(config.replace(training={"steps": 8}), resume=config.training.out, progress=False,
          report=lambda kind, text: said.append(text))
    assert not [line for line in said if "schedule" in line], said


def test_same_config_and_seed_give_bit_identical_checkpoints(names_file, tmp_path):
    outs = []
    for name in ("a.npz", "b.npz"):
        config = tiny_config(names_file, tmp_path / name)
        train(config, progress=False, report=quiet)
        outs.append(load_checkpoint(config.training.out))
    for key in outs[0].params:
        assert np.array_equal(outs[0].params[key], outs[1].params[key]), key
    other = tiny_config(names_file, tmp_path / "c.npz", seed=1)
    train(other, progress=False, report=quiet)
    assert not np.array_equal(load_checkpoint(other.training.out).params["l0.W_hh"],
                              outs[0].params["l0.W_hh"])


@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_resume_matches_uninterrupted_run(mode, names_file, text_file, tmp_path):
    corpus = names_file if mode == "lines" else text_file
    whole = tiny_config(corpus, tmp_path / "whole.npz", mode, steps=30)
    train(whole, progress=False, report=quiet)
    first = tiny_config(corpus, tmp_path / "part.npz", mode, steps=13)
    train(first, progress=False, report=quiet)
    resumed = first.replace(training={"steps": 30})
    train(resumed, resume=first.training.out, progress=False, report=quiet)
    a, b = load_checkpoint(whole.training.out), load_checkpoint(first.training.out)
    assert a.step == b.step == 30
    for key in a.params:
        assert np.array_equal(a.params[key], b.params[key]), key
    for key in a.optimizer_state:
        assert np.array_equal(a.optimizer_state[key], b.optimizer_state[key]), key
    if mode == "stream":
        assert a.state.keys() == b.state.keys() == {"state.l0.h"}
        for key in a.state:
            assert np.array_equal(a.state[key], b.state[key])


def test_resume_at_or_past_steps_does_nothing(names_file, tmp_path):
    config = tiny_config(names_file, tmp_path / "n.npz", steps=10)
    train(config, progress=False, report=quiet)
    before = (tmp_path / "n.npz").read_bytes()
    messages = []
    result = train(config, resume=config.training.out, progress=False,
                   report=lambda kind, text: messages.append(text))
    assert result.step == 10 and "nothing to do" in messages[-1]
    assert (tmp_path / "n.npz").read_bytes() == before


def test_metrics_log_records_each_evaluation(names_file, tmp_path):
    config = tiny_config(names_file, tmp_path / "n.npz", steps=30, eval_every=10)
    train(config, progress=False, report=quiet)
    records = [json.loads(line) for line in log_path(config.training.out).read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30]
    for record in records:
        assert record["val_loss"] > 0 and record["grad_norm"] > 0
        assert 0 <= record["clip_fraction"] <= 1 and record["sigma_max_W_hh"] > 0
        assert record["val_bpc"] == pytest.approx(record["val_loss"] / np.log(2))
    seconds = [r["seconds"] for r in records]  # the x axis of a loss-against-time curve
    assert 0 < seconds[0] < seconds[1] < seconds[2]


def test_resume_appends_to_an_older_csv_log_by_its_own_columns(names_file, tmp_path):
    config = tiny_config(names_file, tmp_path / "n.npz", steps=10, log_format="csv")
    train(config, progress=False, report=quiet)
    log = log_path(config.training.out, "csv")
    rows = log.read_text().splitlines()
    drop = rows[0].split(",").index("seconds")  # as a log from before the seconds column
    log.write_text("".join(",".join(c for i, c in enumerate(row.split(",")) if i != drop) + "\n"
                           for row in rows))
    train(config.replace(training={"steps": 20}), resume=config.training.out, progress=False,
          report=quiet)
    header, *records = [row.split(",") for row in log.read_text().splitlines()]
    assert "seconds" not in header and len(records) == 2
    assert all(len(record) == len(header) for record in records)
    assert records[1][header.index("step")] == "20"


def test_csv_log_has_a_header_and_a_row_per_evaluation(names_file, tmp_path):
    config = tiny_config(names_file, tmp_path / "n.npz", steps=20, log_format="csv")
    train(config, progress=False, report=quiet)
    rows = log_path(config.training.out, "csv").read_text().splitlines()
    assert rows[0].startswith("step,chars_seen,train_loss") and len(rows) == 3


def test_patience_stops_when_validation_stops_improving(names_file, tmp_path, monkeypatch):
    losses = iter([3.0, 2.0, 2.5, 2.1, 2.2, 1.0, 0.5])
    monkeypatch.setattr(Run, "evaluate", lambda self, max_chars: next(losses))
    config = tiny_config(names_file, tmp_path / "n.npz", steps=1000, eval_every=2, patience=3)
    messages = []
    result = train(config, progress=False, report=lambda kind, text: messages.append(text))
    assert result.stopped_early and result.step == 10  # 2.5, 2.1, 2.2 none below 2.0
    assert result.best_val_loss == 2.0 and "stopped early at step 10 of 1000" in messages[-1]
    assert load_checkpoint(config.training.out).step == 10


def test_init_from_keeps_the_vocabulary_and_refuses_new_characters(names_file, tmp_path):
    config = tiny_config(names_file, tmp_path / "n.npz", steps=5)
    train(config, progress=False, report=quiet)
    other = tmp_path / "other.txt"
    other.write_text("anna\nbob\n", encoding="utf-8")
    tuned = tiny_config(other, tmp_path / "t.npz", steps=3).replace(model={"hidden_size": 4})
    result = train(tuned, init_from=config.training.out, progress=False, report=quiet)
    saved = load_checkpoint(result.out)
    assert saved.vocab == load_checkpoint(config.training.out).vocab
    assert saved.params["l0.W_hh"].shape == (16, 16)  # the checkpoint's model, not the config's
    bad = tmp_path / "bad.txt"
    bad.write_text("zoë\nÅsa\n", encoding="utf-8")
    from charrnn.errors import CharRNNError
    with pytest.raises(CharRNNError, match="'Å', 'ë'"):
        train(tiny_config(bad, tmp_path / "x.npz"), init_from=config.training.out,
              progress=False, report=quiet)


def test_stream_mode_carries_hidden_state_between_chunks(text_file, tmp_path):
    run = start_run(tiny_config(text_file, tmp_path / "s.npz", "stream"))
    run.train_step()
    ((carried,),) = run.state
    assert np.abs(carried).sum() > 0
    batch_was_reset = run.batches.next().reset
    assert not batch_was_reset


def test_float32_training_keeps_float32_weights(names_file, tmp_path):
    config = tiny_config(names_file, tmp_path / "n.npz", steps=5).replace(
        model={"dtype": "float32"})
    train(config, progress=False, report=quiet)
    saved = load_checkpoint(config.training.out)
    assert all(value.dtype == np.float32 for value in saved.params.values())


def test_resume_drops_log_records_past_the_checkpoint_and_cut_lines(names_file, tmp_path):
    config = tiny_config(names_file, tmp_path / "n.npz", steps=20, eval_every=5,
                         checkpoint_every=10)
    train(config, progress=False, report=quiet)
    log = log_path(config.training.out)
    whole = log.read_text()
    # as if killed after logging step 25 (not yet checkpointed) in the middle of a line
    log.write_text(whole + json.dumps({"step": 25}) + "\n" + '{"step": 3', encoding="utf-8")
    train(config.replace(training={"steps": 30}), resume=config.training.out, progress=False,
          report=quiet)
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == [5, 10, 15, 20, 25, 30]


def test_resume_with_patience_stops_where_the_uninterrupted_run_stops(names_file, tmp_path):
    settings = dict(steps=200, eval_every=5, patience=2, lr=0.05, checkpoint_every=0)
    whole = tiny_config(names_file, tmp_path / "whole.npz", **settings)
    expected = train(whole, progress=False, report=quiet)
    assert expected.stopped_early  # else this test shows nothing
    for stop_at in (expected.step - 7, expected.step - 3):  # both off the eval_every grid
        part = tiny_config(names_file, tmp_path / f"p{stop_at}.npz",
                           **{**settings, "steps": stop_at})
        train(part, progress=False, report=quiet)
        resumed = train(part.replace(training={"steps": 200}), resume=part.training.out,
                        progress=False, report=quiet)
        assert resumed.step == expected.step
        assert resumed.best_val_loss == expected.best_val_loss
        a, b = load_checkpoint(whole.training.out), load_checkpoint(part.training.out)
        assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_a_log_that_cannot_be_written_is_our_error_and_the_checkpoint_is_saved(names_file,
                                                                               tmp_path,
                                                                               monkeypatch):
    import errno
    import os

    import charrnn.plumbing.writing
    from charrnn.errors import CharRNNError
    config = tiny_config(names_file, tmp_path / "n.npz", steps=20, eval_every=10,
                         checkpoint_every=0)
    log_path(config.training.out).mkdir()  # a directory where the log should be: refused
    with pytest.raises(CharRNNError, match="cannot write the metrics log"):  # before training
        train(config, progress=False, report=quiet)
    assert not (tmp_path / "n.npz").exists()
    log_path(config.training.out).rmdir()
    replace = os.replace

    def disk_full_for_the_log(source, target):  # a failure no pre-flight check can foresee
        if str(target).endswith(".jsonl"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return replace(source, target)

    monkeypatch.setattr(charrnn.plumbing.writing.os, "replace", disk_full_for_the_log)
    with pytest.raises(CharRNNError, match="cannot write the metrics log"):
        train(config, progress=False, report=quiet)
    assert load_checkpoint(config.training.out).step == 10


def test_two_names_for_one_output_share_the_lock(tmp_path):
    from charrnn.errors import CharRNNError
    from charrnn.train import _output_lock
    real = tmp_path / "a.npz"
    real.write_bytes(b"")
    alias = tmp_path / "b.npz"
    alias.symlink_to(real)
    with _output_lock(real):
        with pytest.raises(CharRNNError, match="another charrnn train is writing"):
            with _output_lock(alias):
                pass


@pytest.mark.slow
def test_logged_sigma_max_matches_the_svd_for_large_recurrent_weights():
    """Power iteration (large W_hh) gives the SVD's largest singular value, warm or cold."""
    from charrnn.train import largest_singular_value

    rng = np.random.default_rng(0)
    W = rng.standard_normal((2048, 512)) * 0.05
    exact = np.linalg.norm(W, 2)
    cold, vector = largest_singular_value(W)
    assert cold == pytest.approx(exact, rel=1e-6)
    moved = W + 1e-3 * rng.standard_normal(W.shape)  # the next evaluation's weights
    warm, _ = largest_singular_value(moved, vector)
    assert warm == pytest.approx(np.linalg.norm(moved, 2), rel=1e-6)
    assert largest_singular_value(np.zeros((4, 3)))[0] == 0.0

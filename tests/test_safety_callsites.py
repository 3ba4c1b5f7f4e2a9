"""Issue 9 at the call sites of gradflow, plot, viz and sample's corpus summary: through the real
CLI, never a write over an input or a non-regular file, one atomic writer for every picture and
page (a failed write leaves the previous file byte-identical), bounded reads, and no input that
gives a traceback. Protected files are compared by SHA-256 before and after.

README promise: "nothing of yours is replaced" (docs/faults.md) holds in gradflow, plot, viz and
sample, not only in train.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from click.testing import CliRunner
from test_gradflow import write_checkpoint

from charrnn.cli import gradflow as gradflow_command
from charrnn.cli import main
from charrnn.plumbing import paths

STREAM_TEXT = "the quick brown fox jumps over the lazy dog\n" * 40


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(result) -> str:
    """The command failed with exactly one line, 'Error: ...', and no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def last_line_error(result) -> str:
    """The command failed after its report with one line, 'Error: ...', and no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    last = [line for line in result.output.splitlines() if line.strip()][-1]
    assert last.startswith("Error: "), result.output
    return last


def write_log(path, records) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def good_log(path, scale: float = 1.0) -> None:
    write_log(path, [{"step": step, "train_loss": 3.0 * scale / step, "val_loss": 3.1 / step,
                      "chars_seen": 100 * step, "grad_norm": 1.0, "clip_fraction": 0.0}
                     for step in (1, 2, 3)])


def no_temporaries(directory) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(paths.TEMP_SUFFIX)]


# --- outputs never destroy inputs ----------------------------------------------------------------

def test_gradflow_plot_at_the_checkpoint_is_refused_before_any_work(tmp_path):
    pytest.importorskip("matplotlib")
    checkpoint = write_checkpoint(tmp_path)
    before = sha(checkpoint)
    error = one_line_error(run("gradflow", "--checkpoint", checkpoint, "--plot", checkpoint))
    assert "--plot" in error and "never writes over one of its inputs" in error
    link = tmp_path / "flow.png"
    link.symlink_to(checkpoint)  # another name for it
    assert "never writes over" in one_line_error(run("gradflow", "--checkpoint", checkpoint,
                                                     "--plot", link))
    text = tmp_path / "text.txt"
    text.write_text("anna\nbob\n", encoding="utf-8")
    text_before = sha(text)
    assert "--text" in one_line_error(run("gradflow", "--checkpoint", checkpoint, "--text", text,
                                          "--plot", text))
    other = write_checkpoint(tmp_path, name="other.npz", seed=1)
    other_before = sha(other)
    error = one_line_error(run("gradflow", "--compare", checkpoint, "--compare", other,
                               "--plot", other))
    assert "--compare #2" in error
    assert (sha(checkpoint), sha(text), sha(other)) == (before, text_before, other_before)
    os.mkfifo(tmp_path / "pipe.png")  # never replaced (nor opened: nothing writes to it)
    assert "not a regular file" in one_line_error(run("gradflow", "--checkpoint", checkpoint,
                                                      "--plot", tmp_path / "pipe.png"))
    assert no_temporaries(tmp_path)


def test_plot_out_at_its_log_is_refused(tmp_path):
    pytest.importorskip("matplotlib")
    log = tmp_path / "run.jsonl"
    good_log(log)
    before = sha(log)
    assert "never writes over one of its inputs" in one_line_error(run("plot", log, "--out", log))
    link = tmp_path / "run.png"
    link.symlink_to(log)  # the default --out is a link to the log
    assert "never writes over" in one_line_error(run("plot", log))
    assert sha(log) == before and link.is_symlink()
    os.mkfifo(tmp_path / "pipe.png")
    assert "not a regular file" in one_line_error(run("plot", log, "--out",
                                                      tmp_path / "pipe.png"))


def test_viz_out_at_the_checkpoint_is_refused(tmp_path):
    checkpoint = write_checkpoint(tmp_path)
    before = sha(checkpoint)
    error = one_line_error(run("viz", "--checkpoint", checkpoint, "--out", checkpoint))
    assert "--checkpoint" in error and "never writes over one of its inputs" in error
    assert sha(checkpoint) == before
    page = tmp_path / "page.html"
    result = run("viz", "--checkpoint", checkpoint, "--prime", "anna\nbob", "--out", page)
    assert result.exit_code == 0, result.output
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sha(checkpoint) == before and no_temporaries(tmp_path)


# --- one atomic writer: a failed write keeps the previous file -----------------------------------

def test_a_failed_rename_leaves_the_previous_picture_byte_identical(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    log, picture = tmp_path / "run.jsonl", tmp_path / "run.png"
    good_log(log)
    assert run("plot", log).exit_code == 0
    before = sha(picture)
    good_log(log, scale=2.0)  # a different picture would be drawn

    def refuse(source, target, **kwargs):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "replace", refuse)
    error = one_line_error(run("plot", log))
    assert "cannot write picture" in error and "previous picture there is unchanged" in error
    assert sha(picture) == before and no_temporaries(tmp_path)


def test_a_full_disk_leaves_the_previous_picture_byte_identical(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    checkpoint = write_checkpoint(tmp_path)
    picture = tmp_path / "flow.png"
    assert run("gradflow", "--checkpoint", checkpoint, "--plot", picture).exit_code == 0
    before = sha(picture)

    def full(self, handle, **kwargs):
        handle.write(b"\x89PNG half a picture")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Figure, "savefig", full)
    error = last_line_error(run("gradflow", "--checkpoint", checkpoint, "--plot", picture,
                                "--impulse"))
    assert "No space left on device" in error
    assert sha(picture) == before and no_temporaries(tmp_path)


def test_a_failed_page_write_leaves_the_previous_page(tmp_path, monkeypatch):
    checkpoint = write_checkpoint(tmp_path)
    page = tmp_path / "page.html"
    assert run("viz", "--checkpoint", checkpoint, "--prime", "anna", "--out", page).exit_code == 0
    before = sha(page)
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "EIO")))
    assert "unchanged" in one_line_error(run("viz", "--checkpoint", checkpoint, "--prime", "bob",
                                             "--out", page))
    assert sha(page) == before and no_temporaries(tmp_path)


# --- no input gives a traceback ------------------------------------------------------------------

def test_plot_of_values_near_the_float_limits(tmp_path):
    pytest.importorskip("matplotlib")
    log = tmp_path / "huge.jsonl"
    write_log(log, [{"step": 1, "train_loss": 1e308, "val_loss": -1e308},
                    {"step": 2, "train_loss": 2.0}])
    assert "not a finite number" in one_line_error(run("plot", log))
    write_log(log, [{"step": 1e308, "train_loss": 2.0}])
    assert "step" in one_line_error(run("plot", log))
    # beyond the limit in the other columns: drawn as not measured
    write_log(log, [{"step": 1, "train_loss": 2.5, "val_loss": 1e308, "grad_norm": -1.7e308,
                     "clip_fraction": 1e308, "chars_seen": 1e308},
                    {"step": 2, "train_loss": 2.0, "val_loss": 1e300, "grad_norm": 1e-308,
                     "clip_fraction": 5e-324, "chars_seen": 1e300}])
    result = run("plot", log)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "huge.png").read_bytes().startswith(b"\x89PNG")
    csv_log = tmp_path / "huge.csv"
    csv_log.write_text("step,train_loss,val_loss\n1,1e308,1e999\n2,2.0,-inf\n", encoding="utf-8")
    assert "train_loss" in one_line_error(run("plot", csv_log))
    write_log(log, [{"step": 10 ** 400, "train_loss": 2.0}])
    assert "step" in one_line_error(run("plot", log))
    log.write_text('{"step": 1, "train_loss": ' + "9" * 5000 + "}\n", encoding="utf-8")
    assert "line 1" in one_line_error(run("plot", log))


def test_plot_of_a_deeply_nested_line(tmp_path):
    pytest.importorskip("matplotlib")
    log = tmp_path / "deep.jsonl"
    depth = 100_000
    log.write_text('{"step": 1, "train_loss": 2.0}\n' + "[" * depth + "]" * depth + "\n",
                   encoding="utf-8")
    assert "line 2" in one_line_error(run("plot", log))
    log.write_text('{"step": 1, "train_loss": 2.0, "x": ' + "[" * 900 + "]" * 900 + "}\n",
                   encoding="utf-8")
    assert "not a number" in one_line_error(run("plot", log))  # shown cut short
    log.write_text('{"step": 1, "train_loss": 2.0, "x": ' + "{\"a\": " * depth + "1"
                   + "}" * depth + "}\n", encoding="utf-8")
    assert "line 1" in one_line_error(run("plot", log))
    assert not (tmp_path / "deep.png").exists()


@pytest.mark.slow
def test_plot_reads_a_log_once_and_refuses_a_checkpoint(tmp_path):
    pytest.importorskip("matplotlib")
    checkpoint = write_checkpoint(tmp_path)
    before = sha(checkpoint)
    assert "is a checkpoint, not a metrics log" in one_line_error(run("plot", checkpoint))
    assert sha(checkpoint) == before
    assert "not found" in one_line_error(run("plot", tmp_path / "missing.jsonl"))
    # a FIFO log is read once: a second open (to look for a checkpoint first) would wait forever
    fifo = tmp_path / "run.jsonl"
    os.mkfifo(fifo)
    records = "".join(json.dumps({"step": s, "train_loss": 2.0 / s}) + "\n" for s in (1, 2))

    def feed():
        with open(fifo, "w", encoding="utf-8") as pipe:
            pipe.write(records)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        child = subprocess.run([sys.executable, "-m", "charrnn", "plot", str(fifo)],
                               capture_output=True, text=True, timeout=600)
    finally:
        with contextlib.suppress(OSError):  # frees the writer if the child never opened it
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=600)
    assert child.returncode == 0, child.stderr
    assert "2 evaluations, last step 2" in child.stdout
    assert (tmp_path / "run.png").read_bytes().startswith(b"\x89PNG")


# --- reading only what is needed -----------------------------------------------------------------

@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_gradflow_default_text_never_reads_the_whole_corpus(tmp_path, monkeypatch, mode):
    def whole(*args, **kwargs):
        raise AssertionError("the whole corpus was read")

    monkeypatch.setattr(gradflow_command, "_text_start", whole)  # what reads --text
    text = "anna\nbob\nchristopher\ndora\n" * 20 if mode == "lines" else STREAM_TEXT
    checkpoint = write_checkpoint(tmp_path, mode=mode, corpus_text=text)
    result = run("gradflow", "--checkpoint", checkpoint, "--json", "--length", 20)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    if mode == "lines":
        assert report["text"] == "\nchristopher\n"
        assert report["text_source"].startswith("the longest line of corpus")
    else:
        assert report["text"] == STREAM_TEXT[:21]
        assert report["text_source"].startswith("the start of corpus")


def fifo_script(body: str) -> list[str]:
    """A child that must end on its own: a FIFO opened for reading with no writer would hang."""
    return [sys.executable, "-c", textwrap.dedent(body)]


@pytest.mark.slow
def test_gradflow_and_the_sample_summary_never_open_a_fifo_corpus(tmp_path):
    checkpoint = write_checkpoint(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.unlink()
    os.mkfifo(corpus)  # no writer: opening it for reading would wait forever
    child = subprocess.run(
        [sys.executable, "-m", "charrnn", "gradflow", "--checkpoint", str(checkpoint), "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr
    assert "sample (seed 0" in json.loads(child.stdout)["text_source"]
    child = subprocess.run(fifo_script(f"""
        from charrnn.errors import CharRNNError
        from charrnn.sample import corpus_membership
        try:
            corpus_membership({str(corpus)!r}, "lines", 0.1, 0, ["anna"])
        except CharRNNError as error:
            print(error)
        """), capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr
    assert "pipe (FIFO)" in child.stdout and "not read" in child.stdout

"""Faults a long run meets: exact resume, failed writes, diverging numbers, odd corpora, limits.

README promise: "exactly resumable", and "Bad input gets one line, a non-zero exit and no
traceback; nothing of yours is replaced" (docs/faults.md: a failed write leaves the previous file
byte-identical; docs/commands.md: a non-finite loss "stops the run without overwriting the last
good checkpoint").

Every test builds its own small corpus and config, runs the real trainer (in process through
click's CliRunner, or as a subprocess where a resource limit is needed), and checks what the user
would see: the exit code, the one `Error:` line, and the files left on disk.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.checkpoint import load_checkpoint, remove_stale_temporaries, save_checkpoint
from charrnn.cli import main
from charrnn.corpus import read_text
from charrnn.errors import CharRNNError
from conftest import tiny_config

OUT = Path("run/m.npz")  # relative: each test runs with its tmp_path as working directory


# --- helpers shared with test_signals.py and test_fuzz.py ----------------------------------------

def write_config(directory: Path, corpus: Path, mode: str = "stream", *, data: dict | None = None,
                 model: dict | None = None, name: str = "run.yaml", **training) -> Path:
    """A tiny config (hidden 16, batch 8) as a YAML file, writing to run/m.npz."""
    config = tiny_config(corpus, OUT, mode, **training)
    if data or model:
        config = config.replace(data=data or {}, model=model or {})
    path = directory / name
    path.write_text(config.to_yaml(), encoding="utf-8")
    return path


def cli(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def succeeded(result):
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    return result


def error_line(output: str, exit_code: int, expected_code: int = 1) -> str:
    """The one 'Error: ...' line the user sees; no traceback, and the expected exit code."""
    assert "Traceback" not in output, output
    assert exit_code == expected_code, output
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    return errors[0]


def cli_error(result, expected_code: int = 1) -> str:
    assert isinstance(result.exception, SystemExit), result.exception  # no uncaught exception
    return error_line(result.output, result.exit_code, expected_code)


def arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def temporaries(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def child_env() -> dict[str, str]:
    """One BLAS thread a child: the machine has 2 shared cores."""
    return dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def charrnn_command(*args) -> list[str]:
    return [sys.executable, "-m", "charrnn", *(str(arg) for arg in args)]


def limited(address_space: int | None = None, file_size: int | None = None):
    """A preexec_fn that caps the child's memory (RLIMIT_AS) or file size (RLIMIT_FSIZE)."""
    def apply():
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        if file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    return apply


# --- exact resume --------------------------------------------------------------------------------

RESUMED_META = ("step", "rng_state", "chars_seen", "optimizer_t", "stream_position",
                "stream_started")


@pytest.mark.parametrize("mode", ["stream", "lines"])
def test_run_stopped_at_n_and_resumed_to_n_plus_m_is_bit_identical(mode, text_file, names_file,
                                                                     tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus = text_file if mode == "stream" else names_file
    config = write_config(tmp_path, corpus, mode, steps=23, checkpoint_every=5)
    succeeded(cli("train", "--config", config, "--out", "whole.npz"))
    succeeded(cli("train", "--config", config, "--out", "split.npz", "--steps", 13))
    succeeded(cli("train", "--resume", "split.npz", "--steps", 23))
    whole, split = arrays(tmp_path / "whole.npz"), arrays(tmp_path / "split.npz")
    assert set(whole) == set(split)
    for name in set(whole) - {"config", "meta"}:
        assert whole[name].dtype == split[name].dtype, name
        assert np.array_equal(whole[name], split[name]), name  # bit for bit, not approximately
    whole_meta, split_meta = json.loads(str(whole["meta"])), json.loads(str(split["meta"]))
    for key in RESUMED_META:
        assert whole_meta.get(key) == split_meta.get(key), key
    assert whole_meta["step"] == 23


# --- write failures ------------------------------------------------------------------------------

@pytest.fixture
def saved_run(names_file, tmp_path, monkeypatch):
    """A run trained to step 4, checkpointing every step; returns the checkpoint's bytes."""
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, names_file, "lines", steps=4, checkpoint_every=1)
    succeeded(cli("train", "--config", config))
    return (tmp_path / OUT).read_bytes()


def _savez_until_the_disk_fills(file, *args, **arrays):
    file.write(b"PK\x03\x04" + bytes(4000))  # half an archive reaches the temporary file
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_with(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


@pytest.mark.parametrize("target, replacement, code", [
    ("numpy.savez", _savez_until_the_disk_fills, errno.ENOSPC),
    ("os.fsync", _fail_with(errno.EIO), errno.EIO),
    ("os.replace", _fail_with(errno.EACCES), errno.EACCES),
    ("os.replace", _fail_with(errno.EXDEV), errno.EXDEV),
], ids=["disk-full-mid-write", "fsync-io-error", "replace-permission-denied",
        "replace-cross-device"])
def test_failed_write_keeps_previous_checkpoint_byte_identical(saved_run, tmp_path, monkeypatch,
                                                               target, replacement, code):
    monkeypatch.setattr(target, replacement)
    line = cli_error(cli("train", "--resume", OUT, "--steps", 8))
    assert line == (f"Error: cannot write checkpoint {OUT}: {os.strerror(code)}; the previous "
                    f"checkpoint there is unchanged")
    assert (tmp_path / OUT).read_bytes() == saved_run
    assert temporaries(tmp_path / OUT) == []
    assert load_checkpoint(tmp_path / OUT).step == 4


@pytest.mark.slow
def test_file_size_limit_mid_write_keeps_previous_checkpoint(saved_run, tmp_path):
    """A real failing write(2): RLIMIT_FSIZE makes the kernel refuse bytes past a size (EFBIG)."""
    limit = len(saved_run) // 2
    child = subprocess.run(charrnn_command("train", "--resume", OUT, "--steps", 8), cwd=tmp_path,
                           env=child_env(), capture_output=True, text=True, timeout=600,
                           preexec_fn=limited(file_size=limit))
    line = error_line(child.stderr, child.returncode)
    assert line == (f"Error: cannot write checkpoint {OUT}: {os.strerror(errno.EFBIG)}; the "
                    f"previous checkpoint there is unchanged")
    assert (tmp_path / OUT).read_bytes() == saved_run
    assert temporaries(tmp_path / OUT) == []


def test_directory_where_the_checkpoint_should_be(names_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / OUT).mkdir(parents=True)
    config = write_config(tmp_path, names_file, "lines", steps=4, checkpoint_every=1)
    line = cli_error(cli("train", "--config", config))
    assert line == (f"Error: cannot write checkpoint {OUT}: Is a directory; choose another --out "
                    f"or free the path")
    assert (tmp_path / OUT).is_dir() and not any((tmp_path / OUT).iterdir())


def test_file_where_the_checkpoint_directory_should_be(names_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").write_text("not a directory")
    config = write_config(tmp_path, names_file, "lines", steps=4, checkpoint_every=1)
    line = cli_error(cli("train", "--config", config))
    assert "run" in line and "File exists" in line, line
    assert (tmp_path / "run").read_text() == "not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0555")
def test_read_only_directory_keeps_previous_checkpoint(saved_run, tmp_path):
    (tmp_path / "run").chmod(0o555)
    try:
        line = cli_error(cli("train", "--resume", OUT, "--steps", 8))
    finally:
        (tmp_path / "run").chmod(0o755)
    assert "Permission denied" in line and "run" in line, line
    assert (tmp_path / OUT).read_bytes() == saved_run


def test_nul_byte_in_the_checkpoint_path_is_our_error(saved_run, tmp_path):
    checkpoint = load_checkpoint(tmp_path / OUT)
    with pytest.raises(CharRNNError, match="cannot write checkpoint"):
        save_checkpoint(tmp_path / "bad\0name.npz", checkpoint)


def test_checkpoint_permissions_follow_the_umask_not_mkstemp(saved_run, tmp_path):
    # mkstemp creates 0600; a checkpoint written in place would get 0666 & ~umask
    checkpoint = load_checkpoint(tmp_path / OUT)
    umask = os.umask(0o022)
    try:
        (tmp_path / OUT).unlink()
        save_checkpoint(tmp_path / OUT, checkpoint)
    finally:
        os.umask(umask)
    assert (tmp_path / OUT).stat().st_mode & 0o777 == 0o644


def test_stale_temporaries_are_removed_only_for_their_own_checkpoint(tmp_path):
    out = tmp_path / "run[1].npz"  # brackets are glob syntax: the old code matched run1.npz's
    own, other = tmp_path / ".run[1].npz.x8k2.tmp", tmp_path / ".run1.npz.x8k2.tmp"
    own.write_bytes(b"half a checkpoint")
    other.write_bytes(b"another run's save in progress")
    assert remove_stale_temporaries(out) == [own]
    assert not own.exists() and other.exists()


# --- numerical faults ----------------------------------------------------------------------------

LOSS_NAN, WEIGHTS_INF = "the loss is not finite", "holds NaN or infinite values"


@pytest.mark.parametrize("lr, init_scale, checkpoint_every, cause", [
    ("1.0e+306", 0.01, 1, LOSS_NAN),  # weights near 1e306: the next step's logits overflow
    ("1.0e+306", 0.01, 0, LOSS_NAN),
    ("1.0e+308", 1.0, 1, WEIGHTS_INF),  # the update itself overflows: the save refuses it
    ("1.0e+308", 1.0, 0, LOSS_NAN),  # not saved at that step, so the next loss catches it
], ids=["loss-every-step", "loss-at-end", "weights-every-step", "weights-at-end"])
def test_diverging_run_stops_naming_step_and_cause_and_keeps_last_good_checkpoint(
        lr, init_scale, cause, checkpoint_every, names_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, names_file, "lines", steps=3, checkpoint_every=1,
                          model={"init_scale": init_scale})
    succeeded(cli("train", "--config", config))
    good = (tmp_path / OUT).read_bytes()
    with np.errstate(all="ignore"):
        result = cli("train", "--resume", OUT, "--steps", 30, "--set", "training.optimizer=sgd",
                     "--set", f"training.lr={lr}", "--set", "training.clip_mode=none",
                     "--set", f"training.checkpoint_every={checkpoint_every}")
    line = cli_error(result)
    assert cause in line and "training.lr" in line and "clip" in line, line
    failed_step = int(re.search(r"step (\d+)", line).group(1))
    assert failed_step >= 4
    saved = load_checkpoint(tmp_path / OUT)  # loads: every weight finite
    if checkpoint_every == 0:
        assert (tmp_path / OUT).read_bytes() == good
    else:
        assert saved.step == failed_step - 1  # the last step whose weights were finite
    assert all(np.isfinite(value).all() for value in saved.params.values())


# --- corpora -------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, offset, reason", [
    (b"anna\nbob\ncl\xffare\n", 11, "invalid start byte"),
    (b"anna\nbob\n\xc0\xafx\n", 9, "invalid start byte"),  # overlong encoding of '/'
    (b"anna\nbob\ncaf\xc3", 12, "unexpected end of data"),  # cut inside a character
    (b"\xff\xfea\x00n\x00", 0, "invalid start byte"),  # UTF-16 with its byte-order mark
    (b"ok\n\xed\xa0\x80\n", 3, "invalid continuation byte"),  # an encoded surrogate
])
def test_invalid_utf8_names_the_byte_offset(raw, offset, reason, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(raw)
    with pytest.raises(CharRNNError) as caught:
        read_text(path)
    message = str(caught.value)
    line = raw.count(b"\n", 0, offset) + 1
    assert f"byte offset {offset} (line {line}) {reason}" in message
    assert "--encoding" in message and "data.errors: replace" in message
    assert "\n" not in message


@pytest.mark.parametrize("encoding, fragment", [
    # the codec's own reason, on one line (its wording differs between Python versions)
    ("punycode", "punycode"),
    ("utf\0-8", "unknown encoding"), ("rot13", "unknown encoding"),
    ("no-such", "unknown encoding")])
def test_unusable_encodings_are_our_error(encoding, fragment, tmp_path):
    path = tmp_path / "text.txt"
    path.write_bytes(b"anna\nbob\n")  # ASCII: punycode fails with a bare UnicodeError
    with pytest.raises(CharRNNError) as caught:
        read_text(path, encoding)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_corpus_path_with_a_nul_byte_is_our_error():
    with pytest.raises(CharRNNError, match="NUL"):
        read_text("corpora/names\0.txt")


@pytest.mark.parametrize("option, expected_char", [
    (["--encoding", "latin-1"], "\xff"), (["--set", "data.errors=replace"], "\ufffd")])
def test_undecodable_corpus_trains_with_latin1_or_replacement(option, expected_char, tmp_path,
                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "bytes.txt"
    corpus.write_bytes(b"".join(b"name%d\xff\n" % i for i in range(40)))
    config = write_config(tmp_path, corpus, "lines", steps=3)
    succeeded(cli("train", "--config", config, *option))
    assert expected_char in load_checkpoint(tmp_path / OUT).vocab


HARD_LINES = [
    "nul\0inside", "crlf line", "e\u0301 combining acute", "n\u0303o\u0308 stacked",
    "\U0001F600 grin", "\U0001F469\u200D\U0001F4BB zwj", "\U0001F44D\U0001F3FD tone",
    "\u6F22\u5B57 CJK", "\uAC00\uB098 hangul", "\u0639\u0631\u0628\u064A RTL", "tab\there",
    "\U00010348 gothic", "\uFEFF bom", "\u2028 line separator",
]


@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_nul_crlf_combining_emoji_and_cjk_train_and_sample(mode, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = "\r\n".join(HARD_LINES * 20) + "\r\n"  # CRLF line ends throughout
    corpus = tmp_path / "hard.txt"
    corpus.write_bytes(text.encode("utf-8"))
    config = write_config(tmp_path, corpus, mode, steps=3)
    succeeded(cli("train", "--config", config))
    saved = load_checkpoint(tmp_path / OUT)
    expected = set(text.replace("\r\n", "\n")) if mode == "lines" else set(text)
    assert set(saved.vocab.chars) == expected  # combining marks and ZWJ stay separate characters
    sample = tmp_path / "sample.txt"
    if mode == "lines":
        succeeded(cli("sample", "--checkpoint", OUT, "--num", 30, "--output", sample))
        names = sample.read_bytes().decode("utf-8").split("\n")[:-1]  # bytes: keep any '\r'
        assert len(names) == 30
        assert all("\r" not in name and set(name) <= expected for name in names)
    else:
        succeeded(cli("sample", "--checkpoint", OUT, "--length", 300, "--output", sample))
        drawn = sample.read_bytes().decode("utf-8")[:-1]
        assert len(drawn) == 300 and set(drawn) <= expected


def test_vocabulary_of_three_thousand_cjk_characters_trains_and_samples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    chars = [chr(0x4E00 + i) for i in range(3000)]
    rng = random.Random(3000)
    text = "".join(rng.sample(chars, len(chars)) + rng.sample(chars, len(chars)))
    corpus = tmp_path / "cjk.txt"
    corpus.write_text(text, encoding="utf-8")
    config = write_config(tmp_path, corpus, "stream", steps=3, batch_size=4,
                          data={"val_fraction": 0.05})
    succeeded(cli("train", "--config", config))
    saved = load_checkpoint(tmp_path / OUT)
    assert len(saved.vocab) == 3000 and saved.params["W_hy"].shape == (3000, 16)
    sample = tmp_path / "sample.txt"
    succeeded(cli("sample", "--checkpoint", OUT, "--length", 500, "--output", sample))
    drawn = sample.read_bytes().decode("utf-8")[:-1]
    assert len(drawn) == 500 and set(drawn) <= set(chars)


def test_validation_fraction_never_takes_every_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "two.txt"
    corpus.write_text("anna\nbob\n")
    config = write_config(tmp_path, corpus, "lines", steps=2, data={"val_fraction": 0.99})
    succeeded(cli("train", "--config", config))
    from charrnn.config import load_config
    from charrnn.train import start_run

    corpus = start_run(load_config(config)).corpus  # the trainer's own split
    train, val = corpus.train.lines(corpus.vocab), corpus.val.lines(corpus.vocab)
    assert len(train) == 1 and len(val) == 1 and set(train + val) == {"anna", "bob"}
    assert load_checkpoint(tmp_path / OUT).meta["chars_seen"] > 0  # it trained on its line


# --- limits --------------------------------------------------------------------------------------

LIMIT_BYTES = 1 << 30  # 1 GiB of address space: Python and NumPy start in well under half that
# each case: a setting and the fragment of the one-line error
LIMIT_CASES = [
    (["--set", "model.hidden_size=10000000"], "model.hidden_size: must be <= 16384"),
    (["--set", "training.seq_length=0"], "training.seq_length: must be >= 1"),
    (["--set", "training.batch_size=3000"], "fewer than seq_length + 1"),
    (["--set", "training.batch_size=1000000000"], "over the limit"),
    (["--set", "model.hidden_size=16384"], "memory"),
    (["--set", "data.mode=lines", "--set", "training.batch_size=150000",
      "--set", "model.hidden_size=1024"], "memory"),
    (["--set", "training.sample_every=1", "--set", "training.sample_length=1000000000000"],
     "sample_length"),
]


@pytest.mark.parametrize("settings, fragment", LIMIT_CASES)
@pytest.mark.slow
def test_absurd_sizes_are_refused_in_one_line_before_any_large_allocation(
        settings, fragment, text_file, tmp_path):
    config = write_config(tmp_path, text_file, "stream", steps=3)
    child = subprocess.run(charrnn_command("train", "--config", config, *settings), cwd=tmp_path,
                           env=child_env(), capture_output=True, text=True, timeout=600,
                           preexec_fn=limited(address_space=LIMIT_BYTES))
    line = error_line(child.stderr, child.returncode)
    assert fragment in line, line
    assert not (tmp_path / OUT).exists()

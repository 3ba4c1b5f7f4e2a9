"""Nothing lost, nothing hangs (issue 9): outputs never destroy inputs, every read is bounded,
every edge is our one-line error.

README promise: "Bad input gets one line, a non-zero exit and no traceback; nothing of yours is
replaced" (docs/faults.md: atomic writes, never over an input or a file that is not a regular file,
bounded reads, and a signal ends a command blocked on input).

Each test runs the real `charrnn` command (click's CliRunner in process; a subprocess where a
signal, a FIFO, a device or a memory limit is involved) and takes the SHA-256 of every file it
protects before and after.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_faults import (
    OUT,
    charrnn_command,
    child_env,
    cli,
    cli_error,
    error_line,
    limited,
    succeeded,
    write_config,
)

import charrnn.plumbing.paths as paths
import charrnn.plumbing.reading as reading
import charrnn.plumbing.writing as writing
from charrnn.checkpoint import load_checkpoint, save_checkpoint
from charrnn.errors import CharRNNError
from charrnn.plumbing.corpus_cache import _corpus_prefix, cache_directory
from conftest import NAMES

LOG = OUT.with_suffix(".jsonl")
BEST = OUT.with_name("m.best.npz")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def hashes(*paths: Path) -> dict[Path, str]:
    return {Path(path): sha256(path) for path in paths}


def unchanged(before: dict[Path, str]) -> None:
    for path, digest in before.items():
        assert sha256(path) == digest, f"{path} was changed"


def leftovers(directory: Path) -> list[str]:
    """Temporary and lock files charrnn could leave behind."""
    return sorted(p.name for p in directory.rglob(".*") if p.name.endswith((".tmp", ".lock")))


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """tmp_path as the working directory, holding names.txt (300 real names) and run.yaml."""
    monkeypatch.chdir(tmp_path)
    lines = NAMES.read_text(encoding="utf-8").splitlines()[:300]
    (tmp_path / "names.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_config(tmp_path, tmp_path / "names.txt", "lines", steps=4, eval_every=2,
                 checkpoint_every=2)
    return tmp_path


@pytest.fixture
def trained(work) -> Path:
    """work with run/m.npz trained for 4 steps (and its best checkpoint and log)."""
    succeeded(cli("train", "--config", "run.yaml"))
    return work


def train_args(*extra) -> list:
    return ["train", "--set", "model.hidden_size=8", "--set", "training.steps=2",
            "--set", "training.eval_every=2", "--set", "training.sample_every=0", *extra]


# --- never write over an input ----------------------------------------------------------------

def _chat(work: Path) -> list:
    lines = [json.dumps({"role": "user", "content": f"hello {i}"}) for i in range(40)]
    (work / "chat.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ["--corpus", "chat.jsonl", "--out", "chat.npz", "--mode", "stream"]


def _symlinked(work: Path) -> list:
    (work / "alias.npz").symlink_to(work / "names.txt")
    return ["--corpus", "names.txt", "--out", "alias.npz"]


def _hard_linked(work: Path) -> list:
    os.link(work / "names.txt", work / "linked.npz")
    return ["--corpus", "names.txt", "--out", "linked.npz"]


def _config_named_like_the_log(work: Path) -> list:
    (work / "m.jsonl").write_text((work / "run.yaml").read_text())  # YAML, whatever its name
    return ["--config", "m.jsonl", "--out", "m.npz"]


OVERLAPS = {
    "log-is-the-corpus": (_chat, "the metrics log chat.jsonl is the corpus chat.jsonl"),
    "out-is-the-corpus": (lambda w: ["--corpus", "names.txt", "--out", "names.txt"],
                          "checkpoint names.txt is the corpus names.txt"),
    "out-is-a-symlink-to-the-corpus": (_symlinked, "is the same file as the corpus"),
    "out-is-a-hard-link-to-the-corpus": (_hard_linked, "is the same file as the corpus"),
    "out-is-the-config": (lambda w: ["--config", "run.yaml", "--out", "run.yaml"],
                          "checkpoint run.yaml is --config run.yaml"),
    "log-is-the-config": (_config_named_like_the_log,
                          "the metrics log m.jsonl is --config m.jsonl"),
}


@pytest.mark.parametrize("make, fragment", OVERLAPS.values(), ids=OVERLAPS.keys())
def test_train_never_writes_over_its_corpus_or_config(work, make, fragment):
    args = make(work)
    files = sorted(work.iterdir())
    protected = hashes(*(p for p in files if p.is_file()))
    result = cli(*train_args(*args))
    line = cli_error(result)
    assert fragment in line and "never writes over one of its inputs" in line, line
    unchanged(protected)
    assert sorted(work.iterdir()) == files  # nothing written, not even a lock or a directory


def test_resume_and_init_from_never_write_over_their_checkpoint(trained):
    protected = hashes(OUT, BEST, LOG)
    line = cli_error(cli("train", "--init-from", OUT, "--out", OUT, "--corpus", "names.txt"))
    assert f"checkpoint {OUT} is --init-from {OUT}" in line, line
    line = cli_error(cli("train", "--resume", BEST, "--out", OUT, "--steps", 6))
    assert f"the best checkpoint {BEST} is --resume {BEST}" in line, line
    unchanged(protected)


def test_sample_output_never_replaces_its_checkpoint_or_corpus(trained):
    protected = hashes(OUT, "names.txt")
    for target, label in ((OUT, "is --checkpoint"),
                          ("names.txt", "is the same file as the training corpus")):
        line = cli_error(cli("sample", "--checkpoint", OUT, "--num", 3, "--output", target))
        assert f"--output {target} {label}" in line, line
    os.link(OUT, "hard.npz")
    line = cli_error(cli("sample", "--checkpoint", OUT, "--num", 3, "--output", "hard.npz"))
    assert "is the same file as --checkpoint" in line, line
    unchanged(protected)


# --- never replace what is not a regular file ------------------------------------------------

def _special_files(work: Path) -> dict[str, Path]:
    """A FIFO, a socket and (where this process may make one) a private /dev/null."""
    os.mkfifo(work / "fifo")
    specials = {"pipe (FIFO)": work / "fifo", "socket": work / "sock"}
    socket.socket(socket.AF_UNIX).bind(str(work / "sock"))
    try:  # a private character device: the real /dev/null is never put at risk
        os.mknod(work / "null", 0o20666, os.makedev(1, 3))
        specials["character device"] = work / "null"
    except OSError:
        pass
    return specials


def test_outputs_that_are_devices_fifos_or_sockets_are_refused_and_kept(work):
    for kind, special in _special_files(work).items():
        before = os.lstat(special)
        line = cli_error(cli(*train_args("--corpus", "names.txt", "--out", special.name)))
        assert f"it is a {kind}, not a regular file" in line, line
        os.symlink(special, "x.jsonl")  # and a link to it where the metrics log goes
        line = cli_error(cli(*train_args("--corpus", "names.txt", "--out", "x.npz")))
        assert "the metrics log x.jsonl: it is a symbolic link" in line, line
        Path("x.jsonl").unlink()
        after = os.lstat(special)
        assert (after.st_ino, after.st_mode, after.st_rdev) == (
            before.st_ino, before.st_mode, before.st_rdev), kind
    os.mkfifo("x.jsonl")
    line = cli_error(cli(*train_args("--corpus", "names.txt", "--out", "x.npz")))
    assert "the metrics log x.jsonl: it is a pipe (FIFO)" in line, line
    assert not Path("x.npz").exists() and leftovers(work) == []


def test_sample_output_to_a_stream_is_written_as_a_stream(trained):
    expected = cli("sample", "--checkpoint", OUT, "--num", 4, "--seed", 5).stdout
    for name in ("-", "/dev/stdout"):
        result = succeeded(cli("sample", "--checkpoint", OUT, "--num", 4, "--seed", 5,
                               "--output", name))
        assert result.stdout == expected
    specials = _special_files(trained)
    received = []
    reader = threading.Thread(target=lambda: received.append(specials["pipe (FIFO)"]
                                                              .read_text()))
    reader.start()
    succeeded(cli("sample", "--checkpoint", OUT, "--num", 4, "--seed", 5, "--output", "fifo"))
    reader.join(timeout=600)
    assert received == [expected] and Path("fifo").is_fifo()
    if "character device" in specials:
        succeeded(cli("sample", "--checkpoint", OUT, "--num", 4, "--output", "null"))
        assert Path("null").is_char_device()
    line = cli_error(cli("sample", "--checkpoint", OUT, "--num", 4, "--output", "sock"))
    assert "it is a socket" in line, line


# --- derived files never clobber a user's file --------------------------------------------------

def test_a_log_or_best_checkpoint_that_is_not_ours_is_never_replaced(work):
    Path("run").mkdir()
    LOG.write_text("my notes, not a metrics log\n")
    protected = hashes(LOG)
    line = cli_error(cli("train", "--config", "run.yaml"))
    assert "the metrics log run/m.jsonl would replace a file that charrnn did not write" in line
    LOG.unlink()
    BEST.write_bytes(b"PK\x03\x04 someone's archive")
    protected.update(hashes(BEST))
    line = cli_error(cli("train", "--config", "run.yaml"))
    assert "the best checkpoint run/m.best.npz exists and is not a charrnn checkpoint" in line
    OUT.write_text("a user's file named like the checkpoint")
    BEST.rename("kept.npz")
    protected = {Path("kept.npz"): protected[BEST], OUT: sha256(OUT)}
    line = cli_error(cli("train", "--config", "run.yaml"))
    assert "checkpoint run/m.npz exists and is not a charrnn checkpoint" in line, line
    unchanged(protected)
    assert leftovers(work) == []


def test_symbolic_links_at_derived_names_are_never_followed(work):
    secret = work / "secret.txt"
    secret.write_text("someone else's file\n")
    protected = hashes(secret, "names.txt")
    Path("run").mkdir()
    for derived in (LOG, BEST):
        derived.symlink_to(secret)
        line = cli_error(cli("train", "--config", "run.yaml"))
        assert "symbolic link" in line and str(derived) in line, line
        derived.unlink()
    lock = Path("run/.m.npz.lock")
    lock.symlink_to(secret)
    line = cli_error(cli("train", "--config", "run.yaml"))
    assert "symbolic link" in line, line
    assert lock.is_symlink()
    unchanged(protected)


def test_a_users_file_at_the_lock_name_is_kept_and_ours_is_removed(work):
    succeeded(cli("train", "--config", "run.yaml"))
    assert not Path("run/.m.npz.lock").exists()  # no zero-byte lock left after a clean exit
    Path("run/.m.npz.lock").write_text("not ours")
    succeeded(cli("train", "--resume", OUT, "--steps", 6))
    assert Path("run/.m.npz.lock").read_text() == "not ours"
    Path("run/.m.npz.lock").unlink()
    cli_error(cli("train", "--resume", OUT, "--steps", 8, "--set", "training.lr=-1"))
    assert leftovers(work) == []  # nor after a run that failed


# --- atomic writes, checked before the work ----------------------------------------------------

def _disk_full_for(suffix: str):
    replace = os.replace

    def failing(source, target):
        if str(target).endswith(suffix):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return replace(source, target)
    return failing


def test_failed_log_and_sample_writes_leave_the_previous_files_byte_identical(trained,
                                                                              monkeypatch):
    succeeded(cli("sample", "--checkpoint", OUT, "--num", 3, "--output", "names.out"))
    protected = hashes(LOG, "names.out")
    monkeypatch.setattr(writing.os, "replace", _disk_full_for(".jsonl"))
    line = cli_error(cli("train", "--resume", OUT, "--steps", 6))
    assert line.startswith(f"Error: cannot write the metrics log {LOG}: No space left on "
                           f"device; the previous metrics log there is unchanged"), line
    monkeypatch.setattr(writing.os, "replace", _disk_full_for(".out"))
    line = cli_error(cli("sample", "--checkpoint", OUT, "--num", 3, "--output", "names.out"))
    assert "No space left on device; the previous --output there is unchanged" in line, line
    unchanged(protected)
    assert leftovers(trained) == []
    assert load_checkpoint(OUT).step == 6  # the steps trained before the log failed were saved


def test_outputs_are_checked_before_the_corpus_is_read_or_a_step_trained(work, monkeypatch):
    name = "r" * 240 + ".npz"  # fits NAME_MAX, but not with the temporary suffix
    open_input = reading.open_input
    read = watch_opens(monkeypatch)
    line = cli_error(cli("train", "--config", "run.yaml", "--out", name))
    assert "its name is 244 bytes long" in line, line
    assert read == ["run.yaml"] and not any(work.glob("r*.npz"))  # the corpus was not read
    monkeypatch.setattr(reading, "open_input", open_input)

    class Full:
        free = 1000

    monkeypatch.setattr(paths.shutil, "disk_usage", lambda path: Full())
    line = cli_error(cli("train", "--config", "run.yaml"))
    assert "cannot write checkpoint run/m.npz: it needs about" in line, line
    assert "and run has 1000 bytes free" in line, line
    assert not OUT.exists() and not LOG.exists()


def test_stale_temporaries_of_checkpoints_logs_and_caches_are_removed_at_the_next_start(work):
    succeeded(cli("train", "--config", "run.yaml"))
    dead = 2**22 + 1  # above Linux's pid_max: no process has it
    stale = [Path(f"run/.m.npz.{dead}-0badf00d.tmp"), Path("run/.m.best.npz.x8k2.tmp"),
             Path(f"run/.m.jsonl.{dead}-0badf00d.tmp")]
    cache = cache_directory()
    prefix = _corpus_prefix(Path("names.txt"))
    stale_cache = cache / f".{prefix}.0123456789abcdef.npy.{dead}-0badf00d.tmp"
    live_cache = cache / f".{prefix}.0123456789abcdef.npy.{os.getpid()}-0badf00d.tmp"
    for path in [*stale, stale_cache, live_cache]:
        path.write_bytes(b"half written")
    Path("names.txt").write_text(Path("names.txt").read_text() + "zed\n")  # a cache miss
    # another text: the previous run's files are replaced only when asked (issue 18)
    succeeded(cli("train", "--config", "run.yaml", "--out", OUT, "--overwrite"))
    assert not any(path.exists() for path in [*stale, stale_cache])
    try:
        assert live_cache.exists()  # a temporary of a run still writing it stays
    finally:
        live_cache.unlink()


# --- reading: once, bounded, interruptible -------------------------------------------------------

def watch_opens(monkeypatch) -> list[str]:
    """The names of the inputs charrnn opens from now on (every read goes through open_input)."""
    opened = []
    open_input = reading.open_input

    def counting(path, *args, **kwargs):
        opened.append(Path(path).name)
        return open_input(path, *args, **kwargs)

    monkeypatch.setattr(reading, "open_input", counting)
    return opened


def test_a_corpus_is_read_exactly_once_and_a_cached_one_not_at_all(work, monkeypatch):
    opened = watch_opens(monkeypatch)
    succeeded(cli("train", "--config", "run.yaml"))
    assert opened.count("names.txt") == 1
    opened.clear()
    succeeded(cli("train", "--config", "run.yaml", "--out", "other.npz"))
    assert opened.count("names.txt") == 0  # the cache holds its encoding


def test_resume_and_init_from_read_the_checkpoints_weights_once(trained, monkeypatch):
    """The command line takes only the stored config; the trainer reads the weights."""
    reads = []
    real_getitem = np.lib.npyio.NpzFile.__getitem__

    def counting_getitem(archive, key):
        reads.append(key)
        return real_getitem(archive, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", counting_getitem)
    succeeded(cli("train", "--resume", OUT, "--steps", 6))
    assert reads.count("l0.W_hh") == 1 and reads.count("config") == 2, reads
    reads.clear()
    succeeded(cli("train", "--init-from", OUT, "--out", "other.npz", "--steps", 2))
    assert reads.count("l0.W_hh") == 1 and reads.count("config") == 2, reads


def test_a_corpus_that_changes_while_it_is_read_is_detected(work, monkeypatch):
    monkeypatch.setattr(reading, "CHUNK_BYTES", 512)
    read_chunk = reading._read_chunk

    def growing(handle, size):  # another program appends while charrnn reads
        with open("names.txt", "a", encoding="utf-8") as writer:
            writer.write("appended\n")
        return read_chunk(handle, size)

    monkeypatch.setattr(reading, "_read_chunk", growing)
    line = cli_error(cli("train", "--config", "run.yaml"))
    assert "corpus" in line and "changed while it was being read" in line, line
    assert not OUT.exists() and not list(cache_directory().glob(
        f"{_corpus_prefix(Path('names.txt'))}*"))

    def rewritten(handle, size):  # the same size, new text: only the time tells
        text = Path("names.txt").read_text()
        Path("names.txt").write_text(text[::-1])
        os.utime("names.txt", ns=(time.time_ns(), time.time_ns() + 10**9))
        return read_chunk(handle, size)

    monkeypatch.setattr(reading, "_read_chunk", rewritten)
    line = cli_error(cli("train", "--config", "run.yaml"))
    assert "changed while it was being read (same size, new time)" in line, line


def run_child(*args, cwd: Path, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(charrnn_command(*args), cwd=cwd, env=child_env(), text=True,
                          capture_output=True, timeout=timeout, **kwargs)


@pytest.mark.slow
def test_a_fifo_and_process_substitution_are_read_once_as_a_corpus(work):
    os.mkfifo(work / "fifo")
    writer = threading.Thread(target=lambda: Path("fifo").write_bytes(
        Path("names.txt").read_bytes()))
    writer.start()
    child = run_child(*train_args("--corpus", "fifo", "--out", "f.npz"), cwd=work)
    writer.join(timeout=600)
    assert child.returncode == 0, child.stderr
    bash = subprocess.run(["bash", "-c", " ".join(charrnn_command(*train_args(
        "--out", "p.npz"))) + " --corpus <(cat names.txt)"], cwd=work, env=child_env(),
        text=True, capture_output=True, timeout=600)
    assert bash.returncode == 0, bash.stderr
    a, b = load_checkpoint(work / "f.npz"), load_checkpoint(work / "p.npz")
    assert a.meta["corpus"] == b.meta["corpus"]  # the same text, read whole from each
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


@pytest.mark.slow
def test_dev_zero_as_a_corpus_is_an_error_after_a_bounded_read(work):
    child = run_child(*train_args("--corpus", "/dev/zero", "--out", "z.npz"), cwd=work,
                      preexec_fn=limited(address_space=1 << 30))
    line = error_line(child.stderr, child.returncode)
    assert line == ("Error: corpus /dev/zero is a character device that gave more than 256.0 "
                    "MiB without ending; charrnn reads pipes and devices whole into memory, up "
                    "to 256.0 MiB: save the text to a file and pass that")
    assert not (work / "z.npz").exists() and leftovers(work) == []


def _wait_for(process: subprocess.Popen, wchan: str) -> None:
    """Until the process sleeps in the kernel function wchan (e.g. opening a FIFO)."""
    deadline = time.monotonic() + 600  # a hang guard
    while Path(f"/proc/{process.pid}/wchan").read_text() != wchan:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"never reached {wchan}"
        time.sleep(0.02)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.slow
def test_a_signal_stops_a_run_waiting_for_a_fifo_that_no_one_writes(work, signum, code):
    os.mkfifo(work / "fifo")
    process = subprocess.Popen(charrnn_command(*train_args("--corpus", "fifo")), cwd=work,
                               env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    _wait_for(process, "wait_for_partner")
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == code, stderr
    name = signal.Signals(signum).name
    assert stderr.strip() == (f"interrupted by {name} before training started; nothing was "
                              f"trained or saved")
    assert leftovers(work) == [] and not any(Path("checkpoints").iterdir())


@pytest.mark.slow
def test_any_command_waiting_for_a_fifo_stops_at_a_signal(trained):
    os.mkfifo(trained / "fifo")
    process = subprocess.Popen(charrnn_command("eval", "--checkpoint", OUT, "fifo"), cwd=trained,
                               env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    _wait_for(process, "wait_for_partner")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 143, stderr
    assert stderr.strip() == "interrupted by SIGTERM; no file was written or changed"


def _wait_until_open(process: subprocess.Popen, path: Path) -> None:
    """Until the process has the file open (it has started reading it), or has ended."""
    deadline = time.monotonic() + 600  # a hang guard
    fds = Path(f"/proc/{process.pid}/fd")
    while process.poll() is None:
        try:
            if any(os.readlink(fd) == str(path) for fd in fds.iterdir()):
                return
        except OSError:
            pass  # a descriptor closed while we looked
        assert time.monotonic() < deadline, f"{path} was never opened"
        time.sleep(0.002)


@pytest.mark.slow
def test_sigint_while_a_corpus_is_read_decoded_or_cached_stops_at_once(work):
    """A 24 MB corpus takes a while to read, decode and cache: SIGINT at moments through it."""
    big = work / "big.txt"
    line = ("the quick brown fox jumps over the lazy dog " * 3 + "\n").encode()
    big.write_bytes(line * (24_000_000 // len(line)))
    outcomes = []
    for delay in (0.0, 0.1, 0.3):
        clean_cache_of(big)  # each run reads the corpus anew
        process = subprocess.Popen(charrnn_command(*train_args(
            "--corpus", "big.txt", "--mode", "stream", "--out", "b.npz")), cwd=work,
            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_until_open(process, big)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=600)
        assert "Traceback" not in stderr, stderr
        if process.returncode == 0:  # finished first (this machine was fast): nothing to see
            outcomes.append("done")
            continue
        assert process.returncode == 130, stderr
        outcomes.append(stderr.strip().splitlines()[-1])
        assert leftovers(work) == []
        prefix = _corpus_prefix(big)
        assert not [p for p in cache_directory().glob(f"*{prefix}*") if p.suffix == ".tmp"]
        if Path("b.npz").exists():
            load_checkpoint("b.npz")
    assert outcomes[0] == ("interrupted by SIGINT before training started; nothing was trained "
                           "or saved"), outcomes


def clean_cache_of(corpus: Path) -> None:
    from charrnn.plumbing.corpus_cache import clear_cache
    clear_cache(corpus)


# --- bounded resources ------------------------------------------------------------------------

BILLION_LAUGHS = "".join(
    [f'{a}: &{a} [{", ".join([("*" + b) if b else repr("lol")] * 9)}]\n'
     for a, b in zip("abcdefghi", ["", *"abcdefgh"])]) + "training: {seed: *i}\n"


@pytest.mark.slow
def test_a_billion_laughs_config_is_refused_in_bounded_memory(work):
    assert len(BILLION_LAUGHS.encode()) < 450
    (work / "bomb.yaml").write_text(BILLION_LAUGHS)
    child = run_child("train", "--config", "bomb.yaml", cwd=work,
                      preexec_fn=limited(address_space=1 << 30))
    line = error_line(child.stderr, child.returncode)
    assert line == ("Error: bomb.yaml: line 2: aliases (*name) are not allowed in a charrnn "
                    "config: write the value out; fix the YAML syntax")


def test_error_messages_quote_long_values_cut_short(work):
    for value in ("x" * 100_000, "[" + "1, " * 50_000 + "1]"):
        result = cli("train", "--config", "run.yaml", "--set", f"training.optimizer={value}")
        line = cli_error(result)
        assert len(line) < 400 and "..." in line, line[:500]
    Path("huge.yaml").write_text("training:\n  out: " + "y" * 2_000_000 + "\n")
    line = cli_error(cli("train", "--config", "huge.yaml"))
    assert "a charrnn config is a few hundred bytes" in line and len(line) < 300


def _forge_meta(path: Path, **changes) -> Path:
    saved = load_checkpoint(OUT)
    forged = dataclasses.replace(saved, meta={**saved.meta, **changes})
    save_checkpoint(path, forged)
    return path


@pytest.mark.parametrize("changes, fragment", [
    ({"step": 2**70}, "meta 'step' is 1180591620717411303424, not a count (0 to 2**53)"),
    ({"chars_seen": 10**400}, "meta 'chars_seen' is an integer of about 400 digits"),
    ({"best_val_loss": float("nan")}, "meta 'best_val_loss' is 'nan', not a finite number"),
    ({"corpus": {"characters": -1, "sha256": "x"}}, "meta 'corpus' (the training text's"),
    ({"corpus": [[[[]]]] * 1000}, "not a length and a SHA-256"),
], ids=["step-2**70", "400-digits", "nan-best", "bad-fingerprint", "list-fingerprint"])
def test_checkpoint_meta_out_of_range_is_refused(trained, changes, fragment):
    _forge_meta(Path("forged.npz"), **changes)
    line = cli_error(cli("sample", "--checkpoint", "forged.npz", "--num", 2))
    assert fragment in line and len(line) < 300, line


def test_a_non_finite_optimizer_state_is_refused_and_not_blamed_on_the_learning_rate(trained):
    saved = load_checkpoint(OUT)
    slot = next(iter(saved.optimizer_state))
    state = {**saved.optimizer_state, slot: np.full_like(saved.optimizer_state[slot], np.inf)}
    with pytest.raises(CharRNNError) as refused:
        save_checkpoint("bad.npz", dataclasses.replace(saved, optimizer_state=state))
    message = str(refused.value)
    assert f"the optimizer state {slot} holds NaN or infinite values" in message
    assert "every weight is finite" in message and "lr" not in message
    assert not Path("bad.npz").exists()
    # a forged file (not written by charrnn) is refused on load, with the same restraint
    arrays = dict(np.load(OUT, allow_pickle=False))
    arrays[f"opt.{slot}"] = np.full_like(arrays[f"opt.{slot}"], np.nan)
    np.savez("forged.npz", **arrays)
    line = cli_error(cli("train", "--resume", "forged.npz", "--steps", 8))
    assert f"optimizer state {slot} holds NaN" in line and "lr" not in line, line


@pytest.mark.slow
def test_the_names_summary_reads_a_large_corpus_in_bounded_memory(trained):
    """The new/known summary needs one pass over the corpus, not the corpus in memory: a 300 MB
    corpus under a 256 MiB address-space limit."""
    with open("names.txt", "r+b") as corpus:
        corpus.truncate(300 * 2**20)  # sparse: instant, and all but the names are NUL bytes
    child = run_child("sample", "--checkpoint", OUT, "--num", 3, cwd=trained,
                      preexec_fn=limited(address_space=256 * 2**20))
    assert child.returncode == 0, child.stderr
    assert "3 names: " in child.stderr and "Traceback" not in child.stderr


def test_a_metrics_log_nested_thousands_deep_is_trimmed_without_a_traceback(trained):
    with open(LOG, "a", encoding="utf-8") as log:
        log.write('{"step": 99, "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    succeeded(cli("train", "--resume", OUT, "--steps", 6))
    steps = [json.loads(line)["step"] for line in LOG.read_text().splitlines()]
    assert steps == [2, 4, 6]


# --- numeric edges ---------------------------------------------------------------------------

def test_a_loss_past_709_nats_reports_an_infinite_perplexity(trained):
    saved = load_checkpoint(OUT)
    b_y = np.full_like(saved.params["b_y"], -5000.0)
    b_y[0] = 5000.0  # everything on the newline: every other character costs 10,000 nats
    save_checkpoint("sure.npz", dataclasses.replace(saved, params={**saved.params, "b_y": b_y}))
    Path("t.txt").write_text("anna\nbob\n")
    text = succeeded(cli("eval", "--checkpoint", "sure.npz", "t.txt")).output
    assert "perplexity inf" in text, text
    record = json.loads(succeeded(cli("eval", "--checkpoint", "sure.npz", "t.txt",
                                      "--json")).output)
    assert record["perplexity"] is None and record["nats_per_char"] > 709


def test_a_temperature_so_small_that_logits_overflow_is_greedy(trained):
    greedy = succeeded(cli("sample", "--checkpoint", OUT, "--num", 5, "--greedy")).stdout
    for temperature in ("1e-320", "5e-324"):
        result = succeeded(cli("sample", "--checkpoint", OUT, "--num", 5, "--temperature",
                               temperature))
        assert result.stdout == greedy and "Warning" not in result.output


@pytest.mark.parametrize("command", [["train", "--corpus", "names.txt"],
                                     ["sample", "--checkpoint", OUT],
                                     ["gradcheck", "--checkpoint", OUT]])
@pytest.mark.parametrize("seed", ["-1", str(2**64), "1.5"])
def test_seed_is_validated_alike_in_every_command(trained, command, seed):
    result = cli(*command, "--seed", seed)
    line = cli_error(result, expected_code=2)
    assert "Invalid value for '--seed'" in line, line


def test_a_prime_with_a_newline_cannot_break_one_name_a_line(trained):
    line = cli_error(cli("sample", "--checkpoint", OUT, "--num", 3, "--prime", "an\nna"), 2)
    assert "--prime" in line and "line break" in line, line
    text = succeeded(cli("sample", "--checkpoint", OUT, "--length", 20, "--prime", "an\nna"))
    assert text.stdout.startswith("an\nna")  # free text may hold newlines


# --- which corpus a checkpoint belongs to ------------------------------------------------------

def test_resume_on_another_corpus_is_refused_and_points_to_init_from(trained):
    fingerprint = load_checkpoint(OUT).meta["corpus"]
    text = Path("names.txt").read_text()
    assert fingerprint == {"characters": len(text),
                           "sha256": hashlib.sha256(text.encode("utf-32-le")).hexdigest()}
    protected = hashes(OUT, BEST, LOG)
    Path("names.txt").write_text(text.replace("a", "o"))  # the same length, other text
    line = cli_error(cli("train", "--resume", OUT, "--steps", 6))
    assert "is not the text this run was trained on (the same length, other text" in line
    assert f"charrnn train --init-from {OUT} --corpus" in line, line
    unchanged(protected)
    succeeded(cli("train", "--init-from", OUT, "--corpus", "names.txt", "--out", "new.npz",
                  "--steps", 2, "--set", "training.eval_every=2"))
    assert load_checkpoint("new.npz").meta["corpus"]["sha256"] != fingerprint["sha256"]


def test_eval_of_the_validation_split_of_a_changed_corpus_is_refused(trained):
    succeeded(cli("eval", "--checkpoint", OUT, "--split", "val"))
    with open("names.txt", "a", encoding="utf-8") as corpus:
        corpus.write("zoe\n")  # one line more: the seeded split would move lines about
    line = cli_error(cli("eval", "--checkpoint", OUT, "--split", "val"))
    assert "changed since this checkpoint was trained" in line and "TEXTFILE" in line, line

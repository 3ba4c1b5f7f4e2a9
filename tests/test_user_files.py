"""Issue 18: nothing of the user's is replaced, nothing hangs, nothing lies.

README promise: "nothing of yours is replaced" (docs/faults.md), nothing hangs.

Every test goes through the real command line (in-process with click's runner, or a subprocess
where a signal, a FIFO or a scheduler is involved) and, where a file of the user's is at stake,
compares its SHA-256 before and after.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import NAMES, run_cli

HANG_GUARD = 600  # seconds: a guard against a hang, never a measure of speed


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def hashes(*paths: Path) -> dict[str, str]:
    return {str(path): sha256(path) for path in paths}


def error_line(result) -> str:
    """The one line a refused command prints: exit 1, no traceback, no second line."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def names_corpus(directory: Path, every: int = 8, name: str = "names.txt") -> Path:
    lines = NAMES.read_text(encoding="utf-8").splitlines()[::every]
    path = directory / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


TINY = ["--set", "model.hidden_size=8", "--set", "training.batch_size=8",
        "--set", "training.eval_every=5", "--set", "training.sample_every=0",
        "--set", "training.checkpoint_every=5", "--set", "model.dtype=float64"]


def train_cli(corpus: Path, out: Path, *extra, steps: int = 5, ok: bool = True):
    return run_cli("train", "--config", "names", "--corpus", corpus, "--out", out,
                   "--steps", steps, *TINY, *extra, ok=ok)


# --- 1. nothing of the user's is replaced: train and sweep at --out ------------------------------
def run_files(out: Path) -> list[Path]:
    return [out, out.with_name(out.stem + ".best.npz"), out.with_name(out.stem + ".jsonl")]


@pytest.mark.parametrize("change", ["corpus", "config", "init-from"])
def test_train_refuses_another_runs_files_at_out(tmp_path, change):
    mine = names_corpus(tmp_path, every=8, name="mine.txt")
    other = names_corpus(tmp_path, every=9, name="other.txt")
    out = tmp_path / "run" / "m.npz"
    train_cli(mine, out)
    before = hashes(*run_files(out))
    if change == "corpus":
        args = [other, out]
    elif change == "config":
        args = [mine, out, "--set", "training.lr=0.5"]
    else:
        train_cli(mine, tmp_path / "w.npz", "--set", "model.hidden_size=8")
        args = [mine, out, "--init-from", tmp_path / "w.npz", "--set", "training.lr=0.5"]
    line = error_line(train_cli(*args, ok=False))
    assert f"checkpoint {out} holds another run" in line
    assert "--out" in line and "--overwrite" in line
    assert ("another text" in line) if change == "corpus" else ("training.lr" in line)
    assert hashes(*run_files(out)) == before
    assert sorted(os.listdir(out.parent)) == sorted(path.name for path in run_files(out))
    train_cli(*args, "--overwrite")  # the way out the message names
    assert sha256(out) != before[str(out)]


def test_train_refuses_a_log_or_best_left_by_another_run(tmp_path):
    corpus = names_corpus(tmp_path)
    out = tmp_path / "m.npz"
    train_cli(corpus, out)
    out.unlink()  # the checkpoint gone, its best and log still there
    train_cli(corpus, tmp_path / "x.npz", "--set", "training.seed=5")
    os.replace(tmp_path / "x.best.npz", out.with_name("m.best.npz"))
    before = hashes(*run_files(out)[1:])
    line = error_line(train_cli(corpus, out, ok=False))
    assert "the best checkpoint" in line and "training.seed" in line
    out.with_name("m.best.npz").unlink()
    line = error_line(train_cli(corpus, out, ok=False))
    assert f"the metrics log {out.with_name('m.jsonl')}" in line and "--overwrite" in line
    assert hashes(out.with_name("m.jsonl")) == {k: v for k, v in before.items() if "jsonl" in k}


def test_train_continues_its_own_run(tmp_path):
    """The same command again, and --resume (in place or to another --out holding its copy),
    are this run's lineage: nothing is refused."""
    corpus = names_corpus(tmp_path)
    out = tmp_path / "m.npz"
    train_cli(corpus, out)
    train_cli(corpus, out)
    run_cli("train", "--resume", out, "--steps", 10)
    shutil.copy(out, tmp_path / "copy.npz")
    run_cli("train", "--resume", out, "--out", tmp_path / "copy.npz", "--steps", 15)


def test_more_steps_on_a_finished_run_points_to_resume_and_the_hint_works(tmp_path):
    corpus = names_corpus(tmp_path)
    out = tmp_path / "m.npz"
    train_cli(corpus, out, steps=5)
    line = error_line(train_cli(corpus, out, steps=10, ok=False))
    hint = line.split("to train it further: ")[1].split()
    assert hint[:4] == ["charrnn", "train", "--resume", str(out)]
    run_cli(*hint[1:])
    from charrnn.checkpoint import load_checkpoint
    assert load_checkpoint(out).step == 10


def test_the_keys_a_time_budget_plans_are_not_another_run():
    """What charrnn.schedule.plan decides differs from run to run of one --time command (it
    measures the machine): runfiles.PLANNED_KEYS must name every key it returns."""
    from charrnn.config import TrainingConfig
    from charrnn.runfiles import PLANNED_KEYS
    from charrnn.schedule import Rates, plan

    for choose in (False, True):
        planned = plan(TrainingConfig(), 600.0, Rates(step_seconds=0.01, eval_seconds=0.1),
                       choose)
        assert {f"training.{key}" for key in planned} <= set(PLANNED_KEYS)


@pytest.mark.slow
def test_the_same_time_budget_command_again_is_the_same_run(tmp_path):
    corpus = names_corpus(tmp_path, every=2)
    for _ in range(2):
        run_cli("train", "--corpus", corpus, "--time", "8s", "--out", tmp_path / "m.npz")
    line = error_line(run_cli("train", "--corpus", corpus, "--time", "8s", "--out",
                              tmp_path / "m.npz", "--set", "training.seed=9", ok=False))
    assert "training.seed" in line


SWEEP_BASE = """\
data: {corpus: names.txt, mode: lines, val_fraction: 0.1}
model: {hidden_size: 8, dtype: float64}
training: {batch_size: 8, seq_length: 10, steps: 10, eval_every: 5, sample_every: 0,
           checkpoint_every: 5, optimizer: adam, lr: 0.01}
"""


def write_sweep(directory: Path, grid: str = "{training.lr: [0.01, 0.02]}", extra: str = "",
                name: str = "sweep.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    names_corpus(directory)
    (directory / "base.yaml").write_text(SWEEP_BASE, encoding="utf-8")
    path = directory / name
    path.write_text(f"base: base.yaml\ngrid: {grid}\n{extra}", encoding="utf-8")
    return path


def _sweep_state(directory: Path, path: Path) -> dict:
    from charrnn.plumbing.reading import read_bytes
    from charrnn.sweep import load_sweep
    from charrnn.sweep.store import STATE_FORMAT, STATE_VERSION, plan_fingerprint

    plan = load_sweep(path)
    corpora = {t.config.data.corpus: read_bytes(t.config.data.corpus, "corpus")
               for t in plan.trials}
    return {"format": STATE_FORMAT, "version": STATE_VERSION,
            "fingerprint": plan_fingerprint(plan, corpora), "sweep": str(path),
            "trials": [t.name for t in plan.trials],
            "records": {t.name: [] for t in plan.trials}}


def test_sweep_refuses_a_directory_holding_the_users_files(tmp_path):
    path = write_sweep(tmp_path)
    out = tmp_path / "results"
    out.mkdir()
    (out / "results.csv").write_text("my,own\n1,2\n")
    (out / "best.npz").write_bytes(b"my best model")
    before = hashes(out / "results.csv", out / "best.npz")
    line = error_line(run_cli("sweep", path, "--out", out, ok=False))
    assert "not a sweep's" in line and "--out" in line
    assert hashes(out / "results.csv", out / "best.npz") == before
    assert sorted(os.listdir(out)) == ["best.npz", "results.csv"]  # no trials/, no lock


def test_refused_sweep_resume_creates_nothing(tmp_path):
    path = write_sweep(tmp_path)
    for out in (tmp_path / "missing", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        line = error_line(run_cli("sweep", path, "--out", out, "--resume", ok=False))
        assert "holds no sweep to resume" in line
        assert (not out.exists()) if out.name == "missing" else os.listdir(out) == []


def test_sweep_refuses_the_directory_of_another_sweep(tmp_path):
    path = write_sweep(tmp_path)
    other = write_sweep(tmp_path, "{training.lr: [0.01, 0.05]}", name="other.yaml")
    out = tmp_path / "out"
    out.mkdir()
    (out / "state.json").write_text(json.dumps(_sweep_state(tmp_path, other)))
    before = hashes(out / "state.json")
    line = error_line(run_cli("sweep", path, "--out", out, ok=False))
    assert "different sweep" in line
    assert hashes(out / "state.json") == before and os.listdir(out) == ["state.json"]


# --- 2 and 3. implied inputs are protected; reads are bounded by what is shown -------------------
@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A run trained in tmp_path/project on own/text.txt (a relative path), and a second folder
    to work from."""
    project, other = tmp_path / "project", tmp_path / "other"
    (project / "own").mkdir(parents=True)
    other.mkdir()
    names_corpus(project / "own", name="text.txt")
    monkeypatch.chdir(project)
    train_cli(Path("own/text.txt"), Path("run/m.npz"))
    monkeypatch.chdir(other)
    return project, other


def test_viz_never_writes_over_the_corpus_it_reads_by_default(elsewhere):
    project, other = elsewhere
    checkpoint = project / "run" / "m.npz"
    corpus = project / "own" / "text.txt"
    before = hashes(corpus)
    for out in (corpus, Path(os.path.relpath(corpus, other))):
        line = error_line(run_cli("viz", "--checkpoint", checkpoint, "--out", out, ok=False))
        assert "the training corpus" in line and "never writes over" in line
    os.chdir(project)  # as typed, from the folder it was trained in
    line = error_line(run_cli("viz", "--checkpoint", checkpoint, "--out", "own/text.txt",
                              ok=False))
    assert "the training corpus" in line
    assert hashes(corpus) == before
    run_cli("viz", "--checkpoint", checkpoint, "--out", other / "page.html")


def test_gradflow_never_writes_its_plot_over_the_corpus_it_reads(elsewhere):
    pytest.importorskip("matplotlib")
    project, other = elsewhere
    checkpoint = project / "run" / "m.npz"
    corpus = project / "own" / "text.txt"
    before = hashes(corpus)
    for args in (["--checkpoint", checkpoint], ["--compare", checkpoint, "--compare",
                                                checkpoint]):
        line = error_line(run_cli("gradflow", *args, "--plot", corpus, ok=False))
        assert "the training corpus" in line and "never writes over" in line
    assert hashes(corpus) == before
    result = run_cli("gradflow", "--checkpoint", checkpoint, "--length", 10)
    assert str(corpus) in result.output  # found from the other folder


def test_sample_output_never_replaces_the_corpus_from_another_folder(elsewhere):
    project, other = elsewhere
    corpus = project / "own" / "text.txt"
    before = hashes(corpus)
    line = error_line(run_cli("sample", "--checkpoint", project / "run" / "m.npz", "--num", 3,
                              "--output", corpus, ok=False))
    assert "the training corpus (stored as)" in line
    assert hashes(corpus) == before


def test_viz_text_reads_only_what_the_page_shows(tmp_path, monkeypatch):
    from charrnn.plumbing import reading

    corpus = names_corpus(tmp_path)
    out = tmp_path / "m.npz"
    train_cli(corpus, out)
    big = tmp_path / "big.txt"
    line = ("abcdefghij" * 9 + "\n").encode()
    with open(big, "wb") as handle:
        handle.write(line * (48 * 2**20 // len(line)))  # 48 MiB
    read = []
    original = reading._read_chunk
    monkeypatch.setattr(reading, "_read_chunk",
                        lambda handle, size: read.append(original(handle, size)) or read[-1])
    result = run_cli("viz", "--checkpoint", out, "--text", big, "--length", 500,
                     "--out", tmp_path / "page.html")
    assert "its first 5 lines" in result.stderr
    assert sum(map(len, read)) <= 2 * reading.CHUNK_BYTES < big.stat().st_size


def test_gradflow_compare_text_reads_only_what_it_analyses(tmp_path, monkeypatch):
    from charrnn.plumbing import reading

    corpus = names_corpus(tmp_path)
    out = tmp_path / "m.npz"
    train_cli(corpus, out)
    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:
        handle.write(b"abcdefghij\n" * (48 * 2**20 // 11))  # 48 MiB
    read = []
    original = reading._read_chunk
    monkeypatch.setattr(reading, "_read_chunk",
                        lambda handle, size: read.append(original(handle, size)) or read[-1])
    for args in (["--checkpoint", out], ["--compare", out, "--compare", out]):
        read.clear()
        run_cli("gradflow", *args, "--text", big, "--length", 30)
        assert sum(map(len, read)) <= 2 * reading.CHUNK_BYTES < big.stat().st_size



def test_sweep_never_writes_over_its_base_config(tmp_path):
    """The base config is an input the sweep file names: a --out where one of the sweep's own
    files would be it is refused before anything is written."""
    path = write_sweep(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    os.replace(tmp_path / "base.yaml", out / "state.json")
    path.write_text(path.read_text().replace("base.yaml", "out/state.json"))
    before = hashes(out / "state.json")
    line = error_line(run_cli("sweep", path, "--out", out, ok=False))
    assert "the base config" in line
    assert hashes(out / "state.json") == before and os.listdir(out) == ["state.json"]


@pytest.mark.parametrize("command, hint", [
    (["viz", "--length", 100], "lower --length"),
    (["gradflow", "--length", 10], "lower --length"),
    (["sample", "--num", 3], "lower --num or --length")])
def test_out_of_memory_names_what_that_command_can_lower(tmp_path, monkeypatch, command, hint):
    from charrnn import model

    corpus = names_corpus(tmp_path)
    out = tmp_path / "m.npz"
    train_cli(corpus, out)

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(model.Model, "forward", exhausted)
    monkeypatch.setattr(model.Model, "step", exhausted, raising=False)
    extra = ["--out", tmp_path / "page.html"] if command[0] == "viz" else []
    line = error_line(run_cli(*command, "--checkpoint", out, *extra, ok=False))
    assert "out of memory" in line and hint in line and "hidden_size" not in line


# --- 4. nothing hangs: no FIFO opened, workers end with their driver, a bad address at once ------
def charrnn(*args) -> list[str]:
    return [sys.executable, "-m", "charrnn", *(str(arg) for arg in args)]


def children_of(pid: int) -> list[int]:
    """Every process below pid, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        assert time.monotonic() < deadline, f"hang guard: {what}"
        time.sleep(0.1)


@pytest.mark.slow
def test_viz_without_text_never_opens_the_fifo_a_checkpoint_was_trained_from(tmp_path):
    import threading

    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)
    text = names_corpus(tmp_path).read_bytes()

    def feed():
        with open(fifo, "wb") as handle:
            handle.write(text)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    train_cli(fifo, tmp_path / "m.npz", "--set", "data.cache=false")
    writer.join(timeout=HANG_GUARD)
    done = subprocess.run(charrnn("viz", "--checkpoint", tmp_path / "m.npz", "--out",
                                  tmp_path / "page.html"), cwd=tmp_path, capture_output=True,
                          text=True, timeout=HANG_GUARD, stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "pipe (FIFO)" in done.stderr
    assert "--text" in done.stderr and not (tmp_path / "page.html").exists()


@pytest.mark.slow
def test_train_from_a_fifo_without_config_reads_it_once(tmp_path):
    """--corpus without --config chooses a model from the text; a FIFO gives its text once, so
    it goes to the trainer alone (choosing first left the trainer waiting for ever)."""
    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)
    names_corpus(tmp_path)
    writer = subprocess.Popen(["sh", "-c", f"cat names.txt > {fifo.name}"], cwd=tmp_path)
    done = subprocess.run(charrnn("train", "--corpus", fifo.name, "--out", "m.npz",
                                  "--set", "training.steps=2", "--set", "data.cache=false",
                                  "--set", "model.hidden_size=8"),
                          cwd=tmp_path, capture_output=True, text=True, timeout=HANG_GUARD,
                          stdin=subprocess.DEVNULL)
    writer.wait(timeout=HANG_GUARD)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m.npz").exists()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_pool_workers_and_resource_tracker_end_when_the_driver_dies(tmp_path, kill):
    path = write_sweep(tmp_path, "{training.lr: [0.01, 0.02]}")
    base = (tmp_path / "base.yaml").read_text().replace("steps: 10,", "steps: 100000,")
    (tmp_path / "base.yaml").write_text(base)
    driver = subprocess.Popen(charrnn("sweep", path, "--out", tmp_path / "out", "--workers", 2,
                                      "--no-progress"), cwd=tmp_path, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        wait_until(lambda: len(children_of(driver.pid)) >= 3,
                   "two pool workers and the resource tracker")
        pool = children_of(driver.pid)
        os.kill(driver.pid, kill)
        driver.wait(timeout=HANG_GUARD)
        wait_until(lambda: not any(alive(pid) for pid in pool),
                   f"the dead driver's processes {pool} are still running")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=HANG_GUARD)


@pytest.mark.slow
@pytest.mark.parametrize("address", ["not a url", "tcp://host", "tcp://127.0.0.1:99999",
                                     "foo://127.0.0.1:8786"])
def test_a_bad_scheduler_address_is_one_line(tmp_path, address):
    pytest.importorskip("distributed")
    path = write_sweep(tmp_path)
    done = subprocess.run(charrnn("sweep", path, "--out", tmp_path / "out", "--address", address),
                          cwd=tmp_path, capture_output=True, text=True, timeout=HANG_GUARD)
    assert done.returncode == 1
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("Error: --address") and "tcp://127.0.0.1:8786" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_real_scheduler_without_workers_is_one_line_and_the_driver_exits(tmp_path):
    """A real `dask scheduler` with no worker: the sweep says so in one line and exits 1, with no
    ignored-exception traceback from the client it closes."""
    pytest.importorskip("distributed")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                                  "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                 cwd=tmp_path, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    try:
        def listening() -> bool:
            with socket.socket() as client:
                return client.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, "the scheduler to listen")
        path = write_sweep(tmp_path)
        done = subprocess.run(charrnn("sweep", path, "--out", tmp_path / "out", "--address",
                                      f"tcp://127.0.0.1:{port}", "--connect-timeout", 2),
                              cwd=tmp_path, capture_output=True, text=True, timeout=HANG_GUARD)
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and "has no workers" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()
    finally:
        os.killpg(scheduler.pid, signal.SIGKILL)
        scheduler.wait(timeout=HANG_GUARD)


# --- 5. sweep checks before enumeration, on normalised values ------------------------------------
@pytest.mark.parametrize("values", ["[0.001, 1e-3]", "[0.001, '1e-3']", "[0.5e-2, 0.005]"])
def test_sweep_duplicate_is_found_on_the_value_the_config_holds(tmp_path, values):
    path = write_sweep(tmp_path, f"{{training.lr: {values}}}")
    for extra in ([], ["--dry-run"]):
        line = error_line(run_cli("sweep", path, "--out", tmp_path / "out", *extra, ok=False))
        assert "is the same value as" in line and "training.lr" in line
    assert not (tmp_path / "out").exists()


def test_sweep_grid_of_a_billion_is_refused_by_counting(tmp_path, monkeypatch):
    from charrnn.sweep import plan

    def enumerated(*args, **kwargs):
        raise AssertionError("the grid was enumerated before its size was checked")

    monkeypatch.setattr(plan, "_combinations", enumerated)
    lists = ", ".join(f"{key}: [{', '.join(map(str, range(1, 33)))}]" for key in
                      ("training.seed", "training.batch_size", "model.hidden_size",
                       "training.seq_length", "training.eval_every", "training.clip"))
    path = write_sweep(tmp_path, f"{{{lists}}}")
    line = error_line(run_cli("sweep", path, "--dry-run", ok=False))
    assert "1073741824 combinations" in line and "random" in line


def test_random_trials_of_a_grid_too_large_to_enumerate(tmp_path):
    values = ", ".join(str(i) for i in range(1, 33))
    keys = ("training.seed", "training.batch_size", "model.hidden_size", "training.seq_length",
            "training.eval_every", "training.clip", "training.sample_length", "training.patience",
            "training.checkpoint_every", "training.eval_max_chars", "model.forget_bias",
            "training.steps", "training.sample_every")
    lists = ", ".join(f"{key}: [{values}]" for key in keys)
    path = write_sweep(tmp_path, f"{{{lists}}}", extra="random: {trials: 3, seed: 1}\n")
    listing = run_cli("sweep", path, "--dry-run").output
    assert [line.split()[0] for line in listing.splitlines()[1:]] == ["t000", "t001", "t002"]


def test_sweep_values_quoted_in_errors_are_shortened(tmp_path):
    long = "x" * 100_000
    cases = [f"{{training.lr: [0.1, '{long}']}}", f"{{data.encoding: ['utf-8', '{long}']}}",
             f"{{'{long}': [1, 2]}}", f"{{training.lr: ['{long}']}}"]
    for grid in cases:
        path = write_sweep(tmp_path, grid)
        line = error_line(run_cli("sweep", path, "--dry-run", ok=False))
        assert len(line) < 600, line[:200]


@pytest.mark.parametrize("document", [
    "base: base.yaml\nset: {data.corpus: LONG}\ngrid: {training.seed: [1]}\n",
    "base: LONG\ngrid: {training.seed: [1]}\n",
    "base: " + "y" * 300 + ".yaml\ngrid: {training.seed: [1]}\n",
    "base: base.yaml\ngrid: {training.seed: [1]}\nhalving: {rungs: [LONG]}\n",
    "base: base.yaml\ngrid: {training.seed: [1]}\nrandom: {LONG: 1}\n"])
def test_sweep_paths_and_keys_quoted_in_errors_are_shortened(tmp_path, document):
    write_sweep(tmp_path)
    path = tmp_path / "long.yaml"
    path.write_text(document.replace("LONG", "y" * 100_000))
    line = error_line(run_cli("sweep", path, "--dry-run", ok=False))
    assert len(line) < 1500, line[:200]  # a 300-character name may be shown whole; 100,000 not


GOOD_RECORD = {"rung": 0, "steps": 10, "val_loss": 2.5, "train_loss": 2.6, "seconds": 1.0,
               "status": "ok", "sha256": "0" * 64, "worker": None}


@pytest.mark.parametrize("damage", [
    {"val_loss": "low"}, {"rung": None}, {"status": 7}, {"sha256": None},
    {"steps": [1, 2]}, {"rung": 3}, "missing", "not a mapping", "records not a list"])
def test_damaged_sweep_state_is_one_line_naming_the_file_and_record(tmp_path, damage):
    path = write_sweep(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    state = _sweep_state(tmp_path, path)
    record = dict(GOOD_RECORD)
    if damage == "missing":
        del record["val_loss"]
    elif isinstance(damage, dict):
        record.update(damage)
    elif damage == "not a mapping":
        record = ["rung", 0]
    state["records"]["t000"] = [record] if damage != "records not a list" else {"a": 1}
    (out / "state.json").write_text(json.dumps(state))
    before = hashes(out / "state.json")
    line = error_line(run_cli("sweep", path, "--out", out, ok=False))
    assert str(out / "state.json") in line and "damaged" in line
    assert "t000" in line
    assert hashes(out / "state.json") == before
    assert sorted(os.listdir(out)) == ["state.json"]


# --- 6. config values are numbers of the model's dtype -------------------------------------------
@pytest.mark.parametrize("setting", ["model.forget_bias=1e39", "model.init_scale=1e39",
                                     "training.lr=1e-46", "training.clip=1e300"])
def test_config_value_outside_float32_is_refused_before_any_work(tmp_path, setting):
    corpus = names_corpus(tmp_path)
    out = tmp_path / "run" / "m.npz"
    result = train_cli(corpus, out, "--set", "model.dtype=float32", "--set", "model.cell=lstm",
                       "--set", setting, ok=False)
    line = error_line(result)
    assert setting.split("=")[0] in line and "float32" in line and "model.dtype=float64" in line
    assert not (tmp_path / "run").exists()
    train_cli(corpus, out, "--set", "model.dtype=float64", "--set", "model.cell=lstm",
              "--set", setting, steps=1, ok=not setting.startswith(("model.init_scale",)))


# --- 7. strings from files reach the terminal escaped --------------------------------------------
HOSTILE = "names\x1b[2J\x1b]0;pwned\x07\rfake\nError: forged\u202egnp.txt"


def assert_inert(text: str) -> None:
    """Nothing a terminal would act on: no ESC, BEL, CR or bidirectional override, and no line
    that the file's strings forged."""
    assert not any(char in text for char in "\x1b\x07\r\u202e"), repr(text[:300])
    assert "\nError: forged" not in text and "\nfake" not in text


def test_stored_strings_reach_the_terminal_escaped(tmp_path):
    corpus = names_corpus(tmp_path, name=HOSTILE)
    out = tmp_path / "m.npz"
    result = train_cli(corpus, out)
    assert_inert(result.output)
    shown = run_cli("info", out).output
    assert_inert(shown)
    assert "\\x1b[2J" in shown and "\\u202e" in shown  # shown, as escapes
    sample = run_cli("sample", "--checkpoint", out, "--num", "3", "--seed", "1")
    assert_inert(sample.stderr)
    corpus.unlink()  # summaries and errors that quote the stored path: escaped too
    sample = run_cli("sample", "--checkpoint", out, "--num", "3", "--seed", "1")
    assert "cannot be read" in sample.stderr
    assert_inert(sample.stderr)
    assert_inert(error_line(run_cli("eval", "--checkpoint", out, "--split", "val", ok=False)))


def test_gradflow_summary_lines_are_escaped(tmp_path):
    corpus = names_corpus(tmp_path, name=HOSTILE)
    out = tmp_path / "m.npz"
    train_cli(corpus, out)
    result = run_cli("gradflow", "--checkpoint", out, "--length", 10)
    assert_inert(result.output)
    assert "\\x1b[2J" in result.output


def test_sweep_listing_escapes_values_from_the_file(tmp_path):
    path = write_sweep(tmp_path, f"{{data.corpus: [names.txt, {json.dumps(HOSTILE)}]}}")
    names_corpus(tmp_path, name=HOSTILE)
    listing = run_cli("sweep", path, "--dry-run").output
    assert_inert(listing)
    assert "\\x1b[2J" in listing


# --- 8. a checkpoint finds its corpus from any folder --------------------------------------------
def test_checkpoint_records_the_corpus_absolute_and_as_given(elsewhere):
    from charrnn.checkpoint import load_checkpoint

    project, _ = elsewhere
    saved = load_checkpoint(project / "run" / "m.npz")
    assert saved.config.data.corpus == "own/text.txt"
    assert saved.meta["corpus_path"] == str(project / "own" / "text.txt")


def test_resume_eval_and_info_find_the_corpus_from_another_folder(elsewhere):
    project, _ = elsewhere
    checkpoint = project / "run" / "m.npz"
    split = json.loads(run_cli("eval", "--checkpoint", checkpoint, "--split", "val",
                               "--json").output)
    assert split["characters"] > 0
    assert "the same text" in run_cli("info", checkpoint).output
    run_cli("train", "--resume", checkpoint, "--steps", 10)


def test_a_moved_corpus_is_named_with_eval_corpus_and_checked_by_fingerprint(elsewhere):
    project, other = elsewhere
    checkpoint = project / "run" / "m.npz"
    before = json.loads(run_cli("eval", "--checkpoint", checkpoint, "--split", "val",
                                "--json").output)
    os.replace(project / "own" / "text.txt", other / "moved.txt")
    line = error_line(run_cli("eval", "--checkpoint", checkpoint, "--split", "val", ok=False))
    assert "own/text.txt is not found" in line and "--corpus" in line
    assert "not found from this folder" in run_cli("info", checkpoint).output
    moved = json.loads(run_cli("eval", "--checkpoint", checkpoint, "--split", "val",
                               "--corpus", "moved.txt", "--json").output)
    assert {**moved, "corpus": None} == {**before, "corpus": None}
    names_corpus(other, every=3, name="impostor.txt")
    line = error_line(run_cli("eval", "--checkpoint", checkpoint, "--split", "val", "--corpus",
                              "impostor.txt", ok=False))
    assert "characters then" in line
    run_cli("train", "--resume", checkpoint, "--corpus", "moved.txt", "--steps", 10)


def test_older_checkpoints_without_the_absolute_path_still_load(elsewhere):
    """A checkpoint written before corpus_path: found as typed, from the folder it names."""
    from charrnn.checkpoint import load_checkpoint, save_checkpoint

    project, _ = elsewhere
    saved = load_checkpoint(project / "run" / "m.npz")
    del saved.meta["corpus_path"]
    save_checkpoint(project / "old.npz", saved)
    line = error_line(run_cli("eval", "--checkpoint", project / "old.npz", "--split", "val",
                              ok=False))
    assert "own/text.txt is not found" in line
    os.chdir(project)
    run_cli("eval", "--checkpoint", "old.npz", "--split", "val")
    run_cli("info", "old.npz")


def test_sweep_checkpoints_name_the_drivers_corpus_not_the_workers_copy(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from charrnn.checkpoint import load_checkpoint, training_corpus
    from charrnn.sweep import load_sweep, run_sweep

    path = write_sweep(tmp_path, "{training.lr: [0.01]}")
    run_sweep(load_sweep(path), tmp_path / "out", lambda: ThreadPoolExecutor(1), progress=False,
              report=lambda kind, text: None)
    for name in ("best.npz", "trials/t000.npz"):
        saved = load_checkpoint(tmp_path / "out" / name)
        assert saved.meta["corpus_path"] == str(tmp_path / "names.txt")
        assert training_corpus(saved.config, saved.meta) == str(tmp_path / "names.txt")


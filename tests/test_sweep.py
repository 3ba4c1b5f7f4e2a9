"""`charrnn sweep` on the real engines: a spawn process pool and a Dask LocalCluster.

README promise: `charrnn sweep`: "many configurations with successive halving, locally or on Dask";
docs/sweep.md: "the results table is the same whether the sweep ran with 1 worker, 8 workers or on
a cluster", and a worker that dies does not fail the sweep.

One tiny sweep (4 trials, rungs at 10 and 20 steps, hidden 16 and 32, on every 4th shipped name)
is trained once through the local pool as the reference; every other way of running it (a Dask
cluster, a worker killed mid-trial, a driver interrupted and resumed, a local worker killed) must
give the same table. Only the `seconds` column may differ.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from charrnn.cli.sweep import sweep
from charrnn.config import load_config
from charrnn.errors import CharRNNError, install_command
from charrnn.sweep import DaskExecutors, LocalExecutors, load_sweep, run_sweep
from charrnn.train import train
from conftest import NAMES, finished_rungs, sweep_table

BASE = """\
data: {corpus: elsewhere.txt, mode: lines, val_fraction: 0.1}
model: {hidden_size: 16, dtype: float64}
training: {batch_size: 8, seq_length: 10, steps: 500, eval_every: 10, sample_every: 0,
           checkpoint_every: 10, optimizer: adam, lr: 0.01, seed: 3}
"""
SWEEP = """\
base: base.yaml
set: {data.corpus: names.txt}
grid:
  model.hidden_size: [16, 32]
  training.lr: [0.01, 0.03]
halving: {rungs: [10, 20], keep: 0.5}
"""


def write_sweep(directory: Path, text: str = SWEEP, base: str = BASE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = NAMES.read_text(encoding="utf-8").splitlines()[::4]
    (directory / "names.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "base.yaml").write_text(base, encoding="utf-8")
    path = directory / "sweep.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep trained through the local process pool (2 workers)."""
    directory = tmp_path_factory.mktemp("reference")
    path = write_sweep(directory)
    outcome = run_sweep(load_sweep(path), directory / "out", LocalExecutors(2), progress=False)
    return directory, outcome


@pytest.fixture
def sweep_file(tmp_path) -> Path:
    return write_sweep(tmp_path / "sweep")


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as local, \
            distributed.Client(local) as client:
        yield local, client


@pytest.mark.slow
def test_local_pool_trains_halves_and_writes_every_file(reference):
    directory, outcome = reference
    out = directory / "out"
    rows = sweep_table(out)
    assert [(r["trial"], r["steps"], r["status"]) for r in rows] == [
        ("t000", 10, "pruned"), ("t001", 10, "pruned"),
        ("t002", 10, "promoted"), ("t002", 20, "done"),
        ("t003", 10, "promoted"), ("t003", 20, "done")]
    header = (out / "results.csv").read_text().splitlines()[0]
    assert header == ("trial,model.hidden_size,training.lr,steps,val_loss,train_loss,seconds,"
                      "status")
    # halving kept the two best at rung 10, and the ranking puts the best at 20 steps first
    at_10 = sorted((r["val_loss"], r["trial"]) for r in rows if r["steps"] == 10)
    assert {name for _, name in at_10[:2]} == {"t002", "t003"}
    winner = outcome.winner
    assert winner["steps"] == 20 and winner["val_loss"] == min(r["val_loss"] for r in rows)
    assert (out / "best.npz").read_bytes() == \
        (out / "trials" / f"{winner['trial']}.best.npz").read_bytes()
    for name in ("t000", "t001", "t002", "t003"):
        assert (out / "trials" / f"{name}.npz").exists()
        assert (out / "trials" / f"{name}.jsonl").exists()
    assert outcome.trained == 6 and outcome.reused == 0


@pytest.mark.slow
def test_halving_resumes_bit_for_bit(reference, tmp_path):
    """A trial trained to 10 steps, then resumed to 20 on a worker, equals one straight run."""
    directory, outcome = reference
    row = next(r for r in outcome.rows if r["trial"] == "t003" and r["steps"] == 20)
    config = load_config(directory / "base.yaml", [
        f"data.corpus={directory / 'names.txt'}", "model.hidden_size=32", "training.lr=0.03",
        "training.steps=20", f"training.out={tmp_path / 'straight.npz'}"])
    result = train(config, progress=False, report=lambda kind, text: None)
    assert row["val_loss"] == result.best_val_loss
    assert row["train_loss"] == result.final_train_loss
    log = (directory / "out" / "trials" / "t003.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [10, 20]


@pytest.mark.slow
def test_rerun_skips_finished_work_and_refuses_another_sweep(reference, tmp_path):
    directory, _ = reference
    out = tmp_path / "out"
    shutil.copytree(directory / "out", out)
    plan = load_sweep(directory / "sweep.yaml")

    def no_executor():
        raise AssertionError("nothing is left to train")

    outcome = run_sweep(plan, out, no_executor, resume=True, progress=False)
    assert (outcome.trained, outcome.reused) == (0, 6)
    assert sweep_table(out) == sweep_table(directory / "out")
    other = write_sweep(tmp_path / "other", SWEEP.replace("0.03]", "0.05]"))
    with pytest.raises(CharRNNError, match="different sweep"):
        run_sweep(load_sweep(other), out, no_executor, progress=False)
    with pytest.raises(CharRNNError, match="no sweep to resume"):
        run_sweep(plan, tmp_path / "empty", no_executor, resume=True, progress=False)


@pytest.mark.slow
def test_a_commit_cut_short_by_a_killed_driver_is_finished_or_undone(reference, tmp_path):
    """A driver killed between writing a trial's *.new files, the state and the renames."""
    directory, _ = reference
    out = tmp_path / "out"
    shutil.copytree(directory / "out", out)
    trials = out / "trials"
    # t003's last commit reached the state but not the rename: its checkpoint is still old
    (trials / "t003.npz").rename(trials / "t003.npz.new")
    shutil.copy(trials / "t000.npz", trials / "t003.npz")
    # t001's files were written but the state never recorded them
    (trials / "t001.npz.new").write_bytes(b"half a checkpoint")
    (trials / "t001.jsonl.new").write_text("{}\n")
    # and t002's checkpoint was lost: it is trained again from the start
    (trials / "t002.npz").unlink()
    warnings = []
    outcome = run_sweep(load_sweep(directory / "sweep.yaml"), out, lambda: ThreadPoolExecutor(1),
                        progress=False, report=lambda kind, text: warnings.append(text))
    assert not list(trials.glob("*.new"))
    assert (trials / "t003.npz").read_bytes() == \
        (directory / "out" / "trials" / "t003.npz").read_bytes()
    assert outcome.trained == 2  # t002 at 10 and at 20 steps; nothing else
    assert any("t002" in line for line in warnings)
    assert sweep_table(out) == sweep_table(directory / "out")


@pytest.mark.slow
def test_dask_cluster_gives_the_same_table(reference, cluster, tmp_path):
    directory, _ = reference
    local, _ = cluster
    executors = DaskExecutors(local.scheduler_address, timeout=600)
    try:
        outcome = run_sweep(load_sweep(directory / "sweep.yaml"), tmp_path / "out", executors,
                            progress=False)
    finally:
        executors.close()
    assert outcome.trained == 6
    assert sweep_table(tmp_path / "out") == sweep_table(directory / "out")


@pytest.mark.slow
def test_a_dask_worker_killed_mid_trial_does_not_fail_the_sweep(reference, cluster, tmp_path):
    directory, _ = reference
    local, client = cluster
    killed = []
    swept = threading.Event()

    def kill_a_busy_worker():
        deadline = time.monotonic() + 600  # a hang guard; the sweep's end stops it first
        while time.monotonic() < deadline and not killed and not swept.is_set():
            try:
                busy = client.run(lambda dask_worker: (os.getpid(),
                                                       dask_worker.state.executing_count))
            except Exception:
                busy = {}
            for pid, executing in busy.values():
                if executing:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    executors = DaskExecutors(local.scheduler_address, timeout=600)
    try:
        run_sweep(load_sweep(directory / "sweep.yaml"), tmp_path / "out", executors,
                  progress=False)
    finally:
        executors.close()
        swept.set()
    killer.join(600)
    assert killed, "no worker was seen running a trial"
    assert sweep_table(tmp_path / "out") == sweep_table(directory / "out")


@pytest.mark.slow
def test_ctrl_c_stops_the_driver_and_a_resume_finishes_even_if_a_worker_dies(reference,
                                                                             tmp_path):
    """The CLI driver (one local worker) gets Ctrl-C after its first result: it ends its
    workers, keeps what finished and says how to resume. The resumed run (library, one local
    worker) loses its worker mid-sweep, replaces the pool, and completes the same table."""
    directory, _ = reference
    path = write_sweep(tmp_path / "sweep")
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [sys.executable, "-c", "from charrnn.cli.sweep import sweep; sweep()", str(path),
         "--out", str(out), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600  # a hang guard for this phase alone
    while driver.poll() is None and finished_rungs(out) < 1:
        assert time.monotonic() < deadline, "the driver never finished a trial-rung"
        time.sleep(0.005)
    os.killpg(driver.pid, signal.SIGINT)  # as Ctrl-C does: the driver and its workers
    stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 130, stderr
    assert "Resume with: charrnn sweep" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr and "Warning" not in stderr
    done = len(sweep_table(out))
    assert 1 <= done < 6 and done == finished_rungs(out)

    pools = []
    local = LocalExecutors(1)

    def make_pool():
        pools.append(local())
        return pools[-1]

    killed = []
    resumed = threading.Event()

    def kill_the_worker_after_one_more_result():
        deadline = time.monotonic() + 600  # this phase's own hang guard
        while time.monotonic() < deadline and not resumed.is_set():
            processes = list(getattr(pools[0], "_processes", {}).values()) if pools else []
            if processes and finished_rungs(out) > done:
                os.kill(processes[0].pid, signal.SIGKILL)
                killed.append(processes[0].pid)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_the_worker_after_one_more_result, daemon=True)
    killer.start()
    try:
        outcome = run_sweep(load_sweep(path), out, make_pool, resume=True, progress=False)
    finally:
        resumed.set()
    killer.join(600)
    assert killed and len(pools) == 2
    assert (outcome.reused, outcome.trained) == (done, 6 - done)
    assert sweep_table(out) == sweep_table(directory / "out")


@pytest.mark.parametrize("text, message", [
    (SWEEP.replace("model.hidden_size:", "model.hiden_size:"),
     "unknown key 'model.hiden_size' (did you mean 'model.hidden_size'?)"),
    (SWEEP.replace("model.hidden_size:", "hidden_size:"),
     "unknown key 'hidden_size' (did you mean 'model.hidden_size'?)"),
    ("base: base.yaml\ngrid: {}\n", "the grid is empty"),
    (SWEEP.replace("[16, 32]", "[]"), "expected a non-empty list"),
    (SWEEP.replace("[10, 20]", "[10, 25]"), "rung 25 is not on the eval_every grid (10)"),
    (SWEEP.replace("[10, 20]", "[20, 10]"), "must increase strictly"),
    (SWEEP.replace("keep: 0.5", "keep: 0"), "keep must be a fraction in (0, 1]"),
    (SWEEP.replace("keep: 0.5", "keep: 1.5"), "keep must be a fraction in (0, 1]"),
    (SWEEP.replace("base: base.yaml\n", ""), "'base' is missing"),
    (SWEEP.replace("base.yaml", "nothere.yaml"), "not found"),
    (SWEEP.replace("grid:", "gird:"), "unknown key 'gird' (did you mean 'grid'?)"),
    (SWEEP.replace("[0.01, 0.03]", "[0.01, -1]"), "training.lr: must be > 0.0, got -1"),
    (SWEEP + "random: {trials: 5}\n", "random trials 5 is more than the grid's 4"),
    (SWEEP.replace("data.corpus: names.txt", "data.corpus: missing.txt"), "not found"),
    (SWEEP.replace("set: {", "set: {training.out: x.npz, "), "training.out cannot be set"),
])
def test_bad_sweep_files_are_one_line_errors(tmp_path, text, message):
    path = write_sweep(tmp_path, text)
    result = CliRunner().invoke(sweep, [str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert message in lines[0]
    assert not (tmp_path / "out").exists()


def test_random_samples_the_grid_deterministically(tmp_path):
    grid = SWEEP.replace("[0.01, 0.03]", "[0.001, 0.003, 0.01, 0.03]")
    first = load_sweep(write_sweep(tmp_path / "a", grid + "random: {trials: 3, seed: 7}\n"))
    again = load_sweep(write_sweep(tmp_path / "b", grid + "random: {trials: 3, seed: 7}\n"))
    assert [t.values for t in first.trials] == [t.values for t in again.trials]
    assert [t.name for t in first.trials] == ["t000", "t001", "t002"]
    assert len({json.dumps(t.values) for t in first.trials}) == 3
    for trial in first.trials:
        assert trial.values["model.hidden_size"] in (16, 32)
        assert trial.config.training.lr == trial.values["training.lr"]
        assert trial.config.training.steps == 20  # the last rung
        assert trial.config.data.corpus == str(tmp_path / "a" / "names.txt")


def test_dry_run_lists_the_trials(sweep_file):
    result = CliRunner().invoke(sweep, [str(sweep_file), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[4].split() == ["t003", "32", "0.03", "20"]
    assert "4 -> 2 trials, 6 trial-rungs" in result.output


def test_an_unreachable_address_fails_fast_in_one_line(sweep_file, tmp_path):
    pytest.importorskip("distributed")
    result = CliRunner().invoke(sweep, [str(sweep_file), "--out", str(tmp_path / "out"),
                                        "--address", "tcp://127.0.0.1:1",
                                        "--connect-timeout", "1"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: cannot reach the Dask scheduler at tcp://127.0.0.1:1")
    assert "dask scheduler" in lines[-1]
    assert not (tmp_path / "out").exists()


def test_address_without_dask_says_how_to_install_it(sweep_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    result = CliRunner().invoke(sweep, [str(sweep_file), "--address", "tcp://127.0.0.1:8786"])
    assert result.exit_code == 1
    assert install_command("sweep") in result.output


def test_a_diverging_trial_is_recorded_as_failed(tmp_path):
    """A trial whose training raises CharRNNError drops out; the others go on. (Any Executor
    will do: here a thread pool.)"""
    text = textwrap.dedent("""\
        base: base.yaml
        set: {data.corpus: names.txt, training.steps: 20, training.clip_mode: none,
              training.optimizer: sgd, model.activation: relu, model.dtype: float32}
        grid:
          training.lr: [0.1, 1.0e+30]
        """)
    path = write_sweep(tmp_path, text)
    warnings = []
    outcome = run_sweep(load_sweep(path), tmp_path / "out", lambda: ThreadPoolExecutor(2),
                        progress=False, report=lambda kind, text: warnings.append(text))
    statuses = {row["trial"]: row["status"] for row in outcome.rows}
    assert statuses == {"t000": "done", "t001": "failed"}
    assert outcome.winner["trial"] == "t000"
    failed = json.loads((tmp_path / "out" / "results.jsonl").read_text().splitlines()[1])
    assert "not finite" in failed["error"]
    assert any("trial t001 failed" in line for line in warnings)


# --- never destroy what the user has -------------------------------------------------------------

def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_sweep_never_writes_over_its_inputs_or_through_a_link(tmp_path):
    """Refused before any work: an output that is one of the inputs (another name for it), or a
    symbolic link where the sweep writes a file of its own."""
    path = write_sweep(tmp_path / "sweep")
    corpus, base = tmp_path / "sweep" / "names.txt", tmp_path / "sweep" / "base.yaml"
    out = tmp_path / "out"
    (out / "trials").mkdir(parents=True)
    before = {p: sha256(p) for p in (path, corpus, base)}

    def last_line(*extra) -> str:
        result = CliRunner().invoke(sweep, [str(path), "--out", str(out), *extra])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        return result.output.strip().splitlines()[-1]

    os.link(corpus, out / "results.csv")  # a hard link: the corpus under the sweep's name
    line = last_line()
    assert "results.csv" in line and "never writes over one of its inputs" in line
    (out / "results.csv").unlink()
    os.link(base, out / "trials" / "t001.npz")
    assert "the base config" in last_line()
    (out / "trials" / "t001.npz").unlink()
    mine = tmp_path / "mine.npz"
    mine.write_bytes(b"someone else's file")
    (out / "best.npz").symlink_to(mine)
    assert "symbolic link" in last_line()
    assert mine.read_bytes() == b"someone else's file"
    assert {p: sha256(p) for p in before} == before
    assert sorted(p.name for p in out.iterdir()) == ["best.npz", "trials"]  # nothing written


@pytest.mark.slow
def test_a_rerun_cleans_only_its_own_temporaries_and_leaves_no_lock(reference, tmp_path):
    directory, _ = reference
    out = tmp_path / "out"
    shutil.copytree(directory / "out", out)
    stale = [out / ".state.json.4194305-0123abcd.tmp", out / ".results.csv.x1y2z3.tmp",
             out / "trials" / ".t000.npz.new.4194305-0123abcd.tmp"]
    foreign = [out / ".notes.tmp", out / "trials" / ".draft.tmp"]  # not the sweep's
    for path in stale + foreign:
        path.write_bytes(b"left by a kill")

    def no_executor():
        raise AssertionError("nothing is left to train")

    run_sweep(load_sweep(directory / "sweep.yaml"), out, no_executor, resume=True,
              progress=False)
    assert not any(path.exists() for path in stale)
    assert all(path.read_bytes() == b"left by a kill" for path in foreign)
    locks = [p.name for p in (*out.iterdir(), *tmp_path.iterdir()) if p.name.endswith(".lock")]
    assert locks == []  # the lock goes with the run

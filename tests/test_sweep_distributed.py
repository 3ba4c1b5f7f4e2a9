"""`charrnn sweep` as a user runs it on several machines, and a driver that is SIGKILLed.

README promise: `charrnn sweep` runs "many configurations with successive halving, locally or on
Dask"; docs/sweep.md: "Workers need no shared filesystem", "A killed driver: rerun the same
command (or add `--resume`). Finished trial-rungs are not trained again", and "the results table
is the same whether the sweep ran with 1 worker, 8 workers or on a cluster".

Every process here is a real command: `dask scheduler`, two `dask worker`s and the driver
`python -m charrnn sweep`, each started in its own temporary directory (working directory,
`--local-directory`, TMPDIR, HOME and corpus cache), none of them a parent of another. The
workers cannot reach the driver's directory at all: an audit hook in each worker refuses (and
records) every open or listing of a path under it, and where Linux mount namespaces are
available (`unshare`), each worker also runs with an empty tmpfs mounted over it. The reference
table comes from the local process pool. Every process group is killed in `finally`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import NAMES, finished_rungs, sweep_table

pytestmark = pytest.mark.slow
pytest.importorskip("distributed")

HANG_GUARD = 600  # seconds: only a hung process ever waits this long

BASE = """\
data: {corpus: names.txt, mode: lines, val_fraction: 0.1}
model: {hidden_size: 8, dtype: float64}
training: {batch_size: 8, seq_length: 10, steps: 80, eval_every: 20, sample_every: 0,
           checkpoint_every: 20, optimizer: adam, lr: 0.01, seed: 3}
"""
SWEEP = """\
base: base.yaml
grid:
  model.hidden_size: [8, 16]
  training.lr: [0.01, 0.03]
halving: {rungs: [40, 80], keep: 0.5}
"""
TRIAL_RUNGS = 6  # 4 trials to 40 steps, the best 2 on to 80


def write_sweep(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = NAMES.read_text(encoding="utf-8").splitlines()[::8]
    (directory / "names.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "base.yaml").write_text(BASE, encoding="utf-8")
    (directory / "sweep.yaml").write_text(SWEEP, encoding="utf-8")
    return directory / "sweep.yaml"


def own_env(home: Path, **extra) -> dict[str, str]:
    """An environment whose scratch places (TMPDIR, HOME, the corpus cache) are under home."""
    for name in ("tmp", "home", "cache"):
        (home / name).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TMPDIR=str(home / "tmp"), HOME=str(home / "home"),
               CHARRNN_CACHE_DIR=str(home / "cache"), XDG_CACHE_HOME=str(home / "cache"),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def charrnn(*args) -> list[str]:
    return [sys.executable, "-m", "charrnn", *(str(arg) for arg in args)]


class Processes:
    """Started in their own sessions; `stop()` kills every process group, whatever happened."""

    def __init__(self):
        self.started: list[subprocess.Popen] = []

    def start(self, command, cwd: Path, env: dict, log: Path | None = None) -> subprocess.Popen:
        output = subprocess.DEVNULL if log is None else open(log, "wb")  # noqa: SIM115
        try:
            process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                       stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        finally:
            if log is not None:
                output.close()
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in self.started:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=HANG_GUARD)


def wait_for(condition, what: str, *alive: subprocess.Popen):
    """Poll until condition() is truthy; a hang guard, and the processes must stay up."""
    deadline = time.monotonic() + HANG_GUARD
    while not (result := condition()):
        for process in alive:
            assert process.poll() is None, f"{process.args[:3]} ended while waiting for {what}"
        assert time.monotonic() < deadline, f"hung waiting for {what}"
        time.sleep(0.01)
    return result


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[dict]:
    """The table of the sweep on the local process pool, uninterrupted."""
    directory = tmp_path_factory.mktemp("reference")
    write_sweep(directory)
    done = subprocess.run(charrnn("sweep", "sweep.yaml", "--out", "out", "--workers", 2,
                                  "--no-progress"),
                          cwd=directory, env=own_env(directory), capture_output=True, text=True,
                          timeout=HANG_GUARD)
    assert done.returncode == 0, done.stderr
    rows = sweep_table(directory / "out")
    assert len(rows) == TRIAL_RUNGS
    return rows


# --- workers with no path in common with the driver ----------------------------------------------

# Refuses (and records in argv[2]) every open or listing of a path under argv[1], the driver's
# directory, in the process that runs it.
REFUSE_THE_DRIVER_DIRECTORY = """
import os, sys
hidden, refusals = os.path.abspath(sys.argv[1]), sys.argv[2]
PATH_EVENTS = {"open", "os.listdir", "os.scandir", "os.chdir", "os.rename", "os.remove",
               "os.mkdir", "os.link", "os.symlink", "shutil.copyfile", "shutil.rmtree"}
def refuse_the_driver_directory(event, args):
    if event not in PATH_EVENTS or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path = os.path.abspath(os.fsdecode(args[0]))
    if path == hidden or path.startswith(hidden + os.sep):
        with open(refusals, "a") as log:
            log.write(event + " " + path + chr(10))
        raise PermissionError(f"the worker may not touch the driver's {path}")
sys.addaudithook(refuse_the_driver_directory)
"""
# a dask worker with no nanny (the worker is this very process, hook and all)
GUARDED_WORKER = REFUSE_THE_DRIVER_DIRECTORY + """
sys.argv = ["dask worker"] + sys.argv[3:]
from distributed.cli.dask_worker import main
main()
"""


def mount_namespace(hidden: Path) -> list[str]:
    """A command prefix that runs its command with an empty tmpfs over `hidden`, or [] where
    this machine allows no mount namespace (the audit hook still guards the directory)."""
    if shutil.which("unshare") is None:
        return []
    hide = ["sh", "-c", 'mount -t tmpfs -o size=1m charrnn-hidden "$0" && exec "$@"',
            str(hidden)]
    for unshare in (["unshare", "--mount", "--propagation", "private"],
                    ["unshare", "--user", "--map-root-user", "--mount", "--propagation",
                     "private"]):
        probe = subprocess.run([*unshare, *hide, "sh", "-c", 'test -z "$(ls -A "$0")"',
                                str(hidden)], capture_output=True, timeout=HANG_GUARD)
        if probe.returncode == 0:
            return [*unshare, *hide]
    return []


def test_the_guard_refuses_and_records_a_read_of_the_driver_directory(tmp_path):
    """The audit hook the workers run under does stop a read (so its silence means something)."""
    (tmp_path / "driver").mkdir()
    (tmp_path / "driver" / "names.txt").write_text("anna\n")
    refusals = tmp_path / "refused.txt"
    reader = REFUSE_THE_DRIVER_DIRECTORY + "print(open(sys.argv[3]).read())"
    done = subprocess.run([sys.executable, "-c", reader, str(tmp_path / "driver"), str(refusals),
                           str(tmp_path / "driver" / "names.txt")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=HANG_GUARD)
    assert done.returncode == 1 and "PermissionError" in done.stderr, done.stderr
    assert refusals.read_text().startswith("open " + str(tmp_path / "driver" / "names.txt"))


def test_sweep_on_workers_that_cannot_see_the_driver_gives_the_same_table(reference, tmp_path):
    driver = tmp_path / "driver"
    write_sweep(driver)
    processes = Processes()
    try:
        scheduler_dir = tmp_path / "scheduler"
        scheduler_dir.mkdir()
        scheduler = processes.start(
            ["dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", "scheduler.json"],
            scheduler_dir, own_env(scheduler_dir), scheduler_dir / "scheduler.log")
        info = scheduler_dir / "scheduler.json"
        address = wait_for(lambda: info.exists() and json.loads(info.read_text() or "{}")
                           .get("address"), "the scheduler's address", scheduler)
        prefix = mount_namespace(driver)
        workers = []
        for name in ("w1", "w2"):
            home = tmp_path / name
            home.mkdir()
            workers.append(processes.start(
                [*prefix, sys.executable, "-c", GUARDED_WORKER, str(driver),
                 str(home / "refused.txt"), address, "--nthreads", "1", "--no-nanny",
                 "--no-dashboard", "--name", name, "--local-directory", str(home / "scratch")],
                home, own_env(home), home / "worker.log"))
        for name in ("w1", "w2"):  # both connected before the sweep starts
            log = tmp_path / name / "worker.log"
            wait_for(lambda log=log: b"Registered to" in log.read_bytes(),
                     f"worker {name} to register", *workers)

        done = subprocess.run(
            charrnn("sweep", "sweep.yaml", "--out", "out", "--address", address,
                    "--connect-timeout", HANG_GUARD, "--no-progress"),
            cwd=driver, env=own_env(driver), capture_output=True, text=True, timeout=HANG_GUARD)
        assert done.returncode == 0, done.stderr
        for worker in workers:
            assert worker.poll() is None, "a worker died"
    finally:
        processes.stop()
    for name in ("w1", "w2"):
        refused = tmp_path / name / "refused.txt"
        assert not refused.exists(), refused.read_text()
    assert sweep_table(driver / "out") == reference
    assert f"trained {TRIAL_RUNGS} trial-rungs" in done.stderr


# --- a SIGKILLed driver --------------------------------------------------------------------------

def descendants(pid: int) -> list[int]:
    """Every process below pid, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """A local-pool sweep whose driver is SIGKILLed after a seeded number of finished
    trial-rungs, then rerun with --resume. Yields (directory, finished at the kill, the
    driver's pool processes at the kill, the resume's stderr)."""
    directory = tmp_path_factory.mktemp("killed")
    write_sweep(directory)
    out = directory / "out"
    processes = Processes()
    try:
        for attempt in range(5):  # a kill that comes after the last trial-rung proves nothing
            shutil.rmtree(out, ignore_errors=True)
            wanted = random.Random(attempt).randint(1, 3)
            driver = processes.start(charrnn("sweep", "sweep.yaml", "--out", "out", "--workers",
                                             1, "--no-progress"),
                                     directory, own_env(directory), directory / "driver.log")
            wait_for(lambda wanted=wanted: finished_rungs(out) >= wanted,
                     f"{wanted} finished trial-rungs", driver)
            pool = descendants(driver.pid)
            os.kill(driver.pid, signal.SIGKILL)
            driver.wait(timeout=HANG_GUARD)
            assert driver.returncode == -signal.SIGKILL
            at_kill = finished_rungs(out)
            if at_kill < TRIAL_RUNGS:
                break
        assert at_kill < TRIAL_RUNGS, "every kill came after the sweep had finished"
        resumed = subprocess.run(charrnn("sweep", "sweep.yaml", "--out", "out", "--resume",
                                         "--workers", 1, "--no-progress"),
                                 cwd=directory, env=own_env(directory), capture_output=True,
                                 text=True, timeout=HANG_GUARD)
        assert resumed.returncode == 0, resumed.stderr
        yield directory, at_kill, pool, resumed.stderr
    finally:
        processes.stop()  # the killed driver's session: its pool processes too


def test_a_sigkilled_driver_resumes_to_the_same_table(killed_and_resumed, reference):
    directory, at_kill, _, stderr = killed_and_resumed
    assert 1 <= at_kill < TRIAL_RUNGS
    assert sweep_table(directory / "out") == reference
    # finished trial-rungs were not trained again
    assert f"({at_kill} already done)" in stderr, stderr
    assert not list((directory / "out").rglob("*.new")) and not list(
        (directory / "out").rglob("*.tmp"))


def test_a_sigkilled_driver_leaves_no_pool_process_behind(killed_and_resumed):
    """The killed driver's pool processes (its workers and multiprocessing's resource tracker)
    end by themselves; a left-over one hangs this test until the guard."""
    _, _, pool, _ = killed_and_resumed
    assert pool, "the driver had no pool processes to watch"
    wait_for(lambda: not any(running(pid) for pid in pool),
             f"the killed driver's pool processes {pool} to end")

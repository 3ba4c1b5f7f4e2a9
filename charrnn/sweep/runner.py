"""The driver loop: `run_sweep` trains a plan rung by rung through executors, committing each
result to the store, and turns SIGINT/SIGTERM into `SweepInterrupted`.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, CancelledError, Executor, wait
from dataclasses import dataclass, field
from pathlib import Path

from charrnn.errors import CharRNNError
from charrnn.plumbing.reading import read_bytes
from charrnn.sweep.executors import DEFAULT_RETRIES, Submitter, Task
from charrnn.sweep.plan import RungView, SweepPlan, survivors
from charrnn.sweep.store import Store, check_sweep_outputs, plan_fingerprint


@dataclass
class SweepOutcome:
    out: Path
    plan: SweepPlan
    rows: list[dict]  # results.csv, in order
    ranking: list[dict]  # each trial's last row, best first
    trained: int  # trial-rungs trained by this run
    reused: int  # trial-rungs found finished in --out
    seconds: float
    failed: list[dict] = field(default_factory=list)

    @property
    def winner(self) -> dict | None:
        return self.ranking[0] if self.ranking and self.ranking[0]["status"] != "failed" else None


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM reached the driver; what finished is written in `out`."""

    def __init__(self, signum: int, out: Path, done: int, total: int):
        self.signum, self.out, self.done, self.total = signum, out, done, total
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}: {done} of about "
                         f"{total} trial-rungs are finished in {out}")


class _Signals:
    """SIGINT/SIGTERM become a flag the driver loop checks between completions (main thread)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._catch)
        return self

    def _catch(self, signum, frame):
        self.signum = self.signum or signum

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class _Stop(Exception):
    pass



def run_sweep(plan: SweepPlan, out: str | Path, make_executor: Callable[[], Executor], *,
              resume: bool = False, threads: int = 1, retries: int = DEFAULT_RETRIES,
              progress: bool | None = None, start: str | None = None,
              report: Callable[[str, str], None] | None = None) -> SweepOutcome:
    """Train the plan's trials through executors from make_executor(), writing `out`.

    Trial-rungs already finished in `out` are not trained again. A task whose worker died (or
    whose pool broke) is resubmitted up to `retries` times; a trial whose training raises
    CharRNNError (e.g. it diverged) is recorded as failed and drops out. Raises SweepInterrupted
    on SIGINT/SIGTERM (after stopping the workers) and CharRNNError when a rung cannot be
    completed. start: reported once every check has passed and `out` is the sweep's.
    """
    from tqdm import tqdm

    report = report or (lambda kind, text: print(text, file=sys.stderr))
    out = Path(out)
    started = time.perf_counter()
    check_sweep_outputs(plan, out)
    corpora: dict[str, bytes] = {}
    for trial in plan.trials:
        path = trial.config.data.corpus
        if path not in corpora:
            try:  # once, bounded for a pipe or device (plumbing.reading.Reading)
                corpora[path] = read_bytes(path, "corpus")
            except (CharRNNError, OSError) as error:
                reason = str(error) if isinstance(error, CharRNNError) else (
                    f"corpus {path} cannot be read ({error.strerror or error})")
                raise CharRNNError(f"{reason} (trial {trial.name})") from None
    store = Store(out, plan, plan_fingerprint(plan, corpora), resume, report)
    if start:
        report("info", start)
    runner = Submitter(make_executor, retries)
    reused = store.done_count()
    bar = None
    try:
        store.write_results()
        bar = tqdm(total=sum(plan.planned()), initial=reused, unit="trial-rung",
                   desc="sweep", file=sys.stderr, dynamic_ncols=True,
                   disable=progress is False or (progress is None and not sys.stderr.isatty()))

        def say(kind: str, text: str) -> None:
            bar.clear()
            report(kind, text)
            bar.refresh()

        with _Signals() as signals:
            try:
                while (view := store.next_rung()) is not None:
                    bar.total = store.done_count() + _remaining(plan, view)
                    bar.refresh()
                    lost = _run_rung(plan, store, runner, view, corpora, threads, signals, bar,
                                     say)
                    if lost:
                        names = ", ".join(f"{task.trial.name}" for task in lost)
                        raise CharRNNError(
                            f"{len(lost)} trial-rung(s) could not be trained ({names}) after "
                            f"{retries + 1} attempts each; last error: {lost[-1].last_error}. "
                            f"The finished ones are saved in {out}; rerun the same command to "
                            f"retry them")
            except _Stop:
                runner.abort()
                raise SweepInterrupted(signals.signum, out, store.done_count(),
                                       bar.total) from None
    except BaseException:
        runner.abort()  # an error stops the sweep now, not after the trials in flight
        raise
    finally:
        if bar is not None:
            bar.close()
        runner.close()
        store.close()
    rows = store.rows()
    return SweepOutcome(out, plan, rows, store.ranking(), runner.trained, reused,
                        time.perf_counter() - started,
                        [row for row in rows if row["status"] == "failed"])


def _remaining(plan: SweepPlan, view: RungView) -> int:
    """Trial-rungs still to train if none fails: the missing ones of this rung and the rest."""
    count = len(view.missing)
    entered = len(view.entered)
    for _ in range(view.index + 1, plan.rung_count):
        entered = survivors(entered, plan.keep)
        count += entered
    return count


def _run_rung(plan: SweepPlan, store: Store, runner: Submitter, view: RungView,
              corpora: dict[str, bytes], threads: int, signals: _Signals, bar,
              say: Callable[[str, str], None]) -> list[Task]:
    """Train the rung's missing trials; returns those that failed on the workers every time."""
    queue = [Task(trial, view.index) for trial in view.missing]
    lost: list[Task] = []
    while queue or runner.pending:
        if signals.signum is not None:
            raise _Stop
        while queue:
            task = queue.pop(0)
            runner.submit(task, store.task_arguments(task.trial, task.rung, corpora, threads))
        done, _ = wait(list(runner.pending), timeout=0.25, return_when=FIRST_COMPLETED)
        for future in sorted(done, key=lambda f: runner.pending[f][0].trial.index):
            task, generation = runner.pending.pop(future)
            trial = task.trial
            try:
                result = future.result()
            except CharRNNError as error:  # the trial itself is bad (diverged, too large, ...)
                store.commit_failure(trial, task.rung, str(error))
                say("warning", f"trial {trial.name} failed at "
                               f"{plan.steps(trial, task.rung)} steps: {error}")
                bar.update(1)
                continue
            except (CancelledError, Exception) as error:  # the worker died, or the pool broke
                if isinstance(error, BrokenExecutor):
                    runner._drop_executor(generation)
                task.attempts += 1
                task.last_error = " ".join(f"{type(error).__name__}: {error}".split())
                if task.attempts > runner.retries:
                    lost.append(task)
                else:
                    queue.append(task)
                continue
            store.commit(trial, task.rung, result)
            runner.trained += 1
            if task.rung == 0:
                for note in result["notes"]:
                    say("warning", f"trial {trial.name}: {note}")
            bar.update(1)
    return lost

"""The `charrnn sweep` command: a thin click layer over charrnn.sweep."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path

import click

from charrnn.cli.common import examples, friendly_errors
from charrnn.errors import CharRNNError
from charrnn.plumbing.terminal import printable
from charrnn.sweep import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_RETRIES,
    DaskExecutors,
    LocalExecutors,
    SweepInterrupted,
    describe_plan,
    format_table,
    load_sweep,
    run_sweep,
)


@click.command(epilog=examples(
    "charrnn sweep configs/sweeps/names.yaml --dry-run   # the shipped sweep's trials",
    "charrnn sweep my-sweep.yaml --workers 2",
    "charrnn sweep my-sweep.yaml --address tcp://HOST:8786   # on a Dask cluster"))
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), metavar="DIR",
              help="results directory [default: sweeps/<sweep file stem>]")
@click.option("--resume", is_flag=True,
              help="continue the sweep in --out, which must hold one (rerunning with the same "
                   "--out continues it too)")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="local worker processes [default: the cores, at most one a trial]")
@click.option("--address", metavar="tcp://HOST:PORT",
              help="run the trials on the Dask cluster whose scheduler listens here")
@click.option("--threads-per-trial", type=click.IntRange(min=1), default=1, show_default=True,
              metavar="N",
              help="BLAS threads each trial may use")
@click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True),
              default=DEFAULT_CONNECT_TIMEOUT, show_default=True, metavar="SECONDS",
              help="seconds to wait for the --address scheduler and a worker")
@click.option("--retries", type=click.IntRange(min=0), default=DEFAULT_RETRIES, metavar="N",
              show_default=True, help="reruns of a trial-rung whose worker died")
@click.option("--dry-run", is_flag=True, help="list the trials and rungs; train nothing")
@click.option("--progress/--no-progress", default=None,
              help="the progress bar over trial-rungs [default: only on a terminal]")
@friendly_errors
def sweep(sweep_file, out, resume, workers, address, threads_per_trial, connect_timeout,
          retries, dry_run, progress):
    """Train every configuration of SWEEP_FILE (locally or on a Dask cluster) and rank them."""
    if address and workers:
        raise click.UsageError("--workers sizes the local pool; with --address the cluster's "
                               "workers run the trials")
    plan = load_sweep(sweep_file)
    out = Path(out) if out else Path("sweeps") / Path(sweep_file).stem
    if dry_run:
        click.echo(describe_plan(plan))  # its values from the file are escaped
        return
    if address:
        executors = DaskExecutors(address, connect_timeout)
        executors.connect()  # fail fast, before anything is written
    else:
        executors = LocalExecutors(min(workers or os.cpu_count() or 1, len(plan.trials)),
                                   threads_per_trial)
    rungs = (f"rungs {'/'.join(map(str, plan.rungs))} keep {plan.keep:g}" if plan.rungs
             else "no halving")
    start = (f"sweep {sweep_file}: {len(plan.trials)} trials, {rungs}, on "
             f"{executors.describe()}; writing {out}")
    try:
        outcome = run_sweep(plan, out, executors, resume=resume, threads=threads_per_trial,
                            retries=retries, progress=progress, start=start,
                            report=lambda kind, text: click.echo(printable(text), err=True))
    except SweepInterrupted as stop:
        for signum in (signal.SIGINT, signal.SIGTERM):  # exiting now; more signals change nothing
            signal.signal(signum, signal.SIG_IGN)
        again = ["charrnn", "sweep", sweep_file, "--out", str(out), "--resume"]
        if address:
            again += ["--address", address]
        click.echo(printable(f"{stop}. Resume with: {shlex.join(again)}"), err=True)
        sys.exit(stop.exit_code)
    finally:
        executors.close()
    if outcome.ranking:
        click.echo(format_table(plan, outcome.ranking))
    winner = outcome.winner
    if winner is None:
        first = outcome.failed[0].get("error", "") if outcome.failed else ""
        raise CharRNNError(f"every trial failed (first: {outcome.failed[0]['trial']}: {first}); "
                           f"see {out / 'results.csv'}")
    if outcome.failed:
        names = sorted({row["trial"] for row in outcome.failed})
        click.echo(f"{len(names)} trial(s) failed: {', '.join(names)} (see status and "
                   f"{out / 'results.jsonl'})", err=True)
    best = "-" if winner["val_loss"] is None else f"{winner['val_loss']:.4f}"
    click.echo(f"best: {winner['trial']} (val {best} nats/char at {winner['steps']} steps), "
               f"saved {out / 'best.npz'}; trained {outcome.trained} trial-rungs in "
               f"{outcome.seconds:.1f} s ({outcome.reused} already done)", err=True)


command = sweep

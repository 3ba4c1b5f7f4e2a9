"""The thread policy: how many BLAS threads a run's matrix products use.

OpenBLAS starts one thread per core and uses them all for every product, however small. For
charrnn's small models that buys nothing on a quiet machine and costs a great deal on a busy one
(a thread that waits for a core stalls every product), so `auto` picks one thread unless a step's
recurrent product is large enough for a second core to pay (CROSSOVER, measured by
benchmarks/bench_threads.py on the project's machine; see docs/benchmarks.md), and then only as
many threads as other work leaves cores idle (sampled from /proc/stat at the start). A user's
explicit OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS always wins over `auto`.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

from charrnn.errors import CharRNNError

# a user's own thread setting, by BLAS: OpenBLAS, OpenMP builds, MKL, Apple's Accelerate (vecLib)
ENVIRONMENT = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS")
# multiply-adds of one time step's recurrent product, B x H x (G * H), from which a second thread
# pays for itself: 2 threads were >= 1.10x faster than 1 from 3.15M on (bench_threads.py)
CROSSOVER = 3_000_000
MAX_AUTO_THREADS = 8  # beyond this the recurrence's products are too small to keep threads fed


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str

    def describe(self) -> str:
        text = f"{self.threads} BLAS thread{'s' if self.threads != 1 else ''} ({self.reason})"
        if not settable_blas():  # Apple's Accelerate: threadpoolctl cannot set its threads
            text += ("; not enforced: this BLAS's threads cannot be set while it runs, "
                     "VECLIB_MAXIMUM_THREADS (Accelerate) set before starting decides")
        return text


def settable_blas() -> list[str]:
    """The BLAS libraries loaded in this process whose threads threadpoolctl can set (OpenBLAS,
    MKL, BLIS, FlexiBLAS); empty for Apple's Accelerate, which reads VECLIB_MAXIMUM_THREADS once
    as it loads."""
    import numpy  # noqa: F401 - the BLAS is NumPy's: load it before looking
    from threadpoolctl import threadpool_info

    return [found["internal_api"] for found in threadpool_info() if found["user_api"] == "blas"]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def busy_cores(interval: float = 0.25) -> float:
    """Cores kept busy by other work right now: /proc/stat's non-idle time over interval
    (the load average lags by a minute, so a run that just ended would still count)."""
    try:
        first = _cpu_times()
        time.sleep(interval)
        second = _cpu_times()
    except (OSError, ValueError, IndexError):  # no /proc (macOS, Windows)
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):  # Windows: no load average either
            return float(available_cores())  # unknown: as if busy, so auto takes 1 thread
    total = sum(second) - sum(first)
    idle = (second[3] + second[4]) - (first[3] + first[4])  # idle and iowait
    if total <= 0:
        return 0.0
    return available_cores() * (1.0 - idle / total)


def _cpu_times() -> list[int]:
    with open("/proc/stat", encoding="ascii") as handle:
        return [int(field) for field in handle.readline().split()[1:]]


def choose_threads(setting, batch_size: int, hidden_size: int, gates: int,
                   environ=None, cores: int | None = None,
                   load: float | None = None) -> ThreadChoice:
    """The number of BLAS threads for a run, and why. load: the 1-minute load average (None:
    read it); auto gives a large model as many threads as there are idle cores, at least 1."""
    if setting != "auto":
        return ThreadChoice(int(setting), "training.threads")
    environ = os.environ if environ is None else environ
    for name in ENVIRONMENT:
        value = environ.get(name, "").strip()
        if value:
            try:
                count = int(value)
            except ValueError:
                raise CharRNNError(f"{name}={value!r} is not a whole number; unset it or set "
                                   f"it to a thread count") from None
            if count >= 1:
                return ThreadChoice(count, f"from {name}")
    cores = available_cores() if cores is None else cores
    work = batch_size * hidden_size * gates * hidden_size
    if work < CROSSOVER or cores < 2:
        return ThreadChoice(1, "auto: small matrices, a second thread does not pay")
    idle = cores - (busy_cores() if load is None else load)
    if idle < 1.5:  # a thread that waits for a busy core stalls every product
        return ThreadChoice(1, f"auto: large matrices, but the machine is busy (load "
                               f"{cores - idle:.1f} on {cores} cores)")
    return ThreadChoice(min(cores, int(idle + 0.5), MAX_AUTO_THREADS), "auto: large matrices")


@contextlib.contextmanager
def blas_threads(count: int):
    """Limit BLAS to count threads inside the block (threadpoolctl), restoring them after."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=count, user_api="blas"):
        yield

"""Where trials run: the local spawn process pool (`LocalExecutors`) and a Dask cluster
(`DaskExecutors`: connecting, its timeout), and the `Submitter` that hands trial-rungs to them,
replacing a broken executor and counting the retries.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass

from charrnn.errors import CharRNNError, install_command
from charrnn.plumbing.terminal import shown
from charrnn.sweep.plan import Trial
from charrnn.sweep.worker import train_trial

DEFAULT_RETRIES = 3  # resubmissions of a trial-rung whose worker died or whose pool broke
DEFAULT_CONNECT_TIMEOUT = 5.0
# set to the per-trial thread count in the environment of the local pool's worker processes, so
# the BLAS library reads it when NumPy loads there
BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


_ENVIRON_LOCK = threading.Lock()


PARENT_POLL_SECONDS = 1.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _start_worker(driver: int) -> None:
    """A local pool worker leaves Ctrl-C to the driver, which ends it with SIGTERM, and ends
    itself when the driver dies, however it dies (`_end_with_parent`). Its (never shown) tqdm
    bars get a thread lock instead of a multiprocessing one, which a terminated worker would
    leave behind as a 'leaked semaphore' warning."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_parent(driver)
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def _end_with_parent(parent: int) -> None:
    """End this process when its parent (the sweep driver) dies, even by SIGKILL, which no
    handler of the driver's sees: on Linux the kernel sends SIGKILL (prctl PR_SET_PDEATHSIG);
    everywhere a daemon thread waits on multiprocessing's parent sentinel (a pipe or handle
    that closes when the parent ends), or, without one, checks every PARENT_POLL_SECONDS
    whether the parent changed. Without it, a killed driver's workers waited for ever on their
    task pipe, and kept the resource tracker alive with them. parent: the driver's pid, as the
    driver saw it."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def watch() -> None:
        process = multiprocessing.parent_process()
        if process is not None:
            process.join()  # returns once the parent's sentinel closes: it has ended
        else:
            while os.getppid() == parent:
                time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    if os.getppid() != parent:  # the driver died before the kernel was asked to watch it
        os._exit(1)
    threading.Thread(target=watch, name="charrnn-parent-watch", daemon=True).start()


class _LocalPool(ProcessPoolExecutor):
    """A spawn-context process pool whose workers start with BLAS limited to `threads`."""

    def __init__(self, workers: int, threads: int):
        super().__init__(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                         initializer=_start_worker, initargs=(os.getpid(),))
        self._blas = {name: str(threads) for name in BLAS_ENV}

    def submit(self, fn, /, *args, **kwargs):
        # workers are spawned inside submit and inherit the environment of that moment
        with _ENVIRON_LOCK:
            saved = {name: os.environ.get(name) for name in self._blas}
            os.environ.update(self._blas)
            try:
                return super().submit(fn, *args, **kwargs)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

    def stop(self) -> None:
        """Cancel what has not started and end the worker processes now."""
        terminate_workers = getattr(super(), "terminate_workers", None)  # Python 3.14+
        if terminate_workers is not None:
            terminate_workers()
            return
        processes = list((getattr(self, "_processes", None) or {}).values())
        for process in processes:
            with contextlib.suppress(Exception):
                process.terminate()
        self.shutdown(wait=True, cancel_futures=True)


class LocalExecutors:
    """Makes the process pool of a local sweep (and a fresh one if a worker dies)."""

    def __init__(self, workers: int | None = None, threads: int = 1):
        self.workers = workers or os.cpu_count() or 1
        self.threads = threads

    def __call__(self) -> Executor:
        return _LocalPool(self.workers, self.threads)

    def describe(self) -> str:
        return f"{self.workers} local worker{'s' if self.workers != 1 else ''}"

    def close(self) -> None:
        pass


SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
_ADDRESS = re.compile(r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?"
                      r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]@]+):(?P<port>[0-9]{1,5})/?")


def check_address(address: str) -> None:
    """A scheduler address is [SCHEME://]HOST:PORT, SCHEME one Dask speaks, PORT 1 to 65535."""
    match = _ADDRESS.fullmatch(address)
    scheme = match and (match["scheme"] or "tcp").lower()
    if match is None or scheme not in SCHEMES or not 0 < int(match["port"]) < 65536:
        why = (f"Dask does not speak {scheme}://" if match and scheme not in SCHEMES
               else "it is not [SCHEME://]HOST:PORT with a port from 1 to 65535")
        raise CharRNNError(f"--address {shown(address)} is not a scheduler address: {why}; "
                           f"give the one `dask scheduler` prints, e.g. tcp://127.0.0.1:8786")


class DaskExecutors:
    """Executors on a Dask cluster: `Client(address).get_executor()`, connected on first use."""

    def __init__(self, address: str, timeout: float = DEFAULT_CONNECT_TIMEOUT):
        check_address(address)  # at once: a malformed one made Client retry for seconds
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise CharRNNError(f"--address needs Dask, which is not installed; install it with "
                               f"{install_command('sweep')}") from None
        self.address = address
        self.timeout = timeout
        self.client = None

    def __call__(self) -> Executor:
        return self.connect().get_executor(pure=False)  # pure=False: a resubmission is new

    def connect(self):
        """The client, connected (once) to a scheduler with at least one worker."""
        if self.client is not None:
            return self.client
        import distributed

        workers = f"`dask worker {self.address} --nthreads 1`"
        try:
            client = distributed.Client(self.address, timeout=self.timeout,
                                        set_as_default=False)
        except Exception as error:  # OSError on a timeout, ValueError/TypeError on a bad address
            reason = " ".join(str(error).split()) or type(error).__name__
            raise CharRNNError(f"cannot reach the Dask scheduler at {self.address} ({reason}); "
                               f"start one with `dask scheduler` and workers with {workers}, "
                               f"or run without --address") from None
        try:
            client.wait_for_workers(1, timeout=self.timeout)
        except Exception:
            client.close()
            raise CharRNNError(f"the Dask scheduler at {self.address} has no workers after "
                               f"{self.timeout:g} s; start them with {workers}") from None
        self.client = client
        return client

    def describe(self) -> str:
        return f"the Dask cluster at {self.address}"

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = None


@dataclass
class Task:
    trial: Trial
    rung: int
    attempts: int = 0
    last_error: str = ""


class Submitter:
    """Submits trial-rungs to executors from `make_executor`, replacing a broken one."""

    def __init__(self, make_executor: Callable[[], Executor], retries: int):
        self.make_executor = make_executor
        self.retries = retries
        self.executor: Executor | None = None
        self.generation = 0
        self.pending: dict[Future, tuple[Task, int]] = {}
        self.trained = 0

    def _executor(self) -> Executor:
        if self.executor is None:
            self.executor = self.make_executor()
            self.generation += 1
        return self.executor

    def _drop_executor(self, generation: int) -> None:
        """Give up a broken executor (a local pool whose worker died), ending its workers."""
        if self.executor is not None and generation == self.generation:
            executor, self.executor = self.executor, None
            _stop_executor(executor)

    def submit(self, task: Task, arguments: tuple) -> None:
        for _ in range(self.retries + 2):
            executor = self._executor()
            try:
                future = executor.submit(train_trial, *arguments)
            except BrokenExecutor:
                self._drop_executor(self.generation)
                continue
            self.pending[future] = (task, self.generation)
            return
        raise CharRNNError("the worker pool keeps breaking before a trial starts; check the "
                           "workers' memory and logs")

    def abort(self) -> None:
        for future in self.pending:
            future.cancel()
        executor, self.executor = self.executor, None
        if executor is not None:
            _stop_executor(executor)

    def close(self) -> None:
        executor, self.executor = self.executor, None
        if executor is not None:
            with contextlib.suppress(Exception):
                executor.shutdown(wait=True)


def _stop_executor(executor: Executor) -> None:
    """End an executor now: a local pool's workers are terminated, a Dask executor's tasks
    cancelled."""
    stop = getattr(executor, "stop", None)
    with contextlib.suppress(Exception):
        if stop is not None:
            stop()
        else:
            executor.shutdown(wait=False)
